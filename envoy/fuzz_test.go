package envoy

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
)

// FuzzCheck feeds arbitrary header values, raw header bytes, claims and reasons through
// Check: it must never panic or return an error, must allow only when the authorizer
// allowed, must pass the credential through unchanged, must never emit a header value
// that can break a header line or a quoted string, and the identity headers must read
// back (split on ",", percent-decode) as exactly the claim's values.
func FuzzCheck(f *testing.F) {
	f.Add("Bearer abc", "", "authorization", []byte("Bearer raw"), "host", "/p?q", "GET", false, 0, "alice@example.org", "reason")
	f.Add("bearer  x y", "tok", "AUTHORIZATION", []byte{0xff, 0x00, '\n'}, "", "", "", true, 2, "a\r\nb", "r\"\\\r\n")
	f.Add("", "Bearer t", "x-token", []byte("t"), ":authority", "%zz", "POST", true, 3, "ü", "")
	f.Add("Basic Zm9v", "", "authorization", []byte{}, "h", "/", "GET", false, 4, "", "x")
	f.Add("Bearer a", "", "", []byte("b"), "", "", "", true, 9, "", "unknown outcome")
	f.Fuzz(func(t *testing.T, auth, alt, rawKey string, rawVal []byte, host, path, method string, useMap bool, outcome int, email, reason string) {
		id := alice()
		setClaim(id, "email", email)
		setClaim(id, "groups", []any{email, "x"})
		d := authz.Decision{Outcome: authz.Outcome(outcome%8 - 1), Reason: reason, Identity: id}
		fa := &fakeAuthorizer{d: d}
		s, err := NewServer(fa, Config{TokenHeader: "x-token", ForwardAccessToken: true}, WithLogger(discardLogger()))
		if err != nil {
			t.Fatal(err)
		}
		var req *authv3.CheckRequest
		if useMap {
			hm := &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
				{Key: "authorization", Value: auth},
				{Key: rawKey, RawValue: rawVal},
				{Key: "x-token", Value: alt},
				{Key: host, Value: path},
			}}
			req = &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
				Http: &authv3.AttributeContext_HttpRequest{HeaderMap: hm, Method: method}}}}
		} else {
			req = checkRequest(map[string]string{"authorization": auth, "x-token": alt, rawKey: string(rawVal), host: path})
			req.Attributes.Request.Http.Path = path
		}
		resp, err := s.Check(context.Background(), req)
		if err != nil || resp == nil {
			t.Fatalf("Check = %v, %v", resp, err)
		}
		r := fa.last(t)
		// The oracle holds when the map has exactly the authorization header we set and
		// an empty alternative header: rawKey or host may name either and replace it.
		overwritten := func(k string) bool { return k == "authorization" || k == "x-token" }
		if !useMap && strings.TrimSpace(alt) == "" && r.Authorization != auth && !overwritten(rawKey) && !overwritten(host) {
			t.Fatalf("credential changed: sent %q, authorizer got %q", auth, r.Authorization)
		}
		allowed := resp.GetStatus().GetCode() == int32(codes.OK)
		if allowed != (d.Outcome == authz.OutcomeAllow) {
			t.Fatalf("outcome %v answered with status %v", d.Outcome, resp.GetStatus())
		}
		var hs []*corev3.HeaderValueOption
		if allowed {
			hs = resp.GetOkResponse().GetHeaders()
		} else {
			dr := resp.GetDeniedResponse()
			hs = dr.GetHeaders()
			var body map[string]string
			if err := json.Unmarshal([]byte(dr.GetBody()), &body); err != nil {
				t.Fatalf("body %q: %v", dr.GetBody(), err)
			}
			if c := dr.GetStatus().GetCode(); c != 400 && c != 401 && c != 403 && c != 503 {
				t.Fatalf("HTTP status %d", c)
			}
		}
		for _, h := range hs {
			v := h.GetHeader().GetValue()
			if strings.ContainsAny(v, "\r\n\x00") {
				t.Fatalf("header %s value %q breaks the header line", h.GetHeader().GetKey(), v)
			}
			switch h.GetHeader().GetKey() {
			case "x-auth-request-email":
				if got := splitHeaderValue(t, v); len(got) != 1 || got[0] != email {
					t.Fatalf("email %q sent as %q, read back as %q", email, v, got)
				}
			case "x-auth-request-groups":
				if got := splitHeaderValue(t, v); len(got) != 2 || got[0] != email || got[1] != "x" {
					t.Fatalf("groups [%q x] sent as %q, read back as %q", email, v, got)
				}
			}
			if h.GetHeader().GetKey() == "www-authenticate" {
				checkChallengeSyntax(t, v)
			}
		}
	})
}

// checkChallengeSyntax: a Bearer or DPoP (RFC 9449 §7.1) challenge whose auth-params are
// key="value" with no quote or backslash inside a value and only visible ASCII or space.
func checkChallengeSyntax(t *testing.T, v string) {
	t.Helper()
	rest, ok := strings.CutPrefix(v, "Bearer ")
	if !ok {
		rest, ok = strings.CutPrefix(v, "DPoP ")
	}
	if !ok {
		t.Fatalf("challenge %q", v)
	}
	for rest != "" {
		k, after, ok := strings.Cut(rest, `="`)
		if !ok || strings.ContainsAny(k, `" `) {
			t.Fatalf("challenge %q: bad param name at %q", v, rest)
		}
		val, tail, ok := strings.Cut(after, `"`)
		if !ok {
			t.Fatalf("challenge %q: unterminated value", v)
		}
		for i := 0; i < len(val); i++ {
			if c := val[i]; c < 0x20 || c > 0x7e || c == '\\' {
				t.Fatalf("challenge %q: byte %q in value", v, c)
			}
		}
		rest = strings.TrimPrefix(tail, ", ")
	}
}

// FuzzHTTPRequest feeds arbitrary request targets and forwarded headers to the HTTP
// handler (server.http.forwarded auto): no panic, only table statuses or 404, the path
// the authorizer sees is the one the rules say, and two URI headers that disagree are a
// 400 without a decision.
func FuzzHTTPRequest(f *testing.F) {
	f.Add("/check/a?b=c", "", "", "", "", "Bearer x", 0)
	f.Add("/check", "/orig?x", "/orig?x", "POST", "app", "", 1)
	f.Add("/check", "/public", "/admin", "GET", "", "", 1)
	f.Add("/checkout", "", "", "", "", "", 2)
	f.Add("http://absolute/check/x", "", "", "", "", "bearer y", 3)
	f.Add("/check?", "\r\n", "", "\x00", "a, b", "Bearer \xff", 4)
	f.Fuzz(func(t *testing.T, target, origURI, fwdURI, origMethod, fwdHost, auth string, outcome int) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			u = &url.URL{Path: "/"}
		}
		req := &http.Request{Method: "GET", URL: u, RequestURI: target, Host: "h", Header: http.Header{}}
		req = req.WithContext(context.Background())
		for k, v := range map[string]string{"X-Original-Uri": origURI, "X-Forwarded-Uri": fwdURI, "X-Original-Method": origMethod, "X-Forwarded-Host": fwdHost, "Authorization": auth} {
			if v != "" {
				req.Header[k] = []string{v}
			}
		}
		fa := &fakeAuthorizer{d: authz.Decision{Outcome: authz.Outcome(outcome%8 - 1), Reason: origURI, Identity: alice()}}
		s, err := NewServer(fa, Config{PathPrefix: "/check"}, WithLogger(discardLogger()))
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		s.HTTPHandler().ServeHTTP(rec, req)
		conflict := origURI != "" && fwdURI != "" && origURI != fwdURI
		want := origURI
		if want == "" {
			want = fwdURI
		}
		switch {
		case rec.Code == 404:
			if len(fa.reqs) != 0 {
				t.Fatal("404 after a decision")
			}
		case conflict:
			if rec.Code != 400 || len(fa.reqs) != 0 {
				t.Fatalf("URI headers %q and %q disagree: status %d, %d decisions", origURI, fwdURI, rec.Code, len(fa.reqs))
			}
		case rec.Code == 200, rec.Code == 400, rec.Code == 401, rec.Code == 403, rec.Code == 503:
			r := fa.last(t)
			if want != "" && r.Path != want {
				t.Fatalf("path %q, want forwarded URI %q", r.Path, want)
			}
			if want == "" && !strings.HasPrefix(r.Path, "/") {
				t.Fatalf("path %q does not start with /", r.Path)
			}
			if r.Authorization != auth {
				t.Fatalf("authorization %q, sent %q", r.Authorization, auth)
			}
		default:
			t.Fatalf("status %d", rec.Code)
		}
		if (rec.Code == 200) != (fa.d.Outcome == authz.OutcomeAllow && len(fa.reqs) == 1) {
			t.Fatalf("status %d for outcome %v", rec.Code, fa.d.Outcome)
		}
		for k, vs := range rec.Header() {
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n") {
					t.Fatalf("header %s: %q", k, v)
				}
			}
		}
	})
}
