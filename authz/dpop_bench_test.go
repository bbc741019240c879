package authz_test

import (
	"context"
	"testing"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
)

// BenchmarkAuthorizeDPoP is the per-request cost of DPoP: a warm (cached) identity
// plus the proof, which is verified on every request and never cached. "bearer" is the
// same warm path without DPoP, measured in the same run for the ratio. The replay
// window is 0 here so that one proof can be presented again and again; the replay
// check itself (hash, insert, expire) is still paid on every iteration.
func BenchmarkAuthorizeDPoP(b *testing.B) {
	clk := newClock()
	op := oidctest.New(b, oidctest.WithClock(clk.Now))
	a := newAuthz(b, clk, authz.Config{Issuers: []authz.IssuerConfig{never(op.IssuerConfig())}}, testPolicy(b))
	authz.SetDPoPReplayWindow(a, 0)
	ctx := context.Background()
	type tc struct {
		name string
		req  authz.Request
	}
	bearer := op.MintJWT(nil)
	cases := []tc{{"bearer", authz.Request{Method: "GET", Scheme: "https", Host: "api.example", Path: "/items/1", Authorization: "Bearer " + bearer}}}
	for _, alg := range []string{"ES256", "RS256"} {
		k := mustKey(b, alg, clk)
		tok := op.MintJWT(map[string]any{"cnf": k.Cnf()})
		cases = append(cases, tc{"dpop " + alg, dpopReq("DPoP "+tok, k.Proof("GET", htu, tok))})
	}
	for _, c := range cases {
		if d := a.Authorize(ctx, c.req); d.Outcome != authz.OutcomeAllow {
			b.Fatalf("%s: %s %s", c.name, d.Outcome, d.Reason)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d := a.Authorize(ctx, c.req); d.Outcome != authz.OutcomeAllow || !d.Cached {
					b.Fatal(d.Reason)
				}
			}
		})
	}
}

// BenchmarkParseDPoPProof is the proof parser and signature check alone.
func BenchmarkParseDPoPProof(b *testing.B) {
	clk := newClock()
	for _, alg := range []string{"ES256", "RS256"} {
		k := mustKey(b, alg, clk)
		p := k.Proof("GET", htu, "token")
		b.Run(alg, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := authz.ParseDPoPProof(p, authz.DefaultDPoPAlgorithms); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
