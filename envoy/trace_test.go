package envoy

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
)

// Trace context fixtures: one parent span as Envoy would send it in each format.
const (
	parentTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	parentSpan  = "00f067aa0ba902b7"
)

var parentHeaders = map[string]map[string]string{
	"w3c traceparent": {"traceparent": "00-" + parentTrace + "-" + parentSpan + "-01"},
	"b3 single":       {"b3": parentTrace + "-" + parentSpan + "-1"},
	"b3 multi":        {"x-b3-traceid": parentTrace, "x-b3-spanid": parentSpan, "x-b3-sampled": "1"},
}

// tracedServer returns a Server with tracing into a span recorder.
func tracedServer(t *testing.T, a Authorizer, recordSubject bool) (*Server, *tracetest.SpanRecorder, *bytes.Buffer) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	s, buf := newTestServer(t, a, Config{}, WithTracing(Tracing{Provider: tp, RecordSubject: recordSubject}))
	return s, rec, buf
}

// onlySpan returns the one ended span.
func onlySpan(t *testing.T, rec *tracetest.SpanRecorder) sdktrace.ReadOnlySpan {
	t.Helper()
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans ended, want 1", len(spans))
	}
	return spans[0]
}

func attrMap(kvs []attribute.KeyValue) map[attribute.Key]string {
	m := map[attribute.Key]string{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value.Emit()
	}
	return m
}

func TestTraceContinuesParent(t *testing.T) {
	cachedAlice := allowAlice()
	cachedAlice.Cached = true
	for name, hdrs := range parentHeaders {
		for _, transport := range []string{TransportGRPC, TransportHTTP} {
			t.Run(transport+"/"+name, func(t *testing.T) {
				s, rec, _ := tracedServer(t, &fakeAuthorizer{d: cachedAlice}, false)
				switch transport {
				case TransportGRPC:
					ctx := metadata.NewIncomingContext(context.Background(), metadata.New(hdrs))
					if _, err := s.Check(ctx, checkRequest(map[string]string{"authorization": "Bearer abc"})); err != nil {
						t.Fatal(err)
					}
				case TransportHTTP:
					req := httptest.NewRequest("GET", "/x", nil)
					req.Header.Set("Authorization", "Bearer abc")
					for k, v := range hdrs {
						req.Header.Set(k, v)
					}
					s.HTTPHandler().ServeHTTP(httptest.NewRecorder(), req)
				}
				sp := onlySpan(t, rec)
				if got := sp.Parent().SpanID().String(); got != parentSpan {
					t.Errorf("parent span id = %s, want %s", got, parentSpan)
				}
				if !sp.Parent().IsRemote() {
					t.Error("parent is not marked remote")
				}
				if got := sp.SpanContext().TraceID().String(); got != parentTrace {
					t.Errorf("trace id = %s, want %s", got, parentTrace)
				}
				if sp.SpanKind() != trace.SpanKindServer {
					t.Errorf("kind = %v, want server", sp.SpanKind())
				}
				want := map[string]string{TransportGRPC: SpanNameGRPC, TransportHTTP: SpanNameHTTP}[transport]
				if sp.Name() != want {
					t.Errorf("name = %q, want %q", sp.Name(), want)
				}
				a := attrMap(sp.Attributes())
				for k, v := range map[attribute.Key]string{
					AttrTransport: transport, AttrOutcome: "allow", AttrRoute: "api", AttrCached: "true",
					AttrIssuer: "https://op.example.org", AttrTokenHash: "0011223344556677",
				} {
					if a[k] != v {
						t.Errorf("%s = %q, want %q", k, a[k], v)
					}
				}
			})
		}
	}
}

func TestTraceWithoutParentIsRoot(t *testing.T) {
	s, rec, buf := tracedServer(t, &fakeAuthorizer{d: allowAlice()}, false)
	if _, err := s.Check(context.Background(), checkRequest(map[string]string{"authorization": "Bearer abc"})); err != nil {
		t.Fatal(err)
	}
	sp := onlySpan(t, rec)
	if sp.Parent().IsValid() {
		t.Errorf("span has parent %v, want a root span", sp.Parent())
	}
	// The decision's log line names the trace.
	var line map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(buf.Bytes()), &line); err != nil {
		t.Fatalf("log line: %v\n%s", err, buf)
	}
	if got, want := line["trace_id"], sp.SpanContext().TraceID().String(); got != want {
		t.Errorf("log trace_id = %v, want %s", got, want)
	}
}

// TestTraceAttributes: what is recorded for each kind of decision, and what never is.
func TestTraceAttributes(t *testing.T) {
	const token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
	unavailable := authz.Decision{Outcome: authz.OutcomeUnavailable, Route: "api", Reason: "identity provider unavailable",
		TokenHash: "0011223344556677", Err: &authz.UnavailableError{Issuer: "https://op.example.org", Endpoint: "jwks"}}
	forbidden := allowAlice()
	forbidden.Outcome, forbidden.Reason = authz.OutcomeForbidden, `groups: missing "ops"`
	for _, c := range []struct {
		name          string
		d             authz.Decision
		recordSubject bool
		want          map[attribute.Key]string
		absent        []attribute.Key
		status        codes.Code
	}{
		{name: "allow without subject", d: allowAlice(),
			want:   map[attribute.Key]string{AttrOutcome: "allow", AttrCached: "false", AttrIssuer: "https://op.example.org", AttrRequestID: "req-1"},
			absent: []attribute.Key{AttrSubject}, status: codes.Unset},
		{name: "allow with subject", d: allowAlice(), recordSubject: true,
			want: map[attribute.Key]string{AttrOutcome: "allow", AttrSubject: "alice"}, status: codes.Unset},
		{name: "forbidden is not an error", d: forbidden, recordSubject: true,
			want: map[attribute.Key]string{AttrOutcome: "forbidden", AttrSubject: "alice"}, status: codes.Unset},
		{name: "no token", d: authz.Decision{Outcome: authz.OutcomeNoToken, Route: "api"},
			want:   map[attribute.Key]string{AttrOutcome: "no_token", AttrRoute: "api"},
			absent: []attribute.Key{AttrIssuer, AttrSubject, AttrTokenHash}, status: codes.Unset},
		{name: "outage is an error", d: unavailable,
			want:   map[attribute.Key]string{AttrOutcome: "unavailable", AttrTokenHash: "0011223344556677"},
			absent: []attribute.Key{AttrIssuer}, status: codes.Error},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, rec, _ := tracedServer(t, &fakeAuthorizer{d: c.d}, c.recordSubject)
			req := checkRequest(map[string]string{"authorization": "Bearer " + token, "cookie": "session=secret"})
			req.Attributes.Request.Http.Path = "/v1/items?access_token=" + token
			if _, err := s.Check(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			sp := onlySpan(t, rec)
			a := attrMap(sp.Attributes())
			for k, v := range c.want {
				if a[k] != v {
					t.Errorf("%s = %q, want %q", k, a[k], v)
				}
			}
			for _, k := range c.absent {
				if v, ok := a[k]; ok {
					t.Errorf("%s = %q, want absent", k, v)
				}
			}
			if sp.Status().Code != c.status {
				t.Errorf("status = %v, want %v", sp.Status(), c.status)
			}
			// Never the token (nor any part of it), the path, a cookie or other claims.
			all := sp.Name() + " " + sp.Status().Description
			for _, kv := range sp.Attributes() {
				all += " " + string(kv.Key) + "=" + kv.Value.Emit()
			}
			for _, ev := range sp.Events() {
				all += " " + ev.Name + " " + attrString(ev.Attributes)
			}
			for _, secret := range []string{"eyJ", "c2lnbmF0dXJl", "access_token", "/v1/items", "session", "alice@example.org", "physics", "admins"} {
				if strings.Contains(all, secret) {
					t.Errorf("span records %q: %s", secret, all)
				}
			}
		})
	}
}

func attrString(kvs []attribute.KeyValue) string {
	var b strings.Builder
	for _, kv := range kvs {
		b.WriteString(string(kv.Key) + "=" + kv.Value.Emit() + " ")
	}
	return b.String()
}

// TestTraceContextReachesAuthorizer: the authorizer runs inside the check span, so
// the OP calls it makes become its children.
func TestTraceContextReachesAuthorizer(t *testing.T) {
	var inner trace.SpanContext
	a := &fakeAuthorizer{fn: func(ctx context.Context, _ authz.Request) authz.Decision {
		inner = trace.SpanContextFromContext(ctx)
		return allowAlice()
	}}
	s, rec, _ := tracedServer(t, a, false)
	ctx := metadata.NewIncomingContext(context.Background(), metadata.New(parentHeaders["w3c traceparent"]))
	if _, err := s.Check(ctx, checkRequest(map[string]string{"authorization": "Bearer abc"})); err != nil {
		t.Fatal(err)
	}
	sp := onlySpan(t, rec)
	if inner.SpanID() != sp.SpanContext().SpanID() {
		t.Errorf("authorizer saw span %s, want the check span %s", inner.SpanID(), sp.SpanContext().SpanID())
	}
}

// TestTracePanicStillEndsSpan: a panicking authorizer is answered 503 and its span
// still ends, marked as an error.
func TestTracePanicStillEndsSpan(t *testing.T) {
	s, rec, _ := tracedServer(t, &fakeAuthorizer{fn: func(context.Context, authz.Request) authz.Decision { panic("boom") }}, false)
	resp, err := s.Check(context.Background(), checkRequest(map[string]string{"authorization": "Bearer abc"}))
	if err != nil || resp.GetDeniedResponse() == nil {
		t.Fatalf("Check = %v, %v; want a denial", resp, err)
	}
	sp := onlySpan(t, rec)
	if sp.Status().Code != codes.Error || attrMap(sp.Attributes())[AttrOutcome] != "unavailable" {
		t.Errorf("status %v, attributes %v; want error, unavailable", sp.Status(), sp.Attributes())
	}
}

// TestTracingOff: without WithTracing (or with a nil provider) nothing is traced,
// even when a caller sends a trace context and a global provider exists.
func TestTracingOff(t *testing.T) {
	for _, c := range []struct {
		name string
		opts []Option
	}{
		{"no option", nil},
		{"nil provider", []Option{WithTracing(Tracing{})}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, buf := newTestServer(t, &fakeAuthorizer{fn: func(ctx context.Context, _ authz.Request) authz.Decision {
				if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
					t.Errorf("authorizer got a span context %v with tracing off", sc)
				}
				return allowAlice()
			}}, Config{}, c.opts...)
			if s.tracer != nil {
				t.Fatal("tracer set")
			}
			ctx := metadata.NewIncomingContext(context.Background(), metadata.New(parentHeaders["w3c traceparent"]))
			if _, err := s.Check(ctx, checkRequest(map[string]string{"authorization": "Bearer abc"})); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(buf.String(), "trace_id") {
				t.Errorf("log line names a trace with tracing off: %s", buf)
			}
		})
	}
}

// TestTraceGRPCWire: the trace context travels as gRPC metadata over a real loopback
// connection (what Envoy and grpcurl -H send).
func TestTraceGRPCWire(t *testing.T) {
	s, rec, _ := tracedServer(t, &fakeAuthorizer{d: allowAlice()}, false)
	cc := serveServer(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "traceparent", parentHeaders["w3c traceparent"]["traceparent"])
	if _, err := authv3.NewAuthorizationClient(cc).Check(ctx, checkRequest(map[string]string{"authorization": "Bearer abc"})); err != nil {
		t.Fatal(err)
	}
	sp := onlySpan(t, rec)
	if sp.Parent().SpanID().String() != parentSpan || sp.SpanContext().TraceID().String() != parentTrace {
		t.Errorf("span %v parent %v; want trace %s parent %s", sp.SpanContext(), sp.Parent(), parentTrace, parentSpan)
	}
}

// FuzzTraceContext: whatever trace headers a caller sends (traceparent, tracestate,
// b3 single and multi), over gRPC metadata or HTTP headers, a traced check answers the
// authorizer's decision, ends exactly one span (none when a valid parent says it is not
// sampled), and that span's parent is either valid or absent.
func FuzzTraceContext(f *testing.F) {
	f.Add("00-"+parentTrace+"-"+parentSpan+"-01", "vendor=x", parentTrace+"-"+parentSpan+"-1", parentTrace, parentSpan, "1")
	f.Add("00-00000000000000000000000000000000-0000000000000000-01", "", "0", "", "", "d")
	f.Add("ff-"+parentTrace+"-"+parentSpan+"-01-extra", "a=1,,b=2", "1", "x", "y", "true")
	f.Add("", "", parentTrace+"-"+parentSpan+"-1-0000000000000001", "", "", "")
	f.Fuzz(func(t *testing.T, traceparent, tracestate, single, b3trace, b3span, sampled string) {
		hdrs := map[string]string{"traceparent": traceparent, "tracestate": tracestate, "b3": single,
			"x-b3-traceid": b3trace, "x-b3-spanid": b3span, "x-b3-sampled": sampled}
		s, rec, _ := tracedServer(t, &fakeAuthorizer{d: allowAlice()}, true)
		md := metadata.MD{}
		for k, v := range hdrs {
			if v != "" {
				md.Append(k, v)
			}
		}
		resp, err := s.Check(metadata.NewIncomingContext(context.Background(), md), checkRequest(map[string]string{"authorization": "Bearer abc"}))
		if err != nil || resp.GetOkResponse() == nil {
			t.Fatalf("Check = %v, %v; want the allow", resp, err)
		}
		req := httptest.NewRequest("GET", "/x", nil)
		req.Header.Set("Authorization", "Bearer abc")
		for k, v := range hdrs {
			req.Header[http.CanonicalHeaderKey(k)] = []string{v}
		}
		w := httptest.NewRecorder()
		s.HTTPHandler().ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatalf("HTTP check = %d, want 200", w.Code)
		}
		// A valid parent that says "not sampled" is followed (the SDK's default
		// ParentBased sampler): no span is recorded for either check.
		carrier := propagation.MapCarrier{}
		for k, v := range hdrs {
			if v != "" {
				carrier[k] = v
			}
		}
		want := 2
		if p := trace.SpanContextFromContext(DefaultPropagator().Extract(context.Background(), carrier)); p.IsValid() && !p.IsSampled() {
			want = 0
		}
		spans := rec.Ended()
		if len(spans) != want {
			t.Fatalf("%d spans ended, want %d", len(spans), want)
		}
		for _, sp := range spans {
			if p := sp.Parent(); p.HasTraceID() != p.HasSpanID() || (p.HasTraceID() && p.TraceID() != sp.SpanContext().TraceID()) {
				t.Errorf("span %v has a broken parent %v", sp.SpanContext(), p)
			}
		}
	})
}

// TestTraceRefusedRequest: a request the adapter refuses before asking the authorizer
// (forwarded headers that name two requests) is a check span too.
func TestTraceRefusedRequest(t *testing.T) {
	s, rec, _ := tracedServer(t, &fakeAuthorizer{d: allowAlice()}, false)
	req := httptest.NewRequest("GET", "/x", nil)
	req.Header.Set("X-Original-Uri", "/a")
	req.Header.Set("X-Forwarded-Uri", "/b")
	req.Header.Set("traceparent", parentHeaders["w3c traceparent"]["traceparent"])
	w := httptest.NewRecorder()
	s.HTTPHandler().ServeHTTP(w, req)
	if w.Code == http.StatusOK {
		t.Fatalf("conflicting forwarded headers answered %d", w.Code)
	}
	sp := onlySpan(t, rec)
	if a := attrMap(sp.Attributes()); a[AttrOutcome] != authz.OutcomeBadRequest.String() || sp.Parent().SpanID().String() != parentSpan {
		t.Errorf("span attributes %v parent %v; want outcome %s under %s", a, sp.Parent(), authz.OutcomeBadRequest, parentSpan)
	}
}
