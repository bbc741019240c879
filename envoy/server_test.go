package envoy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// deniedParts flattens a denied CheckResponse for comparisons.
type deniedParts struct {
	code   codes.Code
	status int
	www    string
	body   map[string]string
}

func denied(t *testing.T, resp *authv3.CheckResponse) deniedParts {
	t.Helper()
	dr := resp.GetDeniedResponse()
	if dr == nil {
		t.Fatalf("want denied_response, got %v", resp)
	}
	if resp.GetOkResponse() != nil {
		t.Fatal("denial carries ok_response")
	}
	p := deniedParts{code: codes.Code(resp.GetStatus().GetCode()), status: int(dr.GetStatus().GetCode())}
	sawType := false
	for _, h := range dr.GetHeaders() {
		switch h.GetHeader().GetKey() {
		case "www-authenticate":
			p.www = h.GetHeader().GetValue()
		case "content-type":
			sawType = h.GetHeader().GetValue() == "application/json"
		}
		if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Errorf("header %s: append_action %v", h.GetHeader().GetKey(), h.GetAppendAction())
		}
	}
	if !sawType {
		t.Error("denial without content-type: application/json")
	}
	if err := json.Unmarshal([]byte(dr.GetBody()), &p.body); err != nil {
		t.Fatalf("body %q is not a JSON object of strings: %v", dr.GetBody(), err)
	}
	return p
}

func TestCheckResponseTable(t *testing.T) {
	const bearer = "Bearer abc.def.ghi"
	tests := []struct {
		name   string
		auth   string // Authorization sent
		d      authz.Decision
		code   codes.Code
		status int
		www    string // exact WWW-Authenticate ("" = none)
		err    string
		desc   string
	}{
		{
			name: "no token", d: authz.Decision{Outcome: authz.OutcomeNoToken, Reason: "no bearer token"},
			code: codes.Unauthenticated, status: 401,
			www: `Bearer realm="flaat-extauthz"`, err: "unauthorized", desc: "no bearer token",
		},
		{
			name: "malformed token sent", auth: "Basic Zm9vOmJhcg==",
			d:    authz.Decision{Outcome: authz.OutcomeNoToken, Reason: "not a bearer credential"},
			code: codes.Unauthenticated, status: 401,
			www: `Bearer realm="flaat-extauthz", error="invalid_token", error_description="not a bearer credential"`,
			err: "unauthorized", desc: "not a bearer credential",
		},
		{
			name: "invalid token", auth: bearer,
			d: authz.Decision{Outcome: authz.OutcomeInvalidToken, Reason: "token expired 30s ago",
				Err: fmt.Errorf("x: %w", authz.ErrExpired)},
			code: codes.Unauthenticated, status: 401,
			www: `Bearer realm="flaat-extauthz", error="invalid_token", error_description="token expired 30s ago"`,
			err: "invalid_token", desc: "token expired 30s ago",
		},
		{
			name: "forbidden without scopes", auth: bearer,
			d: authz.Decision{Outcome: authz.OutcomeForbidden, Identity: alice(), Route: "admin",
				Policy: policy.Result{Reason: `groups: missing "ops"`}},
			code: codes.PermissionDenied, status: 403,
			www: `Bearer realm="flaat-extauthz", error="insufficient_scope", error_description="groups: missing 'ops'"`,
			err: "insufficient_scope", desc: `groups: missing "ops"`,
		},
		{
			name: "forbidden with scopes", auth: bearer,
			d: authz.Decision{Outcome: authz.OutcomeForbidden, Reason: "scope missing",
				Policy: policy.Result{Scopes: []string{"read", "write"}}},
			code: codes.PermissionDenied, status: 403,
			www: `Bearer realm="flaat-extauthz", error="insufficient_scope", error_description="scope missing", scope="read write"`,
			err: "insufficient_scope", desc: "scope missing",
		},
		{
			name: "op unavailable", auth: bearer,
			d: authz.Decision{Outcome: authz.OutcomeUnavailable, Reason: "identity provider unavailable",
				Err: &authz.UnavailableError{Issuer: "https://op", Endpoint: "jwks", Err: errors.New("secret internal detail")}},
			code: codes.Unavailable, status: 503, www: "",
			err: "temporarily_unavailable", desc: "identity provider unavailable",
		},
		{
			name: "unknown outcome fails closed", auth: bearer,
			d:    authz.Decision{Outcome: authz.Outcome(42)},
			code: codes.Unavailable, status: 503, err: "temporarily_unavailable", desc: "internal error",
		},
		{
			name: "negative outcome fails closed", auth: bearer,
			d:    authz.Decision{Outcome: authz.Outcome(-1)},
			code: codes.Unavailable, status: 503, err: "temporarily_unavailable", desc: "internal error",
		},
		{
			name: "empty reason gets a generic description", auth: bearer,
			d:    authz.Decision{Outcome: authz.OutcomeInvalidToken},
			code: codes.Unauthenticated, status: 401,
			www: `Bearer realm="flaat-extauthz", error="invalid_token", error_description="invalid token"`,
			err: "invalid_token", desc: "invalid token",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestServer(t, &fakeAuthorizer{d: tt.d}, Config{})
			hs := map[string]string{}
			if tt.auth != "" {
				hs["authorization"] = tt.auth
			}
			resp, err := s.Check(context.Background(), checkRequest(hs))
			if err != nil {
				t.Fatalf("Check returned a gRPC error: %v", err)
			}
			p := denied(t, resp)
			if p.code != tt.code || p.status != tt.status {
				t.Errorf("got gRPC %v / HTTP %d, want %v / %d", p.code, p.status, tt.code, tt.status)
			}
			if p.www != tt.www {
				t.Errorf("WWW-Authenticate\n got %q\nwant %q", p.www, tt.www)
			}
			if p.body["error"] != tt.err || p.body["error_description"] != tt.desc {
				t.Errorf("body %v, want error=%q description=%q", p.body, tt.err, tt.desc)
			}
			if strings.Contains(resp.String(), "secret internal detail") {
				t.Error("Decision.Err leaked to the client")
			}
		})
	}
}

func TestResponseForEveryOutcome(t *testing.T) {
	want := map[authz.Outcome][2]int{
		authz.OutcomeAllow:        {int(codes.OK), 200},
		authz.OutcomeNoToken:      {int(codes.Unauthenticated), 401},
		authz.OutcomeInvalidToken: {int(codes.Unauthenticated), 401},
		authz.OutcomeForbidden:    {int(codes.PermissionDenied), 403},
		authz.OutcomeUnavailable:  {int(codes.Unavailable), 503},
		authz.Outcome(99):         {int(codes.Unavailable), 503},
	}
	for o, w := range want {
		r := ResponseFor(o)
		if int(r.Code) != w[0] || r.HTTPStatus != w[1] {
			t.Errorf("%v: got %v/%d, want %v/%d", o, r.Code, r.HTTPStatus, codes.Code(w[0]), w[1])
		}
	}
}

func headerMap(resp *authv3.CheckResponse) map[string]*corev3.HeaderValueOption {
	m := map[string]*corev3.HeaderValueOption{}
	for _, h := range resp.GetOkResponse().GetHeaders() {
		m[h.GetHeader().GetKey()] = h
	}
	return m
}

func TestCheckAllowHeaders(t *testing.T) {
	noEmail := alice()
	setClaim(noEmail, "email", nil)
	badValue := alice()
	setClaim(badValue, "email", "a@b\r\nx-injected: 1")

	tests := []struct {
		name    string
		cfg     Config
		d       authz.Decision
		hdrs    map[string]string // client headers
		set     map[string]string // headers set upstream
		removed []string          // exactly these in headers_to_remove (any order)
	}{
		{
			name: "defaults",
			d:    allowAlice(),
			set: map[string]string{
				"x-auth-request-user": "alice", "x-auth-request-email": "alice@example.org",
				"x-auth-request-groups": "admins,ops", "x-auth-request-issuer": "https://op.example.org",
			},
			removed: []string{"x-auth-request-access-token"},
		},
		{
			name:    "absent claim is removed, not set",
			d:       authz.Decision{Outcome: authz.OutcomeAllow, Identity: noEmail},
			set:     map[string]string{"x-auth-request-user": "alice", "x-auth-request-groups": "admins,ops", "x-auth-request-issuer": "https://op.example.org"},
			removed: []string{"x-auth-request-email", "x-auth-request-access-token"},
		},
		{
			name: "control characters in claims cannot inject headers",
			d:    authz.Decision{Outcome: authz.OutcomeAllow, Identity: badValue},
			set: map[string]string{"x-auth-request-user": "alice", "x-auth-request-email": "a@b%0D%0Ax-injected: 1",
				"x-auth-request-groups": "admins,ops", "x-auth-request-issuer": "https://op.example.org"},
			removed: []string{"x-auth-request-access-token"},
		},
		{
			name: "public route removes every identity header",
			d:    authz.Decision{Outcome: authz.OutcomeAllow, Public: true, Identity: alice(), Route: "public"},
			set:  map[string]string{},
			removed: []string{"x-auth-request-user", "x-auth-request-email", "x-auth-request-groups",
				"x-auth-request-issuer", "x-auth-request-access-token"},
		},
		{
			name: "allow without identity removes every identity header",
			d:    authz.Decision{Outcome: authz.OutcomeAllow},
			set:  map[string]string{},
			removed: []string{"x-auth-request-user", "x-auth-request-email", "x-auth-request-groups",
				"x-auth-request-issuer", "x-auth-request-access-token"},
		},
		{
			name: "custom headers, dotted and URL claims, forward token, strip authorization",
			cfg: Config{
				Headers: []HeaderConfig{
					{Name: "X-User", Claim: "sub"},
					{Name: "x-dept", Claim: "ext.dept"},
					{Name: "x-ent", Claim: "eduperson_entitlement"},
					{Name: "x-level", Claim: "level"},
					{Name: "x-missing", Claim: "nope"},
				},
				ForwardAccessToken: true, StripAuthorization: true, TokenHeader: "X-Token",
			},
			d: allowAlice(),
			set: map[string]string{
				"x-user": "alice", "x-dept": "physics", "x-level": "3",
				"x-ent":                       "urn:mace:egi.eu:group:vo.example.org:role=member#aai.egi.eu",
				"x-auth-request-access-token": "abc.def.ghi",
			},
			removed: []string{"x-missing", "authorization", "x-token"},
		},
		{
			name: "forwarded token from the alternative header",
			cfg:  Config{ForwardAccessToken: true, TokenHeader: "x-forwarded-access-token", Headers: []HeaderConfig{}},
			hdrs: map[string]string{"x-forwarded-access-token": "opaque-123", "authorization": "Basic Zm9v"},
			d:    allowAlice(),
			set:  map[string]string{"x-auth-request-access-token": "opaque-123"},
		},
		{
			name:    "no headers configured",
			cfg:     Config{Headers: []HeaderConfig{}},
			d:       allowAlice(),
			set:     map[string]string{},
			removed: []string{"x-auth-request-access-token"},
		},
	}
	// Every case runs with a fresh identity and with a cached one (memoised answer),
	// twice each, so the first answer, the memo hit and the unmemoised path all agree.
	for _, tt := range tests {
		for _, run := range []struct {
			name   string
			cached bool
			round  int
		}{{"fresh", false, 0}, {"fresh again", false, 1}, {"cached", true, 0}, {"cached memo hit", true, 1}} {
			t.Run(tt.name+"/"+run.name, func(t *testing.T) {
				d := tt.d
				d.Cached = run.cached
				s, _ := newTestServer(t, &fakeAuthorizer{d: d}, tt.cfg)
				hdrs := tt.hdrs
				if hdrs == nil {
					hdrs = map[string]string{"authorization": "Bearer abc.def.ghi"}
				}
				for range run.round {
					if _, err := s.Check(context.Background(), checkRequest(hdrs)); err != nil {
						t.Fatal(err)
					}
				}
				checkAllowHeaders(t, s, hdrs, tt.set, tt.removed)
			})
		}
	}
}

// checkAllowHeaders checks that Check answers OK with exactly the headers set (with
// overwrite) and removed.
func checkAllowHeaders(t *testing.T, s *Server, hdrs, set map[string]string, removed []string) {
	t.Helper()
	resp, err := s.Check(context.Background(), checkRequest(hdrs))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatus().GetCode() != int32(codes.OK) || resp.GetOkResponse() == nil {
		t.Fatalf("want OK with ok_response, got %v", resp)
	}
	got := headerMap(resp)
	if len(got) != len(set) {
		t.Errorf("headers set: got %d %v, want %v", len(got), resp.GetOkResponse().GetHeaders(), set)
	}
	for k, v := range set {
		h, ok := got[k]
		if !ok {
			t.Errorf("header %s not set", k)
			continue
		}
		if h.GetHeader().GetValue() != v {
			t.Errorf("header %s = %q, want %q", k, h.GetHeader().GetValue(), v)
		}
		if h.GetAppend() == nil || h.GetAppend().GetValue() { //nolint:staticcheck
			t.Errorf("header %s: Append must be set to false", k)
		}
		if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Errorf("header %s: append_action %v", k, h.GetAppendAction())
		}
	}
	rm := slices.Clone(resp.GetOkResponse().GetHeadersToRemove())
	slices.Sort(rm)
	want := slices.Clone(removed)
	slices.Sort(want)
	if !slices.Equal(rm, want) {
		t.Errorf("headers_to_remove = %v, want %v", rm, want)
	}
	for _, name := range rm {
		if _, set := got[name]; set {
			t.Errorf("%s is both set and removed (Envoy removes after setting)", name)
		}
	}
}

// TestClientCannotSpoofIdentity proves that a client-sent identity header never reaches
// the upstream: it is overwritten by the verified value or removed.
func TestClientCannotSpoofIdentity(t *testing.T) {
	noEmail := alice()
	setClaim(noEmail, "email", nil)
	for _, d := range []authz.Decision{
		allowAlice(),
		{Outcome: authz.OutcomeAllow, Identity: noEmail},
		{Outcome: authz.OutcomeAllow, Public: true},
		{Outcome: authz.OutcomeAllow, Public: true, Identity: alice()},
	} {
		s, _ := newTestServer(t, &fakeAuthorizer{d: d}, Config{})
		client := map[string]string{
			"authorization":               "Bearer abc",
			"x-auth-request-user":         "root",
			"x-auth-request-email":        "root@evil",
			"x-auth-request-groups":       "admins",
			"x-auth-request-issuer":       "https://evil",
			"x-auth-request-access-token": "forged",
		}
		resp, _ := s.Check(context.Background(), checkRequest(client))
		clientMulti := map[string][]string{}
		for k, v := range client {
			clientMulti[k] = []string{v}
		}
		up := upstreamHeaders(t, clientMulti, resp)
		for k, v := range up {
			if k == "authorization" {
				continue
			}
			if slices.Contains(v, client[k]) {
				t.Errorf("decision %+v: client value of %s reached upstream: %v", d.Outcome, k, v)
			}
		}
		if d.Identity != nil && !d.Public {
			if got := up["x-auth-request-user"]; !slices.Equal(got, []string{"alice"}) {
				t.Errorf("x-auth-request-user upstream = %v, want [alice]", got)
			}
		} else if _, ok := up["x-auth-request-user"]; ok {
			t.Errorf("public route: x-auth-request-user reached upstream: %v", up["x-auth-request-user"])
		}
	}
}

func TestCheckDynamicMetadata(t *testing.T) {
	s, _ := newTestServer(t, &fakeAuthorizer{d: allowAlice()},
		Config{MetadataClaims: []string{"email", "level", "ext", "ext.dept", "eduperson_entitlement", "absent"}})
	resp, _ := s.Check(context.Background(), checkRequest(map[string]string{"authorization": "Bearer x"}))
	got := resp.GetDynamicMetadata().AsMap()
	want := map[string]any{
		"sub":                   "alice",
		"iss":                   "https://op.example.org",
		"groups":                []any{"admins", "ops"},
		"email":                 "alice@example.org",
		"level":                 float64(3),
		"ext":                   map[string]any{"dept": "physics"},
		"ext.dept":              "physics",
		"eduperson_entitlement": []any{"urn:mace:egi.eu:group:vo.example.org:role=member#aai.egi.eu"},
	}
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if string(gj) != string(wj) {
		t.Errorf("dynamic metadata\n got %s\nwant %s", gj, wj)
	}
	// Denials and public routes carry none.
	for _, d := range []authz.Decision{{Outcome: authz.OutcomeForbidden, Identity: alice()}, {Outcome: authz.OutcomeAllow, Public: true, Identity: alice()}} {
		s.SetAuthorizer(&fakeAuthorizer{d: d})
		resp, _ := s.Check(context.Background(), checkRequest(nil))
		if resp.GetDynamicMetadata() != nil {
			t.Errorf("%v: unexpected metadata %v", d.Outcome, resp.GetDynamicMetadata())
		}
	}
}

func TestCheckExtractsRequest(t *testing.T) {
	raw := func(hs ...string) *authv3.CheckRequest {
		hm := &corev3.HeaderMap{}
		for i := 0; i+1 < len(hs); i += 2 {
			if strings.HasPrefix(hs[i], "raw:") {
				hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: hs[i][4:], RawValue: []byte(hs[i+1])})
			} else {
				hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: hs[i], Value: hs[i+1]})
			}
		}
		return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{HeaderMap: hm}}}}
	}
	tests := []struct {
		name string
		cfg  Config
		req  *authv3.CheckRequest
		want authz.Request
	}{
		{
			name: "headers map",
			req:  checkRequest(map[string]string{"authorization": "Bearer t1", "x-request-id": "ignored-id-field-wins"}),
			want: authz.Request{Authorization: "Bearer t1", Method: "GET", Host: "api.example.org",
				Path: "/v1/items?x=%2F", RequestID: "req-1", ContextExtensions: map[string]string{"flaat_policy": "admins"}},
		},
		{
			name: "header_map with raw values and pseudo headers",
			req: raw(":authority", "h.example", ":method", "POST", ":path", "/a%20b?q=1",
				"raw:Authorization", "Bearer t2", "X-Request-Id", "rid"),
			want: authz.Request{Authorization: "Bearer t2", Method: "POST", Host: "h.example", Path: "/a%20b?q=1", RequestID: "rid"},
		},
		{
			name: "header_map host header and duplicate authorization joined",
			req:  raw("host", "h2", "authorization", "Bearer a", "authorization", "Bearer b"),
			want: authz.Request{Authorization: "Bearer a,Bearer b", Host: "h2"},
		},
		{
			name: "alternative header with bare token wins",
			cfg:  Config{TokenHeader: "X-Forwarded-Access-Token"},
			req:  checkRequest(map[string]string{"authorization": "Basic Zm9v", "x-forwarded-access-token": "tok"}),
			want: authz.Request{Authorization: "Bearer tok", Method: "GET", Host: "api.example.org",
				Path: "/v1/items?x=%2F", RequestID: "req-1", ContextExtensions: map[string]string{"flaat_policy": "admins"}},
		},
		{
			name: "alternative header absent falls back to authorization",
			cfg:  Config{TokenHeader: "x-token"},
			req:  raw("authorization", "Bearer t3", "x-token", "  "),
			want: authz.Request{Authorization: "Bearer t3"},
		},
		{name: "nil request", req: nil, want: authz.Request{}},
		{name: "no attributes", req: &authv3.CheckRequest{}, want: authz.Request{}},
		{name: "no http", req: &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{}}}, want: authz.Request{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fa := &fakeAuthorizer{d: authz.Decision{Outcome: authz.OutcomeNoToken}}
			s, _ := newTestServer(t, fa, tt.cfg)
			resp, err := s.Check(context.Background(), tt.req)
			if err != nil || resp.GetStatus().GetCode() != int32(codes.Unauthenticated) {
				t.Fatalf("got %v, %v", resp, err)
			}
			got := fa.last(t)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("request\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestCheckFailsClosed(t *testing.T) {
	ctxCancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name   string
		a      Authorizer
		ctx    context.Context
		status int
		reason string
	}{
		{name: "authorizer panics", a: AuthorizerFunc(func(context.Context, authz.Request) authz.Decision { panic("boom") }),
			ctx: context.Background(), status: 503, reason: "internal error"},
		{name: "nil authorizer", a: nil, ctx: context.Background(), status: 503, reason: "not ready"},
		{name: "allow after cancellation", a: &fakeAuthorizer{d: allowAlice()}, ctx: ctxCancelled, status: 503, reason: "request cancelled"},
		{name: "denial after cancellation stays a denial", a: &fakeAuthorizer{d: authz.Decision{Outcome: authz.OutcomeForbidden}},
			ctx: ctxCancelled, status: 403, reason: "access denied by policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := NewMetrics(nil)
			s, logs := newTestServer(t, tt.a, Config{}, WithMetrics(m))
			resp, err := s.Check(tt.ctx, checkRequest(map[string]string{"authorization": "Bearer t"}))
			if err != nil {
				t.Fatalf("gRPC error %v", err)
			}
			p := denied(t, resp)
			if p.status != tt.status || p.body["error_description"] != tt.reason {
				t.Errorf("got %d %q, want %d %q", p.status, p.body["error_description"], tt.status, tt.reason)
			}
			if tt.name == "authorizer panics" && (!strings.Contains(logs.String(), "authorizer panic: boom") || counterValue(t, m.panics) != 1) {
				t.Errorf("panic not logged or counted: %s", logs.String())
			}
		})
	}
}

// TestCancelledIsNoOutage: a check whose caller went away (before or after the
// authorizer decided) is counted as cancelled, never as unavailable, and logged at
// debug, while an OP outage is logged at warn.
func TestCancelledIsNoOutage(t *testing.T) {
	ctxCancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name      string
		d         authz.Decision
		ctx       context.Context
		outcome   authz.Outcome
		wantLevel string
	}{
		{"allow after cancellation", allowAlice(), ctxCancelled, authz.OutcomeCancelled, "DEBUG"},
		{"authorizer says cancelled", authz.Decision{Outcome: authz.OutcomeCancelled, Reason: "request cancelled", Err: context.Canceled}, ctxCancelled, authz.OutcomeCancelled, "DEBUG"},
		{"OP outage", authz.Decision{Outcome: authz.OutcomeUnavailable, Reason: "identity provider unavailable", Err: authz.ErrUnavailable}, context.Background(), authz.OutcomeUnavailable, "WARN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := NewMetrics(nil)
			s, logs := newTestServer(t, &fakeAuthorizer{d: tt.d}, Config{}, WithMetrics(m))
			resp, err := s.Check(tt.ctx, checkRequest(map[string]string{"authorization": "Bearer t"}))
			if err != nil {
				t.Fatalf("gRPC error %v", err)
			}
			if p := denied(t, resp); p.status != 503 {
				t.Errorf("status %d, want 503 (never an allow)", p.status)
			}
			for _, o := range []authz.Outcome{authz.OutcomeUnavailable, authz.OutcomeCancelled} {
				want := 0.0
				if o == tt.outcome {
					want = 1
				}
				route := tt.d.Route
				if route == "" {
					route = "none"
				}
				if got := counterValue(t, m.decisions.WithLabelValues(o.String(), route, "")); got != want {
					t.Errorf("decisions{outcome=%s} = %v, want %v", o, got, want)
				}
			}
			if !strings.Contains(logs.String(), `"level":"`+tt.wantLevel+`"`) || !strings.Contains(logs.String(), `"outcome":"`+tt.outcome.String()+`"`) {
				t.Errorf("want a %s line with outcome %s; log:\n%s", tt.wantLevel, tt.outcome, logs.String())
			}
		})
	}
}

func TestSetAuthorizerSwapsWithoutDroppingInFlight(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	old := AuthorizerFunc(func(ctx context.Context, r authz.Request) authz.Decision {
		close(started)
		<-release
		return allowAlice()
	})
	s, _ := newTestServer(t, old, Config{})
	done := make(chan *authv3.CheckResponse)
	go func() {
		resp, _ := s.Check(context.Background(), checkRequest(map[string]string{"authorization": "Bearer t"}))
		done <- resp
	}()
	<-started
	s.SetAuthorizer(&fakeAuthorizer{d: authz.Decision{Outcome: authz.OutcomeForbidden}})
	resp, _ := s.Check(context.Background(), checkRequest(nil))
	if resp.GetStatus().GetCode() != int32(codes.PermissionDenied) {
		t.Errorf("new authorizer not used: %v", resp.GetStatus())
	}
	close(release)
	if r := <-done; r.GetStatus().GetCode() != int32(codes.OK) {
		t.Errorf("in-flight check under the old authorizer got %v", r.GetStatus())
	}

	// Concurrent swaps and checks are race-free (go test -race).
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 50 {
				s.SetAuthorizer(&fakeAuthorizer{d: authz.Decision{Outcome: authz.Outcome(i % 5)}})
			}
		}()
		go func() {
			defer wg.Done()
			for range 50 {
				if _, err := s.Check(context.Background(), checkRequest(nil)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
}

func TestDecisionLogging(t *testing.T) {
	token := "Bearer super-secret-token-value"
	tests := []struct {
		name     string
		level    string
		d        authz.Decision
		wantLine bool
		wantLvl  string
	}{
		{name: "allow at debug", d: allowAlice(), wantLine: true, wantLvl: "DEBUG"},
		{name: "denial at info", d: authz.Decision{Outcome: authz.OutcomeForbidden, Identity: alice(), Route: "admin", Reason: "nope", TokenHash: "0011223344556677"}, wantLine: true, wantLvl: "INFO"},
		{name: "denial at configured warn", level: "warn", d: authz.Decision{Outcome: authz.OutcomeInvalidToken}, wantLine: true, wantLvl: "WARN"},
		{name: "outage at warn", d: authz.Decision{Outcome: authz.OutcomeUnavailable, Err: errors.New("dial tcp: refused")}, wantLine: true, wantLvl: "WARN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, logs := newTestServer(t, &fakeAuthorizer{d: tt.d}, Config{DenyLogLevel: tt.level})
			req := checkRequest(map[string]string{"authorization": token})
			req.Attributes.Request.Http.Path = "/p?api_key=querysecret"
			_, _ = s.Check(context.Background(), req)
			out := logs.String()
			if strings.Contains(out, "super-secret") || strings.Contains(out, "querysecret") {
				t.Fatalf("log leaks a secret: %s", out)
			}
			var line map[string]any
			if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &line); err != nil {
				t.Fatalf("want exactly one JSON line, got %q", out)
			}
			if line["level"] != tt.wantLvl || line["request_id"] != "req-1" || line["outcome"] != tt.d.Outcome.String() ||
				line["route"] != tt.d.Route || line["token_hash"] != tt.d.TokenHash || line["path"] != "/p" {
				t.Errorf("log line %v", line)
			}
			if tt.d.Identity != nil && line["sub"] != "alice" {
				t.Errorf("sub missing: %v", line)
			}
		})
	}
}

func TestLoggingOffFormatsNothing(t *testing.T) {
	var calls int
	h := &countingHandler{enabled: false, calls: &calls}
	s, err := NewServer(&fakeAuthorizer{d: allowAlice()}, Config{}, WithLogger(slogNew(h)))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = s.Check(context.Background(), checkRequest(nil))
	if calls != 0 {
		t.Errorf("Handle called %d times with logging off", calls)
	}
}

func TestMetricsRecordDecisions(t *testing.T) {
	m, err := NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Unix(0, 0), step: 3 * time.Millisecond}
	fa := &fakeAuthorizer{d: allowAlice()}
	s, _ := newTestServer(t, fa, Config{}, WithMetrics(m), WithClock(clock.now))
	for range 3 {
		_, _ = s.Check(context.Background(), checkRequest(nil))
	}
	fa.d = authz.Decision{Outcome: authz.OutcomeForbidden, Route: "admin"}
	_, _ = s.Check(context.Background(), checkRequest(nil))
	fa.d = authz.Decision{Outcome: authz.OutcomeNoToken}
	_, _ = s.Check(context.Background(), checkRequest(nil))

	for _, c := range []struct {
		outcome, route string
		want           float64
	}{{"allow", "api", 3}, {"forbidden", "admin", 1}, {"no_token", "none", 1}, {"allow", "admin", 0}} {
		if got := counterValue(t, m.decisions.WithLabelValues(c.outcome, c.route, "")); got != c.want {
			t.Errorf("decisions{%s,%s} = %v, want %v", c.outcome, c.route, got, c.want)
		}
	}
	count, sum := histogram(t, m.duration.WithLabelValues(TransportGRPC))
	if count != 5 || sum < 0.0149 || sum > 0.0151 {
		t.Errorf("latency histogram count=%d sum=%v, want 5 and 0.015", count, sum)
	}
	if got := gaugeValue(t, m.inFlight); got != 0 {
		t.Errorf("in-flight = %v after all checks", got)
	}
}

// TestMetricsRoutesPreinitialised: Routes makes every outcome of each named route and
// of "none" a series at 0 before the first check; unnamed routes get none.
func TestMetricsRoutesPreinitialised(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.Routes("api", "default")
	series := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "flaat_extauthz_decisions_total" {
			continue
		}
		for _, mm := range mf.GetMetric() {
			var ls []string
			for _, lp := range mm.GetLabel() {
				ls = append(ls, lp.GetValue())
			}
			series[strings.Join(ls, "/")] = mm.GetCounter().GetValue()
		}
	}
	outcomes := len(routeCounters{})
	if len(series) != 3*outcomes {
		t.Errorf("%d series, want %d outcomes × 3 routes: %v", len(series), outcomes, series)
	}
	for _, route := range []string{"api", "default", "none"} {
		for o := range authz.Outcome(outcomes) {
			// label values in name order: outcome, reason (empty), route
			if v, ok := series[o.String()+"//"+route]; !ok || v != 0 {
				t.Errorf("decisions{%s,%s} = %v (exists %v), want 0", o, route, v, ok)
			}
		}
	}
	var nilMetrics *Metrics
	nilMetrics.Routes("x") // no panic
}

func TestNewServerRejectsInvalidConfig(t *testing.T) {
	_, err := NewServer(nil, Config{Realm: `a"b`})
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("got %v", err)
	}
}

func TestReload(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	old := AuthorizerFunc(func(ctx context.Context, r authz.Request) authz.Decision {
		close(started)
		<-release
		return allowAlice()
	})
	s, _ := newTestServer(t, old, Config{Headers: []HeaderConfig{{Name: "x-old", Claim: "sub"}}})
	done := make(chan *authv3.CheckResponse)
	go func() {
		resp, _ := s.Check(context.Background(), checkRequest(nil))
		done <- resp
	}()
	<-started

	// Invalid: refused, nothing changes.
	err := s.Reload(&fakeAuthorizer{d: authz.Decision{Outcome: authz.OutcomeForbidden}}, Config{Realm: "bad\"realm"})
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("invalid reload: %v", err)
	}
	if s.Config().Headers[0].Name != "x-old" {
		t.Fatal("invalid reload changed the config")
	}

	// Valid: later checks use the new authorizer and headers at once.
	if err := s.Reload(&fakeAuthorizer{d: allowAlice()}, Config{Headers: []HeaderConfig{{Name: "x-new", Claim: "email"}}}); err != nil {
		t.Fatal(err)
	}
	resp, _ := s.Check(context.Background(), checkRequest(nil))
	if got := headerMap(resp)["x-new"].GetHeader().GetValue(); got != "alice@example.org" {
		t.Errorf("after reload x-new = %q (%v)", got, resp)
	}
	rec := httptest.NewRecorder()
	s.HTTPHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Header().Get("X-New") != "alice@example.org" {
		t.Errorf("HTTP handler after reload: %v", rec.Header())
	}

	// The in-flight check finishes with the config it started with.
	close(release)
	r := <-done
	if got := headerMap(r)["x-old"].GetHeader().GetValue(); got != "alice" || headerMap(r)["x-new"] != nil {
		t.Errorf("in-flight check: %v", r.GetOkResponse())
	}
}

// panicHandler is a slog handler that panics: a failure outside the authorizer.
type panicHandler struct{ countingHandler }

func (panicHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (panicHandler) Handle(context.Context, slog.Record) error { panic("log sink broke") }

func TestCheckRecoversOwnPanics(t *testing.T) {
	s, err := NewServer(&fakeAuthorizer{d: allowAlice()}, Config{}, WithLogger(slog.New(&panicHandler{})))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.Check(context.Background(), checkRequest(map[string]string{"authorization": "Bearer t"}))
	if err != nil {
		t.Fatalf("gRPC error %v", err)
	}
	if p := denied(t, resp); p.status != 503 || p.code != codes.Unavailable {
		t.Errorf("got %+v", p)
	}
}
