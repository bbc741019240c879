// Package testutil holds helpers shared by the tests of several packages: a buffer for
// the logs of a running server and a harness that runs a server in the background.
// Only tests import it (cmd/flaat-extauthz's TestNoTestCodeLinked checks the binary).
package testutil

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"
)

// Buffer is a bytes.Buffer safe for the concurrent writes of a running server.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// wait bounds every wait for a server to start or stop.
const wait = 20 * time.Second

// Running is a server run in the background, R the result of its run function.
type Running[R any] struct {
	t     testing.TB
	Sigs  chan os.Signal    // delivers signals to the run
	Addrs map[string]string // bound address per listener name
	done  chan R
}

// Start calls run in the background with a signal channel and a function it must call
// with the bound addresses once it listens, and waits for that (or for run to return,
// which fails t). At the end of the test the run is interrupted and awaited.
func Start[R any](t testing.TB, run func(sigs <-chan os.Signal, listening func(addrs map[string]string)) R) *Running[R] {
	t.Helper()
	r := &Running[R]{t: t, Sigs: make(chan os.Signal, 4), done: make(chan R, 1)}
	up := make(chan map[string]string, 1)
	go func() { r.done <- run(r.Sigs, func(addrs map[string]string) { up <- addrs }) }()
	select {
	case r.Addrs = <-up:
	case res := <-r.done:
		t.Fatalf("stopped before listening: %+v", res)
	case <-time.After(wait):
		t.Fatal("not listening after 20s")
	}
	t.Cleanup(func() {
		select {
		case r.Sigs <- os.Interrupt:
		default:
		}
		select {
		case res := <-r.done:
			r.done <- res
		case <-time.After(wait):
			t.Error("did not stop after 20s")
		}
	})
	return r
}

// Stop sends sig and returns the run's result.
func (r *Running[R]) Stop(sig os.Signal) R {
	r.t.Helper()
	r.Sigs <- sig
	select {
	case res := <-r.done:
		r.done <- res // for Cleanup
		return res
	case <-time.After(wait):
		r.t.Fatal("did not stop after 20s")
		var zero R
		return zero
	}
}

// Get performs an HTTP GET of path on the named listener.
func (r *Running[R]) Get(listener, path string, hdr map[string]string) (int, string) {
	r.t.Helper()
	code, body, _ := r.GetH(listener, path, hdr)
	return code, body
}

// GetH is Get that also returns the response headers.
func (r *Running[R]) GetH(listener, path string, hdr map[string]string) (int, string, http.Header) {
	r.t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+r.Addrs[listener]+path, nil)
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
