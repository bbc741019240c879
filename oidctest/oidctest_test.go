package oidctest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
)

func get(t *testing.T, u, bearer string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return res.StatusCode, m
}

func introspect(t *testing.T, op *oidctest.OP, token, id, secret string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, op.URL(oidctest.Introspection), strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	return do(t, req)
}

func TestDiscoveryAndJWKS(t *testing.T) {
	op := oidctest.New(t, oidctest.WithIssuerPath("realms/x"))
	if !strings.HasSuffix(op.Issuer(), "/realms/x") {
		t.Fatalf("issuer %q", op.Issuer())
	}
	st, doc := get(t, op.URL(oidctest.Discovery), "")
	if st != 200 || doc["issuer"] != op.Issuer() || doc["jwks_uri"] != op.URL(oidctest.JWKS) {
		t.Fatalf("discovery %d %v", st, doc)
	}
	set, err := jwk.Parse(op.JWKSJSON())
	if err != nil || set.Len() != 3 {
		t.Fatalf("jwks: %v len %d", err, set.Len())
	}
	op.Rotate(oidctest.KeepOld())
	set, _ = jwk.Parse(op.JWKSJSON())
	if set.Len() != 6 {
		t.Fatalf("after KeepOld rotation: %d keys", set.Len())
	}
	op.Rotate()
	set, _ = jwk.Parse(op.JWKSJSON())
	if set.Len() != 3 {
		t.Fatalf("after rotation: %d keys", set.Len())
	}
	if op.Count(oidctest.Discovery) != 1 || op.Total() != 1 {
		t.Fatalf("counts %s", op.SortedCounts())
	}
}

func TestMintJWTVerifiesWithPublishedKey(t *testing.T) {
	op := oidctest.New(t)
	set, _ := jwk.Parse(op.JWKSJSON())
	for _, alg := range []string{"RS256", "PS256", "ES256", "EdDSA"} {
		tok := op.MintJWT(map[string]any{"groups": []string{"a"}}, oidctest.WithAlg(alg))
		if _, err := jws.Verify([]byte(tok), jws.WithKeySet(set, jws.WithInferAlgorithmFromKey(true))); err != nil {
			t.Errorf("%s: %v", alg, err)
		}
		parts := strings.Split(tok, ".")
		hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
		var h map[string]any
		_ = json.Unmarshal(hb, &h)
		if h["alg"] != alg || h["kid"] != op.KeyID(alg) {
			t.Errorf("%s header %v", alg, h)
		}
	}
	none := op.MintJWT(nil, oidctest.WithAlg("none"), oidctest.WithoutKid())
	if !strings.HasSuffix(none, ".") {
		t.Errorf("alg none token should have an empty signature: %q", none)
	}
	hs := op.MintJWT(nil, oidctest.WithAlg("HS256"), oidctest.WithHMACSecret(op.RSAPublicKeyPEM()))
	if strings.Count(hs, ".") != 2 {
		t.Errorf("hs256: %q", hs)
	}
}

func TestUserinfoIntrospectionRevokeExpiry(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	op := oidctest.New(t, oidctest.WithClock(func() time.Time { return now }))
	tok := op.MintOpaque(map[string]any{"email": "a@example.org"}, oidctest.WithIntrospectionExt(map[string]any{"groups": []any{"g"}}))

	st, ui := get(t, op.URL(oidctest.Userinfo), tok)
	if st != 200 || ui["sub"] != oidctest.DefaultSubject || ui["email"] != "a@example.org" {
		t.Fatalf("userinfo %d %v", st, ui)
	}
	st, in := introspect(t, op, tok, op.ClientID(), op.ClientSecret())
	if st != 200 || in["active"] != true || in["ext"] == nil {
		t.Fatalf("introspection %d %v", st, in)
	}
	if st, _ := introspect(t, op, tok, op.ClientID(), "wrong"); st != 401 {
		t.Fatalf("bad client auth: %d", st)
	}
	if st, _ := get(t, op.URL(oidctest.Userinfo), "unknown"); st != 401 {
		t.Fatalf("unknown token: %d", st)
	}
	jwt := op.MintJWT(map[string]any{"name": "Alice"})
	if st, ui := get(t, op.URL(oidctest.Userinfo), jwt); st != 200 || ui["name"] != "Alice" || ui["exp"] != nil {
		t.Fatalf("jwt userinfo %d %v", st, ui)
	}

	op.Revoke(tok)
	if st, _ := get(t, op.URL(oidctest.Userinfo), tok); st != 401 {
		t.Fatalf("revoked userinfo %d", st)
	}
	if _, in := introspect(t, op, tok, op.ClientID(), op.ClientSecret()); in["active"] != false {
		t.Fatalf("revoked introspection %v", in)
	}
	now = now.Add(2 * time.Hour)
	if st, _ := get(t, op.URL(oidctest.Userinfo), jwt); st != 401 {
		t.Fatalf("expired jwt at userinfo: %d", st)
	}
	if got := op.Count(oidctest.Userinfo); got != 5 {
		t.Fatalf("userinfo count %d, want 5 (%s)", got, op.SortedCounts())
	}
	op.ResetCounts()
	if op.Total() != 0 {
		t.Fatal("ResetCounts")
	}
}

func TestFaults(t *testing.T) {
	op := oidctest.New(t)
	tok := op.MintOpaque(nil)
	cases := []struct {
		name   string
		fault  oidctest.Fault
		status int
		check  func(map[string]any) bool
	}{
		{"status", oidctest.Fault{Status: 503}, 503, nil},
		{"html", oidctest.Fault{HTML: true}, 200, func(m map[string]any) bool { return m == nil }},
		{"malformed", oidctest.Fault{MalformedJSON: true}, 200, func(m map[string]any) bool { return m == nil }},
		{"wrong sub", oidctest.Fault{WrongSub: true}, 200, func(m map[string]any) bool { return m["sub"] == "someone-else" }},
		{"huge", oidctest.Fault{HugeBody: 2 << 20}, 200, func(m map[string]any) bool { return len(m["padding"].(string)) == 2<<20 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			op.SetFault(oidctest.Userinfo, c.fault)
			st, m := get(t, op.URL(oidctest.Userinfo), tok)
			if st != c.status || (c.check != nil && !c.check(m)) {
				t.Fatalf("status %d body %v", st, m)
			}
		})
	}
	op.ClearFaults()

	op.SetFault(oidctest.Userinfo, oidctest.Fault{Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, op.URL(oidctest.Userinfo), nil)
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("hang: want a timeout")
	}

	op.Down()
	if _, err := http.Get(op.URL(oidctest.Discovery)); err == nil {
		t.Fatal("down: want a transport error")
	}
	op.ClearFaults()
	if st, _ := get(t, op.URL(oidctest.Discovery), ""); st != 200 {
		t.Fatalf("after ClearFaults: %d", st)
	}
	op.Close()
	if _, err := http.Get(op.URL(oidctest.Discovery)); err == nil {
		t.Fatal("closed: want a transport error")
	}
}
