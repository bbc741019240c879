package authz_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
)

func TestOpaqueSearch(t *testing.T) {
	ctx := context.Background()
	t.Run("found at 2nd of 3 OPs with the 1st down", func(t *testing.T) {
		clk := newClock()
		op1, op2, op3 := newOP(t, clk), newOP(t, clk), newOP(t, clk)
		a := newAuthz(t, clk, noCache(op1.IssuerConfig(), op2.IssuerConfig(), op3.IssuerConfig()), nil)
		op1.Down()
		tok := op2.MintOpaque(map[string]any{"email": "alice@example.org"})
		id, err := a.Verify(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		if id.Issuer != op2.Issuer() || id.Subject() != oidctest.DefaultSubject || id.Claims.Map()["email"] != "alice@example.org" ||
			id.Claims.Map()["iss"] != op2.Issuer() || id.Sources != authz.SourceUserinfo|authz.SourceIntrospection || id.Expiry.IsZero() {
			t.Fatalf("identity %+v", id)
		}
		if op2.Count(oidctest.Userinfo) != 1 || op2.Count(oidctest.Introspection) != 1 {
			t.Fatalf("op2: %s", op2.SortedCounts())
		}
		// op1's discovery runs in parallel and is cancelled once op2 has answered, so it
		// may or may not have reached op1 by then; it never gets as far as userinfo.
		if op1.Count(oidctest.Userinfo) != 0 || op1.Count(oidctest.Discovery) > 1 {
			t.Fatalf("op1 (down): %s", op1.SortedCounts())
		}
	})
	t.Run("first OP closed, token at the third", func(t *testing.T) {
		clk := newClock()
		op1, op2, op3 := newOP(t, clk), newOP(t, clk), newOP(t, clk)
		a := newAuthz(t, clk, noCache(op1.IssuerConfig(), op2.IssuerConfig(), op3.IssuerConfig()), nil)
		op1.Close()
		id, err := a.Verify(ctx, op3.MintOpaque(nil))
		if err != nil || id.Issuer != op3.Issuer() {
			t.Fatalf("%v %+v", err, id)
		}
	})

	cases := []struct {
		name  string
		setup func(op1, op2 *oidctest.OP) (authz.Config, string)
		want  string
		check func(t *testing.T, id *authz.Identity, op1, op2 *oidctest.OP)
	}{
		{name: "unknown everywhere", want: "invalid",
			setup: func(op1, op2 *oidctest.OP) (authz.Config, string) {
				return noCache(op1.IssuerConfig(), op2.IssuerConfig()), "not-a-known-token"
			},
			check: func(t *testing.T, _ *authz.Identity, op1, op2 *oidctest.OP) {
				if op1.Count(oidctest.Userinfo) != 1 || op2.Count(oidctest.Userinfo) != 1 {
					t.Fatalf("every candidate must be asked once: %s / %s", op1.SortedCounts(), op2.SortedCounts())
				}
			}},
		{name: "userinfo 500 is unavailable, not invalid", want: "unavailable",
			setup: func(op1, _ *oidctest.OP) (authz.Config, string) {
				op1.SetFault(oidctest.Userinfo, oidctest.Fault{Status: 500})
				return noCache(op1.IssuerConfig()), op1.MintOpaque(nil)
			}},
		{name: "one OP broken, the other says no: unavailable", want: "unavailable",
			setup: func(op1, op2 *oidctest.OP) (authz.Config, string) {
				op1.SetFault(oidctest.Userinfo, oidctest.Fault{Status: 502})
				return noCache(op1.IssuerConfig(), op2.IssuerConfig()), "unknown-token"
			}},
		{name: "userinfo 403", want: "invalid",
			setup: func(op1, _ *oidctest.OP) (authz.Config, string) {
				op1.SetFault(oidctest.Userinfo, oidctest.Fault{Status: 403})
				return noCache(op1.IssuerConfig()), op1.MintOpaque(nil)
			}},
		{name: "userinfo 404 is unavailable", want: "unavailable",
			setup: func(op1, _ *oidctest.OP) (authz.Config, string) {
				op1.SetFault(oidctest.Userinfo, oidctest.Fault{Status: 404})
				return noCache(op1.IssuerConfig()), op1.MintOpaque(nil)
			}},
		{name: "userinfo malformed JSON", want: "unavailable",
			setup: func(op1, _ *oidctest.OP) (authz.Config, string) {
				op1.SetFault(oidctest.Userinfo, oidctest.Fault{MalformedJSON: true})
				return noCache(op1.IssuerConfig()), op1.MintOpaque(nil)
			}},
		{name: "userinfo HTML", want: "unavailable",
			setup: func(op1, _ *oidctest.OP) (authz.Config, string) {
				op1.SetFault(oidctest.Userinfo, oidctest.Fault{HTML: true})
				return noCache(op1.IssuerConfig()), op1.MintOpaque(nil)
			}},
		{name: "userinfo huge body", want: "unavailable",
			setup: func(op1, _ *oidctest.OP) (authz.Config, string) {
				op1.SetFault(oidctest.Userinfo, oidctest.Fault{HugeBody: 2 << 20})
				return noCache(op1.IssuerConfig()), op1.MintOpaque(nil)
			}},
		{name: "userinfo without sub", want: "unavailable",
			setup: func(op1, _ *oidctest.OP) (authz.Config, string) {
				return noCache(op1.IssuerConfig()), op1.MintOpaque(map[string]any{"sub": nil, "name": "x"})
			}},
		{name: "userinfo timeout", want: "unavailable",
			setup: func(op1, _ *oidctest.OP) (authz.Config, string) {
				op1.SetFault(oidctest.Userinfo, oidctest.Fault{Hang: true})
				cfg := noCache(op1.IssuerConfig())
				cfg.HTTPTimeout = authz.Duration(50 * time.Millisecond)
				return cfg, op1.MintOpaque(nil)
			}},
		{name: "revoked", want: "invalid",
			setup: func(op1, _ *oidctest.OP) (authz.Config, string) {
				tok := op1.MintOpaque(nil)
				op1.Revoke(tok)
				return noCache(op1.IssuerConfig()), tok
			}},
		{name: "introspection active:false", want: "inactive",
			setup: func(op1, _ *oidctest.OP) (authz.Config, string) {
				return noCache(op1.IssuerConfig()), op1.MintOpaque(nil, oidctest.WithIntrospection(map[string]any{"active": false}))
			}},
		{name: "introspection active:\"true\" (string)", want: "inactive",
			setup: func(op1, _ *oidctest.OP) (authz.Config, string) {
				return noCache(op1.IssuerConfig()), op1.MintOpaque(nil, oidctest.WithIntrospection(map[string]any{"active": "true"}))
			}},
		{name: "introspection exp in the past", want: "expired",
			setup: func(op1, _ *oidctest.OP) (authz.Config, string) {
				return noCache(op1.IssuerConfig()), op1.MintOpaque(nil, oidctest.WithIntrospection(map[string]any{"exp": time.Now().Add(-time.Hour).Unix() - 1e9}))
			}},
		{name: "introspection 500", want: "unavailable",
			setup: func(op1, _ *oidctest.OP) (authz.Config, string) {
				op1.SetFault(oidctest.Introspection, oidctest.Fault{Status: 500})
				return noCache(op1.IssuerConfig()), op1.MintOpaque(nil)
			}},
		{name: "introspection with wrong client secret", want: "unavailable",
			setup: func(op1, _ *oidctest.OP) (authz.Config, string) {
				ic := op1.IssuerConfig()
				ic.ClientSecret = "wrong"
				return noCache(ic), op1.MintOpaque(nil)
			}},
		{name: "introspection sub differs from userinfo", want: "invalid",
			setup: func(op1, _ *oidctest.OP) (authz.Config, string) {
				op1.SetFault(oidctest.Introspection, oidctest.Fault{WrongSub: true})
				return noCache(op1.IssuerConfig()), op1.MintOpaque(nil)
			}},
		{name: "introspection ext claims merged, userinfo wins", want: "ok",
			setup: func(op1, _ *oidctest.OP) (authz.Config, string) {
				return noCache(op1.IssuerConfig()), op1.MintOpaque(map[string]any{"name": "from userinfo"},
					oidctest.WithIntrospectionExt(map[string]any{"groups": []any{"ops"}, "name": "from introspection"}))
			},
			check: func(t *testing.T, id *authz.Identity, _, _ *oidctest.OP) {
				g, _ := id.Claims.Map()["groups"].([]any)
				if len(g) != 1 || g[0] != "ops" || id.Claims.Map()["name"] != "from userinfo" || id.Parts.Introspection["groups"] == nil {
					t.Fatalf("claims %v", id.Claims.Map())
				}
			}},
		{name: "no introspection without client credentials", want: "ok",
			setup: func(op1, _ *oidctest.OP) (authz.Config, string) {
				return noCache(authz.IssuerConfig{Issuer: op1.Issuer()}), op1.MintOpaque(nil)
			},
			check: func(t *testing.T, id *authz.Identity, op1, _ *oidctest.OP) {
				if op1.Count(oidctest.Introspection) != 0 || id.Sources != authz.SourceUserinfo || !id.Expiry.IsZero() {
					t.Fatalf("%s %+v", op1.SortedCounts(), id)
				}
			}},
		{name: "userinfo never: found by introspection", want: "ok",
			setup: func(op1, _ *oidctest.OP) (authz.Config, string) {
				return noCache(never(op1.IssuerConfig())), op1.MintOpaque(nil, oidctest.WithIntrospectionExt(map[string]any{"groups": []any{"g"}}))
			},
			check: func(t *testing.T, id *authz.Identity, op1, _ *oidctest.OP) {
				if op1.Count(oidctest.Userinfo) != 0 || id.Sources != authz.SourceIntrospection || id.Claims.Map()["groups"] == nil || id.Subject() != oidctest.DefaultSubject {
					t.Fatalf("%s %+v", op1.SortedCounts(), id)
				}
			}},
		{name: "userinfo never, introspection says inactive", want: "invalid",
			setup: func(op1, _ *oidctest.OP) (authz.Config, string) {
				tok := op1.MintOpaque(nil)
				op1.Revoke(tok)
				return noCache(never(op1.IssuerConfig())), tok
			}},
		{name: "op_hint skips non-matching OPs", want: "ok",
			setup: func(op1, op2 *oidctest.OP) (authz.Config, string) {
				cfg := noCache(op1.IssuerConfig(), op2.IssuerConfig())
				cfg.OPHint = "^" + op2.Issuer() + "$"
				return cfg, op2.MintOpaque(nil)
			},
			check: func(t *testing.T, _ *authz.Identity, op1, _ *oidctest.OP) {
				if op1.Total() != 0 {
					t.Fatalf("op_hint ignored: %s", op1.SortedCounts())
				}
			}},
		{name: "issues_jwt skips the OP", want: "invalid",
			setup: func(op1, _ *oidctest.OP) (authz.Config, string) {
				ic := op1.IssuerConfig()
				ic.IssuesJWT = true
				return noCache(ic), op1.MintOpaque(nil)
			},
			check: func(t *testing.T, _ *authz.Identity, op1, _ *oidctest.OP) {
				if op1.Total() != 0 {
					t.Fatalf("issues_jwt OP asked: %s", op1.SortedCounts())
				}
			}},
		{name: "no candidates", want: "invalid",
			setup: func(_, _ *oidctest.OP) (authz.Config, string) { return noCache(), "opaque-token" }},
		{name: "a token that is not JWS is opaque", want: "invalid",
			setup: func(op1, _ *oidctest.OP) (authz.Config, string) { return noCache(op1.IssuerConfig()), "a.b.c" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := newClock()
			op1, op2 := newOP(t, clk), newOP(t, clk)
			cfg, tok := c.setup(op1, op2)
			a := newAuthz(t, clk, cfg, nil)
			id, err := a.Verify(ctx, tok)
			if got := errKind(err); got != c.want {
				t.Fatalf("got %s (%v), want %s", got, err, c.want)
			}
			if c.check != nil {
				c.check(t, id, op1, op2)
			}
		})
	}
}

func TestJWTUserinfoAndIntrospection(t *testing.T) {
	ctx := context.Background()
	mode := func(op *oidctest.OP, userinfo, introspect string) authz.Config {
		ic := op.IssuerConfig()
		ic.Userinfo, ic.Introspect = userinfo, introspect
		return noCache(ic)
	}
	cases := []struct {
		name     string
		userinfo string
		intro    string
		fault    map[oidctest.Endpoint]oidctest.Fault
		mint     func(op *oidctest.OP) string
		want     string
		sources  authz.Source
		claim    string // expected value of claim "name"
	}{
		{name: "optional (default), 200 merged", mint: func(op *oidctest.OP) string {
			return op.MintJWT(map[string]any{"name": "token"}, oidctest.WithUserinfo(map[string]any{"sub": oidctest.DefaultSubject, "name": "userinfo"}))
		}, want: "ok", sources: authz.SourceJWT | authz.SourceUserinfo, claim: "userinfo"},
		{name: "optional, userinfo 500: token claims alone", fault: map[oidctest.Endpoint]oidctest.Fault{oidctest.Userinfo: {Status: 500}},
			mint: func(op *oidctest.OP) string { return op.MintJWT(map[string]any{"name": "token"}) }, want: "ok", sources: authz.SourceJWT, claim: "token"},
		{name: "optional, userinfo 401: token claims alone", userinfo: authz.UserinfoOptional, fault: map[oidctest.Endpoint]oidctest.Fault{oidctest.Userinfo: {Status: 401}},
			mint: func(op *oidctest.OP) string { return op.MintJWT(map[string]any{"name": "token"}) }, want: "ok", sources: authz.SourceJWT, claim: "token"},
		{name: "optional, sub mismatch denies", fault: map[oidctest.Endpoint]oidctest.Fault{oidctest.Userinfo: {WrongSub: true}},
			mint: func(op *oidctest.OP) string { return op.MintJWT(nil) }, want: "invalid"},
		{name: "required, sub mismatch denies", userinfo: authz.UserinfoRequired, fault: map[oidctest.Endpoint]oidctest.Fault{oidctest.Userinfo: {WrongSub: true}},
			mint: func(op *oidctest.OP) string { return op.MintJWT(nil) }, want: "invalid"},
		{name: "required, userinfo 500", userinfo: authz.UserinfoRequired, fault: map[oidctest.Endpoint]oidctest.Fault{oidctest.Userinfo: {Status: 500}},
			mint: func(op *oidctest.OP) string { return op.MintJWT(nil) }, want: "unavailable"},
		{name: "required, userinfo 401", userinfo: authz.UserinfoRequired, fault: map[oidctest.Endpoint]oidctest.Fault{oidctest.Userinfo: {Status: 401}},
			mint: func(op *oidctest.OP) string { return op.MintJWT(nil) }, want: "invalid"},
		{name: "required, 200", userinfo: authz.UserinfoRequired,
			mint: func(op *oidctest.OP) string { return op.MintJWT(map[string]any{"name": "n"}) }, want: "ok", sources: authz.SourceJWT | authz.SourceUserinfo, claim: "n"},
		{name: "token sub not a string", userinfo: authz.UserinfoNever,
			mint: func(op *oidctest.OP) string { return op.MintJWT(map[string]any{"sub": 42}) }, want: "invalid"},
		{name: "introspect always, active", userinfo: authz.UserinfoNever, intro: authz.IntrospectAlways,
			mint: func(op *oidctest.OP) string {
				return op.MintJWT(nil, oidctest.WithIntrospectionExt(map[string]any{"name": "ext"}))
			}, want: "ok", sources: authz.SourceJWT | authz.SourceIntrospection, claim: "ext"},
		{name: "introspect always, revoked", userinfo: authz.UserinfoNever, intro: authz.IntrospectAlways,
			mint: func(op *oidctest.OP) string {
				tok := op.MintJWT(nil)
				op.Revoke(tok)
				return tok
			}, want: "inactive"},
		{name: "introspect opaque: JWT not introspected", userinfo: authz.UserinfoNever, intro: authz.IntrospectOpaque,
			mint: func(op *oidctest.OP) string {
				tok := op.MintJWT(nil)
				op.Revoke(tok)
				return tok
			}, want: "ok", sources: authz.SourceJWT},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := newClock()
			op := newOP(t, clk)
			a := newAuthz(t, clk, mode(op, c.userinfo, c.intro), nil)
			for e, f := range c.fault {
				op.SetFault(e, f)
			}
			id, err := a.Verify(ctx, c.mint(op))
			if got := errKind(err); got != c.want {
				t.Fatalf("got %s (%v), want %s", got, err, c.want)
			}
			if err != nil {
				return
			}
			if id.Sources != c.sources {
				t.Errorf("sources %b, want %b", id.Sources, c.sources)
			}
			if c.claim != "" && id.Claims.Map()["name"] != c.claim {
				t.Errorf("name = %v, want %q", id.Claims.Map()["name"], c.claim)
			}
			if c.userinfo == authz.UserinfoNever && op.Count(oidctest.Userinfo) != 0 {
				t.Errorf("userinfo called in mode never")
			}
		})
	}
}

func TestRedirectToAnotherHostNotFollowed(t *testing.T) {
	clk := newClock()
	op := newOP(t, clk)
	evil := newOP(t, clk)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, evil.URL(oidctest.Discovery), http.StatusFound)
	}))
	defer redirector.Close()
	ic := never(op.IssuerConfig())
	ic.DiscoveryURL = redirector.URL + "/.well-known/openid-configuration"
	for _, withTransport := range []bool{false, true} {
		var opts []authz.Option
		if withTransport {
			opts = append(opts, authz.WithTransport(&http.Transport{}))
		}
		a := newAuthz(t, clk, noCache(ic), nil, opts...)
		if _, err := a.Verify(context.Background(), op.MintJWT(nil)); errKind(err) != "unavailable" {
			t.Fatalf("transport %v: %v", withTransport, err)
		}
		if evil.Total() != 0 {
			t.Fatalf("redirect to another host followed: %s", evil.SortedCounts())
		}
	}
}

func TestReady(t *testing.T) {
	clk := newClock()
	op1, op2 := newOP(t, clk), newOP(t, clk)
	a := newAuthz(t, clk, noCache(op1.IssuerConfig(), op2.IssuerConfig()), nil)
	if op1.Total()+op2.Total() != 0 {
		t.Fatal("New made network requests")
	}
	op2.SetFault(oidctest.JWKS, oidctest.Fault{Status: 503})
	err := a.Ready(context.Background())
	if err == nil || errKind(err) != "unavailable" {
		t.Fatalf("Ready with a broken OP: %v", err)
	}
	op2.ClearFaults()
	clk.Advance(2 * time.Second)
	if err := a.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	op1.ResetCounts()
	if err := a.Ready(context.Background()); err != nil || op1.Total() != 0 {
		t.Fatalf("Ready once ready: %v, %s", err, op1.SortedCounts())
	}
}

func TestCancelledContextIsUnavailable(t *testing.T) {
	clk := newClock()
	op := newOP(t, clk)
	a := newAuthz(t, clk, noCache(op.IssuerConfig()), nil)
	op.SetFault(oidctest.Discovery, oidctest.Fault{Hang: true})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.Verify(ctx, op.MintJWT(nil)); errKind(err) != "unavailable" {
		t.Fatalf("got %v", err)
	}
	if _, err := a.Verify(ctx, op.MintOpaque(nil)); errKind(err) != "unavailable" {
		t.Fatalf("opaque: got %v", err)
	}
	a.Close()
	a.Close() // idempotent
}

func TestVerifyRejectsBeforeParsing(t *testing.T) {
	clk := newClock()
	op := newOP(t, clk)
	a := newAuthz(t, clk, authz.Config{Issuers: []authz.IssuerConfig{op.IssuerConfig()}}, nil)
	jwt := op.MintJWT(map[string]any{"pad": strings.Repeat("x", 9000)})
	for name, tok := range map[string]string{
		"oversized JWT":      jwt,
		"oversized opaque":   strings.Repeat("a", authz.DefaultMaxTokenSize+1),
		"non-ASCII":          "t\u00f6ken",
		"NUL":                "tok\x00en",
		"space (two tokens)": "tok en",
		"CRLF":               "tok\r\nen",
		"empty":              "",
	} {
		_, err := a.Verify(context.Background(), tok)
		if k := errKind(err); k != "malformed" && !(tok == "" && k == "notoken") {
			t.Errorf("%s: got %v", name, err)
		}
	}
	if op.Total() != 0 {
		t.Fatalf("requests reached the OP: %s", op.SortedCounts())
	}
	if s := a.CacheStats(); s.Loads != 0 {
		t.Fatalf("rejected tokens reached the cache: %+v", s)
	}
}

// TestDefaultClientCircuitBreaker: the default HTTP client stops calling an OP that keeps
// failing (fail fast, still 503, never invalid or valid) and probes it again later. A
// 200 that is no usable reply (HTML, truncated JSON, over MaxResponseSize) is a failure
// like a 500 — and, like every OP error, never cached: the recovered OP is asked again.
func TestDefaultClientCircuitBreaker(t *testing.T) {
	for name, fault := range map[string]oidctest.Fault{
		"500":            {Status: 500},
		"HTML page":      {HTML: true},
		"truncated JSON": {MalformedJSON: true},
		"oversized body": {HugeBody: 2 * authz.MaxResponseSize},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			clk := newClock()
			op := newOP(t, clk)
			a := newAuthz(t, clk, noCache(op.IssuerConfig()), nil) // no WithTransport: the default transport
			if err := a.Ready(ctx); err != nil {
				t.Fatal(err)
			}
			op.SetFault(oidctest.Userinfo, fault)
			first := op.MintOpaque(nil)
			for i := 0; i < 5; i++ {
				tok := first
				if i > 0 {
					tok = op.MintOpaque(nil)
				}
				if _, err := a.Verify(ctx, tok); errKind(err) != "unavailable" {
					t.Fatalf("%d: %v", i, err)
				}
			}
			if n := op.Count(oidctest.Userinfo); n != 5 {
				t.Fatalf("%d userinfo requests before the breaker opened, want 5", n)
			}
			for i := 0; i < 20; i++ {
				if _, err := a.Verify(ctx, op.MintOpaque(nil)); errKind(err) != "unavailable" {
					t.Fatalf("open breaker: %v", err)
				}
			}
			if n := op.Count(oidctest.Userinfo); n != 5 {
				t.Fatalf("open breaker let %d more requests through", n-5)
			}
			op.ClearFaults()
			clk.Advance(11 * time.Second) // past the open duration: one probe, which succeeds
			if _, err := a.Verify(ctx, first); err != nil {
				t.Fatalf("after the OP recovered, the token first refused: %v", err)
			}
			if n := op.Count(oidctest.Userinfo); n != 6 {
				t.Fatalf("%d userinfo requests, want 6 (one probe)", n)
			}
		})
	}
}
