package authz_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
)

var logoutEvents = map[string]any{authz.BackchannelLogoutEvent: map[string]any{}}

var jtiN int

// logoutToken mints a logout token of op; claims override (nil deletes).
func logoutToken(op *oidctest.OP, claims map[string]any, opts ...oidctest.MintOption) string {
	jtiN++
	c := map[string]any{"aud": op.ClientID(), "jti": "lo-" + strconv.Itoa(jtiN), "events": logoutEvents, "sid": "s1", "exp": nil}
	for k, v := range claims {
		c[k] = v
	}
	return op.MintJWT(c, append([]oidctest.MintOption{oidctest.WithHeader("typ", "logout+jwt")}, opts...)...)
}

// TestLogoutEvictsEverythingOfTheSubject: one logout evicts every cached identity of
// the subject (and of the session) at once; an opaque token the OP revoked is then
// refused, other users stay cached.
func TestLogoutEvictsEverythingOfTheSubject(t *testing.T) {
	clk := newClock()
	op := newOP(t, clk)
	ic := never(op.IssuerConfig())
	a := newAuthz(t, clk, authz.Config{Issuers: []authz.IssuerConfig{ic}}, testPolicy(t), authz.WithLogoutIndex())
	ctx := context.Background()
	alice1 := op.MintJWT(map[string]any{"sub": "alice"})
	alice2 := op.MintJWT(map[string]any{"sub": "alice", "sid": "s-other"})
	aliceOpaque := op.MintOpaque(map[string]any{"sub": "alice"}, oidctest.WithIntrospection(map[string]any{"sub": "alice"}))
	carol := op.MintJWT(map[string]any{"sub": "carol", "sid": "s9"}) // another user in the logged-out session: evicted too
	bob := op.MintJWT(map[string]any{"sub": "bob"})
	req := func(tok string) authz.Request {
		return authz.Request{Authorization: "Bearer " + tok, Method: "GET", Host: "h", Path: "/"}
	}
	for _, tok := range []string{alice1, alice2, aliceOpaque, carol, bob} {
		for i := range 2 {
			if d := a.Authorize(ctx, req(tok)); d.Outcome != authz.OutcomeAllow || d.Cached != (i == 1) {
				t.Fatalf("warm-up %d: %v cached=%v %s", i, d.Outcome, d.Cached, d.Reason)
			}
		}
	}
	op.Revoke(aliceOpaque)
	if d := a.Authorize(ctx, req(aliceOpaque)); d.Outcome != authz.OutcomeAllow || !d.Cached {
		t.Fatalf("revoked at the OP but cached: %v cached=%v", d.Outcome, d.Cached)
	}
	res, err := a.Logout(ctx, logoutToken(op, map[string]any{"sub": "alice", "sid": "s9"}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Evicted != 4 || res.Subject != "alice" || res.SessionID != "s9" || res.Issuer != op.Issuer() {
		t.Fatalf("result %+v, want 4 evictions (3 of alice, 1 of session s9)", res)
	}
	if d := a.Authorize(ctx, req(aliceOpaque)); d.Outcome != authz.OutcomeInvalidToken {
		t.Fatalf("revoked opaque token after logout: %v %s", d.Outcome, d.Reason)
	}
	for name, tok := range map[string]string{"alice JWT": alice1, "carol": carol} {
		// A JWT is verified locally again: evicted, not revoked (documented).
		if d := a.Authorize(ctx, req(tok)); d.Outcome != authz.OutcomeAllow || d.Cached {
			t.Fatalf("%s after logout: %v cached=%v", name, d.Outcome, d.Cached)
		}
	}
	if d := a.Authorize(ctx, req(bob)); d.Outcome != authz.OutcomeAllow || !d.Cached {
		t.Fatalf("bob after alice's logout: %v cached=%v", d.Outcome, d.Cached)
	}
}

func TestLogoutRefusals(t *testing.T) {
	clk := newClock()
	op := newOP(t, clk)
	otherOP := newOP(t, clk)
	ic := never(op.IssuerConfig())
	replayed := logoutToken(op, nil)
	for _, c := range []struct {
		name    string
		tok     string
		noCID   bool
		rpAud   bool
		prepare func(a *authz.Authorizer)
	}{
		{name: "not a JWT", tok: "opaque"},
		{name: "wrong aud", tok: logoutToken(op, map[string]any{"aud": "someone-else"})},
		{name: "no aud", tok: logoutToken(op, map[string]any{"aud": nil})},
		{name: "issuer without client_id", tok: logoutToken(op, nil), noCID: true},
		{name: "client_id of flaat-extauthz when logout_audiences names the RP", tok: logoutToken(op, nil), rpAud: true},
		{name: "no events", tok: logoutToken(op, map[string]any{"events": nil})},
		{name: "other event", tok: logoutToken(op, map[string]any{"events": map[string]any{"urn:other": map[string]any{}}})},
		{name: "event not an object", tok: logoutToken(op, map[string]any{"events": map[string]any{authz.BackchannelLogoutEvent: "x"}})},
		{name: "nonce", tok: logoutToken(op, map[string]any{"nonce": "n"})},
		{name: "neither sub nor sid", tok: logoutToken(op, map[string]any{"sub": nil, "sid": nil})},
		{name: "no jti", tok: logoutToken(op, map[string]any{"jti": nil})},
		{name: "no iat", tok: logoutToken(op, map[string]any{"iat": nil})},
		{name: "stale iat", tok: logoutToken(op, map[string]any{"iat": clk.Now().Add(-time.Hour).Unix()})},
		{name: "iat in the future", tok: logoutToken(op, map[string]any{"iat": clk.Now().Add(time.Hour).Unix()})},
		{name: "typ at+jwt", tok: logoutToken(op, nil, oidctest.WithHeader("typ", "at+jwt"))},
		{name: "untrusted issuer", tok: logoutToken(otherOP, nil)},
		{name: "bad signature", tok: flipLast(logoutToken(op, nil))},
		{name: "replayed", tok: replayed, prepare: func(a *authz.Authorizer) {
			if _, err := a.Logout(context.Background(), replayed); err != nil {
				t.Fatalf("first use: %v", err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := ic
			if c.noCID {
				cfg.ClientID, cfg.ClientSecret = "", ""
			}
			if c.rpAud {
				cfg.LogoutAudiences = []string{"web-app"}
			}
			a := newAuthz(t, clk, authz.Config{Issuers: []authz.IssuerConfig{cfg}}, testPolicy(t), authz.WithLogoutIndex())
			if c.prepare != nil {
				c.prepare(a)
			}
			_, err := a.Logout(context.Background(), c.tok)
			t.Log(err)
			if !errors.Is(err, authz.ErrInvalidLogoutToken) {
				t.Fatalf("err = %v, want ErrInvalidLogoutToken", err)
			}
		})
	}
	t.Run("logout_audiences accepts the RP's client id", func(t *testing.T) {
		cfg := ic
		cfg.LogoutAudiences = []string{"web-app", "other-app"}
		a := newAuthz(t, clk, authz.Config{Issuers: []authz.IssuerConfig{cfg}}, testPolicy(t), authz.WithLogoutIndex())
		if _, err := a.Logout(context.Background(), logoutToken(op, map[string]any{"aud": []string{"other-app"}})); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("OP unreachable", func(t *testing.T) {
		a := newAuthz(t, clk, authz.Config{Issuers: []authz.IssuerConfig{ic}}, testPolicy(t), authz.WithLogoutIndex())
		tok := logoutToken(op, nil)
		op.Down()
		defer op.ClearFaults()
		if _, err := a.Logout(context.Background(), tok); !errors.Is(err, authz.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	})
}

// FuzzLogout: whatever a logout_token holds, Logout never panics, answers a refusal
// (ErrInvalidLogoutToken) or an outage, and accepts only what the OP signed as a
// logout token.
func FuzzLogout(f *testing.F) {
	clk := newClock()
	op := oidctest.New(f, oidctest.WithClock(clk.Now))
	a := newAuthz(f, clk, authz.Config{Issuers: []authz.IssuerConfig{never(op.IssuerConfig())}}, nil, authz.WithLogoutIndex())
	if err := a.Ready(context.Background()); err != nil {
		f.Fatal(err)
	}
	f.Add(logoutToken(op, nil))
	f.Add(logoutToken(op, map[string]any{"nonce": "x"}))
	f.Add(op.MintJWT(nil))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		res, err := a.Logout(context.Background(), tok)
		switch {
		case err == nil:
			if res.Issuer != op.Issuer() || (res.Subject == "" && res.SessionID == "") {
				t.Fatalf("accepted %+v", res)
			}
		case !errors.Is(err, authz.ErrInvalidLogoutToken) && !errors.Is(err, authz.ErrUnavailable):
			t.Fatalf("error of neither kind: %v", err)
		}
	})
}

// TestLogoutDisabledWithoutIndex: without WithLogoutIndex, Logout evicts nothing and
// says so instead of answering success.
func TestLogoutDisabledWithoutIndex(t *testing.T) {
	clk := newClock()
	op := newOP(t, clk)
	a := newAuthz(t, clk, authz.Config{Issuers: []authz.IssuerConfig{never(op.IssuerConfig())}}, testPolicy(t))
	if _, err := a.Logout(context.Background(), logoutToken(op, nil)); !errors.Is(err, authz.ErrLogoutDisabled) {
		t.Fatalf("err = %v, want ErrLogoutDisabled", err)
	}
}
