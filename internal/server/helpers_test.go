package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/internal/config"
)

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

// loopback puts every listener on a random loopback port.
var loopback = config.Overrides{GRPCListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", AdminListen: "127.0.0.1:0"}

// fileLoader loads, overrides (loopback plus o) and validates the file at path, as the
// command does.
func fileLoader(path string, o config.Overrides) func() (*config.File, error) {
	return func() (*config.File, error) {
		f, err := config.Load(path)
		if err != nil {
			return nil, err
		}
		loopback.Apply(f)
		o.Apply(f)
		return f, f.Validate()
	}
}

// writeConfig writes yaml to a file in a fresh directory and returns its loader.
func writeConfig(t *testing.T, yaml string) (path string, load func() (*config.File, error)) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, fileLoader(path, config.Overrides{})
}

// offlineClient refuses every request: "no OP is reachable".
func offlineClient() *http.Client {
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return nil, errors.New("test: network disabled")
	})}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// running is a Server run in the background.
type running struct {
	t     *testing.T
	sigs  chan os.Signal
	addrs map[string]string
	log   *syncBuffer
	done  chan error
	srv   *Server
}

// start loads the configuration with o.Load, builds the server (logger into a buffer,
// signals from a test channel) and runs it until its listeners are up.
func start(t *testing.T, o Options) *running {
	t.Helper()
	f, err := o.Load()
	if err != nil {
		t.Fatal(err)
	}
	r := &running{t: t, sigs: make(chan os.Signal, 4), log: &syncBuffer{}, done: make(chan error, 1)}
	o.Logger, o.Level = NewLogger(r.log, f.Log)
	o.Signals = r.sigs
	up := make(chan map[string]string, 1)
	o.OnListening = func(addrs map[string]string) { up <- addrs }
	s, err := New(f, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	r.srv = s
	go func() { r.done <- s.Run(context.Background()) }()
	select {
	case r.addrs = <-up:
	case err := <-r.done:
		t.Fatalf("stopped before listening: %v\n%s", err, r.log)
	case <-time.After(20 * time.Second):
		t.Fatal("not listening after 20s")
	}
	t.Cleanup(func() {
		select {
		case r.sigs <- os.Interrupt:
		default:
		}
		select {
		case err := <-r.done:
			r.done <- err
		case <-time.After(20 * time.Second):
			t.Error("did not stop after 20s")
		}
	})
	return r
}

// stop sends sig and returns the log and Run's result.
func (r *running) stop(sig os.Signal) (string, error) {
	r.t.Helper()
	r.sigs <- sig
	select {
	case err := <-r.done:
		r.done <- err // for Cleanup
		return r.log.String(), err
	case <-time.After(20 * time.Second):
		r.t.Fatal("did not stop after 20s")
		return "", nil
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

// defaultLoader is the embedded default configuration with loopback listeners and o.
func defaultLoader(o config.Overrides) func() (*config.File, error) {
	return func() (*config.File, error) {
		f := config.Default()
		loopback.Apply(f)
		o.Apply(f)
		return f, f.Validate()
	}
}
