// Package tracing builds serve's OpenTelemetry tracer provider from the standard OTEL_*
// environment variables. Tracing is off unless OTEL_TRACES_EXPORTER=otlp: then spans
// are batched and exported over OTLP (gRPC or HTTP/protobuf) to the endpoint the
// OTEL_EXPORTER_OTLP_* variables name.
//
// Read here (every bad value is a start-up error, reported together):
//
//	OTEL_SDK_DISABLED                      true: off, whatever else is set
//	OTEL_TRACES_EXPORTER                   otlp | none (default none: off)
//	OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
//	OTEL_EXPORTER_OTLP_PROTOCOL            grpc | http/protobuf (default http/protobuf)
//	OTEL_TRACES_SAMPLER(_ARG)              always_on | always_off | traceidratio |
//	                                       parentbased_always_on (default) |
//	                                       parentbased_always_off | parentbased_traceidratio
//	OTEL_PROPAGATORS                       tracecontext, baggage, b3, b3multi, none
//	                                       (default: tracecontext and b3, both B3 forms read)
//
// Read by the OpenTelemetry SDK and exporters themselves from the process environment:
// OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, _TIMEOUT, _COMPRESSION, _CERTIFICATE,
// _CLIENT_CERTIFICATE, _CLIENT_KEY, _INSECURE; OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES (service.name defaults to flaat-extauthz); OTEL_BSP_*.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/flaat-extauthz/flaat-extauthz/envoy"
)

// ServiceName is the default service.name resource attribute (OTEL_SERVICE_NAME wins).
const ServiceName = "flaat-extauthz"

// Settings is what the environment asks for; see the package comment.
type Settings struct {
	Enabled  bool
	Protocol string // grpc | http/protobuf
	Sampler  sdktrace.Sampler
	// SamplerName is the OTEL_TRACES_SAMPLER value in effect, for the start-up log.
	SamplerName string
	Propagator  propagation.TextMapPropagator
}

// FromEnv reads and validates the settings; every problem is in the one error.
func FromEnv(getenv func(string) string) (Settings, error) {
	s := Settings{Protocol: "http/protobuf", SamplerName: "parentbased_always_on"}
	var errs []error
	if v := strings.TrimSpace(getenv("OTEL_SDK_DISABLED")); v != "" {
		off, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("OTEL_SDK_DISABLED=%q: not a boolean", v))
		}
		if off {
			return Settings{}, errors.Join(errs...)
		}
	}
	switch v := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))); v {
	case "", "none":
	case "otlp":
		s.Enabled = true
	default:
		errs = append(errs, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: supported are otlp and none", v))
	}
	proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch proto = strings.ToLower(strings.TrimSpace(proto)); proto {
	case "":
	case "grpc", "http/protobuf":
		s.Protocol = proto
	default:
		errs = append(errs, fmt.Errorf("OTLP protocol %q: supported are grpc and http/protobuf", proto))
	}
	var err error
	if s.Sampler, s.SamplerName, err = sampler(getenv("OTEL_TRACES_SAMPLER"), getenv("OTEL_TRACES_SAMPLER_ARG")); err != nil {
		errs = append(errs, err)
	}
	if s.Propagator, err = propagators(getenv("OTEL_PROPAGATORS")); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return Settings{}, fmt.Errorf("tracing: %w", err)
	}
	return s, nil
}

func sampler(name, arg string) (sdktrace.Sampler, string, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	ratio := func() (float64, error) {
		arg = strings.TrimSpace(arg)
		if arg == "" {
			return 1, nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return 0, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG=%q: want a ratio between 0 and 1", arg)
		}
		return r, nil
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), "parentbased_always_on", nil
	case "always_on":
		return sdktrace.AlwaysSample(), name, nil
	case "always_off":
		return sdktrace.NeverSample(), name, nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), name, nil
	case "traceidratio", "parentbased_traceidratio":
		r, err := ratio()
		if err != nil {
			return nil, "", err
		}
		s := sdktrace.TraceIDRatioBased(r)
		if name == "parentbased_traceidratio" {
			s = sdktrace.ParentBased(s)
		}
		return s, name + "=" + strconv.FormatFloat(r, 'g', -1, 64), nil
	}
	return nil, "", fmt.Errorf("OTEL_TRACES_SAMPLER=%q: supported are always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio", name)
}

func propagators(list string) (propagation.TextMapPropagator, error) {
	if strings.TrimSpace(list) == "" {
		return envoy.DefaultPropagator(), nil
	}
	var ps []propagation.TextMapPropagator
	for _, name := range strings.Split(list, ",") {
		switch name = strings.ToLower(strings.TrimSpace(name)); name {
		case "tracecontext":
			ps = append(ps, propagation.TraceContext{})
		case "baggage":
			ps = append(ps, propagation.Baggage{})
		case "b3":
			ps = append(ps, envoy.B3Propagator(b3.B3SingleHeader))
		case "b3multi":
			ps = append(ps, envoy.B3Propagator(b3.B3MultipleHeader))
		case "none":
		default:
			return nil, fmt.Errorf("OTEL_PROPAGATORS: %q: supported are tracecontext, baggage, b3, b3multi and none", name)
		}
	}
	// B3 first: when a request carries both, W3C trace context (read last) wins.
	for i, p := range ps {
		if _, ok := p.(propagation.TraceContext); ok {
			ps = append(append(ps[:i:i], ps[i+1:]...), p)
			break
		}
	}
	return propagation.NewCompositeTextMapPropagator(ps...), nil
}

// Provider is a started tracer provider with its propagator.
type Provider struct {
	*sdktrace.TracerProvider
	Propagator propagation.TextMapPropagator
}

// Tracing returns the envoy.Tracing of p (recordSubject from the configuration); the
// zero Tracing (off) for a nil p.
func (p *Provider) Tracing(recordSubject bool) envoy.Tracing {
	if p == nil {
		return envoy.Tracing{}
	}
	return envoy.Tracing{Provider: p.TracerProvider, Propagator: p.Propagator, RecordSubject: recordSubject}
}

// Start returns a provider exporting as s says, or nil when s is not Enabled. version
// is the service.version resource attribute. The exporter connects lazily: an
// unreachable collector does not fail the start (spans are dropped, and the SDK's
// error handler reports it). Shutdown flushes and stops it.
func Start(ctx context.Context, s Settings, version string) (*Provider, error) {
	if !s.Enabled {
		return nil, nil
	}
	var exp sdktrace.SpanExporter
	var err error
	switch s.Protocol {
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", ServiceName), attribute.String("service.version", version)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES override the above
		resource.WithTelemetrySDK(),
	)
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res), sdktrace.WithSampler(s.Sampler))
	return &Provider{TracerProvider: tp, Propagator: s.Propagator}, nil
}
