//go:build e2e

package e2e

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
)

// grpcurl returns the pinned grpcurl (./bin, installed by .ci/e2e-deps.sh) or one on PATH.
func grpcurl(t testing.TB) string {
	t.Helper()
	local := filepath.Join(repoRoot, "bin", "grpcurl")
	if st, err := os.Stat(local); err == nil && st.Mode()&0o111 != 0 {
		return local
	}
	return tool(t, "grpcurl")
}

// checkReq is the part of an Envoy CheckRequest the tests vary.
type checkReq struct {
	method, host, path string
	headers            map[string]string
	// cert is attributes.source.certificate (Envoy's include_peer_certificate): the
	// URL-encoded PEM client certificate of the downstream connection.
	cert string
}

// check calls Authorization/Check on s with grpcurl (server reflection, no .proto files)
// and decodes the reply into the go-control-plane type.
func check(t testing.TB, s *server, r checkReq) *authv3.CheckResponse {
	t.Helper()
	if r.method == "" {
		r.method = "GET"
	}
	if r.host == "" {
		r.host = "api.e2e.test"
	}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "e2e", Method: r.method, Host: r.host, Path: r.path, Scheme: "https", Protocol: "HTTP/1.1",
			Headers: r.headers,
		}},
	}}
	if r.cert != "" {
		req.Attributes.Source = &authv3.AttributeContext_Peer{Certificate: r.cert}
	}
	return grpcurlCheck(t, s, req, nil)
}

// grpcurlCheck sends req to Authorization/Check on s with grpcurl, with the gRPC
// metadata md (grpcurl -H), and decodes the reply into the go-control-plane type.
func grpcurlCheck(t testing.TB, s *server, req *authv3.CheckRequest, md map[string]string) *authv3.CheckResponse {
	t.Helper()
	body, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	argv := []string{grpcurl(t), "-plaintext", "-max-time", "15", "-d", "@"}
	for k, v := range md {
		argv = append(argv, "-H", k+": "+v)
	}
	out, stderr, err := runCmd(t, string(body), append(argv, s.GRPCAddr, "envoy.service.auth.v3.Authorization/Check")...)
	if err != nil {
		t.Fatalf("e2e: grpcurl Check: %v\nstdout: %s\nstderr: %s", err, out, stderr)
	}
	var resp authv3.CheckResponse
	if err := protojson.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("e2e: grpcurl output is not a CheckResponse: %v\n%s", err, out)
	}
	return &resp
}

func bearer(tok string) map[string]string { return map[string]string{"authorization": "Bearer " + tok} }

// okHeaders returns the ok_response headers as a map, failing on Append=true.
func okHeaders(t testing.TB, resp *authv3.CheckResponse) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, h := range resp.GetOkResponse().GetHeaders() {
		overwrite := (h.GetAppend() != nil && !h.GetAppend().GetValue()) ||
			(h.GetAppend() == nil && h.GetAppendAction() == corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD)
		if !overwrite {
			t.Errorf("e2e: header %s would be appended, not overwritten (%v)", h.GetHeader().GetKey(), h)
		}
		out[strings.ToLower(h.GetHeader().GetKey())] = h.GetHeader().GetValue()
	}
	return out
}

// deniedHeader returns a header of the denied_response.
func deniedHeader(resp *authv3.CheckResponse, name string) string {
	for _, h := range resp.GetDeniedResponse().GetHeaders() {
		if strings.EqualFold(h.GetHeader().GetKey(), name) {
			return h.GetHeader().GetValue()
		}
	}
	return ""
}

// forgedJWT is a well-formed RS256 JWT with the OP's issuer, signed with a key the OP
// never published.
func forgedJWT(t testing.TB, issuer string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	now := time.Now().Unix()
	signing := enc(map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": "forged"}) + "." +
		enc(map[string]any{"iss": issuer, "sub": "mallory", "aud": "https://api.e2e.test", "iat": now, "exp": now + 600,
			"groups": []string{"admins"}})
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return remember(signing + "." + base64.RawURLEncoding.EncodeToString(sig))
}

// TestGRPCCheck is the ext_authz Check table against the real OP through grpcurl: JWT and
// opaque tokens, allow with identity headers, 401 without or with a bad token, 403 for a
// missing group, public route.
func TestGRPCCheck(t *testing.T) {
	o := startOP(t)
	s := startServer(t, o, serverOpts{})

	adminJWT := o.jwtToken(t, "e2e-admin")
	userJWT := o.jwtToken(t, "e2e-user")
	aliceOpaque := o.accountToken(t, "alice", "opaque")
	bobOpaque := o.accountToken(t, "bob", "opaque")
	bobJWT := o.accountToken(t, "bob", "jwt")
	forged := forgedJWT(t, o.Issuer)

	tests := []struct {
		name      string
		req       checkReq
		code      codes.Code
		http      int               // denied_response status
		headers   map[string]string // expected ok_response headers (subset)
		challenge string            // substring of WWW-Authenticate on denials
	}{
		{name: "jwt admin client allowed on /admin", req: checkReq{path: "/admin/x?q=1", headers: bearer(adminJWT)},
			code: codes.OK, headers: map[string]string{"x-auth-request-user": "e2e-admin", "x-auth-request-groups": "admins,users", "x-auth-request-issuer": o.Issuer}},
		{name: "jwt user client allowed on default route", req: checkReq{path: "/data", headers: bearer(userJWT)},
			code: codes.OK, headers: map[string]string{"x-auth-request-user": "e2e-user", "x-auth-request-groups": "users"}},
		{name: "jwt user client missing group on /admin", req: checkReq{path: "/admin", headers: bearer(userJWT)},
			code: codes.PermissionDenied, http: 403, challenge: `error="insufficient_scope"`},
		{name: "account-bound jwt (userinfo refuses it, optional) allowed", req: checkReq{path: "/data", headers: bearer(bobJWT)},
			code: codes.OK, headers: map[string]string{"x-auth-request-user": "bob", "x-auth-request-email": "bob@e2e.test"}},
		{name: "opaque alice allowed on /admin via userinfo", req: checkReq{path: "/admin/users", method: "POST", headers: bearer(aliceOpaque)},
			code: codes.OK, headers: map[string]string{"x-auth-request-user": "alice", "x-auth-request-email": "alice@e2e.test", "x-auth-request-groups": "admins,users"}},
		{name: "opaque bob missing group on /admin", req: checkReq{path: "/admin", headers: bearer(bobOpaque)},
			code: codes.PermissionDenied, http: 403, challenge: "insufficient_scope"},
		{name: "opaque bob allowed on default route", req: checkReq{path: "/data", headers: bearer(bobOpaque)},
			code: codes.OK, headers: map[string]string{"x-auth-request-user": "bob"}},
		{name: "no token", req: checkReq{path: "/data"},
			code: codes.Unauthenticated, http: 401, challenge: "Bearer realm="},
		{name: "garbage token", req: checkReq{path: "/data", headers: bearer(remember("not-a-token-" + strings.Repeat("x", 20)))},
			code: codes.Unauthenticated, http: 401, challenge: `error="invalid_token"`},
		{name: "forged jwt signed by an unknown key", req: checkReq{path: "/data", headers: bearer(forged)},
			code: codes.Unauthenticated, http: 401, challenge: `error="invalid_token"`},
		{name: "public route needs no token", req: checkReq{path: "/public/index.html"}, code: codes.OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := check(t, s, tc.req)
			if got := codes.Code(resp.GetStatus().GetCode()); got != tc.code {
				t.Fatalf("status %v, want %v; response %v", got, tc.code, resp)
			}
			if tc.code == codes.OK {
				got := okHeaders(t, resp)
				for k, v := range tc.headers {
					if got[k] != v {
						t.Errorf("header %s = %q, want %q (all: %v)", k, got[k], v, got)
					}
				}
				return
			}
			if got := int(resp.GetDeniedResponse().GetStatus().GetCode()); got != tc.http {
				t.Errorf("denied HTTP status %d, want %d", got, tc.http)
			}
			if c := deniedHeader(resp, "www-authenticate"); !strings.Contains(c, tc.challenge) {
				t.Errorf("WWW-Authenticate %q, want it to contain %q", c, tc.challenge)
			}
			var body map[string]any
			if err := json.Unmarshal([]byte(resp.GetDeniedResponse().GetBody()), &body); err != nil || body["error"] == nil {
				t.Errorf("denied body %q is not JSON with an error: %v", resp.GetDeniedResponse().GetBody(), err)
			}
		})
	}
}

// TestGRPCIntrospectionRevoked: an opaque token is accepted through RFC 7662
// introspection (userinfo off), revoked at the OP, and then refused with 401 because
// introspection answers active:false.
func TestGRPCIntrospectionRevoked(t *testing.T) {
	o := startOP(t)
	s := startServer(t, o, serverOpts{CacheDisabled: true, Userinfo: "never", Introspect: "opaque"})
	tok := o.accountToken(t, "alice", "opaque")

	resp := check(t, s, checkReq{path: "/admin", headers: bearer(tok)})
	if codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("before revocation: %v", resp)
	}
	if h := okHeaders(t, resp); h["x-auth-request-user"] != "alice" {
		t.Errorf("before revocation: user %q, want alice", h["x-auth-request-user"])
	}

	o.revoke(t, "e2e-user", tok)
	if got := o.introspect(t, tok); got["active"] != false {
		t.Fatalf("the OP still reports the token active after revocation: %v", got)
	}
	resp = check(t, s, checkReq{path: "/admin", headers: bearer(tok)})
	if codes.Code(resp.GetStatus().GetCode()) != codes.Unauthenticated || resp.GetDeniedResponse().GetStatus().GetCode() != 401 {
		t.Fatalf("after revocation: %v, want UNAUTHENTICATED/401", resp)
	}
	if c := deniedHeader(resp, "www-authenticate"); !strings.Contains(c, `error="invalid_token"`) {
		t.Errorf("after revocation: WWW-Authenticate %q", c)
	}
}

// TestGRPCReflectionAndHealth: grpcurl discovers the service by reflection and the
// standard health service reports SERVING.
func TestGRPCReflectionAndHealth(t *testing.T) {
	o := startOP(t)
	s := startServer(t, o, serverOpts{})
	out, stderr, err := runCmd(t, "", grpcurl(t), "-plaintext", s.GRPCAddr, "list")
	if err != nil {
		t.Fatalf("grpcurl list: %v: %s", err, stderr)
	}
	for _, svc := range []string{"envoy.service.auth.v3.Authorization", "grpc.health.v1.Health"} {
		if !strings.Contains(out, svc) {
			t.Errorf("grpcurl list does not show %s:\n%s", svc, out)
		}
	}
	out, stderr, err = runCmd(t, "", grpcurl(t), "-plaintext", s.GRPCAddr, "grpc.health.v1.Health/Check")
	if err != nil || !strings.Contains(out, "SERVING") {
		t.Errorf("health: %v: %s %s", err, out, stderr)
	}
}
