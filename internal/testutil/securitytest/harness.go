// Package securitytest proves that flaat-extauthz keeps answering, never allows what
// it should deny and never leaks a token, under hostile input and OP faults. Its tests
// run the full in-process pipeline — envoy.Server.Check with a real authz.Authorizer, a
// real policy.Engine and the fake OP of package oidctest — and print figures:
//
//   - TestAdversarial: one named table of attacks (alg:none, key confusion, jku/x5u/jwk,
//     untrusted and look-alike issuers, malformed tokens, claim type confusion, path
//     tricks, spoofed identity headers, …), each asserting a denial;
//   - TestFault…: OP down, hanging, slow, 500, 429 + Retry-After, malformed JSON, HTML,
//     10 MiB body, redirect to another host; JWKS rotation under load; no goroutine leak;
//   - TestSecrets: every log line (debug), the /metrics text and every error string of
//     those runs contain no token.
//
// The non-test files hold the harness (Stack, Transport, Clock, LogBuffer), exported so
// that the soak test (package soak) builds the same pipeline. It is test support: it
// imports oidctest, a development OP that signs whatever it is asked to.
package securitytest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/envoy"
	"github.com/flaat-extauthz/flaat-extauthz/internal/metrics"
	"github.com/flaat-extauthz/flaat-extauthz/internal/resilience"
	"github.com/flaat-extauthz/flaat-extauthz/internal/testutil"
	"github.com/flaat-extauthz/flaat-extauthz/internal/testutil/clocktest"
	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// Host is the :authority of every check request the harness builds.
const Host = "api.example.org"

// Clock is a manual clock shared by the OP, the Authorizer and the breaker.
type Clock = clocktest.Clock

// NewClock returns a clock standing at the current wall time (so that TLS-free loopback
// HTTP and token iat values look plausible); it moves only when Advance is called.
func NewClock() *Clock { return clocktest.New(time.Now().Truncate(time.Second)) }

// Hook intercepts one outbound request: return a response or error to answer it, or
// call next to send it on (possibly changing the reply).
type Hook func(req *http.Request, next http.RoundTripper) (*http.Response, error)

// Transport is the innermost RoundTripper of the harness: it counts every outbound
// request by host and path, can make a host refuse connections (a real ECONNREFUSED
// from the kernel, by sending the request to a closed loopback port) and runs an
// optional Hook. Safe for concurrent use.
type Transport struct {
	base http.RoundTripper
	dead string // host:port of a closed loopback listener

	mu      sync.Mutex
	byHost  map[string]int
	byPath  map[string]int
	total   int
	refused map[string]bool
	hook    Hook
}

// NewTransport returns a counting Transport over a fresh *http.Transport.
func NewTransport() *Transport {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("securitytest: listen: %v", err))
	}
	dead := l.Addr().String()
	l.Close()
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 64
	return &Transport{base: base, dead: dead, byHost: map[string]int{}, byPath: map[string]int{}, refused: map[string]bool{}}
}

// RoundTrip counts req and sends it (or refuses it, or hands it to the Hook).
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	t.total++
	t.byHost[req.URL.Host]++
	t.byPath[req.URL.Path]++
	refused := t.refused[req.URL.Host]
	hook := t.hook
	t.mu.Unlock()
	var next http.RoundTripper = t.base
	if refused {
		next = roundTripFunc(func(req *http.Request) (*http.Response, error) {
			r := req.Clone(req.Context())
			r.URL.Host = t.dead
			return t.base.RoundTrip(r)
		})
	}
	if hook != nil {
		return hook(req, next)
	}
	return next.RoundTrip(req)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// SetHook installs h (nil: none).
func (t *Transport) SetHook(h Hook) {
	t.mu.Lock()
	t.hook = h
	t.mu.Unlock()
}

// Refuse makes connections to host (host:port) fail with "connection refused" while on.
func (t *Transport) Refuse(host string, on bool) {
	t.mu.Lock()
	t.refused[host] = on
	t.mu.Unlock()
}

// Total returns the number of outbound requests so far.
func (t *Transport) Total() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total
}

// Path returns the number of outbound requests to a URL path so far.
func (t *Transport) Path(p string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byPath[p]
}

// CloseIdleConnections closes idle connections of the underlying transport.
func (t *Transport) CloseIdleConnections() { t.base.(*http.Transport).CloseIdleConnections() }

// LogBuffer collects log output; safe for concurrent use.
type LogBuffer struct{ testutil.Buffer }

// Logger returns a debug-level JSON logger writing into l.
func (l *LogBuffer) Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Options configures NewStack. Zero fields mean the documented defaults.
type Options struct {
	// Now is the clock of the OP, the Authorizer and the breaker. nil: time.Now.
	Now func() time.Time
	// Userinfo is the issuer's userinfo mode (authz.Userinfo…). Default "optional".
	Userinfo string
	// Audiences of the issuer. Default ["api"].
	Audiences []string
	// HTTPTimeout is authz's per-call OP timeout. Default 500ms.
	HTTPTimeout time.Duration
	// JWKSRefreshInterval is authz's unknown-kid refresh limit. Default 30s.
	JWKSRefreshInterval time.Duration
	// CacheSize and CacheMaxTTL configure the identity cache. Defaults: authz's.
	CacheSize   int
	CacheMaxTTL time.Duration
	// Breaker is verification.breaker. Default: authz's (threshold 5, open 10s, 16
	// concurrent per host).
	Breaker authz.BreakerConfig
}

// Stack is one complete in-process flaat-extauthz: fake OP → counting Transport →
// the OP client authz builds for serve (resilience breaker and limits from
// Options.Breaker, body limit, redirect policy) → authz.Authorizer → policy →
// envoy.Server, with every log line captured at debug level and a Prometheus registry
// holding all metrics, the breaker's too.
type Stack struct {
	OP         *oidctest.OP
	Net        *Transport
	Authorizer *authz.Authorizer
	Server     *envoy.Server
	Logs       *LogBuffer
	Registry   *prometheus.Registry

	mu     sync.Mutex
	errs   []string // every Decision.Err and Reason seen
	closed bool
}

// PolicyConfig is the policy of every Stack: /health is public, /admin needs the group
// "admins", everything else needs a valid token.
func PolicyConfig() policy.Config {
	return policy.Config{
		AccessLevels: map[string]policy.Requirement{
			"user":  {Authenticated: true},
			"admin": {Groups: &policy.ValuesRequirement{Values: policy.StringList{"admins"}}},
		},
		Routes: []policy.Route{
			{Name: "health", Path: &policy.PathMatch{Exact: "/health"}, Public: true},
			{Name: "admin", Path: &policy.PathMatch{Prefix: "/admin"}, Require: &policy.Requirement{Level: "admin"}},
		},
		Default: &policy.Requirement{Level: "user"},
	}
}

// NewStack starts a fake OP and builds the pipeline; everything is closed by t.Cleanup.
func NewStack(t testing.TB, o Options) *Stack {
	t.Helper()
	now := o.Now
	if now == nil {
		now = time.Now
	}
	op := oidctest.New(t, oidctest.WithClock(now))
	return NewStackFor(t, op, o)
}

// NewStackFor builds the pipeline in front of an existing OP.
func NewStackFor(t testing.TB, op *oidctest.OP, o Options) *Stack {
	t.Helper()
	now := o.Now
	if now == nil {
		now = time.Now
	}
	if o.Audiences == nil {
		o.Audiences = []string{"api"}
	}
	if o.HTTPTimeout == 0 {
		o.HTTPTimeout = 500 * time.Millisecond
	}
	s := &Stack{OP: op, Net: NewTransport(), Logs: &LogBuffer{}, Registry: prometheus.NewRegistry()}
	log := s.Logs.Logger()
	ic := op.IssuerConfig()
	ic.Userinfo = o.Userinfo
	ic.Audiences = o.Audiences
	cfg := authz.Config{
		Issuers:             []authz.IssuerConfig{ic},
		HTTPTimeout:         authz.Duration(o.HTTPTimeout),
		JWKSRefreshInterval: authz.Duration(o.JWKSRefreshInterval),
		Cache:               authz.CacheConfig{Size: o.CacheSize, MaxTTL: authz.Duration(o.CacheMaxTTL)},
		Breaker:             o.Breaker,
	}
	pol, err := policy.New(PolicyConfig())
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	m := metrics.New(s.Registry)
	a, err := authz.New(cfg, pol, authz.WithTransport(s.Net), authz.WithClock(now),
		authz.WithLogger(log), authz.WithObserver(m))
	if err != nil {
		t.Fatalf("authz: %v", err)
	}
	m.SetCacheSource(a.CacheStats)
	s.Registry.MustRegister(resilience.NewCollector("flaat_extauthz", a.OPStats))
	s.Authorizer = a
	em, err := envoy.NewMetrics(s.Registry)
	if err != nil {
		t.Fatalf("envoy metrics: %v", err)
	}
	recording := envoy.AuthorizerFunc(func(ctx context.Context, r authz.Request) authz.Decision {
		d := a.Authorize(ctx, r)
		s.mu.Lock()
		if d.Err != nil {
			s.errs = append(s.errs, d.Err.Error())
		}
		s.errs = append(s.errs, d.Reason)
		s.mu.Unlock()
		return d
	})
	srv, err := envoy.NewServer(recording, envoy.Config{DenyLogLevel: "debug"}, envoy.WithLogger(log), envoy.WithMetrics(em))
	if err != nil {
		t.Fatalf("envoy: %v", err)
	}
	s.Server = srv
	t.Cleanup(s.Close)
	return s
}

// Close closes the Authorizer and idle connections. Idempotent.
func (s *Stack) Close() {
	s.mu.Lock()
	closed := s.closed
	s.closed = true
	s.mu.Unlock()
	if closed {
		return
	}
	s.Authorizer.Close()
	s.Net.CloseIdleConnections()
}

// BreakerTotals sums the OP client's counters over all OP hosts; State is the worst.
func (s *Stack) BreakerTotals() resilience.Stats { return resilience.Totals(s.Authorizer.OPStats()) }

// Errors returns every Decision.Err string and Reason seen so far.
func (s *Stack) Errors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.errs...)
}

// MetricsText returns the Prometheus exposition of the Stack's registry, as /metrics
// would serve it.
func (s *Stack) MetricsText(t testing.TB) string {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// Req describes one check request.
type Req struct {
	Authorization string // the Authorization header ("" = none)
	Method        string // default GET
	Path          string // default /api
	Headers       map[string]string
	// DPoP is the DPoP header ("" = none).
	DPoP string
	// ClientCert is Envoy's attributes.source.certificate: the URL-encoded PEM of the
	// client certificate of the downstream connection ("" = none).
	ClientCert string
}

// Scheme is the original scheme of every check request.
const Scheme = "https"

// Bearer returns "Bearer " + token.
func Bearer(token string) string { return "Bearer " + token }

// CheckRequest builds the CheckRequest Envoy would send for r.
func CheckRequest(r Req) *authv3.CheckRequest {
	if r.Method == "" {
		r.Method = http.MethodGet
	}
	if r.Path == "" {
		r.Path = "/api"
	}
	h := map[string]string{":authority": Host, ":method": r.Method, ":path": r.Path}
	for k, v := range r.Headers {
		h[strings.ToLower(k)] = v
	}
	if r.Authorization != "" {
		h["authorization"] = r.Authorization
	}
	if r.DPoP != "" {
		h["dpop"] = r.DPoP
	}
	cr := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "req", Method: r.Method, Host: Host, Path: r.Path, Headers: h, Scheme: Scheme,
		}},
	}}
	if r.ClientCert != "" {
		cr.Attributes.Source = &authv3.AttributeContext_Peer{Certificate: r.ClientCert}
	}
	return cr
}

// Check runs one request through Server.Check with a deadline of timeout (0: 5s) and
// returns the HTTP status Envoy would apply (200 for an OK response) and the response.
// A gRPC error or a nil response fails the test: Check must always answer.
func (s *Stack) Check(t testing.TB, r Req, timeout time.Duration) (int, *authv3.CheckResponse) {
	t.Helper()
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	resp, err := s.Server.Check(ctx, CheckRequest(r))
	if err != nil || resp == nil {
		t.Fatalf("Check returned a gRPC error (Envoy may fail open): resp=%v err=%v", resp, err)
	}
	return HTTPStatus(resp), resp
}

// HTTPStatus is the HTTP status Envoy applies for resp: 200 for an OK response, the
// denied response's status otherwise, 0 for a response that is neither.
func HTTPStatus(resp *authv3.CheckResponse) int {
	switch {
	case resp.GetOkResponse() != nil:
		if resp.GetStatus().GetCode() != 0 {
			return 0 // an OK body with a non-OK status would be a bug
		}
		return http.StatusOK
	case resp.GetDeniedResponse() != nil:
		return int(resp.GetDeniedResponse().GetStatus().GetCode())
	}
	return 0
}
