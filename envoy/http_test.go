package envoy

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
)

func TestHTTPRequestExtraction(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		method   string
		target   string
		headers  map[string]string
		want     authz.Request
		notFound bool
	}{
		{
			name: "envoy http_service: path after prefix, query kept raw",
			cfg:  Config{PathPrefix: "/check/"}, method: "DELETE", target: "/check/v1/items/%2F?x=1&y=%20",
			headers: map[string]string{"Host": "api.example.org", "Authorization": "Bearer t", "X-Request-Id": "r1"},
			want:    authz.Request{Authorization: "Bearer t", Method: "DELETE", Host: "api.example.org", Path: "/v1/items/%2F?x=1&y=%20", RequestID: "r1"},
		},
		{
			name: "envoy: prefix alone is the root", cfg: Config{PathPrefix: "/check"}, method: "GET", target: "/check",
			headers: map[string]string{"Host": "h"},
			want:    authz.Request{Method: "GET", Host: "h", Path: "/"},
		},
		{
			name: "envoy: prefix with query", cfg: Config{PathPrefix: "/check"}, method: "GET", target: "/check?a=b",
			headers: map[string]string{"Host": "h"},
			want:    authz.Request{Method: "GET", Host: "h", Path: "/?a=b"},
		},
		{name: "outside prefix", cfg: Config{PathPrefix: "/check"}, method: "GET", target: "/other", notFound: true},
		{name: "prefix is a segment boundary", cfg: Config{PathPrefix: "/check"}, method: "GET", target: "/checkout", notFound: true},
		{
			name: "no prefix: whole path", method: "PUT", target: "/a/b?c",
			headers: map[string]string{"Host": "h"},
			want:    authz.Request{Method: "PUT", Host: "h", Path: "/a/b?c"},
		},
		{
			name: "nginx auth_request", cfg: Config{PathPrefix: "/auth"}, method: "GET", target: "/auth",
			headers: map[string]string{"Host": "authz.internal", "X-Original-URI": "/admin/x?y=1", "X-Original-Method": "POST",
				"X-Forwarded-Host": "app.example.org", "Authorization": "Bearer n"},
			want: authz.Request{Authorization: "Bearer n", Method: "POST", Host: "app.example.org", Path: "/admin/x?y=1"},
		},
		{
			name: "traefik forwardAuth", method: "GET", target: "/",
			headers: map[string]string{"Host": "authz", "X-Forwarded-Uri": "/t", "X-Forwarded-Method": "PATCH",
				"X-Forwarded-Host": "app", "Authorization": "Bearer tr"},
			want: authz.Request{Authorization: "Bearer tr", Method: "PATCH", Host: "app", Path: "/t"},
		},
		{
			name: "auto: X-Original-URI and X-Forwarded-Uri that agree", method: "GET", target: "/",
			headers: map[string]string{"Host": "h", "X-Original-URI": "/same", "X-Forwarded-Uri": "/same"},
			want:    authz.Request{Method: "GET", Host: "h", Path: "/same"},
		},
		{
			name: "forwarded headers ignored when configured", cfg: Config{IgnoreForwardedHeaders: true}, method: "GET", target: "/real",
			headers: map[string]string{"Host": "h", "X-Original-URI": "/spoof", "X-Forwarded-Method": "DELETE", "X-Forwarded-Host": "evil"},
			want:    authz.Request{Method: "GET", Host: "h", Path: "/real"},
		},
		{
			name: "alternative token header", cfg: Config{TokenHeader: "X-Forwarded-Access-Token"}, method: "GET", target: "/",
			headers: map[string]string{"Host": "h", "X-Forwarded-Access-Token": "raw", "Authorization": "Basic x"},
			want:    authz.Request{Authorization: "Bearer raw", Method: "GET", Host: "h", Path: "/"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fa := &fakeAuthorizer{d: authz.Decision{Outcome: authz.OutcomeNoToken}}
			s, _ := newTestServer(t, fa, tt.cfg)
			req := httptest.NewRequest(tt.method, tt.target, nil)
			for k, v := range tt.headers {
				if k == "Host" {
					req.Host = v
				} else {
					req.Header.Set(k, v)
				}
			}
			rec := httptest.NewRecorder()
			s.HTTPHandler().ServeHTTP(rec, req)
			if tt.notFound {
				if rec.Code != http.StatusNotFound || len(fa.reqs) != 0 {
					t.Fatalf("want 404 without a decision, got %d (%d decisions)", rec.Code, len(fa.reqs))
				}
				return
			}
			if got := fa.last(t); got.Authorization != tt.want.Authorization || got.Method != tt.want.Method ||
				got.Host != tt.want.Host || got.Path != tt.want.Path || got.RequestID != tt.want.RequestID || got.ContextExtensions != nil {
				t.Errorf("request\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestHTTPDuplicateAuthorizationIsJoined(t *testing.T) {
	fa := &fakeAuthorizer{d: authz.Decision{Outcome: authz.OutcomeNoToken}}
	s, _ := newTestServer(t, fa, Config{})
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Add("Authorization", "Bearer a")
	req.Header.Add("Authorization", "Bearer b")
	s.HTTPHandler().ServeHTTP(httptest.NewRecorder(), req)
	if got := fa.last(t).Authorization; got != "Bearer a,Bearer b" {
		t.Errorf("got %q", got)
	}
}

func TestHTTPResponses(t *testing.T) {
	noEmail := alice()
	setClaim(noEmail, "email", nil)
	tests := []struct {
		name     string
		cfg      Config
		d        authz.Decision
		status   int
		www      string
		errCode  string
		set      map[string]string
		toRemove []string
		noAuth   bool
	}{
		{
			name: "allow is exactly 200 with identity headers", d: authz.Decision{Outcome: authz.OutcomeAllow, Identity: noEmail},
			status: 200,
			set: map[string]string{"X-Auth-Request-User": "alice", "X-Auth-Request-Groups": "admins,ops",
				"X-Auth-Request-Issuer": "https://op.example.org"},
			toRemove: []string{"x-auth-request-email", "x-auth-request-access-token"},
		},
		{
			name: "allow with strip", cfg: Config{StripAuthorization: true, Headers: []HeaderConfig{{Name: "x-sub", Claim: "sub"}}},
			d: allowAlice(), status: 200, set: map[string]string{"X-Sub": "alice"},
			toRemove: []string{"x-auth-request-access-token", "authorization"},
		},
		{
			name: "public allow", d: authz.Decision{Outcome: authz.OutcomeAllow, Public: true}, status: 200,
			set: map[string]string{},
			toRemove: []string{"x-auth-request-user", "x-auth-request-email", "x-auth-request-groups",
				"x-auth-request-issuer", "x-auth-request-access-token"},
		},
		{name: "no token", noAuth: true, d: authz.Decision{Outcome: authz.OutcomeNoToken, Reason: "no bearer token"}, status: 401,
			www: `Bearer realm="flaat-extauthz"`, errCode: "unauthorized"},
		{name: "invalid", d: authz.Decision{Outcome: authz.OutcomeInvalidToken, Reason: "bad\r\nSet-Cookie: x"}, status: 401,
			www: `Bearer realm="flaat-extauthz", error="invalid_token", error_description="bad??Set-Cookie: x"`, errCode: "invalid_token"},
		{name: "forbidden", cfg: Config{Realm: "api"}, d: authz.Decision{Outcome: authz.OutcomeForbidden, Reason: "nope"}, status: 403,
			www: `Bearer realm="api", error="insufficient_scope", error_description="nope"`, errCode: "insufficient_scope"},
		{name: "outage", d: authz.Decision{Outcome: authz.OutcomeUnavailable}, status: 503, errCode: "temporarily_unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestServer(t, &fakeAuthorizer{d: tt.d}, tt.cfg)
			srv := httptest.NewServer(s.HTTPHandler())
			defer srv.Close()
			req, _ := http.NewRequest("GET", srv.URL+"/x", nil)
			if !tt.noAuth {
				req.Header.Set("Authorization", "Bearer t")
			}
			req.Header.Set("X-Auth-Request-User", "root") // a client copy
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tt.www {
				t.Errorf("WWW-Authenticate %q, want %q", got, tt.www)
			}
			if tt.status != 200 {
				var b map[string]string
				if err := json.Unmarshal(body, &b); err != nil || b["error"] != tt.errCode || b["error_description"] == "" {
					t.Errorf("body %q (%v)", body, err)
				}
				if resp.Header.Get("Content-Type") != "application/json" {
					t.Errorf("content-type %q", resp.Header.Get("Content-Type"))
				}
				if resp.Header.Get("X-Auth-Request-User") != "" {
					t.Error("identity header on a denial")
				}
				return
			}
			if len(body) != 0 {
				t.Errorf("allow body %q", body)
			}
			for k, v := range tt.set {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if _, ok := tt.set["X-Auth-Request-User"]; !ok && resp.Header.Get("X-Auth-Request-User") != "" {
				t.Errorf("X-Auth-Request-User = %q, want absent", resp.Header.Get("X-Auth-Request-User"))
			}
			rm := strings.Split(resp.Header.Get("X-Envoy-Auth-Headers-To-Remove"), ", ")
			slices.Sort(rm)
			want := slices.Clone(tt.toRemove)
			slices.Sort(want)
			if !slices.Equal(rm, want) {
				t.Errorf("x-envoy-auth-headers-to-remove %v, want %v", rm, want)
			}
		})
	}
}

func TestHTTPMetricsTransport(t *testing.T) {
	m, _ := NewMetrics(nil)
	s, _ := newTestServer(t, &fakeAuthorizer{d: allowAlice()}, Config{}, WithMetrics(m))
	s.HTTPHandler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if n, _ := histogram(t, m.duration.WithLabelValues(TransportHTTP)); n != 1 {
		t.Errorf("http latency count %d", n)
	}
	if n, _ := histogram(t, m.duration.WithLabelValues(TransportGRPC)); n != 0 {
		t.Errorf("grpc latency count %d", n)
	}
}

func TestHTTPRecoversPanics(t *testing.T) {
	s, err := NewServer(&fakeAuthorizer{d: allowAlice()}, Config{}, WithLogger(slog.New(&panicHandler{})))
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	s.HTTPHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("X-Auth-Request-User") != "" {
		t.Errorf("got %d %v", rec.Code, rec.Header())
	}
}

// panicOnceWriter panics on its first Header() call, i.e. inside writeHTTP before any
// status was written.
type panicOnceWriter struct {
	*httptest.ResponseRecorder
	n int
}

func (p *panicOnceWriter) Header() http.Header {
	if p.n++; p.n == 1 {
		p.ResponseRecorder.Header().Set("X-Auth-Request-User", "half-built")
		panic("writer broke")
	}
	return p.ResponseRecorder.Header()
}

func TestHTTPPanicBeforeStatusIsNeverAnImplicit200(t *testing.T) {
	s, _ := newTestServer(t, &fakeAuthorizer{d: allowAlice()}, Config{})
	w := &panicOnceWriter{ResponseRecorder: httptest.NewRecorder()}
	s.HTTPHandler().ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != http.StatusServiceUnavailable || w.ResponseRecorder.Header().Get("X-Auth-Request-User") != "" {
		t.Errorf("got %d %v", w.Code, w.ResponseRecorder.Header())
	}
}
