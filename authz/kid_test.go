package authz_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// TestUnknownKidWhileRateLimitedIs503WithRetryAfter: right after an OP key rotation a
// token with the new key must not get a final 401 because a made-up kid spent the
// refresh slot: it gets 503 with Retry-After until the next refresh is allowed, and is
// accepted then. The made-up kid, which a refresh did not find, stays 401.
func TestUnknownKidWhileRateLimitedIs503WithRetryAfter(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	op := newOP(t, clk)
	pol, err := policy.New(policy.Config{Default: &policy.Requirement{Authenticated: true}})
	if err != nil {
		t.Fatal(err)
	}
	a := newAuthz(t, clk, noCache(never(op.IssuerConfig())), pol)
	if err := a.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	madeUp := op.MintJWT(nil, oidctest.WithKid("made-up"))
	verifyWant(t, a, madeUp, "invalid", "made-up kid (refresh did not find it)")
	clk.Advance(10 * time.Second)
	verifyWant(t, a, madeUp, "invalid", "made-up kid again, rate-limited (a refresh did not find it)")
	op.Rotate()
	genuine := op.MintJWT(nil)
	_, err = a.Verify(ctx, genuine)
	var ue *authz.UnavailableError
	if errKind(err) != "unavailable" || !errors.As(err, &ue) || ue.RetryAfter != authz.DefaultJWKSRefreshInterval-10*time.Second {
		t.Fatalf("new kid while rate-limited: %v (retry after %v), want unavailable, retry after 20s", err, ue)
	}
	d := a.Authorize(ctx, authz.Request{Method: "GET", Path: "/", Authorization: "Bearer " + genuine})
	if d.Outcome != authz.OutcomeUnavailable || d.RetryAfter != 20*time.Second {
		t.Fatalf("decision %v retry after %v", d.Outcome, d.RetryAfter)
	}
	wantFetches(t, op, oidctest.JWKS, 2, "start, made-up kid")
	clk.Advance(20 * time.Second)
	verifyWant(t, a, genuine, "ok", "after the interval")
}

// TestFailedKidRefreshRetriedAfterBackoff: when the refresh an unknown kid triggered
// failed, the next request after failBackoff (1s) asks the OP again; the old error is
// not served for the whole refresh interval.
func TestFailedKidRefreshRetriedAfterBackoff(t *testing.T) {
	clk, op, a := newReadyAuthz(t)
	op.Rotate()
	op.SetFault(oidctest.JWKS, oidctest.Fault{Status: 502})
	tok := op.MintJWT(nil)
	verifyWant(t, a, tok, "unavailable", "refresh failing")
	op.ClearFaults()
	clk.Advance(999 * time.Millisecond)
	verifyWant(t, a, tok, "unavailable", "within the back-off")
	wantFetches(t, op, oidctest.JWKS, 2, "within the back-off")
	clk.Advance(time.Millisecond)
	verifyWant(t, a, tok, "ok", "after the back-off")
}

// TestFailedDiscoveryRetriedByNextRequestAfterBackoff: a failed discovery is remembered
// for failBackoff (1s), so a flood does not hammer the OP; the first request after it
// asks again.
func TestFailedDiscoveryRetriedByNextRequestAfterBackoff(t *testing.T) {
	clk := newClock()
	op := newOP(t, clk)
	a := newAuthz(t, clk, noCache(never(op.IssuerConfig())), nil)
	op.SetFault(oidctest.Discovery, oidctest.Fault{Status: 503})
	tok := op.MintJWT(nil)
	for i := 0; i < 3; i++ {
		verifyWant(t, a, tok, "unavailable", "attempt "+itoa(i))
	}
	wantFetches(t, op, oidctest.Discovery, 1, "within the back-off")
	op.ClearFaults()
	clk.Advance(999 * time.Millisecond)
	verifyWant(t, a, tok, "unavailable", "within the back-off")
	clk.Advance(time.Millisecond)
	verifyWant(t, a, tok, "ok", "first request after the back-off")
	wantFetches(t, op, oidctest.Discovery, 2, "after the back-off")
}

// TestIntrospectionExtClaimsAreLifted: claims an OP nests under "ext" in its
// introspection answer (Ory Hydra and others) are lifted to the top level, so a policy
// names them without "ext." (a policy on "ext.groups" matches nothing). The top level
// wins over a lifted claim of the same name.
func TestIntrospectionExtClaimsAreLifted(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	op := newOP(t, clk)
	ic := op.IssuerConfig()
	ic.Userinfo, ic.Introspect = authz.UserinfoNever, authz.IntrospectAlways
	pol, err := policy.New(policy.Config{Routes: []policy.Route{
		{Name: "nested", Path: &policy.PathMatch{Prefix: "/nested"}, Require: &policy.Requirement{Groups: &policy.ValuesRequirement{Claim: "ext.groups", Values: policy.StringList{"admins"}}}},
		{Name: "lifted", Path: &policy.PathMatch{Prefix: "/lifted"}, Require: &policy.Requirement{Groups: &policy.ValuesRequirement{Values: policy.StringList{"admins"}}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	a := newAuthz(t, clk, noCache(ic), pol)
	tok := op.MintJWT(nil, oidctest.WithIntrospectionExt(map[string]any{"groups": []any{"admins"}, "sub": "not-the-top-level-sub"}))
	id, err := a.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if _, nested := id.Claims.Map()["ext"]; nested || id.Subject() != oidctest.DefaultSubject {
		t.Fatalf("claims %v subject %q", id.Claims.Map(), id.Subject())
	}
	for path, want := range map[string]authz.Outcome{"/lifted": authz.OutcomeAllow, "/nested": authz.OutcomeForbidden} {
		if d := a.Authorize(ctx, authz.Request{Method: "GET", Path: path, Authorization: "Bearer " + tok}); d.Outcome != want {
			t.Errorf("%s: %v (%s), want %v", path, d.Outcome, d.Reason, want)
		}
	}
}

// TestUnknownKidIs401OnlyWhenARefreshShouldHaveFoundIt: while JWKS refreshes are
// rate-limited, an unknown kid is 401 when a refresh should have found it — the OP has
// withdrawn it, or the token was issued (iat + leeway) before the current set was
// fetched — and 503 otherwise.
func TestUnknownKidIs401OnlyWhenARefreshShouldHaveFoundIt(t *testing.T) {
	ctx := context.Background()
	clk, op, a := newReadyAuthz(t)
	oldKey := op.MintJWT(nil) // kid 1, not yet verified
	clk.Advance(2 * time.Minute)
	op.Rotate() // kid 2 only: kid 1 withdrawn
	if _, err := a.Verify(ctx, op.MintJWT(nil)); err != nil {
		t.Fatalf("kid 2 (refresh): %v", err)
	}
	for _, tc := range []struct {
		name, tok, want string
	}{
		{"withdrawn kid", oldKey, "invalid"},
		{"unknown kid issued long before the set was fetched", op.MintJWT(map[string]any{"iat": clk.Now().Add(-2 * time.Minute).Unix()}, oidctest.WithKid("never-published")), "invalid"},
		{"unknown kid issued after the set was fetched", op.MintJWT(nil, oidctest.WithKid("maybe-new")), "unavailable"},
		{"unknown kid without iat", op.MintJWT(map[string]any{"iat": nil}, oidctest.WithKid("no-iat")), "unavailable"},
	} {
		if _, err := a.Verify(ctx, tc.tok); errKind(err) != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
	}
	if n := op.Count(oidctest.JWKS); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (start, kid 2)", n)
	}
}
