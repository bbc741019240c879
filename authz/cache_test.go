package authz_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
)

// verifyAll verifies every token in its own goroutine, all released at once, and returns
// how many failed.
func verifyAll(t *testing.T, a *authz.Authorizer, tokens []string) int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	start := make(chan struct{})
	for _, tok := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := a.Verify(context.Background(), tok); err != nil {
				mu.Lock()
				failed++
				if failed == 1 {
					t.Errorf("first failure: %v", err)
				}
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	return failed
}

func TestCacheOneUserinfoCallPerToken(t *testing.T) {
	clk := newClock()
	op := newOP(t, clk)
	ic := op.IssuerConfig()
	ic.Introspect = authz.IntrospectNever
	cfg := authz.Config{Issuers: []authz.IssuerConfig{ic}}
	a := newAuthz(t, clk, cfg, nil)
	if err := a.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}

	same := op.MintOpaque(nil)
	tokens := make([]string, 1000)
	for i := range tokens {
		tokens[i] = same
	}
	if n := verifyAll(t, a, tokens); n != 0 {
		t.Fatalf("%d of 1000 failed", n)
	}
	if got := op.Count(oidctest.Userinfo); got != 1 {
		t.Fatalf("1000 verifications of one token: %d userinfo requests, want exactly 1", got)
	}

	op.ResetCounts()
	for i := range tokens {
		tokens[i] = op.MintOpaque(nil)
	}
	if n := verifyAll(t, a, tokens); n != 0 {
		t.Fatalf("%d of 1000 failed", n)
	}
	if got := op.Count(oidctest.Userinfo); got != 1000 {
		t.Fatalf("1000 distinct tokens: %d userinfo requests, want 1000", got)
	}
	if s := a.CacheStats(); s.Loads != 1001 || s.Size != 1001 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCacheJWT(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	op := newOP(t, clk)
	a := newAuthz(t, clk, authz.Config{Issuers: []authz.IssuerConfig{op.IssuerConfig()}}, testPolicy(t))
	tok := op.MintJWT(nil, oidctest.ExpiresIn(2*time.Minute))
	req := authz.Request{Path: "/", Authorization: "Bearer " + tok}
	if d := a.Authorize(ctx, req); d.Outcome != authz.OutcomeAllow || d.Cached {
		t.Fatalf("first: %+v", d)
	}
	before := op.Total()
	d := a.Authorize(ctx, req)
	if d.Outcome != authz.OutcomeAllow || !d.Cached {
		t.Fatalf("second: %+v", d)
	}
	if op.Total() != before {
		t.Fatalf("second verification of the same JWT made %d requests", op.Total()-before)
	}
	// The entry lives until the token's exp, not longer.
	clk.Advance(2*time.Minute + time.Second)
	if d := a.Authorize(ctx, req); d.Outcome != authz.OutcomeAllow || d.Cached {
		t.Fatalf("after exp (within leeway): %+v", d)
	}
	clk.Advance(time.Minute)
	if d := a.Authorize(ctx, req); d.Outcome != authz.OutcomeInvalidToken {
		t.Fatalf("after exp+leeway: %+v", d)
	}
}

func TestCacheNegativeAndErrors(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	op := newOP(t, clk)
	a := newAuthz(t, clk, authz.Config{Issuers: []authz.IssuerConfig{op.IssuerConfig()}}, nil)

	// A rejected token is remembered for the negative TTL.
	bad := "unknown-opaque-token"
	for i := 0; i < 3; i++ {
		if _, err := a.Verify(ctx, bad); errKind(err) != "invalid" {
			t.Fatalf("%d: %v", i, err)
		}
	}
	if n := op.Count(oidctest.Userinfo); n != 1 {
		t.Fatalf("negative cache: %d userinfo requests", n)
	}
	clk.Advance(11 * time.Second)
	if _, err := a.Verify(ctx, bad); errKind(err) != "invalid" || op.Count(oidctest.Userinfo) != 2 {
		t.Fatalf("after negative TTL: %v, %s", err, op.SortedCounts())
	}

	// OP errors are never cached.
	tok := op.MintOpaque(nil)
	op.SetFault(oidctest.Userinfo, oidctest.Fault{Status: 503})
	if _, err := a.Verify(ctx, tok); errKind(err) != "unavailable" {
		t.Fatal(err)
	}
	op.ClearFaults()
	if _, err := a.Verify(ctx, tok); err != nil {
		t.Fatalf("after the OP recovered: %v", err)
	}
	if s := a.CacheStats(); s.NegativeHits != 2 || s.Hits != 0 {
		t.Fatalf("stats %+v", s)
	}

	disabled := newAuthz(t, clk, noCache(op.IssuerConfig()), nil)
	if s := disabled.CacheStats(); s != (disabled.CacheStats()) || s.Loads != 0 {
		t.Fatalf("disabled stats %+v", s)
	}
}

func TestCacheNegativeTTLZeroDisables(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		ttl  *authz.Duration
		want int // userinfo requests for 3 verifications of one bad token
	}{
		{"absent: default 10s", nil, 1},
		{"zero: off", durationPtr(0), 3},
		{"negative: off", durationPtr(-time.Second), 3},
		{"explicit 1m", durationPtr(time.Minute), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			op := newOP(t, clk)
			cfg := authz.Config{Issuers: []authz.IssuerConfig{op.IssuerConfig()}}
			cfg.Cache.NegativeTTL = tc.ttl
			a := newAuthz(t, clk, cfg, nil)
			for i := 0; i < 3; i++ {
				if _, err := a.Verify(ctx, "unknown-opaque-token"); errKind(err) != "invalid" {
					t.Fatalf("%d: %v", i, err)
				}
			}
			if n := op.Count(oidctest.Userinfo); n != tc.want {
				t.Fatalf("%d userinfo requests, want %d", n, tc.want)
			}
		})
	}
}

func durationPtr(d time.Duration) *authz.Duration { x := authz.Duration(d); return &x }
