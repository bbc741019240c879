package authz_test

import (
	"context"
	"testing"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
)

// BenchmarkAuthorize is Authorize on one goroutine for the paths that a busy server
// takes without any OP request: a cached allow, a cached denial (negative cache, logged
// at debug, which is off) and a public route. allocs/op counts authz's and policy's
// allocations together.
func BenchmarkAuthorize(b *testing.B) {
	clk := newClock()
	op := oidctest.New(b, oidctest.WithClock(clk.Now))
	a := newAuthz(b, clk, authz.Config{Issuers: []authz.IssuerConfig{never(op.IssuerConfig())}}, testPolicy(b))
	cases := []struct {
		name string
		req  authz.Request
		want authz.Outcome
	}{
		{"cached allow", authz.Request{Method: "GET", Path: "/api/x", Authorization: "Bearer " + op.MintJWT(nil)}, authz.OutcomeAllow},
		{"cached denial", authz.Request{Method: "GET", Path: "/api/x", Authorization: "Bearer " + op.MintJWT(nil, oidctest.WithKid("unknown"))}, authz.OutcomeInvalidToken},
		{"public", authz.Request{Method: "GET", Path: "/healthz"}, authz.OutcomeAllow},
	}
	ctx := context.Background()
	for _, c := range cases {
		if d := a.Authorize(ctx, c.req); d.Outcome != c.want {
			b.Fatalf("%s: %s %s", c.name, d.Outcome, d.Reason)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			before := op.Total()
			for b.Loop() {
				if d := a.Authorize(ctx, c.req); d.Outcome != c.want {
					b.Fatal(d.Reason)
				}
			}
			if op.Total() != before {
				b.Fatalf("%d OP requests", op.Total()-before)
			}
		})
	}
}
