package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a running server.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// result is one in-process run of the binary.
type result struct {
	code           int
	stdout, stderr string
}

// testApp returns an app with captured output, the environment env (nothing else of
// the real environment), a fixed clock unless now is set later, and no network beyond
// what client allows.
func testApp(env map[string]string) (*app, *syncBuffer, *syncBuffer) {
	out, errb := &syncBuffer{}, &syncBuffer{}
	a := &app{
		stdin:  strings.NewReader(""),
		stdout: out,
		stderr: errb,
		getenv: func(k string) string { return env[k] },
		now:    time.Now,
	}
	return a, out, errb
}

// runCmd runs args to completion.
func runCmd(t *testing.T, a *app, args ...string) result {
	t.Helper()
	out, errb := a.stdout.(*syncBuffer), a.stderr.(*syncBuffer)
	code := a.run(context.Background(), args)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// offlineClient refuses every request: "no OP is reachable".
func offlineClient() *http.Client {
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return nil, errors.New("test: network disabled")
	})}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("output differs from %s (run with -update to accept):\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

// running is a serve/demo run in the background.
type running struct {
	t     *testing.T
	sigs  chan os.Signal
	addrs map[string]string
	done  chan result
}

// start runs args in the background and waits until its listeners are up (or it exits).
func start(t *testing.T, a *app, args ...string) *running {
	t.Helper()
	r := &running{t: t, sigs: make(chan os.Signal, 4), done: make(chan result, 1)}
	up := make(chan map[string]string, 1)
	a.signals = r.sigs
	a.listening = func(addrs map[string]string) { up <- addrs }
	go func() {
		code := a.run(context.Background(), args)
		r.done <- result{code: code, stdout: a.stdout.(*syncBuffer).String(), stderr: a.stderr.(*syncBuffer).String()}
	}()
	select {
	case r.addrs = <-up:
	case res := <-r.done:
		t.Fatalf("exited %d before listening:\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
	case <-time.After(20 * time.Second):
		t.Fatal("not listening after 20s")
	}
	t.Cleanup(func() {
		select {
		case r.sigs <- os.Interrupt:
		default:
		}
		select {
		case <-r.done:
		case <-time.After(20 * time.Second):
			t.Error("did not stop after 20s")
		}
	})
	return r
}

// stop sends sig and returns the result.
func (r *running) stop(sig os.Signal) result {
	r.t.Helper()
	r.sigs <- sig
	select {
	case res := <-r.done:
		r.done <- res // for Cleanup
		return res
	case <-time.After(20 * time.Second):
		r.t.Fatal("did not stop after 20s")
		return result{}
	}
}

// get performs an HTTP GET against one of the listeners.
func (r *running) get(listener, path string, hdr map[string]string) (int, string) {
	r.t.Helper()
	code, body, _ := r.getH(listener, path, hdr)
	return code, body
}

// getH is get that also returns the response headers.
func (r *running) getH(listener, path string, hdr map[string]string) (int, string, http.Header) {
	r.t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+r.addrs[listener]+path, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}
