package main

import (
	"context"
	"errors"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// result is one in-process run of the binary.
type result struct {
	code           int
	stdout, stderr string
}

// testApp returns an app with captured output, the environment env (nothing else of
// the real environment), a fixed clock unless now is set later, and no network beyond
// what client allows.
func testApp(env map[string]string) (*app, *testutil.Buffer, *testutil.Buffer) {
	out, errb := &testutil.Buffer{}, &testutil.Buffer{}
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
	out, errb := a.stdout.(*testutil.Buffer), a.stderr.(*testutil.Buffer)
	code := a.run(context.Background(), args)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// offline refuses every request: "no OP is reachable".
func offline() http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return nil, errors.New("test: network disabled")
	})
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

// start runs args in the background and waits until its listeners are up (or it exits).
func start(t *testing.T, a *app, args ...string) *testutil.Running[result] {
	t.Helper()
	return testutil.Start(t, func(sigs <-chan os.Signal, listening func(map[string]string)) result {
		a.signals, a.listening = sigs, listening
		code := a.run(context.Background(), args)
		return result{code: code, stdout: a.stdout.(*testutil.Buffer).String(), stderr: a.stderr.(*testutil.Buffer).String()}
	})
}
