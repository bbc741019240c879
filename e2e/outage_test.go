//go:build e2e

package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
)

// TestOPOutage stops the OP mid-test: identities already in the cache keep working,
// an opaque token that was never seen gets 503 (UNAVAILABLE), never an allow and never a
// gRPC error, and a new JWT still verifies against the cached JWKS.
func TestOPOutage(t *testing.T) {
	o := startOP(t)
	s := startServer(t, o, serverOpts{})

	cachedJWT := o.jwtToken(t, "e2e-admin")
	cachedOpaque := o.accountToken(t, "alice", "opaque")
	newOpaque := o.accountToken(t, "bob", "opaque") // obtained now, first shown after the outage
	newJWT := o.jwtToken(t, "e2e-user")

	for _, tok := range []string{cachedJWT, cachedOpaque} {
		if resp := check(t, s, checkReq{path: "/admin", headers: bearer(tok)}); codes.Code(resp.GetStatus().GetCode()) != codes.OK {
			t.Fatalf("before the outage: %v", resp)
		}
	}

	o.Stop()

	tests := []struct {
		name string
		tok  string
		path string
		code codes.Code
		http int
	}{
		{name: "cached jwt still allowed", tok: cachedJWT, path: "/admin", code: codes.OK},
		{name: "cached opaque token still allowed", tok: cachedOpaque, path: "/admin", code: codes.OK},
		{name: "new opaque token gets 503", tok: newOpaque, path: "/data", code: codes.Unavailable, http: 503},
		{name: "new jwt verifies offline against the cached JWKS", tok: newJWT, path: "/data", code: codes.OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := check(t, s, checkReq{path: tc.path, headers: bearer(tc.tok)})
			if got := codes.Code(resp.GetStatus().GetCode()); got != tc.code {
				t.Fatalf("status %v, want %v: %v", got, tc.code, resp)
			}
			if tc.http != 0 {
				if got := int(resp.GetDeniedResponse().GetStatus().GetCode()); got != tc.http {
					t.Errorf("denied HTTP status %d, want %d", got, tc.http)
				}
			}
		})
	}

	t.Run("http mode also answers 503", func(t *testing.T) {
		status, _ := httpCheck(t, s, "/data", newOpaque)
		if status != http.StatusServiceUnavailable {
			t.Fatalf("HTTP check status %d, want 503", status)
		}
	})
}

// httpCheck calls flaat-extauthz's HTTP mode directly the way nginx does.
func httpCheck(t testing.TB, s *server, uri, tok string) (int, http.Header) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.HTTPAddr+"/auth", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Original-URI", uri)
	req.Header.Set("X-Original-Method", "GET")
	req.Header.Set("X-Forwarded-Host", "api.e2e.test")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("e2e: HTTP check: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// TestLogsNeverContainTokens runs every kind of token (JWT, opaque, account-bound JWT,
// forged, garbage, revoked) through both transports with debug logging, then searches
// the whole log for each token and for each JWT's payload and signature: zero hits.
func TestLogsNeverContainTokens(t *testing.T) {
	o := startOP(t)
	s := startServer(t, o, serverOpts{CacheDisabled: true})

	revoked := o.accountToken(t, "alice", "opaque")
	toks := []string{
		o.jwtToken(t, "e2e-admin"),
		o.jwtToken(t, "e2e-user"),
		o.accountToken(t, "bob", "opaque"),
		o.accountToken(t, "bob", "jwt"),
		forgedJWT(t, o.Issuer),
		remember("garbage-" + strings.Repeat("z", 30)),
		revoked,
	}
	for _, tok := range toks {
		for _, path := range []string{"/admin", "/data"} {
			check(t, s, checkReq{path: path, headers: bearer(tok)})
			httpCheck(t, s, path, tok)
		}
	}
	o.revoke(t, "e2e-user", revoked)
	if resp := check(t, s, checkReq{path: "/data", headers: bearer(revoked)}); codes.Code(resp.GetStatus().GetCode()) != codes.Unauthenticated {
		t.Errorf("revoked token: %v", resp)
	}
	httpCheck(t, s, "/data", revoked)

	s.Stop()
	log := s.proc.Log()
	// The log must have recorded the decisions (debug logs every one), or the search
	// below would prove nothing.
	if lines := strings.Count(log, "\n"); lines < len(toks)*2 {
		t.Fatalf("only %d log lines for %d checks: is debug logging on?\n%s", lines, len(toks)*4, tail(log, 4000))
	}
	// Correlation works through the hash instead: every token's authz.TokenHash occurs.
	for _, tok := range toks {
		if h := authz.TokenHash(tok); !strings.Contains(log, h) {
			t.Errorf("the log never mentions token hash %s (of %.8s…)", h, tok)
		}
	}
	assertNoTokens(t, "the debug log", log)
}
