package authz

import (
	"context"
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Attribute keys of the OP request spans (besides otelhttp's HTTP client attributes:
// method, URL without credentials, status, server address).
const (
	AttrIssuer   = attribute.Key("flaat.issuer")
	AttrEndpoint = attribute.Key("flaat.op_endpoint") // discovery, jwks, userinfo, introspection
)

// WithTracing makes a client span for every request to an OP (discovery, JWKS,
// userinfo, introspection), named "OP <endpoint>", with the issuer and endpoint as
// attributes, as a child of the span in the context of the check that caused it (also
// when the fetch runs detached and is shared with other checks: the check that started
// it is the parent). Background JWKS refreshes and readiness fetches are root spans.
// The trace context is sent to the OP with prop (nil: the global propagator).
//
// The spans come from otelhttp around the OP client's transport; tokens are never
// recorded (no request headers or bodies are; userinfo and introspection send the token
// in a header and a POST body, never in the URL). nil tp: no tracing (the default).
func WithTracing(tp trace.TracerProvider, prop propagation.TextMapPropagator) Option {
	return func(o *options) {
		o.tp, o.prop = tp, prop
	}
}

// opCallKey holds the opCall of a request to an OP in its context (set by send when
// tracing is on), for the span's name and attributes.
type opCallKey struct{}

type opCall struct{ issuer, endpoint string }

// traceTransport wraps rt with otelhttp.
func traceTransport(rt http.RoundTripper, tp trace.TracerProvider, prop propagation.TextMapPropagator) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	opts := []otelhttp.Option{
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if c, ok := r.Context().Value(opCallKey{}).(opCall); ok {
				return "OP " + c.endpoint
			}
			return "OP " + r.Method
		}),
	}
	if prop != nil {
		opts = append(opts, otelhttp.WithPropagators(prop))
	}
	return traced{otelhttp.NewTransport(annotate{rt}, opts...), rt}
}

// traced is the otelhttp transport that passes CloseIdleConnections on to the transport
// it wraps (otelhttp's own does not), so closing an Authorizer still closes its idle
// connections to the OPs.
type traced struct {
	http.RoundTripper
	inner http.RoundTripper
}

func (t traced) CloseIdleConnections() {
	if c, ok := t.inner.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// annotate adds the issuer and endpoint to the otelhttp span in the request's context.
type annotate struct{ next http.RoundTripper }

func (a annotate) RoundTrip(r *http.Request) (*http.Response, error) {
	if c, ok := r.Context().Value(opCallKey{}).(opCall); ok {
		trace.SpanFromContext(r.Context()).SetAttributes(AttrIssuer.String(c.issuer), AttrEndpoint.String(c.endpoint))
	}
	return a.next.RoundTrip(r)
}

// withParent returns base (a detached context) carrying the span context of parent,
// so that a shared fetch started by a check becomes a child of that check's span. base
// itself when parent is not valid (tracing off, or no span).
func withParent(base context.Context, parent trace.SpanContext) context.Context {
	if !parent.IsValid() {
		return base
	}
	return trace.ContextWithSpanContext(base, parent)
}
