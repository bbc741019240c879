package optest_test

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

	"github.com/flaat-extauthz/flaat-extauthz/internal/optest"
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

func introspect(t *testing.T, op *optest.OP, token, id, secret string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, op.URL(optest.Introspection), strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	return do(t, req)
}

func TestDiscoveryAndJWKS(t *testing.T) {
	op := optest.New(t, optest.WithIssuerPath("realms/x"))
	if !strings.HasSuffix(op.Issuer(), "/realms/x") {
		t.Fatalf("issuer %q", op.Issuer())
	}
	st, doc := get(t, op.URL(optest.Discovery), "")
	if st != 200 || doc["issuer"] != op.Issuer() || doc["jwks_uri"] != op.URL(optest.JWKS) {
		t.Fatalf("discovery %d %v", st, doc)
	}
	set, err := jwk.Parse(op.JWKSJSON())
	if err != nil || set.Len() != 3 {
		t.Fatalf("jwks: %v len %d", err, set.Len())
	}
	op.Rotate(optest.KeepOld())
	set, _ = jwk.Parse(op.JWKSJSON())
	if set.Len() != 6 {
		t.Fatalf("after KeepOld rotation: %d keys", set.Len())
	}
	op.Rotate()
	set, _ = jwk.Parse(op.JWKSJSON())
	if set.Len() != 3 {
		t.Fatalf("after rotation: %d keys", set.Len())
	}
	if op.Count(optest.Discovery) != 1 || op.Total() != 1 {
		t.Fatalf("counts %s", op.SortedCounts())
	}
}

func TestMintJWTVerifiesWithPublishedKey(t *testing.T) {
	op := optest.New(t)
	set, _ := jwk.Parse(op.JWKSJSON())
	for _, alg := range []string{"RS256", "PS256", "ES256", "EdDSA"} {
		tok := op.MintJWT(map[string]any{"groups": []string{"a"}}, optest.WithAlg(alg))
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
	none := op.MintJWT(nil, optest.WithAlg("none"), optest.WithoutKid())
	if !strings.HasSuffix(none, ".") {
		t.Errorf("alg none token should have an empty signature: %q", none)
	}
	hs := op.MintJWT(nil, optest.WithAlg("HS256"), optest.WithHMACSecret(op.RSAPublicKeyPEM()))
	if strings.Count(hs, ".") != 2 {
		t.Errorf("hs256: %q", hs)
	}
}

func TestUserinfoIntrospectionRevokeExpiry(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	op := optest.New(t, optest.WithClock(func() time.Time { return now }))
	tok := op.MintOpaque(map[string]any{"email": "a@example.org"}, optest.WithIntrospectionExt(map[string]any{"groups": []any{"g"}}))

	st, ui := get(t, op.URL(optest.Userinfo), tok)
	if st != 200 || ui["sub"] != optest.DefaultSubject || ui["email"] != "a@example.org" {
		t.Fatalf("userinfo %d %v", st, ui)
	}
	st, in := introspect(t, op, tok, op.ClientID(), op.ClientSecret())
	if st != 200 || in["active"] != true || in["ext"] == nil {
		t.Fatalf("introspection %d %v", st, in)
	}
	if st, _ := introspect(t, op, tok, op.ClientID(), "wrong"); st != 401 {
		t.Fatalf("bad client auth: %d", st)
	}
	if st, _ := get(t, op.URL(optest.Userinfo), "unknown"); st != 401 {
		t.Fatalf("unknown token: %d", st)
	}
	jwt := op.MintJWT(map[string]any{"name": "Alice"})
	if st, ui := get(t, op.URL(optest.Userinfo), jwt); st != 200 || ui["name"] != "Alice" || ui["exp"] != nil {
		t.Fatalf("jwt userinfo %d %v", st, ui)
	}

	op.Revoke(tok)
	if st, _ := get(t, op.URL(optest.Userinfo), tok); st != 401 {
		t.Fatalf("revoked userinfo %d", st)
	}
	if _, in := introspect(t, op, tok, op.ClientID(), op.ClientSecret()); in["active"] != false {
		t.Fatalf("revoked introspection %v", in)
	}
	now = now.Add(2 * time.Hour)
	if st, _ := get(t, op.URL(optest.Userinfo), jwt); st != 401 {
		t.Fatalf("expired jwt at userinfo: %d", st)
	}
	if got := op.Count(optest.Userinfo); got != 5 {
		t.Fatalf("userinfo count %d, want 5 (%s)", got, op.SortedCounts())
	}
	op.ResetCounts()
	if op.Total() != 0 {
		t.Fatal("ResetCounts")
	}
}

func TestFaults(t *testing.T) {
	op := optest.New(t)
	tok := op.MintOpaque(nil)
	cases := []struct {
		name   string
		fault  optest.Fault
		status int
		check  func(map[string]any) bool
	}{
		{"status", optest.Fault{Status: 503}, 503, nil},
		{"html", optest.Fault{HTML: true}, 200, func(m map[string]any) bool { return m == nil }},
		{"malformed", optest.Fault{MalformedJSON: true}, 200, func(m map[string]any) bool { return m == nil }},
		{"wrong sub", optest.Fault{WrongSub: true}, 200, func(m map[string]any) bool { return m["sub"] == "someone-else" }},
		{"huge", optest.Fault{HugeBody: 2 << 20}, 200, func(m map[string]any) bool { return len(m["padding"].(string)) == 2<<20 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			op.SetFault(optest.Userinfo, c.fault)
			st, m := get(t, op.URL(optest.Userinfo), tok)
			if st != c.status || (c.check != nil && !c.check(m)) {
				t.Fatalf("status %d body %v", st, m)
			}
		})
	}
	op.ClearFaults()

	op.SetFault(optest.Userinfo, optest.Fault{Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, op.URL(optest.Userinfo), nil)
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("hang: want a timeout")
	}

	op.Down()
	if _, err := http.Get(op.URL(optest.Discovery)); err == nil {
		t.Fatal("down: want a transport error")
	}
	op.ClearFaults()
	if st, _ := get(t, op.URL(optest.Discovery), ""); st != 200 {
		t.Fatalf("after ClearFaults: %d", st)
	}
	op.Close()
	if _, err := http.Get(op.URL(optest.Discovery)); err == nil {
		t.Fatal("closed: want a transport error")
	}
}

func TestStartWithoutTB(t *testing.T) {
	op, err := optest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	if st, _ := get(t, op.URL(optest.JWKS), ""); st != 200 {
		t.Fatalf("jwks %d", st)
	}
	if cfg := op.IssuerConfig(); cfg.Issuer != op.Issuer() || cfg.ClientID == "" {
		t.Fatalf("IssuerConfig %+v", cfg)
	}
}
