package bench_test

import (
	"context"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/flaat-extauthz/flaat-extauthz/bench/internal/load"
	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
)

// BenchmarkWarmPathDenyEveryLine is BenchmarkWarmPathDeny with server.deny_log_interval
// 0s: every denial of the repeated bad token is logged at info (JSON).
func BenchmarkWarmPathDenyEveryLine(b *testing.B) {
	f := newFixtureWith(b, map[string]any{}, func(doc map[string]any) {
		doc["server"].(map[string]any)["deny_log_interval"] = "0s"
	})
	r := load.Request
	r.Token = f.opJWT.MintJWT(load.Claims(1), oidctest.WithKid("bench-unknown-kid"))
	req := load.CheckRequest(r)
	ctx := context.Background()
	check := func() *authv3.CheckResponse {
		resp, err := f.srv.Check(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		return resp
	}
	if got := check().GetStatus().GetCode(); got != 16 {
		b.Fatalf("code %d, want 16 (unauthenticated)", got)
	}
	b.ReportAllocs()
	for b.Loop() {
		check()
	}
}
