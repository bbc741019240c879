package authz_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
)

// FuzzVerifyJWT feeds arbitrary tokens to Verify against a fake OP whose JWKS is warm.
// Properties: no panic; every error is a credential error or an *UnavailableError; a
// token is only ever accepted if its payload is one the OP signed (the fuzzer cannot forge
// a signature, so an accepted foreign payload is a verification bug).
func FuzzVerifyJWT(f *testing.F) {
	clk := newClock()
	op := oidctest.New(f, oidctest.WithClock(clk.Now))
	ic := never(op.IssuerConfig())
	ic.Introspect = authz.IntrospectNever // opaque tokens then need no network either
	a := newAuthz(f, clk, noCache(ic), nil)
	if err := a.Ready(context.Background()); err != nil {
		f.Fatal(err)
	}
	signed := map[string]bool{}
	add := func(tok string) {
		signed[strings.Split(tok, ".")[1]] = true
		f.Add(tok)
	}
	add(op.MintJWT(map[string]any{"groups": []string{"a"}}))
	add(op.MintJWT(nil, oidctest.WithAlg("ES256")))
	add(op.MintJWT(nil, oidctest.WithAlg("EdDSA")))
	add(op.MintJWT(nil, oidctest.WithAlg("PS384"), oidctest.WithoutKid()))
	for _, s := range []string{
		op.MintJWT(nil, oidctest.WithAlg("none")),
		op.MintJWT(nil, oidctest.WithAlg("HS256"), oidctest.WithHMACSecret(op.RSAPublicKeyPEM())),
		op.MintJWT(nil, oidctest.WithKid("unknown")),
		op.MintJWT(nil, oidctest.WithHeader("crit", []string{"x"})),
		"eyJhbGciOiJSUzI1NiJ9.e30.", "a.b.c", "...", "eyJ9.eyJ9.eyJ9", "opaque-token",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		id, err := a.Verify(context.Background(), tok)
		if err != nil {
			if id != nil {
				t.Fatal("identity returned with an error")
			}
			if !authz.IsCredentialError(err) && !errors.Is(err, authz.ErrUnavailable) {
				t.Fatalf("error of no known class: %v", err)
			}
			return
		}
		parts := strings.Split(tok, ".")
		if len(parts) != 3 || !signed[parts[1]] {
			t.Fatalf("accepted a payload the OP never signed: %q", tok)
		}
		if id.Issuer != op.Issuer() || id.Claims.Len() == 0 {
			t.Fatalf("identity %+v", id)
		}
	})
}

// BenchmarkVerify measures Verify with a warm JWKS: "cold" has the identity cache
// disabled (every call parses and verifies the JWT), "cached" is the warm-cache path the
// second request with the same token takes. Userinfo is off so that no HTTP request is
// made in either.
func BenchmarkVerify(b *testing.B) {
	clk := newClock()
	op := oidctest.New(b, oidctest.WithClock(clk.Now))
	ic := never(op.IssuerConfig())
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		tok := op.MintJWT(map[string]any{"groups": []string{"a", "b"}, "email": "alice@example.org"}, oidctest.WithAlg(alg))
		for _, mode := range []string{"cold", "cached"} {
			cfg := authz.Config{Issuers: []authz.IssuerConfig{ic}}
			cfg.Cache.Disabled = mode == "cold"
			a := newAuthz(b, clk, cfg, nil)
			ctx := context.Background()
			if _, err := a.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
			b.Run(alg+"/"+mode, func(b *testing.B) {
				b.ReportAllocs()
				before := op.Total()
				for b.Loop() {
					if _, err := a.Verify(ctx, tok); err != nil {
						b.Fatal(err)
					}
				}
				if op.Total() != before {
					b.Fatalf("%d HTTP requests during the benchmark", op.Total()-before)
				}
			})
		}
	}
}

// BenchmarkAuthorizeCachedParallel is the request path of a busy server: route
// selection, cache hit and policy evaluation from many goroutines.
func BenchmarkAuthorizeCachedParallel(b *testing.B) {
	clk := newClock()
	op := oidctest.New(b, oidctest.WithClock(clk.Now))
	a := newAuthz(b, clk, authz.Config{Issuers: []authz.IssuerConfig{never(op.IssuerConfig())}}, testPolicy(b))
	req := authz.Request{Method: "GET", Path: "/api/x", Authorization: "Bearer " + op.MintJWT(nil)}
	if d := a.Authorize(context.Background(), req); d.Outcome != authz.OutcomeAllow {
		b.Fatal(d)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if d := a.Authorize(context.Background(), req); d.Outcome != authz.OutcomeAllow {
				b.Error(d.Reason)
				return
			}
		}
	})
}

// TestVerifiedIdentityKeepsNothingOfTheToken: a token's parts are decoded into a
// recycled buffer, so nothing of an identity (claims, header, subject) may point into
// it. An identity verified first must read the same after many other tokens of the
// same size (which reuse the buffer) have been verified, with the cache off (Parts
// kept) and on (the slim, cached form).
func TestVerifiedIdentityKeepsNothingOfTheToken(t *testing.T) {
	clk := newClock()
	op := oidctest.New(t, oidctest.WithClock(clk.Now))
	claims := func(c byte) map[string]any {
		s := strings.Repeat(string(c), 12)
		return map[string]any{
			"sub": "user-" + s, "email": s + "@example.org", "groups": []string{s, "x" + s, `q"` + s},
			"custom_claim_name_" + s: map[string]any{"n": 1.5, "s": "é" + s}, "acr": s,
		}
	}
	for _, c := range []struct {
		name  string
		cache bool
	}{{"cache off", false}, {"cache on", true}} {
		t.Run(c.name, func(t *testing.T) {
			cfg := noCache(never(op.IssuerConfig()))
			cfg.Cache.Disabled = !c.cache
			a := newAuthz(t, clk, cfg, nil)
			ctx := context.Background()
			first, err := a.Verify(ctx, op.MintJWT(claims('a')))
			if err != nil {
				t.Fatal(err)
			}
			snapshot := func(id *authz.Identity) string {
				var b strings.Builder
				sid := ""
				if id.Binding != nil {
					sid = id.Binding.SessionID
				}
				fmt.Fprintf(&b, "%s|%s|%v|%v|", id.Subject(), id.Issuer, id.Expiry.Time(), sid)
				for _, name := range []string{"sub", "email", "groups", "acr", "custom_claim_name_aaaaaaaaaaaa"} {
					v, ok := id.Claims.Lookup(name)
					fmt.Fprintf(&b, "%s=%#v,%v|", name, v, ok)
				}
				if id.Parts != nil {
					fmt.Fprintf(&b, "%#v|%#v", id.Parts.TokenClaims, id.Parts.Header)
				}
				return b.String()
			}
			want := snapshot(first)
			for i := range 50 {
				tok := op.MintJWT(claims(byte('b'+i%20)), oidctest.WithKid("rs-kid-"+strings.Repeat(string(rune('b'+i%20)), 8)))
				_, _ = a.Verify(ctx, tok) // the kid is unknown: verification fails after decoding
				if _, err := a.Verify(ctx, op.MintJWT(claims(byte('b'+i%20)))); err != nil {
					t.Fatal(err)
				}
			}
			if got := snapshot(first); got != want {
				t.Fatalf("identity changed after other tokens were verified:\n got %s\nwant %s", got, want)
			}
			if !strings.Contains(want, "aaaaaaaaaaaa@example.org") {
				t.Fatalf("snapshot %s lacks the claims", want)
			}
		})
	}
}
