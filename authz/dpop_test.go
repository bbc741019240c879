package authz_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
)

func mustKey(t testing.TB, alg string, clk *fakeClock) *oidctest.DPoPKey {
	t.Helper()
	k, err := oidctest.NewDPoPKey(alg, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func thumb(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

const htu = "https://api.example/items/1"

// dpopReq is a request to htu with the given credential and proof.
func dpopReq(auth, proof string) authz.Request {
	return authz.Request{Authorization: auth, DPoP: proof, Method: "GET", Scheme: "https", Host: "api.example", Path: "/items/1?x=1"}
}

// TestDPoP is the RFC 9449 table: each case is one request against an issuer in mode
// allowed (unless it says otherwise), and the outcome it must get.
func TestDPoP(t *testing.T) {
	clk := newClock()
	op := newOP(t, clk)
	key := mustKey(t, "ES256", clk)
	other := mustKey(t, "ES256", clk)
	rsa := mustKey(t, "RS256", clk)
	bound := op.MintJWT(map[string]any{"cnf": key.Cnf()})
	rsaBound := op.MintJWT(map[string]any{"cnf": rsa.Cnf()})
	plain := op.MintJWT(nil)
	opaqueBound := op.MintOpaque(nil, oidctest.WithIntrospection(map[string]any{"cnf": key.Cnf()}))
	replayed := key.Proof("GET", htu, bound)

	type tc struct {
		name    string
		mode    string // issuer dpop mode ("" allowed)
		req     authz.Request
		want    authz.Outcome
		reason  string // substring of the reason
		prepare func(a *authz.Authorizer)
	}
	cases := []tc{
		{name: "valid proof ES256", req: dpopReq("DPoP "+bound, key.Proof("GET", htu, bound)), want: authz.OutcomeAllow},
		{name: "valid proof RS256", req: dpopReq("DPoP "+rsaBound, rsa.Proof("GET", htu, rsaBound)), want: authz.OutcomeAllow},
		{name: "valid proof, scheme lower-case", req: dpopReq("dpop "+bound, key.Proof("GET", htu, bound)), want: authz.OutcomeAllow},
		{name: "valid proof, htu with default port and upper-case host", req: dpopReq("DPoP "+bound, key.Proof("GET", "https://API.example:443/items/1", bound)), want: authz.OutcomeAllow},
		{name: "valid proof, opaque token bound via introspection", req: dpopReq("DPoP "+opaqueBound, key.Proof("GET", htu, opaqueBound)), want: authz.OutcomeAllow},
		{name: "bearer token, no proof", req: dpopReq("Bearer "+plain, ""), want: authz.OutcomeAllow},
		{name: "replayed proof", req: dpopReq("DPoP "+bound, replayed), want: authz.OutcomeInvalidDPoPProof, reason: "replayed",
			prepare: func(a *authz.Authorizer) {
				if d := a.Authorize(context.Background(), dpopReq("DPoP "+bound, replayed)); d.Outcome != authz.OutcomeAllow {
					t.Fatalf("first use: %v %s", d.Outcome, d.Reason)
				}
			}},
		{name: "no proof", req: dpopReq("DPoP "+bound, ""), want: authz.OutcomeInvalidDPoPProof, reason: "no DPoP header"},
		{name: "two proofs", req: dpopReq("DPoP "+bound, key.Proof("GET", htu, bound)+","+key.Proof("GET", htu, bound)), want: authz.OutcomeInvalidDPoPProof, reason: "more than one"},
		{name: "wrong htm", req: dpopReq("DPoP "+bound, key.Proof("POST", htu, bound)), want: authz.OutcomeInvalidDPoPProof, reason: "htm"},
		{name: "htm lower-case", req: dpopReq("DPoP "+bound, key.Proof("get", htu, bound)), want: authz.OutcomeInvalidDPoPProof, reason: "htm"},
		{name: "wrong htu path", req: dpopReq("DPoP "+bound, key.Proof("GET", "https://api.example/items/2", bound)), want: authz.OutcomeInvalidDPoPProof, reason: "path"},
		{name: "wrong htu host", req: dpopReq("DPoP "+bound, key.Proof("GET", "https://evil.example/items/1", bound)), want: authz.OutcomeInvalidDPoPProof, reason: "host"},
		{name: "wrong htu scheme", req: dpopReq("DPoP "+bound, key.Proof("GET", "http://api.example/items/1", bound)), want: authz.OutcomeInvalidDPoPProof, reason: "scheme"},
		{name: "unknown original scheme", req: func() authz.Request {
			r := dpopReq("DPoP "+bound, key.Proof("GET", htu, bound))
			r.Scheme = ""
			return r
		}(), want: authz.OutcomeInvalidDPoPProof, reason: "scheme or host is unknown"},
		{name: "wrong ath", req: dpopReq("DPoP "+bound, key.Proof("GET", htu, plain)), want: authz.OutcomeInvalidDPoPProof, reason: "ath"},
		{name: "no ath", req: dpopReq("DPoP "+bound, key.Proof("GET", htu, "")), want: authz.OutcomeInvalidDPoPProof, reason: "ath"},
		{name: "stale iat", req: dpopReq("DPoP "+bound, key.Proof("GET", htu, bound, oidctest.ProofAge(key, 2*time.Minute))), want: authz.OutcomeInvalidDPoPProof, reason: "too old"},
		{name: "iat in the future", req: dpopReq("DPoP "+bound, key.Proof("GET", htu, bound, oidctest.ProofAge(key, -time.Minute))), want: authz.OutcomeInvalidDPoPProof, reason: "future"},
		{name: "proof signed by another key", req: dpopReq("DPoP "+bound, other.Proof("GET", htu, bound)), want: authz.OutcomeInvalidDPoPProof, reason: "cnf.jkt"},
		{name: "typ JWT", req: dpopReq("DPoP "+bound, key.Proof("GET", htu, bound, oidctest.ProofHeader("typ", "JWT"))), want: authz.OutcomeInvalidDPoPProof, reason: "typ"},
		{name: "no jwk", req: dpopReq("DPoP "+bound, key.Proof("GET", htu, bound, oidctest.ProofHeader("jwk", nil))), want: authz.OutcomeInvalidDPoPProof, reason: "jwk"},
		{name: "no jti", req: dpopReq("DPoP "+bound, key.Proof("GET", htu, bound, oidctest.ProofClaim("jti", nil))), want: authz.OutcomeInvalidDPoPProof, reason: "jti"},
		{name: "crit header", req: dpopReq("DPoP "+bound, key.Proof("GET", htu, bound, oidctest.ProofHeader("crit", []string{"x"}))), want: authz.OutcomeInvalidDPoPProof},
		{name: "tampered signature", req: dpopReq("DPoP "+bound, flipLast(key.Proof("GET", htu, bound))), want: authz.OutcomeInvalidDPoPProof, reason: "signature"},
		{name: "bound token as bearer (downgrade)", req: dpopReq("Bearer "+bound, ""), want: authz.OutcomeInvalidToken, reason: "sent as a bearer"},
		{name: "bound token as bearer with a proof (downgrade)", req: dpopReq("Bearer "+bound, key.Proof("GET", htu, bound)), want: authz.OutcomeInvalidToken, reason: "sent as a bearer"},
		{name: "opaque bound token as bearer (downgrade)", req: dpopReq("Bearer "+opaqueBound, ""), want: authz.OutcomeInvalidToken, reason: "sent as a bearer"},
		{name: "unbound token with DPoP scheme", req: dpopReq("DPoP "+plain, key.Proof("GET", htu, plain)), want: authz.OutcomeInvalidToken, reason: "not DPoP-bound"},
		{name: "required: bearer token refused", mode: authz.DPoPRequired, req: dpopReq("Bearer "+plain, ""), want: authz.OutcomeInvalidToken, reason: "must be DPoP-bound"},
		{name: "required: bound token with proof", mode: authz.DPoPRequired, req: dpopReq("DPoP "+bound, key.Proof("GET", htu, bound)), want: authz.OutcomeAllow},
		{name: "disabled: bound token refused", mode: authz.DPoPDisabled, req: dpopReq("DPoP "+bound, key.Proof("GET", htu, bound)), want: authz.OutcomeInvalidToken, reason: "not accepted"},
		{name: "disabled: bearer token", mode: authz.DPoPDisabled, req: dpopReq("Bearer "+plain, ""), want: authz.OutcomeAllow},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ic := op.IssuerConfig()
			ic.DPoP = c.mode
			ic.Userinfo = authz.UserinfoNever
			a := newAuthz(t, clk, authz.Config{Issuers: []authz.IssuerConfig{ic}}, testPolicy(t))
			if c.prepare != nil {
				c.prepare(a)
			}
			d := a.Authorize(context.Background(), c.req)
			if d.Outcome != c.want || !strings.Contains(d.Reason, c.reason) {
				t.Fatalf("got %v %q (%v), want %v containing %q", d.Outcome, d.Reason, d.Err, c.want, c.reason)
			}
			if d.DPoP != strings.HasPrefix(strings.ToLower(c.req.Authorization), "dpop ") {
				t.Errorf("Decision.DPoP = %v for %q", d.DPoP, c.req.Authorization[:6])
			}
		})
	}
}

func flipLast(s string) string {
	b := []byte(s)
	i := len(b) - 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// TestDPoPProofNeverCached: the identity is cached, the proof is verified on every
// request (a replay of a proof accepted with a cold cache is refused with a warm one).
func TestDPoPProofNeverCached(t *testing.T) {
	clk := newClock()
	op := newOP(t, clk)
	key := mustKey(t, "ES256", clk)
	tok := op.MintJWT(map[string]any{"cnf": key.Cnf()})
	a := newAuthz(t, clk, authz.Config{Issuers: []authz.IssuerConfig{never(op.IssuerConfig())}}, testPolicy(t))
	p := key.Proof("GET", htu, tok)
	if d := a.Authorize(context.Background(), dpopReq("DPoP "+tok, p)); d.Outcome != authz.OutcomeAllow || d.Cached {
		t.Fatalf("first: %v cached=%v %s", d.Outcome, d.Cached, d.Reason)
	}
	if d := a.Authorize(context.Background(), dpopReq("DPoP "+tok, p)); d.Outcome != authz.OutcomeInvalidDPoPProof || !d.Cached {
		t.Fatalf("replay with warm cache: %v cached=%v %s", d.Outcome, d.Cached, d.Reason)
	}
	if d := a.Authorize(context.Background(), dpopReq("DPoP "+tok, key.Proof("GET", htu, tok))); d.Outcome != authz.OutcomeAllow || !d.Cached {
		t.Fatalf("fresh proof, warm cache: %v cached=%v %s", d.Outcome, d.Cached, d.Reason)
	}
	if d := a.Authorize(context.Background(), dpopReq("Bearer "+tok, "")); d.Outcome != authz.OutcomeInvalidToken || !d.Cached {
		t.Fatalf("downgrade with warm cache: %v cached=%v %s", d.Outcome, d.Cached, d.Reason)
	}
	// The jti is forgotten after max_age + clock_skew; by then the proof is too old.
	clk.Advance(authz.DefaultDPoPMaxAge + authz.DefaultDPoPClockSkew + time.Second)
	tok2 := op.MintJWT(map[string]any{"cnf": key.Cnf()})
	if d := a.Authorize(context.Background(), dpopReq("DPoP "+tok2, p)); d.Outcome != authz.OutcomeInvalidDPoPProof {
		t.Fatalf("old proof after the window: %v %s", d.Outcome, d.Reason)
	}
}

// TestDPoPReplayCacheFullFailsClosed: a full replay cache refuses new proofs (503).
func TestDPoPReplayCacheFullFailsClosed(t *testing.T) {
	clk := newClock()
	op := newOP(t, clk)
	key := mustKey(t, "ES256", clk)
	tok := op.MintJWT(map[string]any{"cnf": key.Cnf()})
	cfg := authz.Config{Issuers: []authz.IssuerConfig{never(op.IssuerConfig())}, DPoP: authz.DPoPConfig{ReplayCacheSize: 2}}
	a := newAuthz(t, clk, cfg, testPolicy(t))
	for i, want := range []authz.Outcome{authz.OutcomeAllow, authz.OutcomeAllow, authz.OutcomeUnavailable} {
		if d := a.Authorize(context.Background(), dpopReq("DPoP "+tok, key.Proof("GET", htu, tok))); d.Outcome != want {
			t.Fatalf("proof %d: %v %s, want %v", i, d.Outcome, d.Reason, want)
		}
	}
	clk.Advance(authz.DefaultDPoPMaxAge + authz.DefaultDPoPClockSkew)
	if d := a.Authorize(context.Background(), dpopReq("DPoP "+tok, key.Proof("GET", htu, tok))); d.Outcome != authz.OutcomeAllow {
		t.Fatalf("after the window: %v %s", d.Outcome, d.Reason)
	}
}

// TestCertificateBound is the RFC 8705 table.
func TestCertificateBound(t *testing.T) {
	clk := newClock()
	op := newOP(t, clk)
	good, bad := thumb("client-cert-der"), thumb("other-cert-der")
	bound := op.MintJWT(map[string]any{"cnf": map[string]any{"x5t#S256": good}})
	plain := op.MintJWT(nil)
	opaque := op.MintOpaque(nil, oidctest.WithIntrospection(map[string]any{"cnf": map[string]any{"x5t#S256": good}}))
	req := func(tok, cert string) authz.Request {
		return authz.Request{Authorization: "Bearer " + tok, Method: "GET", Host: "api.example", Path: "/", ClientCertThumbprint: cert}
	}
	for _, c := range []struct {
		name, mode string
		req        authz.Request
		want       authz.Outcome
	}{
		{"bound, matching certificate", "", req(bound, good), authz.OutcomeAllow},
		{"bound opaque, matching certificate", "", req(opaque, good), authz.OutcomeAllow},
		{"bound, other certificate", "", req(bound, bad), authz.OutcomeInvalidToken},
		{"bound opaque, other certificate", "", req(opaque, bad), authz.OutcomeInvalidToken},
		{"bound, no certificate", "", req(bound, ""), authz.OutcomeInvalidToken},
		{"unbound, no certificate", "", req(plain, ""), authz.OutcomeAllow},
		{"unbound, with certificate", "", req(plain, good), authz.OutcomeAllow},
		{"required: unbound refused", authz.MTLSRequired, req(plain, good), authz.OutcomeInvalidToken},
		{"required: bound, matching", authz.MTLSRequired, req(bound, good), authz.OutcomeAllow},
	} {
		t.Run(c.name, func(t *testing.T) {
			ic := never(op.IssuerConfig())
			ic.MTLSBound = c.mode
			a := newAuthz(t, clk, authz.Config{Issuers: []authz.IssuerConfig{ic}}, testPolicy(t))
			if d := a.Authorize(context.Background(), c.req); d.Outcome != c.want {
				t.Fatalf("got %v %q, want %v", d.Outcome, d.Reason, c.want)
			}
		})
	}
}

// TestConfirmationClaims: malformed or disagreeing cnf members invalidate the token.
func TestConfirmationClaims(t *testing.T) {
	clk := newClock()
	op := newOP(t, clk)
	key := mustKey(t, "ES256", clk)
	for _, c := range []struct {
		name string
		tok  string
	}{
		{"cnf not an object", op.MintJWT(map[string]any{"cnf": "x"})},
		{"jkt not a string", op.MintJWT(map[string]any{"cnf": map[string]any{"jkt": 1}})},
		{"empty jkt", op.MintJWT(map[string]any{"cnf": map[string]any{"jkt": ""}})},
		{"sid not a string", op.MintJWT(map[string]any{"sid": 3})},
		{"token and introspection disagree", op.MintJWT(map[string]any{"cnf": key.Cnf()},
			oidctest.WithIntrospection(map[string]any{"cnf": map[string]any{"jkt": "other"}}))},
	} {
		t.Run(c.name, func(t *testing.T) {
			ic := never(op.IssuerConfig())
			ic.Introspect = authz.IntrospectAlways
			a := newAuthz(t, clk, authz.Config{Issuers: []authz.IssuerConfig{ic}}, testPolicy(t))
			d := a.Authorize(context.Background(), dpopReq("DPoP "+c.tok, key.Proof("GET", htu, c.tok)))
			if d.Outcome != authz.OutcomeInvalidToken {
				t.Fatalf("got %v %q", d.Outcome, d.Reason)
			}
		})
	}
}

func TestParseDPoPProofRefusals(t *testing.T) {
	clk := newClock()
	key := mustKey(t, "ES256", clk)
	ok := key.Proof("GET", htu, "t")
	for _, c := range []struct{ name, v string }{
		{"empty", ""},
		{"huge", strings.Repeat("a", authz.MaxDPoPProofSize+1)},
		{"two parts", "a.b"},
		{"four parts", ok + ".x"},
		{"space", strings.Replace(ok, ".", " .", 1)},
		{"padding", ok + "="},
		{"not base64 header", "!!!." + ok[strings.Index(ok, ".")+1:]},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := authz.ParseDPoPProof(c.v, authz.DefaultDPoPAlgorithms); !errors.Is(err, authz.ErrInvalidDPoPProof) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	p, err := authz.ParseDPoPProof(ok, authz.DefaultDPoPAlgorithms)
	if err != nil || p.JKT != key.JKT() || p.HTM != "GET" || p.HTU != htu || p.ATH != thumb("t") {
		t.Fatalf("valid proof: %+v %v", p, err)
	}
	if _, err := authz.ParseDPoPProof(ok, []string{"RS256"}); !errors.Is(err, authz.ErrInvalidDPoPProof) {
		t.Fatalf("alg outside the allow-list: %v", err)
	}
}

// TestDPoPProofMemberNamesAreExact: JWS and JWT member names are case-sensitive; a
// signed proof that names a required claim in another case lacks it (encoding/json's
// struct decoding matched names case-insensitively and took "HTM" for "htm").
func TestDPoPProofMemberNamesAreExact(t *testing.T) {
	clk := newClock()
	key := mustKey(t, "ES256", clk)
	for _, c := range []struct {
		name string
		opts []oidctest.ProofOption
	}{
		{"HTM for htm", []oidctest.ProofOption{oidctest.ProofClaim("htm", nil), oidctest.ProofClaim("HTM", "GET")}},
		{"Jti for jti", []oidctest.ProofOption{oidctest.ProofClaim("jti", nil), oidctest.ProofClaim("Jti", "x")}},
		{"IAT for iat", []oidctest.ProofOption{oidctest.ProofClaim("iat", nil), oidctest.ProofClaim("IAT", clk.Now().Unix())}},
		{"iat as a string", []oidctest.ProofOption{oidctest.ProofClaim("iat", "1")}},
		{"ath an array", []oidctest.ProofOption{oidctest.ProofClaim("ath", []any{})}},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := key.Proof("GET", htu, "t", c.opts...)
			if _, err := authz.ParseDPoPProof(v, authz.DefaultDPoPAlgorithms); !errors.Is(err, authz.ErrInvalidDPoPProof) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

// FuzzParseDPoPProof: whatever the DPoP header holds, ParseDPoPProof returns a proof
// or an ErrInvalidDPoPProof, never panics, and a proof it returns has every required claim.
func FuzzParseDPoPProof(f *testing.F) {
	clk := newClock()
	key := mustKey(f, "ES256", clk)
	f.Add(key.Proof("GET", htu, "tok"))
	f.Add(key.Proof("POST", "https://x/y", "", oidctest.ProofHeader("typ", "JWT")))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c,d.e.f")
	f.Fuzz(func(t *testing.T, v string) {
		p, err := authz.ParseDPoPProof(v, authz.DefaultDPoPAlgorithms)
		if err != nil {
			if !errors.Is(err, authz.ErrInvalidDPoPProof) {
				t.Fatalf("error does not wrap ErrInvalidDPoPProof: %v", err)
			}
			return
		}
		if p.JKT == "" || p.JTI == "" || p.HTM == "" || p.HTU == "" {
			t.Fatalf("accepted proof without a required part: %+v", p)
		}
	})
}

// TestDPoPReplayAcrossReload: an Authorizer built WithReplayState(old) (a reload)
// refuses a proof the old one accepted; with another replay window it starts afresh.
func TestDPoPReplayAcrossReload(t *testing.T) {
	clk := newClock()
	op := newOP(t, clk)
	key := mustKey(t, "ES256", clk)
	tok := op.MintJWT(map[string]any{"cnf": key.Cnf()})
	cfg := authz.Config{Issuers: []authz.IssuerConfig{never(op.IssuerConfig())}}
	old := newAuthz(t, clk, cfg, testPolicy(t))
	p := key.Proof("GET", htu, tok)
	if d := old.Authorize(context.Background(), dpopReq("DPoP "+tok, p)); d.Outcome != authz.OutcomeAllow {
		t.Fatalf("old: %v %s", d.Outcome, d.Reason)
	}
	reloaded := newAuthz(t, clk, cfg, testPolicy(t), authz.WithReplayState(old))
	if d := reloaded.Authorize(context.Background(), dpopReq("DPoP "+tok, p)); d.Outcome != authz.OutcomeInvalidDPoPProof {
		t.Fatalf("replay after reload: %v %s", d.Outcome, d.Reason)
	}
	cfg.DPoP.MaxAge = authz.Duration(30 * time.Second)
	changed := newAuthz(t, clk, cfg, testPolicy(t), authz.WithReplayState(old))
	if d := changed.Authorize(context.Background(), dpopReq("DPoP "+tok, key.Proof("GET", htu, tok))); d.Outcome != authz.OutcomeAllow {
		t.Fatalf("fresh proof after a reload with another window: %v %s", d.Outcome, d.Reason)
	}
}

// TestValidateSenderConstraints: every bad DPoP, mTLS and logout setting is reported,
// with its location, in one error.
func TestValidateSenderConstraints(t *testing.T) {
	cfg := authz.Config{
		Issuers: []authz.IssuerConfig{{Issuer: "https://op.example", DPoP: "sometimes", MTLSBound: "maybe", LogoutAudiences: []string{" "}}},
		DPoP:    authz.DPoPConfig{Algorithms: []string{"HS256", "none"}, MaxAge: authz.Duration(-1), ClockSkew: authz.Duration(time.Hour), ReplayCacheSize: -1},
		Logout:  authz.LogoutConfig{MaxAge: authz.Duration(2 * time.Hour), ReplayCacheSize: -5},
	}
	err := cfg.Validate()
	for _, want := range []string{"issuers[0].dpop", "issuers[0].mtls_bound", "issuers[0].logout_audiences[0]",
		"verification.dpop.algorithms[0]", "verification.dpop.algorithms[1]", "verification.dpop.max_age",
		"verification.dpop.clock_skew", "verification.dpop.replay_cache_size", "verification.logout.max_age",
		"verification.logout.replay_cache_size"} {
		if err == nil || !strings.Contains(err.Error(), want+":") {
			t.Errorf("no problem reported for %s in %v", want, err)
		}
	}
	ok := authz.Config{Issuers: []authz.IssuerConfig{{Issuer: "https://op.example", DPoP: authz.DPoPRequired, MTLSBound: authz.MTLSRequired}},
		DPoP: authz.DPoPConfig{Algorithms: []string{"ES256"}}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
}
