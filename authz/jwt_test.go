package authz_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
)

// tamper replaces the payload of a JWT with one whose claims are changed by f, keeping
// header and signature.
func tamper(t testing.TB, token string, f func(map[string]any)) string {
	t.Helper()
	parts := strings.Split(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	f(claims)
	nb, _ := json.Marshal(claims)
	parts[1] = base64.RawURLEncoding.EncodeToString(nb)
	return strings.Join(parts, ".")
}

func TestVerifyJWT(t *testing.T) {
	clk := newClock()
	op := newOP(t, clk)
	other := newOP(t, clk) // not trusted
	foreignEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	base := never(op.IssuerConfig())
	withAud := base
	withAud.Audiences = []string{"api", "other-api"}
	onlyES := base
	onlyES.Algorithms = []string{"ES256"}
	slash := base
	slash.Issuer = op.Issuer() + "/"
	noSub := base
	noSub.RequireSub = new(false)

	cases := []struct {
		name string
		ic   authz.IssuerConfig
		mint func() string
		want string
		// wantNoNetwork: the token must be rejected before any request reaches an OP.
		wantNoNetwork bool
	}{
		{name: "RS256 valid", mint: func() string { return op.MintJWT(nil) }, want: "ok"},
		{name: "RS512 valid", mint: func() string { return op.MintJWT(nil, oidctest.WithAlg("RS512")) }, want: "ok"},
		{name: "PS256 valid", mint: func() string { return op.MintJWT(nil, oidctest.WithAlg("PS256")) }, want: "ok"},
		{name: "ES256 valid", mint: func() string { return op.MintJWT(nil, oidctest.WithAlg("ES256")) }, want: "ok"},
		{name: "EdDSA valid", mint: func() string { return op.MintJWT(nil, oidctest.WithAlg("EdDSA")) }, want: "ok"},
		{name: "expired", mint: func() string { return op.MintJWT(nil, oidctest.ExpiresIn(-2*time.Minute)) }, want: "expired"},
		{name: "expired within leeway", mint: func() string { return op.MintJWT(nil, oidctest.ExpiresIn(-30*time.Second)) }, want: "ok"},
		{name: "no exp", mint: func() string { return op.MintJWT(map[string]any{"exp": nil}) }, want: "invalid"},
		{name: "exp not a number", mint: func() string { return op.MintJWT(map[string]any{"exp": "tomorrow"}) }, want: "invalid"},
		{name: "nbf in the future", mint: func() string { return op.MintJWT(nil, oidctest.NotBefore(5*time.Minute)) }, want: "invalid"},
		{name: "nbf within leeway", mint: func() string { return op.MintJWT(nil, oidctest.NotBefore(30*time.Second)) }, want: "ok"},
		{name: "iat in the future", mint: func() string { return op.MintJWT(map[string]any{"iat": clk.Now().Add(time.Hour).Unix()}) }, want: "invalid"},
		{name: "aud matches one", ic: withAud, mint: func() string { return op.MintJWT(map[string]any{"aud": []string{"x", "other-api"}}) }, want: "ok"},
		{name: "aud string matches", ic: withAud, mint: func() string { return op.MintJWT(map[string]any{"aud": "api"}) }, want: "ok"},
		{name: "wrong aud", ic: withAud, mint: func() string { return op.MintJWT(map[string]any{"aud": "somebody-else"}) }, want: "invalid"},
		{name: "missing aud", ic: withAud, mint: func() string { return op.MintJWT(nil) }, want: "invalid"},
		{name: "alg none", mint: func() string { return op.MintJWT(nil, oidctest.WithAlg("none")) }, want: "invalid", wantNoNetwork: true},
		{name: "alg NONE", mint: func() string { return op.MintJWT(nil, oidctest.WithHeader("alg", "NONE")) }, want: "invalid", wantNoNetwork: true},
		{name: "HS256 with RSA public key PEM", mint: func() string {
			return op.MintJWT(nil, oidctest.WithAlg("HS256"), oidctest.WithHMACSecret(op.RSAPublicKeyPEM()), oidctest.WithKid(op.KeyID("RS256")))
		}, want: "invalid", wantNoNetwork: true},
		{name: "HS256 with JWKS JSON", mint: func() string {
			return op.MintJWT(nil, oidctest.WithAlg("HS256"), oidctest.WithHMACSecret(op.JWKSJSON()))
		}, want: "invalid", wantNoNetwork: true},
		{name: "tampered payload", mint: func() string {
			return tamper(t, op.MintJWT(map[string]any{"groups": []string{"users"}}), func(c map[string]any) { c["groups"] = []string{"admins"} })
		}, want: "invalid"},
		{name: "tampered signature", mint: func() string {
			tok := op.MintJWT(nil)
			return tok[:len(tok)-4] + "AAAA"
		}, want: "invalid"},
		{name: "untrusted iss", mint: func() string { return other.MintJWT(nil) }, want: "untrusted", wantNoNetwork: true},
		{name: "iss claim missing", mint: func() string { return op.MintJWT(map[string]any{"iss": nil}) }, want: "untrusted", wantNoNetwork: true},
		{name: "iss prefix of trusted", mint: func() string { return op.MintJWT(map[string]any{"iss": op.Issuer() + "/evil"}) }, want: "untrusted", wantNoNetwork: true},
		// Signed by the trusted OP, but iss is not the issuer's exact spelling.
		{name: "iss with a trailing slash is another issuer", mint: func() string { return op.MintJWT(map[string]any{"iss": op.Issuer() + "/"}) }, want: "untrusted"},
		{name: "configured issuer with trailing slash", ic: slash, mint: func() string { return op.MintJWT(nil) }, want: "ok"},
		// RFC 9068 2.2: sub is REQUIRED in JWT access tokens, unless require_sub: false.
		{name: "sub required in JWT access tokens", mint: func() string { return op.MintJWT(map[string]any{"sub": nil}) }, want: "invalid"},
		{name: "empty sub refused", mint: func() string { return op.MintJWT(map[string]any{"sub": ""}) }, want: "invalid"},
		{name: "sub not a string refused", mint: func() string { return op.MintJWT(map[string]any{"sub": 7}) }, want: "invalid"},
		{name: "require_sub false accepts a token without sub", ic: noSub, mint: func() string { return op.MintJWT(map[string]any{"sub": nil}) }, want: "ok"},
		{name: "alg not in configured allow-list", ic: onlyES, mint: func() string { return op.MintJWT(nil) }, want: "invalid", wantNoNetwork: true},
		{name: "alg in configured allow-list", ic: onlyES, mint: func() string { return op.MintJWT(nil, oidctest.WithAlg("ES256")) }, want: "ok"},
		{name: "EC kid with RS256 alg", mint: func() string {
			return op.MintJWT(nil, oidctest.WithAlg("RS256"), oidctest.WithKid(op.KeyID("ES256")))
		}, want: "invalid"},
		{name: "ES384 header on P-256 key", mint: func() string {
			return op.MintJWT(nil, oidctest.WithAlg("ES384"), oidctest.WithSigner(foreignEC), oidctest.WithKid(op.KeyID("ES256")))
		}, want: "invalid"},
		{name: "signed by unpublished key with known kid", mint: func() string {
			return op.MintJWT(nil, oidctest.WithAlg("ES256"), oidctest.WithSigner(foreignEC), oidctest.WithKid(op.KeyID("ES256")))
		}, want: "invalid"},
		{name: "no kid, key found by type", mint: func() string { return op.MintJWT(nil, oidctest.WithoutKid()) }, want: "ok"},
		{name: "jku pointing elsewhere is ignored", mint: func() string {
			return op.MintJWT(nil, oidctest.WithSigner(foreignEC), oidctest.WithAlg("ES256"), oidctest.WithKid("attacker"),
				oidctest.WithHeader("jku", other.URL(oidctest.JWKS)), oidctest.WithHeader("x5u", other.URL(oidctest.JWKS)))
		}, want: "invalid"},
		{name: "embedded jwk is ignored", mint: func() string {
			return op.MintJWT(nil, oidctest.WithSigner(foreignEC), oidctest.WithAlg("ES256"), oidctest.WithoutKid(),
				oidctest.WithHeader("jwk", map[string]any{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}))
		}, want: "invalid"},
		{name: "crit header", mint: func() string { return op.MintJWT(nil, oidctest.WithHeader("crit", []string{"exp"})) }, want: "invalid", wantNoNetwork: true},
		{name: "b64 header", mint: func() string { return op.MintJWT(nil, oidctest.WithHeader("b64", false)) }, want: "invalid", wantNoNetwork: true},
		{name: "nested JWT", mint: func() string { return op.MintJWT(nil, oidctest.WithHeader("cty", "JWT")) }, want: "invalid", wantNoNetwork: true},
		{name: "unknown alg", mint: func() string { return op.MintJWT(nil, oidctest.WithHeader("alg", "RS1")) }, want: "invalid", wantNoNetwork: true},
		{name: "kid not a string", mint: func() string { return op.MintJWT(nil, oidctest.WithKid(""), oidctest.WithHeader("kid", 7)) }, want: "invalid", wantNoNetwork: true},
		{name: "payload not JSON", mint: func() string {
			p := strings.Split(op.MintJWT(nil), ".")
			return p[0] + "." + base64.RawURLEncoding.EncodeToString([]byte("[1,2]")) + "." + p[2]
		}, want: "invalid", wantNoNetwork: true},
		{name: "payload not base64", mint: func() string {
			p := strings.Split(op.MintJWT(nil), ".")
			return p[0] + ".%%%." + p[2]
		}, want: "malformed", wantNoNetwork: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ic := c.ic
			if ic.Issuer == "" {
				ic = base
			}
			a := newAuthz(t, clk, noCache(ic), nil)
			if !c.wantNoNetwork {
				// Warm discovery and JWKS so that the case itself is what is measured.
				if err := a.Ready(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			tok := c.mint()
			op.ResetCounts()
			other.ResetCounts()
			id, err := a.Verify(context.Background(), tok)
			if got := errKind(err); got != c.want {
				t.Fatalf("got %s (%v), want %s", got, err, c.want)
			}
			if c.wantNoNetwork && (op.Total() != 0 || other.Total() != 0) {
				t.Fatalf("requests reached an OP: trusted %s, other %s", op.SortedCounts(), other.SortedCounts())
			}
			if other.Total() != 0 {
				t.Fatalf("the untrusted OP was contacted: %s", other.SortedCounts())
			}
			if err == nil {
				if id.Issuer != op.Issuer() || id.Subject() != oidctest.DefaultSubject && c.ic.RequireSub == nil || id.Sources != authz.SourceJWT ||
					id.Expiry.IsZero() || id.Claims.Map()["iss"] == nil || id.Parts.Header["alg"] == nil {
					t.Fatalf("identity %+v", id)
				}
			} else if strings.Contains(err.Error(), tok) {
				t.Fatal("error message contains the token")
			}
		})
	}
}

func TestDiscoveryAdvertisedAlgorithms(t *testing.T) {
	clk := newClock()
	op := newOP(t, clk, oidctest.WithSigningAlgs("ES256", "HS256", "none"))
	a := newAuthz(t, clk, noCache(never(op.IssuerConfig())), nil)
	ctx := context.Background()
	if _, err := a.Verify(ctx, op.MintJWT(nil, oidctest.WithAlg("ES256"))); err != nil {
		t.Fatalf("advertised alg: %v", err)
	}
	if _, err := a.Verify(ctx, op.MintJWT(nil)); errKind(err) != "invalid" {
		t.Fatalf("RS256 not advertised: %v", err)
	}
}

func TestUnknownKidRefreshOnceThenAccept(t *testing.T) {
	clk := newClock()
	op := newOP(t, clk)
	a := newAuthz(t, clk, noCache(never(op.IssuerConfig())), nil)
	ctx := context.Background()
	if _, err := a.Verify(ctx, op.MintJWT(nil)); err != nil {
		t.Fatal(err)
	}
	if n := op.Count(oidctest.JWKS); n != 1 {
		t.Fatalf("jwks fetches after warm-up: %d", n)
	}
	// A bad signature on a known kid triggers no fetch.
	bad := op.MintJWT(nil)
	if _, err := a.Verify(ctx, bad[:len(bad)-4]+"AAAA"); errKind(err) != "invalid" {
		t.Fatalf("bad signature: %v", err)
	}
	if n := op.Count(oidctest.JWKS); n != 1 {
		t.Fatalf("bad signature on a known kid fetched the JWKS (%d)", n)
	}

	op.Rotate()
	if _, err := a.Verify(ctx, op.MintJWT(nil)); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if n := op.Count(oidctest.JWKS); n != 2 {
		t.Fatalf("jwks fetches after rotation: %d, want 2", n)
	}
	// The old key is gone from the JWKS now, but keys are only looked up by kid in the
	// refreshed set: a token with the new kid still verifies without another fetch.
	if _, err := a.Verify(ctx, op.MintJWT(nil, oidctest.WithAlg("EdDSA"))); err != nil {
		t.Fatal(err)
	}

	// A second rotation within the refresh interval: the new kid is unknown and no
	// refresh is allowed yet. The key may be new, so this is 503, not 401.
	op.Rotate()
	tok := op.MintJWT(nil)
	verifyWant(t, a, tok, "unavailable", "within interval")
	wantFetches(t, op, oidctest.JWKS, 2, "within the interval")
	clk.Advance(authz.DefaultJWKSRefreshInterval)
	verifyWant(t, a, tok, "ok", "after interval")
	wantFetches(t, op, oidctest.JWKS, 3, "after interval")
}

func TestUnknownKidStorm(t *testing.T) {
	clk := newClock()
	op := newOP(t, clk)
	cfg := noCache(never(op.IssuerConfig()))
	cfg.JWKSRefreshInterval = authz.Duration(10 * time.Second)
	a := newAuthz(t, clk, cfg, nil)
	if err := a.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	tokens := make([]string, 1000)
	for i := range tokens {
		tokens[i] = op.MintJWT(nil, oidctest.WithAlg("ES256"), oidctest.WithKid("unknown-"+string(rune('a'+i%26))+time.Duration(i).String()))
	}
	for round := 1; round <= 3; round++ {
		op.ResetCounts()
		var wg sync.WaitGroup
		var mu sync.Mutex
		kinds := map[string]int{}
		for _, tok := range tokens {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := a.Verify(context.Background(), tok)
				mu.Lock()
				kinds[errKind(err)]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		// Kids the refresh did not find are invalid; kids that arrived after it, while
		// refreshes are rate-limited, are unavailable (their key may be new). Never ok.
		if kinds["invalid"]+kinds["unavailable"] != len(tokens) || kinds["invalid"] == 0 && round != 2 {
			t.Fatalf("round %d: outcomes %v", round, kinds)
		}
		if n := op.Count(oidctest.JWKS); n > 1 {
			t.Fatalf("round %d: %d JWKS fetches for 1000 unknown kids, want ≤ 1", round, n)
		}
		if round == 1 && op.Count(oidctest.JWKS) != 1 {
			t.Fatalf("round 1: unknown kids should trigger one refresh, got %d", op.Count(oidctest.JWKS))
		}
		if round == 2 && op.Count(oidctest.JWKS) != 0 {
			t.Fatalf("round 2 (same interval): %d fetches", op.Count(oidctest.JWKS))
		}
		if round == 2 {
			clk.Advance(10 * time.Second) // round 3 is in a new interval: one fetch allowed
		}
	}
}

func TestJWKSAndDiscoveryFailures(t *testing.T) {
	ctx := context.Background()
	t.Run("jwks 500 then recovery, with backoff", func(t *testing.T) {
		clk := newClock()
		op := newOP(t, clk)
		a := newAuthz(t, clk, noCache(never(op.IssuerConfig())), nil)
		op.SetFault(oidctest.JWKS, oidctest.Fault{Status: 500})
		tok := op.MintJWT(nil)
		for i := 0; i < 3; i++ {
			if _, err := a.Verify(ctx, tok); errKind(err) != "unavailable" {
				t.Fatalf("attempt %d: %v", i, err)
			}
		}
		if n := op.Count(oidctest.JWKS); n != 1 {
			t.Fatalf("failed JWKS fetched %d times within the backoff", n)
		}
		op.ClearFaults()
		clk.Advance(2 * time.Second)
		if _, err := a.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	})
	faults := map[string]oidctest.Fault{
		"discovery 503":       {Status: 503},
		"discovery html":      {HTML: true},
		"discovery malformed": {MalformedJSON: true},
		"discovery huge":      {HugeBody: authz.MaxResponseSize + 1},
		"discovery down":      {Close: true},
	}
	for name, f := range faults {
		t.Run(name, func(t *testing.T) {
			clk := newClock()
			op := newOP(t, clk)
			a := newAuthz(t, clk, noCache(never(op.IssuerConfig())), nil)
			op.SetFault(oidctest.Discovery, f)
			if _, err := a.Verify(ctx, op.MintJWT(nil)); errKind(err) != "unavailable" {
				t.Fatalf("got %v", err)
			}
			if err := a.Ready(ctx); err == nil {
				t.Fatal("Ready succeeded with a broken discovery")
			}
		})
	}
	for name, f := range map[string]oidctest.Fault{"jwks malformed": {MalformedJSON: true}, "jwks html": {HTML: true}, "jwks huge": {HugeBody: authz.MaxResponseSize}} {
		t.Run(name, func(t *testing.T) {
			clk := newClock()
			op := newOP(t, clk)
			a := newAuthz(t, clk, noCache(never(op.IssuerConfig())), nil)
			op.SetFault(oidctest.JWKS, f)
			if _, err := a.Verify(ctx, op.MintJWT(nil)); errKind(err) != "unavailable" {
				t.Fatalf("got %v", err)
			}
		})
	}
	t.Run("discovery names another issuer", func(t *testing.T) {
		clk := newClock()
		op := newOP(t, clk)
		evil := newOP(t, clk)
		ic := never(op.IssuerConfig())
		ic.DiscoveryURL = evil.URL(oidctest.Discovery)
		a := newAuthz(t, clk, noCache(ic), nil)
		if _, err := a.Verify(ctx, op.MintJWT(nil)); errKind(err) != "unavailable" {
			t.Fatalf("got %v", err)
		}
		if evil.Count(oidctest.JWKS) != 0 {
			t.Fatal("JWKS of the wrong issuer was fetched")
		}
	})
	t.Run("unknown kid refresh fails", func(t *testing.T) {
		_, op, a := newReadyAuthz(t)
		op.Rotate()
		op.SetFault(oidctest.JWKS, oidctest.Fault{Status: 502})
		tok := op.MintJWT(nil)
		if _, err := a.Verify(ctx, tok); errKind(err) != "unavailable" {
			t.Fatalf("got %v", err)
		}
		// Within the interval the failed refresh is not repeated, and the answer stays
		// "unavailable", not "invalid": we do not know the kid is bad.
		if _, err := a.Verify(ctx, tok); errKind(err) != "unavailable" {
			t.Fatalf("second: %v", err)
		}
		if n := op.Count(oidctest.JWKS); n != 2 {
			t.Fatalf("jwks fetches %d, want 2", n)
		}
	})
}
