package server

import (
	"context"
	"os"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/flaat-extauthz/flaat-extauthz/envoy"
	"github.com/flaat-extauthz/flaat-extauthz/internal/config"
	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
)

// TestServeTracing: with Options.Tracing, a check through the running server's HTTP
// listener is a span continuing the caller's traceparent, with the OP requests it
// caused (readiness lazy: discovery, JWKS and userinfo all happen in the check) as its
// children; the tracing section's record_subject reaches the span; the OnShutdown hook
// flushes the provider.
func TestServeTracing(t *testing.T) {
	op := oidctest.New(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	flushed := false
	_, load := writeConfig(t, "server: {readiness: lazy}\nissuers: [{issuer: \""+op.Issuer()+"\"}]\n"+
		"policy: {default: {authenticated: true}}\ntracing: {record_subject: true}\n")
	r := start(t, Options{
		Load:       load,
		Tracing:    envoy.Tracing{Provider: tp, Propagator: envoy.DefaultPropagator()},
		OnShutdown: []func(context.Context) error{func(ctx context.Context) error { flushed = true; return tp.Shutdown(ctx) }},
	})
	const trace, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	tok := op.MintJWT(map[string]any{"sub": "alice"})
	if code, body := r.Get("http", "/x", map[string]string{"Authorization": "Bearer " + tok,
		"traceparent": "00-" + trace + "-" + parent + "-01"}); code != 200 {
		t.Fatalf("check = %d %s", code, body)
	}
	if _, err := r.stop(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if !flushed {
		t.Error("OnShutdown did not run")
	}

	var check sdktrace.ReadOnlySpan
	for _, sp := range rec.Ended() {
		if sp.Name() == envoy.SpanNameHTTP {
			check = sp
		}
	}
	if check == nil {
		t.Fatalf("no check span among %d spans", len(rec.Ended()))
	}
	if check.Parent().SpanID().String() != parent || check.SpanContext().TraceID().String() != trace {
		t.Errorf("check span %v, parent %v; want trace %s parent %s", check.SpanContext(), check.Parent(), trace, parent)
	}
	attrs := map[attribute.Key]string{}
	for _, kv := range check.Attributes() {
		attrs[kv.Key] = kv.Value.Emit()
	}
	if attrs[envoy.AttrSubject] != "alice" || attrs[envoy.AttrOutcome] != "allow" || attrs[envoy.AttrIssuer] != op.Issuer() {
		t.Errorf("check span attributes %v; want enduser.id alice, outcome allow, issuer %s", attrs, op.Issuer())
	}
	children := map[string]bool{}
	for _, sp := range rec.Ended() {
		if sp.Parent().SpanID() == check.SpanContext().SpanID() {
			children[sp.Name()] = true
		}
	}
	for _, want := range []string{"OP discovery", "OP jwks", "OP userinfo"} {
		if !children[want] {
			t.Errorf("no %q child of the check span; children: %v", want, children)
		}
	}
}

// TestServeTracingOff: the zero Options.Tracing records nothing, and a tracing section
// alone does not turn tracing on.
func TestServeTracingOff(t *testing.T) {
	op := oidctest.New(t)
	r := start(t, Options{Load: defaultLoader(config.Overrides{Issuers: []string{op.Issuer()}, LogLevel: "debug"})})
	if r.srv.srv == nil {
		t.Fatal("no envoy server")
	}
	tok := op.MintJWT(map[string]any{"sub": "alice"})
	if code, body := r.Get("http", "/x", map[string]string{"Authorization": "Bearer " + tok,
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}); code != 200 {
		t.Fatalf("check = %d %s", code, body)
	}
	log, err := r.stop(os.Interrupt)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log, `"msg":"decision"`) || strings.Contains(log, "trace_id") {
		t.Errorf("want a decision line that names no trace with tracing off:\n%s", log)
	}
}
