package envoy

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// fakeAuthorizer returns a fixed Decision (or calls fn) and records the requests.
type fakeAuthorizer struct {
	mu   sync.Mutex
	reqs []authz.Request
	d    authz.Decision
	fn   func(ctx context.Context, r authz.Request) authz.Decision
}

func (f *fakeAuthorizer) Authorize(ctx context.Context, r authz.Request) authz.Decision {
	f.mu.Lock()
	f.reqs = append(f.reqs, r)
	f.mu.Unlock()
	if f.fn != nil {
		return f.fn(ctx, r)
	}
	return f.d
}

func (f *fakeAuthorizer) last(t *testing.T) authz.Request {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		t.Fatal("authorizer was not called")
	}
	return f.reqs[len(f.reqs)-1]
}

// alice is a verified identity with the default header claims.
func alice() *authz.Identity {
	return &authz.Identity{
		Issuer: "https://op.example.org",
		Claims: compact(map[string]any{
			"sub":    "alice",
			"iss":    "https://op.example.org",
			"email":  "alice@example.org",
			"groups": []any{"admins", "ops"},
			"eduperson_entitlement": []any{
				"urn:mace:egi.eu:group:vo.example.org:role=member#aai.egi.eu",
			},
			"level": float64(3),
			"ext":   map[string]any{"dept": "physics"},
		}),
		Expiry: authz.InstantOf(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)),
	}
}

// compact is m in the form a cached identity keeps its claims in (policy.CompactClaims).
func compact(m map[string]any) policy.Claims {
	s := policy.NewShape(slices.Collect(maps.Keys(m)))
	vals := make([]any, len(s.Names()))
	for i, n := range s.Names() {
		vals[i] = m[n]
	}
	return policy.CompactClaims(s, vals)
}

// setClaim sets (v non-nil) or removes (v nil) the claim name of id.
func setClaim(id *authz.Identity, name string, v any) {
	m := maps.Clone(id.Claims.Map())
	if v == nil {
		delete(m, name)
	} else {
		m[name] = v
	}
	id.Claims = compact(m)
}

func allowAlice() authz.Decision {
	return authz.Decision{Outcome: authz.OutcomeAllow, Identity: alice(), Route: "api", TokenHash: "0011223344556677"}
}

// newTestServer builds a Server with a logger writing into buf.
func newTestServer(t testing.TB, a Authorizer, cfg Config, opts ...Option) (*Server, *bytes.Buffer) {
	t.Helper()
	buf := &bytes.Buffer{}
	log := slog.New(slog.NewJSONHandler(&lockedWriter{w: buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := NewServer(a, cfg, append([]Option{WithLogger(log)}, opts...)...)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	return s, buf
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// checkRequest builds a CheckRequest the way Envoy does (lower-case header keys).
func checkRequest(headers map[string]string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id:      "req-1",
			Method:  "GET",
			Host:    "api.example.org",
			Path:    "/v1/items?x=%2F",
			Headers: headers,
		}},
		ContextExtensions: map[string]string{"flaat_policy": "admins"},
	}}
}

// upstreamHeaders simulates Envoy applying an OK response to the original request
// headers (ext_authz semantics: Append present wins — false overwrites; else
// append_action; then headers_to_remove), returning what the upstream receives.
func upstreamHeaders(t *testing.T, client map[string][]string, resp *authv3.CheckResponse) map[string][]string {
	t.Helper()
	ok := resp.GetOkResponse()
	if ok == nil {
		t.Fatalf("not an OK response: %v", resp)
	}
	out := map[string][]string{}
	for k, v := range client {
		out[k] = append([]string(nil), v...)
	}
	for _, h := range ok.GetHeaders() {
		k, v := h.GetHeader().GetKey(), h.GetHeader().GetValue()
		overwrite := false
		if h.GetAppend() != nil { //nolint:staticcheck // Envoy reads it first
			overwrite = !h.GetAppend().GetValue() //nolint:staticcheck
		} else {
			overwrite = h.GetAppendAction() == corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		}
		if overwrite {
			out[k] = []string{v}
		} else {
			out[k] = append(out[k], v)
		}
	}
	for _, k := range ok.GetHeadersToRemove() {
		delete(out, k)
	}
	return out
}

// countingHandler counts Handle calls; Enabled answers enabled.
type countingHandler struct {
	enabled bool
	calls   *int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return h.enabled }
func (h *countingHandler) Handle(context.Context, slog.Record) error {
	*h.calls++
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

func slogNew(h slog.Handler) *slog.Logger { return slog.New(h) }

// fakeClock advances by step on every call.
type fakeClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	c.t = c.t.Add(c.step)
	return t
}

func writeMetric(t *testing.T, c any) *dto.Metric {
	t.Helper()
	m, ok := c.(prometheus.Metric)
	if !ok {
		t.Fatalf("%T is not a single metric", c)
	}
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		t.Fatal(err)
	}
	return &pb
}

func counterValue(t *testing.T, c any) float64 {
	t.Helper()
	return writeMetric(t, c).GetCounter().GetValue()
}

func gaugeValue(t *testing.T, g any) float64 {
	t.Helper()
	return writeMetric(t, g).GetGauge().GetValue()
}

func histogram(t *testing.T, o prometheus.Observer) (uint64, float64) {
	t.Helper()
	pb := writeMetric(t, o)
	return pb.GetHistogram().GetSampleCount(), pb.GetHistogram().GetSampleSum()
}

// durationPtr is a pointer to d as a configuration duration.
func durationPtr(d time.Duration) *authz.Duration {
	v := authz.Duration(d)
	return &v
}
