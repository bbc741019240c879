package envoy_test

import (
	"context"
	"fmt"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc/metadata"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/envoy"
	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// WithTracing makes one span per check, continuing the trace context the proxy sends
// in the call's gRPC metadata (here a W3C traceparent, as Envoy's OpenTelemetry tracer
// sends it). A real server exports with a batching OTLP exporter (internal/tracing);
// here an in-memory recorder shows the span.
func ExampleWithTracing() {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	a := envoy.AuthorizerFunc(func(context.Context, authz.Request) authz.Decision {
		return authz.Decision{Outcome: authz.OutcomeAllow, Route: "api", Identity: &authz.Identity{Issuer: "https://op.example",
			Claims: policy.MapClaims(map[string]any{"sub": "alice"})}}
	})
	s, err := envoy.NewServer(a, envoy.Config{}, envoy.WithTracing(envoy.Tracing{Provider: tp}))
	if err != nil {
		panic(err)
	}
	ctx := metadata.NewIncomingContext(context.Background(),
		metadata.Pairs("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
	_, _ = s.Check(ctx, &authv3.CheckRequest{})

	sp := rec.Ended()[0]
	fmt.Println(sp.Name())
	fmt.Println("trace", sp.SpanContext().TraceID(), "parent", sp.Parent().SpanID())
	for _, kv := range sp.Attributes() {
		if kv.Key == envoy.AttrOutcome || kv.Key == envoy.AttrRoute || kv.Key == envoy.AttrIssuer {
			fmt.Println(kv.Key, kv.Value.Emit())
		}
	}
	// Output:
	// envoy.service.auth.v3.Authorization/Check
	// trace 4bf92f3577b34da6a3ce929d0e0e4736 parent 00f067aa0ba902b7
	// flaat.outcome allow
	// flaat.route api
	// flaat.issuer https://op.example
}
