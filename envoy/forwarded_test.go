package envoy

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
)

// TestForwardedModes: which headers each server.http.forwarded mode reads, and when
// auto (and every mode, for repeated headers) refuses with 400.
func TestForwardedModes(t *testing.T) {
	type hdr = [][2]string
	custom := Forwarded{Mode: ForwardedCustom, Method: "X-My-Method", URI: "X-My-Uri"}
	for _, tc := range []struct {
		name    string
		fwd     Forwarded
		ignore  bool
		headers hdr
		// want is method+" "+host+" "+path, or "400".
		want string
	}{
		{"auto: request line", Forwarded{}, false, nil, "GET h /line"},
		{"auto: nginx headers", Forwarded{}, false, hdr{{"X-Original-URI", "/o"}, {"X-Original-Method", "PUT"}, {"X-Original-Host", "app"}}, "PUT app /o"},
		{"auto: traefik headers", Forwarded{}, false, hdr{{"X-Forwarded-Uri", "/f"}, {"X-Forwarded-Method", "POST"}, {"X-Forwarded-Host", "app"}}, "POST app /f"},
		{"auto: both families agree", Forwarded{}, false, hdr{{"X-Original-URI", "/a"}, {"X-Forwarded-Uri", "/a"}}, "GET h /a"},
		{"auto: uris disagree (Caddy relays a client X-Original-URI)", Forwarded{}, false, hdr{{"X-Original-URI", "/public"}, {"X-Forwarded-Uri", "/admin/secret"}}, "400"},
		{"auto: methods disagree", Forwarded{}, false, hdr{{"X-Original-Method", "GET"}, {"X-Forwarded-Method", "POST"}}, "400"},
		{"auto: hosts disagree", Forwarded{}, false, hdr{{"X-Original-Host", "a"}, {"X-Forwarded-Host", "b"}}, "400"},
		{"auto: repeated uri", Forwarded{}, false, hdr{{"X-Forwarded-Uri", "/a"}, {"X-Forwarded-Uri", "/a"}}, "400"},
		{"auto: empty value is absent", Forwarded{}, false, hdr{{"X-Original-URI", "/o"}, {"X-Forwarded-Uri", ""}}, "GET h /o"},
		{"envoy: every header ignored", Forwarded{Mode: ForwardedEnvoy}, false, hdr{{"X-Original-URI", "/o"}, {"X-Forwarded-Uri", "/f"}, {"X-Forwarded-Method", "POST"}}, "GET h /line"},
		{"ignore_forwarded_headers is envoy", Forwarded{}, true, hdr{{"X-Original-URI", "/o"}, {"X-Forwarded-Host", "evil"}}, "GET h /line"},
		{"nginx: X-Forwarded-* ignored", Forwarded{Mode: ForwardedNginx}, false, hdr{{"X-Original-URI", "/o"}, {"X-Forwarded-Uri", "/f"}, {"X-Forwarded-Method", "DELETE"}}, "GET h /o"},
		{"nginx: repeated X-Original-URI", Forwarded{Mode: ForwardedNginx}, false, hdr{{"X-Original-URI", "/o"}, {"X-Original-URI", "/p"}}, "400"},
		{"traefik: X-Original-* ignored", Forwarded{Mode: ForwardedTraefik}, false, hdr{{"X-Original-URI", "/public"}, {"X-Forwarded-Uri", "/admin"}}, "GET h /admin"},
		{"caddy: X-Original-Method ignored", Forwarded{Mode: ForwardedCaddy}, false, hdr{{"X-Original-Method", "GET"}, {"X-Forwarded-Method", "POST"}, {"X-Forwarded-Uri", "/x"}}, "POST h /x"},
		{"custom: only the named headers", custom, false, hdr{{"X-My-Uri", "/m"}, {"X-My-Method", "PATCH"}, {"X-Original-URI", "/o"}, {"X-Forwarded-Host", "evil"}}, "PATCH h /m"},
		{"custom: repeated", custom, false, hdr{{"X-My-Uri", "/m"}, {"X-My-Uri", "/n"}}, "400"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fa := &fakeAuthorizer{d: authz.Decision{Outcome: authz.OutcomeNoToken}}
			m, _ := NewMetrics(prometheus.NewRegistry())
			s, err := NewServer(fa, Config{HTTP: HTTPConfig{Forwarded: tc.fwd}, IgnoreForwardedHeaders: tc.ignore}, WithMetrics(m))
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest("GET", "/line", nil)
			req.Host = "h"
			for _, h := range tc.headers {
				req.Header.Add(h[0], h[1])
			}
			rec := httptest.NewRecorder()
			s.HTTPHandler().ServeHTTP(rec, req)
			if tc.want == "400" {
				if rec.Code != http.StatusBadRequest || len(fa.reqs) != 0 {
					t.Fatalf("status %d with %d decisions, want 400 without asking the authorizer", rec.Code, len(fa.reqs))
				}
				if rec.Header().Get("WWW-Authenticate") != "" || !strings.Contains(rec.Body.String(), "forwarded headers") {
					t.Fatalf("answer %v %s", rec.Header(), rec.Body)
				}
				if got := counterValue(t, m.decisions.WithLabelValues("bad_request", "none", authz.ReasonForwardedHeaders)); got != 1 {
					t.Fatalf("metric reason=forwarded_headers = %v", got)
				}
				return
			}
			got := fa.last(t)
			if g := got.Method + " " + got.Host + " " + got.Path; g != tc.want {
				t.Fatalf("got %q, want %q", g, tc.want)
			}
		})
	}
}

// TestForwardedConfig: the mode name or the mapping decode, and bad values are
// configuration errors.
func TestForwardedConfig(t *testing.T) {
	var c Config
	if err := json.Unmarshal([]byte(`{"http":{"forwarded":"nginx"}}`), &c); err != nil || c.HTTP.Forwarded.Mode != ForwardedNginx {
		t.Fatalf("%+v %v", c.HTTP, err)
	}
	c = Config{}
	if err := json.Unmarshal([]byte(`{"http":{"forwarded":{"uri":"X-Uri","method":"X-M"}}}`), &c); err != nil ||
		c.HTTP.Forwarded != (Forwarded{Mode: ForwardedCustom, URI: "X-Uri", Method: "X-M"}) {
		t.Fatalf("%+v %v", c.HTTP, err)
	}
	if b, _ := json.Marshal(c.HTTP); string(b) != `{"forwarded":{"method":"X-M","uri":"X-Uri"}}` {
		t.Fatalf("marshal: %s", b)
	}
	if err := json.Unmarshal([]byte(`{"http":{"forwarded":{"path":"X"}}}`), &c); err == nil {
		t.Fatal("unknown mapping key accepted")
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"unknown mode", Config{HTTP: HTTPConfig{Forwarded: Forwarded{Mode: "haproxy"}}}, "server.http.forwarded"},
		{"empty mapping", Config{HTTP: HTTPConfig{Forwarded: Forwarded{Mode: ForwardedCustom}}}, "server.http.forwarded"},
		{"bad header name", Config{HTTP: HTTPConfig{Forwarded: Forwarded{Mode: ForwardedCustom, URI: "X Uri"}}}, "server.http.forwarded.uri"},
		{"reserved header name", Config{HTTP: HTTPConfig{Forwarded: Forwarded{Mode: ForwardedCustom, Host: "Authorization"}}}, "server.http.forwarded.host"},
		{"ignore_forwarded_headers with another mode", Config{IgnoreForwardedHeaders: true, HTTP: HTTPConfig{Forwarded: Forwarded{Mode: ForwardedNginx}}}, "server.ignore_forwarded_headers"},
	} {
		err := tc.cfg.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error at %s", tc.name, err, tc.want)
		}
	}
	for _, ok := range []Config{{}, {IgnoreForwardedHeaders: true}, {IgnoreForwardedHeaders: true, HTTP: HTTPConfig{Forwarded: Forwarded{Mode: ForwardedEnvoy}}}} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
}

// TestBadRequestRow: an ambiguous path is answered 400 / INVALID_ARGUMENT without a
// challenge on both transports, and counted with reason="ambiguous_path".
func TestBadRequestRow(t *testing.T) {
	fa := &fakeAuthorizer{d: authz.Decision{Outcome: authz.OutcomeBadRequest, ReasonCode: authz.ReasonAmbiguousPath,
		Reason: "ambiguous request path: its readings select different routes"}}
	m, _ := NewMetrics(prometheus.NewRegistry())
	s, err := NewServer(fa, Config{}, WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.Check(t.Context(), checkRequest(nil))
	if err != nil || resp.GetStatus().GetCode() != int32(codes.InvalidArgument) || resp.GetDeniedResponse().GetStatus().GetCode() != 400 {
		t.Fatalf("%v %v", resp, err)
	}
	for _, h := range resp.GetDeniedResponse().GetHeaders() {
		if strings.EqualFold(h.GetHeader().GetKey(), "www-authenticate") {
			t.Fatal("challenge on a 400")
		}
	}
	rec := httptest.NewRecorder()
	s.HTTPHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/admin/..;/public", nil))
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), `"invalid_request"`) {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if got := counterValue(t, m.decisions.WithLabelValues("bad_request", "none", authz.ReasonAmbiguousPath)); got != 2 {
		t.Fatalf("reason=ambiguous_path counted %v times, want 2", got)
	}
}

// TestLoggedPathHasNoQueryOrFragmentAndIsCapped: decision lines never carry the query or
// the fragment (a token pasted there), and a long path is cut at 1 KiB with its length.
func TestLoggedPathHasNoQueryOrFragmentAndIsCapped(t *testing.T) {
	long := "/" + strings.Repeat("é", 2000)
	for _, tc := range []struct{ in, want string }{
		{"/a/b", "/a/b"},
		{"/a?access_token=secret", "/a"},
		{"/a#access_token=secret", "/a"},
		{"/a#x?y", "/a"},
		{long, long[:maxLogPath-1] + "…(4001 bytes)"},
		{long + "?q=" + strings.Repeat("x", 5000), long[:maxLogPath-1] + "…(4001 bytes)"},
	} {
		if got := logPath(tc.in); got != tc.want {
			t.Errorf("logPath(%.40q…) = %.60q…, want %.60q…", tc.in, got, tc.want)
		}
	}
	var buf strings.Builder
	fa := &fakeAuthorizer{d: authz.Decision{Outcome: authz.OutcomeNoToken}}
	s, err := NewServer(fa, Config{DenyLogLevel: "info"}, WithLogger(slog.New(slog.NewTextHandler(&buf, nil))))
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/x", nil)
	req.RequestURI = "/x#tok3n-in-fragment" + strings.Repeat("a", 3000)
	s.HTTPHandler().ServeHTTP(httptest.NewRecorder(), req)
	if strings.Contains(buf.String(), "tok3n") || !strings.Contains(buf.String(), "path=/x") {
		t.Fatalf("log line %s", buf.String())
	}
}

// TestRetryAfterOnUnknownKid503: an OP-outage denial that knows when to retry (an
// unknown kid while JWKS refreshes are rate-limited) carries Retry-After in whole
// seconds, rounded up, on both transports; other denials carry none.
func TestRetryAfterOnUnknownKid503(t *testing.T) {
	for _, tc := range []struct {
		d    authz.Decision
		want string
	}{
		{authz.Decision{Outcome: authz.OutcomeUnavailable, RetryAfter: 19*time.Second + time.Millisecond}, "20"},
		{authz.Decision{Outcome: authz.OutcomeUnavailable, RetryAfter: time.Millisecond}, "1"},
		{authz.Decision{Outcome: authz.OutcomeUnavailable}, ""},
		{authz.Decision{Outcome: authz.OutcomeInvalidToken, RetryAfter: time.Second}, ""},
	} {
		s, err := NewServer(&fakeAuthorizer{d: tc.d}, Config{})
		if err != nil {
			t.Fatal(err)
		}
		resp, _ := s.Check(t.Context(), checkRequest(map[string]string{"authorization": "Bearer x"}))
		got := ""
		for _, h := range resp.GetDeniedResponse().GetHeaders() {
			if h.GetHeader().GetKey() == "retry-after" {
				got = h.GetHeader().GetValue()
			}
		}
		rec := httptest.NewRecorder()
		s.HTTPHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if got != tc.want || rec.Header().Get("Retry-After") != tc.want {
			t.Errorf("%v %v: grpc %q http %q, want %q", tc.d.Outcome, tc.d.RetryAfter, got, rec.Header().Get("Retry-After"), tc.want)
		}
	}
}
