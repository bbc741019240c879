package server

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/flaat-extauthz/flaat-extauthz/internal/config"
	"github.com/flaat-extauthz/flaat-extauthz/internal/testutil"
)

// TestServeHooks: an extra listener is served, reaches the current authorizer and stops
// with the others; HTTPMiddleware wraps the check handler; OPTransportWrap sees the OP
// requests; OnShutdown runs after the
// listeners stopped; Probe reports /healthz and /readyz as a healthcheck command would.
func TestServeHooks(t *testing.T) {
	var srv func() *Server
	extra := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if srv().Authorizer() == nil {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	var shutdownRan []string
	var wrapped atomic.Int64
	r := start(t, Options{
		Load:      defaultLoader(config.Overrides{Issuers: []string{"https://op.example"}}),
		Transport: offline(),
		OPTransportWrap: func(next http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(req *http.Request) (*http.Response, error) {
				wrapped.Add(1)
				return next.RoundTrip(req)
			})
		},
		Listeners:      []Listener{{Name: "logout", Addr: "127.0.0.1:0", Handler: extra}},
		HTTPMiddleware: func(h http.Handler) http.Handler { return wrapHeader(h, "x-wrapped", "yes") },
		OnShutdown: []func(context.Context) error{func(context.Context) error {
			shutdownRan = append(shutdownRan, "hook")
			return nil
		}},
	})
	srv = func() *Server { return r.srv }

	if code, _ := r.Get("logout", "/", nil); code != http.StatusNoContent {
		t.Errorf("extra listener = %d, want 204 (it sees the current authorizer)", code)
	}
	if code, _, h := r.GetH("http", "/x", nil); code != 401 || h.Get("x-wrapped") != "yes" {
		t.Errorf("check = %d x-wrapped=%q, want 401 through the middleware", code, h.Get("x-wrapped"))
	}
	ctx := context.Background()
	if err := Probe(ctx, nil, r.Addrs["admin"], HealthzPath); err != nil {
		t.Errorf("Probe healthz: %v", err)
	}
	if err := Probe(ctx, nil, r.Addrs["admin"], ReadyzPath); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("Probe readyz with an unreachable OP = %v, want a 503 error", err)
	}
	if wrapped.Load() == 0 {
		t.Error("OPTransportWrap saw no OP request (the discovery attempt)")
	}
	if _, err := r.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if len(shutdownRan) != 1 {
		t.Errorf("OnShutdown ran %d times, want 1", len(shutdownRan))
	}
	if err := Probe(ctx, nil, r.Addrs["logout"], "/"); err == nil {
		t.Error("extra listener still answers after shutdown")
	}
}

func wrapHeader(h http.Handler, k, v string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(k, v)
		h.ServeHTTP(w, r)
	})
}

// TestNewRefuses: New reports a bad listener set and binds nothing.
func TestNewRefuses(t *testing.T) {
	f, err := defaultLoader(config.Overrides{})()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"no logger", Options{}, "Logger"},
		{"listener name taken", Options{Listeners: []Listener{{Name: "admin", Addr: "127.0.0.1:0"}}}, `"admin"`},
		{"listener without name", Options{Listeners: []Listener{{Addr: "127.0.0.1:0"}}}, `""`},
		{"bad address", Options{Listeners: []Listener{{Name: "x", Addr: "256.0.0.1:0"}}}, "x listener"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name != "no logger" {
				tc.o.Logger, _ = NewLogger(&testutil.Buffer{}, f.Log)
			}
			s, err := New(f, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, %v; want an error naming %s", s, err, tc.want)
			}
		})
	}
}
