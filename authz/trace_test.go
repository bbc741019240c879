package authz_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
)

// headerRecorder records the traceparent header of every request to an OP.
type headerRecorder struct {
	mu   sync.Mutex
	seen map[string]string // path → traceparent
	next http.RoundTripper
}

func (h *headerRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.seen[r.URL.Path] = r.Header.Get("traceparent")
	h.mu.Unlock()
	return h.next.RoundTrip(r)
}

func (h *headerRecorder) get(path string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen[path]
}

// TestTraceOPCalls: with WithTracing, every OP request of a verification is a client
// span named after its endpoint, a child of the span in the caller's context (also the
// discovery and JWKS fetches, which run detached from the caller), and the OP receives
// that client span's trace context. A cached verification makes no span.
func TestTraceOPCalls(t *testing.T) {
	for _, c := range []struct {
		name   string
		opaque bool
		want   []string // endpoints, sorted
	}{
		{"jwt", false, []string{"discovery", "jwks", "userinfo"}},
		{"opaque", true, []string{"discovery", "introspection", "userinfo"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			clk := newClock()
			op := newOP(t, clk)
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			hr := &headerRecorder{seen: map[string]string{}, next: http.DefaultTransport}
			a := newAuthz(t, clk, authz.Config{Issuers: []authz.IssuerConfig{op.IssuerConfig()}}, nil,
				authz.WithTransport(hr), authz.WithTracing(tp, propagation.TraceContext{}))
			token := op.MintJWT(nil)
			if c.opaque {
				token = op.MintOpaque(nil)
			}

			ctx, check := tp.Tracer("test").Start(context.Background(), "check")
			if _, err := a.Verify(ctx, token); err != nil {
				t.Fatal(err)
			}
			check.End()
			if _, err := a.Verify(ctx, token); err != nil { // cached: no OP call, no span
				t.Fatal(err)
			}

			var got []string
			for _, sp := range rec.Ended() {
				if sp.Name() == "check" {
					continue
				}
				attrs := map[string]string{}
				for _, kv := range sp.Attributes() {
					attrs[string(kv.Key)] = kv.Value.Emit()
					if strings.Contains(kv.Value.Emit(), token) {
						t.Errorf("%s: attribute %s holds the token", sp.Name(), kv.Key)
					}
				}
				ep := attrs[string(authz.AttrEndpoint)]
				got = append(got, ep)
				if sp.Name() != "OP "+ep {
					t.Errorf("span %q for endpoint %q", sp.Name(), ep)
				}
				if attrs[string(authz.AttrIssuer)] != op.Issuer() {
					t.Errorf("%s: issuer %q, want %q", sp.Name(), attrs[string(authz.AttrIssuer)], op.Issuer())
				}
				if sp.SpanKind() != trace.SpanKindClient {
					t.Errorf("%s: kind %v, want client", sp.Name(), sp.SpanKind())
				}
				if sp.Parent().SpanID() != check.SpanContext().SpanID() || sp.SpanContext().TraceID() != check.SpanContext().TraceID() {
					t.Errorf("%s: parent %v, want the check span %v", sp.Name(), sp.Parent(), check.SpanContext())
				}
				path := attrs["url.full"]
				if i := strings.Index(path, "://"); i >= 0 {
					path = path[i+3:]
					path = path[strings.Index(path, "/"):]
				}
				want := "00-" + sp.SpanContext().TraceID().String() + "-" + sp.SpanContext().SpanID().String() + "-01"
				if tp := hr.get(path); tp != want {
					t.Errorf("%s: OP got traceparent %q at %q, want %q", sp.Name(), tp, path, want)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, c.want) {
				t.Errorf("OP spans %v, want %v", got, c.want)
			}
		})
	}
}

// TestTraceOff: without WithTracing no span is made and no trace header reaches the
// OP, even when the caller's context holds a span of a global-looking provider.
func TestTraceOff(t *testing.T) {
	clk := newClock()
	op := newOP(t, clk)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	hr := &headerRecorder{seen: map[string]string{}, next: http.DefaultTransport}
	a := newAuthz(t, clk, authz.Config{Issuers: []authz.IssuerConfig{op.IssuerConfig()}}, nil,
		authz.WithTransport(hr))
	ctx, check := tp.Tracer("test").Start(context.Background(), "check")
	if _, err := a.Verify(ctx, op.MintJWT(nil)); err != nil {
		t.Fatal(err)
	}
	check.End()
	if n := len(rec.Ended()); n != 1 {
		t.Errorf("%d spans, want only the caller's", n)
	}
	hr.mu.Lock()
	defer hr.mu.Unlock()
	if len(hr.seen) == 0 {
		t.Fatal("no OP request recorded")
	}
	for p, tp := range hr.seen {
		if tp != "" {
			t.Errorf("%s got traceparent %q with tracing off", p, tp)
		}
	}
}

// TestTraceCloseStillClosesIdleConnections: the tracing wrapper does not pass
// CloseIdleConnections on, yet Close still closes the own client's idle connections
// (a reload closes the old generation's Authorizer).
func TestTraceCloseStillClosesIdleConnections(t *testing.T) {
	for _, traced := range []bool{false, true} {
		t.Run(map[bool]string{false: "off", true: "on"}[traced], func(t *testing.T) {
			closed := make(chan struct{}, 8)
			var srv *httptest.Server
			srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"issuer":"`+srv.URL+`"}`)
			}))
			srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
				if st == http.StateClosed {
					closed <- struct{}{}
				}
			}
			srv.Start()
			t.Cleanup(srv.Close)
			var opts []authz.Option
			if traced {
				tp := sdktrace.NewTracerProvider()
				t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
				opts = append(opts, authz.WithTracing(tp, nil))
			}
			a, err := authz.New(authz.Config{Issuers: []authz.IssuerConfig{{Issuer: srv.URL}}}, nil, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Ready(context.Background()); err != nil {
				t.Fatal(err)
			}
			a.Close()
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
				t.Fatal("the idle connection to the OP was not closed by Close")
			}
		})
	}
}
