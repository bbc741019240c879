package authz_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
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

	// An expired context turns even an allow into unavailable.
	ctx, cancel := context.WithCancel(context.Background())
	if d := a.Authorize(ctx, authz.Request{Path: "/", Authorization: "Bearer " + tok}); d.Outcome != authz.OutcomeAllow {
		t.Fatalf("before cancel: %+v", d)
	}
	cancel()
	for _, r := range []authz.Request{{Path: "/", Authorization: "Bearer " + tok}, {Path: "/healthz"}} {
		d := a.Authorize(ctx, r)
		if d.Outcome != authz.OutcomeUnavailable || !errors.Is(d.Err, context.Canceled) {
			t.Fatalf("%s after cancel: %+v", r.Path, d)
		}
	}

	nopol := newAuthz(t, clk, noCache(op.IssuerConfig()), nil)
	if d := nopol.Authorize(context.Background(), authz.Request{Path: "/healthz"}); d.Outcome != authz.OutcomeUnavailable {
		t.Fatalf("nil policy: %+v", d)
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
