package bench_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"sigs.k8s.io/yaml"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/bench/internal/load"
	"github.com/flaat-extauthz/flaat-extauthz/envoy"
	"github.com/flaat-extauthz/flaat-extauthz/internal/config"
	"github.com/flaat-extauthz/flaat-extauthz/internal/optest"
	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// BenchmarkWarmPathDenySampled is BenchmarkWarmPathDeny with server.deny_log_interval
// set (10s): the repeated bad token is logged once, then only counted.
func BenchmarkWarmPathDenySampled(b *testing.B) {
	op := optest.New(b)
	opaque := optest.New(b, optest.WithIssuerPath("/realms/bench"))
	doc := load.FlaatConfig(op.Issuer(), opaque.Issuer(), "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", map[string]any{})
	doc["server"].(map[string]any)["deny_log_interval"] = "10s"
	y, err := yaml.Marshal(doc)
	if err != nil {
		b.Fatal(err)
	}
	cf, err := config.Parse(y)
	if err != nil {
		b.Fatal(err)
	}
	if err := cf.Validate(); err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	pol, err := policy.New(cf.Policy)
	if err != nil {
		b.Fatal(err)
	}
	a, err := authz.New(cf.AuthzConfig(), pol, authz.WithLogger(log))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	if err := a.Ready(context.Background()); err != nil {
		b.Fatal(err)
	}
	srv, err := envoy.NewServer(a, cf.ServerConfig(), envoy.WithLogger(log))
	if err != nil {
		b.Fatal(err)
	}
	r := load.Request
	r.Token = op.MintJWT(load.Claims(1), optest.WithKid("bench-unknown-kid"))
	req := load.CheckRequest(r)
	ctx := context.Background()
	check := func() *authv3.CheckResponse {
		resp, err := srv.Check(ctx, req)
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
