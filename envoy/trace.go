package envoy

import (
	"context"
	"strings"

	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
)

// Tracing configures OpenTelemetry spans for checks (WithTracing).
//
// One span is made per check (gRPC Check or HTTP auth request), as a child of the trace
// context the caller sent: for Check the gRPC metadata of the call (Envoy injects its
// ext_authz span there when its tracing is on), for HTTP the request headers. The span
// carries the route, outcome, whether the identity came from the cache, the issuer,
// the transport and the x-request-id; with RecordSubject also the subject (enduser.id).
// It never carries the token, the Authorization header, the request path or query
// (which may hold credentials) or any other claim.
type Tracing struct {
	// Provider makes the spans. nil: no tracing (no span, no extraction, no cost).
	Provider trace.TracerProvider
	// Propagator reads the parent's trace context. nil: DefaultPropagator (W3C trace
	// context and B3, single and multi header).
	Propagator propagation.TextMapPropagator
	// RecordSubject adds the verified subject (the sub claim) as enduser.id. Default
	// false: a trace backend is often readable by more people than the logs; turn it on
	// only where user identifiers may be stored there.
	RecordSubject bool
}

// DefaultPropagator reads (and writes) W3C traceparent/tracestate and B3, both the
// single "b3" header and the multi-header x-b3-* form (Envoy's and Istio's Zipkin
// tracers send the latter). When both are present, W3C wins.
func DefaultPropagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(
		B3Propagator(b3.B3MultipleHeader|b3.B3SingleHeader),
		propagation.TraceContext{},
	)
}

// B3Propagator is the B3 propagator that writes enc and reads both forms. Reading a
// carrier without any B3 header leaves the context as it is (the plain b3 propagator
// would add a context value for nothing on every check).
func B3Propagator(enc b3.Encoding) propagation.TextMapPropagator {
	return b3Guard{b3.New(b3.WithInjectEncoding(enc))}
}

type b3Guard struct{ propagation.TextMapPropagator }

func (g b3Guard) Extract(ctx context.Context, c propagation.TextMapCarrier) context.Context {
	if c.Get("b3") == "" && c.Get("x-b3-traceid") == "" {
		return ctx // no B3 span context to read (b3 would only clear its deferred flag)
	}
	return g.TextMapPropagator.Extract(ctx, c)
}

// TracerName is the instrumentation scope of the check spans.
const TracerName = "github.com/flaat-extauthz/flaat-extauthz/envoy"

// Span names of the check spans.
const (
	SpanNameGRPC = AuthorizationService + "/Check"
	SpanNameHTTP = "ext_authz auth_request"
)

// Attribute keys of the check spans.
const (
	AttrRoute     = attribute.Key("flaat.route")
	AttrOutcome   = attribute.Key("flaat.outcome")
	AttrCached    = attribute.Key("flaat.cached")
	AttrIssuer    = attribute.Key("flaat.issuer")
	AttrTransport = attribute.Key("flaat.transport")
	AttrRequestID = attribute.Key("flaat.request_id")
	AttrTokenHash = attribute.Key("flaat.token_hash")
	AttrSubject   = attribute.Key("enduser.id")
)

// WithTracing makes a span per check (see Tracing). Default: none. It takes effect for
// the Server's lifetime (a configuration reload does not change it).
func WithTracing(t Tracing) Option {
	return func(s *Server) {
		if t.Provider == nil {
			s.tracer = nil
			return
		}
		s.tracer = t.Provider.Tracer(TracerName)
		s.spanOpts = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
		s.prop = t.Propagator
		if s.prop == nil {
			s.prop = DefaultPropagator()
		}
		s.traceSubject = t.RecordSubject
	}
}

// grpcAttrs are the fixed attributes of a gRPC check span.
var grpcAttrs = []attribute.KeyValue{
	AttrTransport.String(TransportGRPC),
	attribute.String("rpc.system", "grpc"),
	attribute.String("rpc.service", AuthorizationService),
	attribute.String("rpc.method", "Check"),
}

// startSpan starts the check span as a child of the trace context in ctx. Its start
// options (the span kind) are built once, in WithTracing, and carry no attributes: an
// unsampled check then allocates only what the SDK needs, and endSpan adds every
// attribute when the span records.
func (s *Server) startSpan(ctx context.Context, transport string) (context.Context, trace.Span) {
	if transport == TransportHTTP {
		return s.tracer.Start(ctx, SpanNameHTTP, s.spanOpts...)
	}
	return s.tracer.Start(ctx, SpanNameGRPC, s.spanOpts...)
}

// endSpan records the request and the decision on span and ends it. An outage (503)
// is an error; a denial is a decision, not an error.
func (s *Server) endSpan(span trace.Span, transport string, r *authz.Request, d *authz.Decision) {
	if span.IsRecording() {
		attrs := make([]attribute.KeyValue, 0, 11)
		if transport == TransportHTTP {
			attrs = append(attrs, AttrTransport.String(TransportHTTP))
		} else {
			attrs = append(attrs, grpcAttrs...)
		}
		attrs = append(attrs, AttrOutcome.String(d.Outcome.String()), AttrRoute.String(d.Route), AttrCached.Bool(d.Cached))
		if r.RequestID != "" {
			attrs = append(attrs, AttrRequestID.String(r.RequestID))
		}
		if d.TokenHash != "" {
			attrs = append(attrs, AttrTokenHash.String(d.TokenHash))
		}
		if id := d.Identity; id != nil {
			attrs = append(attrs, AttrIssuer.String(id.Issuer))
			if sub := id.Subject(); s.traceSubject && sub != "" {
				attrs = append(attrs, AttrSubject.String(sub))
			}
		}
		span.SetAttributes(attrs...)
		if d.Outcome == authz.OutcomeUnavailable {
			span.SetStatus(codes.Error, d.Reason) // the client-safe reason, never Err
		}
	}
	span.End()
}

// grpcCarrier reads trace headers from the incoming gRPC metadata without copying it.
type grpcCarrier struct{ ctx context.Context }

func (c grpcCarrier) Get(key string) string {
	if vs := metadata.ValueFromIncomingContext(c.ctx, strings.ToLower(key)); len(vs) > 0 {
		return vs[0]
	}
	return ""
}

func (grpcCarrier) Set(string, string) {} // extraction only

func (c grpcCarrier) Keys() []string {
	md, _ := metadata.FromIncomingContext(c.ctx)
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	return keys
}
