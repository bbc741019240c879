// Package bench_test holds in-process benchmarks of the whole check path (envoy.Server
// → authz.Authorizer → cache → policy) with the load benchmark's configuration, for
// profiling without processes or sockets:
//
//	go test -run '^$' -bench WarmPath -cpuprofile cpu.prof ./bench/
//	go tool pprof -top cpu.prof
package bench_test

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc/metadata"
	"sigs.k8s.io/yaml"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/bench/internal/load"
	"github.com/flaat-extauthz/flaat-extauthz/envoy"
	"github.com/flaat-extauthz/flaat-extauthz/internal/config"
	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

type fixture struct {
	srv             *envoy.Server
	opJWT, opOpaque *oidctest.OP
}

// newFixture wires the server as `serve` does (claim projection included), from the load
// benchmark's configuration,
// logging JSON at info level to io.Discard (so formatting costs are counted).
func newFixture(tb testing.TB, cache map[string]any) *fixture {
	tb.Helper()
	return newFixtureWith(tb, cache, nil)
}

// newFixtureWith is newFixture with edit applied to the configuration document first.
func newFixtureWith(tb testing.TB, cache map[string]any, edit func(doc map[string]any), envoyOpts ...envoy.Option) *fixture {
	tb.Helper()
	f := &fixture{opJWT: oidctest.New(tb), opOpaque: oidctest.New(tb, oidctest.WithIssuerPath("/realms/bench"))}
	cfgDoc := load.FlaatConfig(f.opJWT.Issuer(), f.opOpaque.Issuer(), "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", cache)
	if edit != nil {
		edit(cfgDoc)
	}
	doc, err := yaml.Marshal(cfgDoc)
	if err != nil {
		tb.Fatal(err)
	}
	cf, err := config.Parse(doc)
	if err != nil {
		tb.Fatal(err)
	}
	if err := cf.Validate(); err != nil {
		tb.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	pol, err := policy.New(cf.Policy)
	if err != nil {
		tb.Fatal(err)
	}
	opts := []authz.Option{authz.WithLogger(log), authz.WithClaimProjection(config.ClaimProjection(pol, cf.ServerConfig()))}
	if cf.ServerConfig().BackchannelListen != "" { // as the server does
		opts = append(opts, authz.WithLogoutIndex())
	}
	a, err := authz.New(cf.AuthzConfig(), pol, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { a.Close() })
	if err := a.Ready(context.Background()); err != nil {
		tb.Fatal(err)
	}
	m, err := envoy.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		tb.Fatal(err)
	}
	f.srv, err = envoy.NewServer(a, cf.ServerConfig(), append([]envoy.Option{envoy.WithLogger(log), envoy.WithMetrics(m)}, envoyOpts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

func (f *fixture) check(tb testing.TB, req *authv3.CheckRequest, want int32) {
	tb.Helper()
	resp, err := f.srv.Check(context.Background(), req)
	if err != nil {
		tb.Fatal(err)
	}
	if got := resp.GetStatus().GetCode(); got != want {
		tb.Fatalf("Check: code %d (%s), want %d", got, resp.GetStatus().GetMessage(), want)
	}
}

func request(token string) *authv3.CheckRequest {
	r := load.Request
	r.Token = token
	return load.CheckRequest(r)
}

func run(b *testing.B, f *fixture, reqs []*authv3.CheckRequest, want int32) {
	runCtx(context.Background(), b, f, reqs, want)
}

// runCtx is run with the calls' context (e.g. incoming gRPC metadata).
func runCtx(ctx context.Context, b *testing.B, f *fixture, reqs []*authv3.CheckRequest, want int32) {
	for _, r := range reqs { // warm the cache, check the answer
		f.check(b, r, want)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := f.srv.Check(ctx, reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkWarmPathJWT is a cached RS256 JWT (64 tokens cycling): the warm path.
func BenchmarkWarmPathJWT(b *testing.B) {
	f := newFixture(b, map[string]any{})
	var reqs []*authv3.CheckRequest
	for i := range 64 {
		reqs = append(reqs, request(f.opJWT.MintJWT(load.Claims(i))))
	}
	run(b, f, reqs, 0)
}

// BenchmarkWarmPathTracing is BenchmarkWarmPathJWT with a W3C traceparent in the call's
// gRPC metadata (as Envoy sends it when its tracing is on):
//
//   - off: no WithTracing (the default; the traceparent is not even read);
//   - sampled: an SDK tracer provider with a batch span processor and an exporter that
//     drops the spans (what a server exporting OTLP spends, minus the network);
//   - unsampled: the same provider, the parent says "not sampled" (parent-based
//     sampling, the SDK default: Envoy/Istio's sampling decision is followed).
func BenchmarkWarmPathTracing(b *testing.B) {
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0"
	for _, c := range []struct {
		name    string
		sampled string // trace flags of the parent
		tracing bool
	}{{"off", "1", false}, {"sampled", "1", true}, {"unsampled", "0", true}} {
		b.Run(c.name, func(b *testing.B) {
			var opts []envoy.Option
			if c.tracing {
				tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardExporter{}))
				b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
				opts = append(opts, envoy.WithTracing(envoy.Tracing{Provider: tp}))
			}
			f := newFixtureWith(b, map[string]any{}, nil, opts...)
			var reqs []*authv3.CheckRequest
			for i := range 64 {
				reqs = append(reqs, request(f.opJWT.MintJWT(load.Claims(i))))
			}
			ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("traceparent", traceparent+c.sampled))
			runCtx(ctx, b, f, reqs, 0)
		})
	}
}

// discardExporter drops every span.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// BenchmarkWarmPathOpaque is a cached opaque token (userinfo answered once).
func BenchmarkWarmPathOpaque(b *testing.B) {
	f := newFixture(b, map[string]any{})
	run(b, f, []*authv3.CheckRequest{request(f.opOpaque.MintOpaque(load.Claims(0)))}, 0)
}

// BenchmarkWarmPathDeny is a repeated token with a foreign signature (negative cache
// hit) with the default deny_log_interval: the first denial is logged at info, the
// identical ones after it are counted (BenchmarkWarmPathDenyEveryLine logs each).
func BenchmarkWarmPathDeny(b *testing.B) {
	f := newFixture(b, map[string]any{})
	bad := f.opJWT.MintJWT(load.Claims(1), oidctest.WithKid("bench-unknown-kid"))
	run(b, f, []*authv3.CheckRequest{request(bad)}, 16)
	if n := f.opJWT.Count(oidctest.JWKS); n > 2 {
		b.Fatalf("%d JWKS requests for one repeated bad token", n)
	}
}

// BenchmarkColdPathRS256 verifies an RS256 JWT on every call (cache disabled).
func BenchmarkColdPathRS256(b *testing.B) {
	f := newFixture(b, map[string]any{"disabled": true})
	run(b, f, []*authv3.CheckRequest{request(f.opJWT.MintJWT(load.Claims(0)))}, 0)
}

// TestFixtureDecisions checks that the benchmark fixture decides as the load benchmark
// expects, so the benchmarks above measure the intended paths.
func TestFixtureDecisions(t *testing.T) {
	f := newFixture(t, map[string]any{})
	admin := load.Request
	admin.Path = "/admin/x"
	admin.Token = f.opJWT.MintJWT(load.Claims(2))
	noAud := load.Claims(3)
	noAud["aud"] = "other"
	for _, tc := range []struct {
		name string
		req  *authv3.CheckRequest
		want int32
	}{
		{"jwt member on api-read", request(f.opJWT.MintJWT(load.Claims(0))), 0},
		{"jwt of the second issuer", request(f.opOpaque.MintJWT(load.Claims(0))), 0},
		{"opaque", request(f.opOpaque.MintOpaque(load.Claims(0))), 0},
		{"bad signature", request(f.opJWT.MintJWT(load.Claims(1), oidctest.WithKid("bench-unknown-kid"))), 16},
		{"wrong audience", request(f.opJWT.MintJWT(noAud)), 16},
		{"not an admin", load.CheckRequest(admin), 7},
		{"no token", request(""), 16},
	} {
		t.Run(tc.name, func(t *testing.T) { f.check(t, tc.req, tc.want) })
	}
}

// BenchmarkCachedIdentityBytes caches b.N distinct identities (ES256 tokens, the claims
// of load.Claims) and reports the live heap per cached identity after a GC (the tokens
// themselves are not counted; anything the cache keeps of the request is). Run with
// -benchtime 20000x; the load benchmark's memory run measures the same at 100 000 as RSS.
func BenchmarkCachedIdentityBytes(b *testing.B) {
	cachedIdentityBytes(b, newFixture(b, map[string]any{"size": max(b.N, 1)}))
}

// BenchmarkCachedIdentityBytesLogoutIndex is BenchmarkCachedIdentityBytes with the
// back-channel logout receiver configured, which keeps the issuer+subject index of
// cached identities.
func BenchmarkCachedIdentityBytesLogoutIndex(b *testing.B) {
	cachedIdentityBytes(b, newFixtureWith(b, map[string]any{"size": max(b.N, 1)}, func(doc map[string]any) {
		doc["server"].(map[string]any)["backchannel_listen"] = "127.0.0.1:0"
	}))
}

// identityHeapProfile names a file for a heap profile of what the cached identities
// hold, written right after BenchmarkCachedIdentityBytes' final GC. Run with
// -memprofilerate 1 so that every allocation is sampled, then divide inuse_space by
// the number of identities:
//
//	go test -run '^$' -bench 'CachedIdentityBytes$' -benchtime 20000x -memprofilerate 1 \
//	  ./bench/ -args -identity-heapprofile /tmp/identity.prof
//	go tool pprof -sample_index inuse_space -top /tmp/identity.prof
var identityHeapProfile = flag.String("identity-heapprofile", "", "write a heap profile after CachedIdentityBytes' final GC to this file")

func cachedIdentityBytes(b *testing.B, f *fixture) {
	tokens := make([]string, b.N)
	for i := range tokens {
		tokens[i] = f.opJWT.MintJWT(load.Claims(i), oidctest.WithAlg("ES256"))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for _, t := range tokens { // a fresh request each time, as from the wire
		f.check(b, request(t), 0)
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(b.N), "heapB/identity")
	if *identityHeapProfile != "" {
		out, err := os.Create(*identityHeapProfile)
		if err != nil {
			b.Fatal(err)
		}
		defer out.Close()
		if err := pprof.WriteHeapProfile(out); err != nil {
			b.Fatal(err)
		}
	}
	runtime.KeepAlive(f)
}

// The identity-size benchmarks (issue 16): the warm path with what a real identity
// holds. Compare each with BenchmarkWarmPathJWT of the same run.

// BenchmarkWarmPathEntitlements200: a cached identity with 200 entitlements and an
// entitlement requirement.
func BenchmarkWarmPathEntitlements200(b *testing.B) {
	f := newFixtureWith(b, map[string]any{}, load.WithEntitlementRequirement)
	run(b, f, []*authv3.CheckRequest{request(f.opJWT.MintJWT(load.ManyEntitlements(0, 200)))}, 0)
}

// BenchmarkWarmPathGroups1000: a cached identity with 1 000 groups and a group
// requirement.
func BenchmarkWarmPathGroups1000(b *testing.B) {
	f := newFixtureWith(b, map[string]any{}, load.LargeTokens)
	run(b, f, []*authv3.CheckRequest{request(f.opJWT.MintJWT(load.ManyGroups(0, 1000)))}, 0)
}

// BenchmarkWarmPathToken16K: a cached identity whose token is about 16 KB.
func BenchmarkWarmPathToken16K(b *testing.B) {
	f := newFixtureWith(b, map[string]any{}, load.LargeTokens)
	tok := f.opJWT.MintJWT(load.Padded(0, 12<<10))
	if len(tok) < 15<<10 || len(tok) > 18<<10 {
		b.Fatalf("token of %d bytes, want about 16 KiB", len(tok))
	}
	run(b, f, []*authv3.CheckRequest{request(tok)}, 0)
}

// BenchmarkWarmPathRoutes1000: the baseline token behind 1 000 prefix routes.
func BenchmarkWarmPathRoutes1000(b *testing.B) {
	f := newFixtureWith(b, map[string]any{}, func(doc map[string]any) { load.WithRoutes(doc, 1000) })
	run(b, f, []*authv3.CheckRequest{request(f.opJWT.MintJWT(load.Claims(0)))}, 0)
}
