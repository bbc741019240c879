package authz_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/internal/testutil/securitytest"
	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

func testPolicy(t testing.TB) *policy.Engine {
	t.Helper()
	eng, err := policy.New(policy.Config{
		AccessLevels: map[string]policy.Requirement{"ops": {Groups: &policy.ValuesRequirement{Values: policy.StringList{"ops"}}}},
		Routes: []policy.Route{
			{Name: "health", Path: &policy.PathMatch{Prefix: "/healthz"}, Public: true},
			{Name: "admin", Path: &policy.PathMatch{Prefix: "/admin"}, Require: &policy.Requirement{Groups: &policy.ValuesRequirement{Values: policy.StringList{"admins"}}}},
		},
		Default: &policy.Requirement{Authenticated: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

func TestAuthorize(t *testing.T) {
	clk := newClock()
	op := newOP(t, clk)
	a := newAuthz(t, clk, authz.Config{Issuers: []authz.IssuerConfig{never(op.IssuerConfig())}}, testPolicy(t))
	valid := op.MintJWT(map[string]any{"groups": []string{"users"}})
	admin := op.MintJWT(map[string]any{"groups": []string{"admins"}})
	cases := []struct {
		name    string
		req     authz.Request
		want    authz.Outcome
		reason  string // substring of Decision.Reason
		check   func(t *testing.T, d authz.Decision)
		network bool
	}{
		{name: "public route without token", req: authz.Request{Method: "GET", Path: "/healthz"}, want: authz.OutcomeAllow,
			check: func(t *testing.T, d authz.Decision) {
				if !d.Public || d.Route != "health" || d.Identity != nil || d.TokenHash != "" {
					t.Fatalf("%+v", d)
				}
			}},
		{name: "public route ignores a garbage header", req: authz.Request{Method: "GET", Path: "/healthz", Authorization: "Basic x\r\n"}, want: authz.OutcomeAllow},
		{name: "no token", req: authz.Request{Method: "GET", Path: "/"}, want: authz.OutcomeNoToken, reason: "no bearer token"},
		{name: "basic auth", req: authz.Request{Method: "GET", Path: "/", Authorization: "Basic dXNlcjpwYXNz"}, want: authz.OutcomeNoToken, reason: "not Bearer"},
		{name: "valid token, default route", req: authz.Request{Method: "GET", Path: "/x", Authorization: "Bearer " + valid}, want: authz.OutcomeAllow,
			check: func(t *testing.T, d authz.Decision) {
				if d.Identity == nil || d.Route != "default" || !d.Policy.Allowed || d.TokenHash != authz.TokenHash(valid) || d.Err != nil {
					t.Fatalf("%+v", d)
				}
			}},
		{name: "scheme case-insensitive", req: authz.Request{Method: "GET", Path: "/x", Authorization: "bEaReR " + valid}, want: authz.OutcomeAllow},
		{name: "policy not met", req: authz.Request{Method: "GET", Path: "/admin/users", Authorization: "Bearer " + valid}, want: authz.OutcomeForbidden, reason: "admins",
			check: func(t *testing.T, d authz.Decision) {
				if d.Identity == nil || d.Policy.Allowed || d.Route != "admin" {
					t.Fatalf("%+v", d)
				}
			}},
		{name: "policy met", req: authz.Request{Method: "GET", Path: "/admin", Authorization: "Bearer " + admin}, want: authz.OutcomeAllow},
		{name: "context extension access level", req: authz.Request{Method: "GET", Path: "/x", Authorization: "Bearer " + admin, ContextExtensions: map[string]string{"flaat_policy": "ops"}},
			want: authz.OutcomeForbidden},
		{name: "unknown access level", req: authz.Request{Method: "GET", Path: "/x", Authorization: "Bearer " + admin, ContextExtensions: map[string]string{"flaat_policy": "nope"}},
			want: authz.OutcomeForbidden, reason: "no access level"},
		{name: "bad path", req: authz.Request{Method: "GET", Path: "/a/%2f%00", Authorization: "Bearer " + valid}, want: authz.OutcomeBadRequest, reason: "cannot be normalised",
			check: func(t *testing.T, d authz.Decision) {
				if d.ReasonCode != authz.ReasonBadPath || d.TokenHash != "" {
					t.Fatalf("%+v", d)
				}
			}},
		{name: "ambiguous path denied before the token is read", req: authz.Request{Method: "GET", Path: "/admin/..;/healthz"}, want: authz.OutcomeBadRequest, reason: "ambiguous request path",
			check: func(t *testing.T, d authz.Decision) {
				if d.ReasonCode != authz.ReasonAmbiguousPath || !errors.Is(d.Err, policy.ErrAmbiguousPath) {
					t.Fatalf("%+v", d)
				}
			}},
		{name: "expired", req: authz.Request{Method: "GET", Path: "/", Authorization: "Bearer " + op.MintJWT(nil, oidctest.ExpiresIn(-time.Hour))}, want: authz.OutcomeInvalidToken, reason: "expired"},
		{name: "garbled token", req: authz.Request{Method: "GET", Path: "/", Authorization: "Bearer " + strings.Replace(valid, "e", "f", 1)}, want: authz.OutcomeInvalidToken},
		{name: "oversized token", req: authz.Request{Method: "GET", Path: "/", Authorization: "Bearer " + strings.Repeat("a", 9000)}, want: authz.OutcomeNoToken, reason: "larger than"},
		{name: "non-ASCII token", req: authz.Request{Method: "GET", Path: "/", Authorization: "Bearer tök"}, want: authz.OutcomeNoToken, reason: "token68"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := a.Authorize(context.Background(), c.req)
			if d.Outcome != c.want {
				t.Fatalf("outcome %s (%q, %v), want %s", d.Outcome, d.Reason, d.Err, c.want)
			}
			if !strings.Contains(d.Reason, c.reason) {
				t.Fatalf("reason %q does not contain %q", d.Reason, c.reason)
			}
			if d.Outcome != authz.OutcomeAllow && d.Reason == "" {
				t.Fatal("denial without a reason")
			}
			if c.check != nil {
				c.check(t, d)
			}
		})
	}
}

func TestAuthorizeUnavailableAndContext(t *testing.T) {
	clk := newClock()
	op := newOP(t, clk)
	a := newAuthz(t, clk, noCache(never(op.IssuerConfig())), testPolicy(t))
	tok := op.MintJWT(nil)

	op.SetFault(oidctest.Discovery, oidctest.Fault{Status: 500})
	d := a.Authorize(context.Background(), authz.Request{Path: "/", Authorization: "Bearer " + tok})
	if d.Outcome != authz.OutcomeUnavailable || !errors.Is(d.Err, authz.ErrUnavailable) || d.Reason != "identity provider unavailable" {
		t.Fatalf("%+v", d)
	}
	op.ClearFaults()
	clk.Advance(2 * time.Second)

	// An ended context turns even an allow into a denial: cancelled.
	ctx, cancel := context.WithCancel(context.Background())
	if d := a.Authorize(ctx, authz.Request{Path: "/", Authorization: "Bearer " + tok}); d.Outcome != authz.OutcomeAllow {
		t.Fatalf("before cancel: %+v", d)
	}
	cancel()
	for _, r := range []authz.Request{{Path: "/", Authorization: "Bearer " + tok}, {Path: "/healthz"}} {
		d := a.Authorize(ctx, r)
		if d.Outcome != authz.OutcomeCancelled || !errors.Is(d.Err, context.Canceled) {
			t.Fatalf("%s after cancel: %+v", r.Path, d)
		}
	}

	nopol := newAuthz(t, clk, noCache(op.IssuerConfig()), nil)
	if d := nopol.Authorize(context.Background(), authz.Request{Path: "/healthz"}); d.Outcome != authz.OutcomeUnavailable {
		t.Fatalf("nil policy: %+v", d)
	}
}

// cancelOnRequest is an http.RoundTripper that cancels the caller's context when the
// authorizer's first OP request arrives and then hangs until that request gives up: a
// client that goes away while we wait for the OP.
type cancelOnRequest struct{ cancel context.CancelFunc }

func (c cancelOnRequest) RoundTrip(r *http.Request) (*http.Response, error) {
	c.cancel()
	<-r.Context().Done()
	return nil, r.Context().Err()
}

// TestAuthorizeCancelled: a caller that stops waiting (its context cancelled or past its
// deadline: Envoy's timeout, a closed downstream) gets OutcomeCancelled, which is not
// logged as an outage; a deadline that expires inside our own OP call, with the caller
// still waiting, stays OutcomeUnavailable and is logged at warn.
func TestAuthorizeCancelled(t *testing.T) {
	past, cancelPast := context.WithDeadline(context.Background(), time.Unix(1, 0))
	defer cancelPast()
	tests := []struct {
		name    string
		cache   bool
		hang    bool // the OP's discovery hangs; the authorizer's http_timeout is 50 ms
		ctx     func(t *testing.T) (context.Context, authz.Option)
		want    authz.Outcome
		wantErr error
		warn    bool
	}{
		{name: "caller's deadline passed before the check", cache: true, want: authz.OutcomeCancelled, wantErr: context.DeadlineExceeded,
			ctx: func(*testing.T) (context.Context, authz.Option) { return past, nil }},
		{name: "caller cancels while the cache waits for the OP", cache: true, want: authz.OutcomeCancelled, wantErr: context.Canceled,
			ctx: func(t *testing.T) (context.Context, authz.Option) {
				ctx, cancel := context.WithCancel(context.Background())
				t.Cleanup(cancel)
				return ctx, authz.WithTransport(cancelOnRequest{cancel})
			}},
		{name: "caller cancels during the OP call, cache off", want: authz.OutcomeCancelled, wantErr: context.Canceled,
			ctx: func(t *testing.T) (context.Context, authz.Option) {
				ctx, cancel := context.WithCancel(context.Background())
				t.Cleanup(cancel)
				return ctx, authz.WithTransport(cancelOnRequest{cancel})
			}},
		{name: "our http_timeout expires, caller waiting, cache on", cache: true, hang: true, want: authz.OutcomeUnavailable, wantErr: authz.ErrUnavailable, warn: true,
			ctx: func(*testing.T) (context.Context, authz.Option) { return context.Background(), nil }},
		{name: "our http_timeout expires, caller waiting, cache off", hang: true, want: authz.OutcomeUnavailable, wantErr: authz.ErrUnavailable, warn: true,
			ctx: func(*testing.T) (context.Context, authz.Option) { return context.Background(), nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			op := newOP(t, clk)
			if tt.hang {
				op.SetFault(oidctest.Discovery, oidctest.Fault{Hang: true})
			}
			cfg := authz.Config{Issuers: []authz.IssuerConfig{never(op.IssuerConfig())}, HTTPTimeout: authz.Duration(50 * time.Millisecond)}
			cfg.Cache.Disabled = !tt.cache
			ctx, opt := tt.ctx(t)
			var logs securitytest.LogBuffer // written by background verifications too
			opts := []authz.Option{authz.WithLogger(logs.Logger())}
			if opt != nil {
				opts = append(opts, opt)
			}
			a := newAuthz(t, clk, cfg, testPolicy(t), opts...)
			d := a.Authorize(ctx, authz.Request{Path: "/", Authorization: "Bearer " + op.MintJWT(nil)})
			if d.Outcome != tt.want || !errors.Is(d.Err, tt.wantErr) {
				t.Fatalf("got %s (%q, %v), want %s wrapping %v", d.Outcome, d.Reason, d.Err, tt.want, tt.wantErr)
			}
			if tt.want == authz.OutcomeCancelled && d.Reason != "request cancelled" {
				t.Errorf("reason %q", d.Reason)
			}
			warned := strings.Contains(logs.String(), `"level":"WARN"`)
			if warned != tt.warn {
				t.Errorf("logged at warn: %v, want %v; log:\n%s", warned, tt.warn, logs.String())
			}
		})
	}
}

type recorder struct {
	mu       sync.Mutex
	requests map[string]int // "endpoint status"
	jwks     []error
}

func (r *recorder) OPRequest(issuer, endpoint string, status int, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.requests == nil {
		r.requests = map[string]int{}
	}
	r.requests[endpoint+" "+itoa(status)]++
}

func (r *recorder) JWKSRefresh(issuer string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.jwks = append(r.jwks, err)
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	s := ""
	for ; i > 0; i /= 10 {
		s = string(rune('0'+i%10)) + s
	}
	return s
}

func TestObserver(t *testing.T) {
	clk := newClock()
	op := newOP(t, clk)
	rec := &recorder{}
	a := newAuthz(t, clk, noCache(op.IssuerConfig()), nil, authz.WithObserver(rec), authz.WithObserver(nil))
	if _, err := a.Verify(context.Background(), op.MintJWT(nil)); err != nil {
		t.Fatal(err)
	}
	op.Rotate()
	op.SetFault(oidctest.JWKS, oidctest.Fault{Status: 503})
	if _, err := a.Verify(context.Background(), op.MintJWT(nil)); errKind(err) != "unavailable" {
		t.Fatal(err)
	}
	op.Down()
	if _, err := a.Verify(context.Background(), op.MintOpaque(nil)); errKind(err) != "unavailable" {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	want := map[string]int{"discovery 200": 1, "jwks 200": 1, "userinfo 200": 1, "jwks 503": 1, "userinfo 0": 1}
	for k, v := range want {
		if rec.requests[k] != v {
			t.Errorf("OPRequest %q: %d, want %d (all: %v)", k, rec.requests[k], v, rec.requests)
		}
	}
	if len(rec.jwks) != 2 || rec.jwks[0] != nil || rec.jwks[1] == nil {
		t.Errorf("JWKSRefresh calls %v", rec.jwks)
	}
}
