package server

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/flaat-extauthz/flaat-extauthz/internal/config"
	"github.com/flaat-extauthz/flaat-extauthz/internal/testutil"
)

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

// offline refuses every request: "no OP is reachable".
func offline() http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return nil, errors.New("test: network disabled")
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// running is a Server run in the background, its log and the Server.
type running struct {
	*testutil.Running[error]
	log *testutil.Buffer
	srv *Server
}

// start loads the configuration with o.Load, builds the server (logger into a buffer,
// signals from a test channel) and runs it until its listeners are up.
func start(t *testing.T, o Options) *running {
	t.Helper()
	f, err := o.Load()
	if err != nil {
		t.Fatal(err)
	}
	r := &running{log: &testutil.Buffer{}}
	o.Logger, o.Level = NewLogger(r.log, f.Log)
	r.Running = testutil.Start(t, func(sigs <-chan os.Signal, listening func(map[string]string)) error {
		o.Signals, o.OnListening = sigs, listening
		s, err := New(f, o)
		if err != nil {
			return err
		}
		r.srv = s
		return s.Run(context.Background())
	})
	return r
}

// stop sends sig and returns the log and Run's result.
func (r *running) stop(sig os.Signal) (string, error) {
	err := r.Stop(sig)
	return r.log.String(), err
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
