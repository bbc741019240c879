package authz_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/internal/testutil/clocktest"
	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// fakeClock is the manual clock shared by the Authorizer and the OPs.
type fakeClock = clocktest.Clock

func newClock() *fakeClock { return clocktest.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newAuthz builds an Authorizer with the clock and closes it at the end of the test.
func newAuthz(t testing.TB, clk *fakeClock, cfg authz.Config, pol *policy.Engine, opts ...authz.Option) *authz.Authorizer {
	t.Helper()
	opts = append([]authz.Option{authz.WithClock(clk.Now), authz.WithLogger(quiet)}, opts...)
	a, err := authz.New(cfg, pol, opts...)
	if err != nil {
		t.Fatalf("authz.New: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// noCache is a Config with the identity cache off, so that every Verify reaches the OP.
func noCache(issuers ...authz.IssuerConfig) authz.Config {
	return authz.Config{Issuers: issuers, Cache: authz.CacheConfig{Disabled: true}}
}

// never sets userinfo: never on an issuer config.
func never(ic authz.IssuerConfig) authz.IssuerConfig {
	ic.Userinfo = authz.UserinfoNever
	return ic
}

// errKind names the class of an error for table assertions.
func errKind(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, authz.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, authz.ErrUntrustedIssuer):
		return "untrusted"
	case errors.Is(err, authz.ErrExpired):
		return "expired"
	case errors.Is(err, authz.ErrInactive):
		return "inactive"
	case errors.Is(err, authz.ErrMalformed):
		return "malformed"
	case errors.Is(err, authz.ErrNoToken):
		return "notoken"
	case errors.Is(err, authz.ErrInvalidToken):
		return "invalid"
	default:
		return "other: " + err.Error()
	}
}

// newOP starts a fake OP on the shared clock.
func newOP(t testing.TB, clk *fakeClock, opts ...oidctest.Option) *oidctest.OP {
	t.Helper()
	return oidctest.New(t, append([]oidctest.Option{oidctest.WithClock(clk.Now)}, opts...)...)
}

// verifyWant verifies tok with a and fails t unless the kind of the error (errKind) is
// want ("ok" for success); when names the step in the failure message.
func verifyWant(t testing.TB, a *authz.Authorizer, tok, want, when string) {
	t.Helper()
	if _, err := a.Verify(context.Background(), tok); errKind(err) != want {
		t.Fatalf("%s: %v, want %s", when, err, want)
	}
}

// wantFetches fails t unless op has answered n requests to the endpoint ep; when names
// the step in the failure message.
func wantFetches(t testing.TB, op *oidctest.OP, ep oidctest.Endpoint, n int, when string) {
	t.Helper()
	if got := op.Count(ep); got != n {
		t.Fatalf("%s: endpoint %v fetched %d times, want %d", when, ep, got, n)
	}
}

// newReadyAuthz starts an OP on a new clock and an Authorizer that trusts it with the
// cache and userinfo off, and waits until the Authorizer has fetched the OP's discovery
// document and JWKS.
func newReadyAuthz(t testing.TB) (*fakeClock, *oidctest.OP, *authz.Authorizer) {
	t.Helper()
	clk := newClock()
	op := newOP(t, clk)
	a := newAuthz(t, clk, noCache(never(op.IssuerConfig())), nil)
	if err := a.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	return clk, op, a
}
