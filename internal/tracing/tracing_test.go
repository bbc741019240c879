package tracing_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/flaat-extauthz/flaat-extauthz/internal/testutil/otlptest"
	"github.com/flaat-extauthz/flaat-extauthz/internal/tracing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFromEnv(t *testing.T) {
	for _, c := range []struct {
		name     string
		env      map[string]string
		enabled  bool
		protocol string
		sampler  string
		errs     []string // substrings of the one error; nil: no error
	}{
		{name: "nothing set: off", env: nil, sampler: "parentbased_always_on", protocol: "http/protobuf"},
		{name: "none: off", env: map[string]string{"OTEL_TRACES_EXPORTER": "none"}, protocol: "http/protobuf", sampler: "parentbased_always_on"},
		{name: "otlp: on, http/protobuf by default", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"},
			enabled: true, protocol: "http/protobuf", sampler: "parentbased_always_on"},
		{name: "grpc", env: map[string]string{"OTEL_TRACES_EXPORTER": "OTLP", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			enabled: true, protocol: "grpc", sampler: "parentbased_always_on"},
		{name: "traces protocol wins", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"},
			enabled: true, protocol: "http/protobuf", sampler: "parentbased_always_on"},
		{name: "sdk disabled wins", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}},
		{name: "ratio sampler", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp",
			"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
			enabled: true, protocol: "http/protobuf", sampler: "parentbased_traceidratio=0.25"},
		{name: "every problem at once", env: map[string]string{"OTEL_TRACES_EXPORTER": "jaeger",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_TRACES_SAMPLER": "traceidratio",
			"OTEL_TRACES_SAMPLER_ARG": "2", "OTEL_PROPAGATORS": "tracecontext,xray"},
			errs: []string{`OTEL_TRACES_EXPORTER="jaeger"`, `"http/json"`, `OTEL_TRACES_SAMPLER_ARG="2"`, `"xray"`}},
		{name: "unknown sampler", env: map[string]string{"OTEL_TRACES_SAMPLER": "sometimes"}, errs: []string{`"sometimes"`}},
		{name: "bad disabled flag", env: map[string]string{"OTEL_SDK_DISABLED": "maybe"}, errs: []string{"OTEL_SDK_DISABLED"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := tracing.FromEnv(env(c.env))
			if c.errs != nil {
				if err == nil {
					t.Fatalf("no error, want %v", c.errs)
				}
				for _, e := range c.errs {
					if !strings.Contains(err.Error(), e) {
						t.Errorf("error %q lacks %q", err, e)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Enabled != c.enabled || (c.enabled && (s.Protocol != c.protocol || s.SamplerName != c.sampler)) {
				t.Errorf("got enabled=%v protocol=%q sampler=%q, want %v %q %q", s.Enabled, s.Protocol, s.SamplerName, c.enabled, c.protocol, c.sampler)
			}
		})
	}
}

// TestPropagators: which parent each OTEL_PROPAGATORS setting reads from which headers.
func TestPropagators(t *testing.T) {
	const (
		w3cTrace, w3cSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
		b3Trace, b3Span   = "80f198ee56343ba864fe8b2a57d3eff7", "e457b5a2e4d86bd1"
	)
	w3c := map[string]string{"traceparent": "00-" + w3cTrace + "-" + w3cSpan + "-01"}
	b3single := map[string]string{"b3": b3Trace + "-" + b3Span + "-1"}
	b3multi := map[string]string{"x-b3-traceid": b3Trace, "x-b3-spanid": b3Span, "x-b3-sampled": "1"}
	both := map[string]string{"traceparent": w3c["traceparent"], "b3": b3single["b3"]}
	for _, c := range []struct {
		name, list string
		headers    map[string]string
		wantSpan   string // "" : no parent
	}{
		{"default reads w3c", "", w3c, w3cSpan},
		{"default reads b3 single", "", b3single, b3Span},
		{"default reads b3 multi", "", b3multi, b3Span},
		{"default: w3c wins over b3", "", both, w3cSpan},
		{"listed b3 first: w3c still wins", "b3,tracecontext", both, w3cSpan},
		{"tracecontext only ignores b3", "tracecontext", b3multi, ""},
		{"b3 only ignores w3c", "b3", w3c, ""},
		{"b3multi reads the single header too", "b3multi", b3single, b3Span},
		{"none reads nothing", "none", w3c, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := tracing.FromEnv(env(map[string]string{"OTEL_PROPAGATORS": c.list}))
			if err != nil {
				t.Fatal(err)
			}
			carrier := propagation.MapCarrier(c.headers)
			sc := trace.SpanContextFromContext(s.Propagator.Extract(context.Background(), carrier))
			got := ""
			if sc.IsValid() {
				got = sc.SpanID().String()
			}
			if got != c.wantSpan {
				t.Errorf("parent span %q, want %q", got, c.wantSpan)
			}
		})
	}
}

// TestExport: spans reach a real OTLP receiver over both protocols, with the
// service.name default and the version; Shutdown flushes them.
func TestExport(t *testing.T) {
	rcv := otlptest.Start(t)
	for _, c := range []struct {
		protocol, endpoint, want string
	}{
		{"grpc", rcv.GRPCEndpoint(), "grpc"},
		{"http/protobuf", rcv.HTTPEndpoint(), "http"},
	} {
		t.Run(c.protocol, func(t *testing.T) {
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", c.endpoint) // read by the exporter itself
			t.Setenv("OTEL_SERVICE_NAME", "")
			t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
			s, err := tracing.FromEnv(env(map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": c.protocol}))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			p, err := tracing.Start(ctx, s, "v9.9.9")
			if err != nil {
				t.Fatal(err)
			}
			_, span := p.Tracer("test").Start(ctx, "span-"+c.protocol)
			span.End()
			if err := p.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			spans, err := rcv.WaitFor(ctx, func(ss []otlptest.Span) bool {
				for _, s := range ss {
					if s.Name == "span-"+c.protocol {
						return true
					}
				}
				return false
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range spans {
				if s.Name != "span-"+c.protocol {
					continue
				}
				if s.Protocol != c.want {
					t.Errorf("received over %s, want %s", s.Protocol, c.want)
				}
				for k, v := range map[string]string{"service.name": "flaat-extauthz", "service.version": "v9.9.9", "deployment.environment": "test"} {
					if s.Resource[k] != v {
						t.Errorf("resource %s = %q, want %q", k, s.Resource[k], v)
					}
				}
			}
		})
	}
}

func TestStartOff(t *testing.T) {
	p, err := tracing.Start(context.Background(), tracing.Settings{}, "v1")
	if err != nil || p != nil {
		t.Fatalf("Start(off) = %v, %v; want nil, nil", p, err)
	}
	if tr := p.Tracing(true); tr.Provider != nil {
		t.Error("nil provider gives tracing on")
	}
}
