package securitytest

import (
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/internal/resilience"
	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
)

const (
	faultThreshold = 3
	faultOpenFor   = 10 * time.Second
)

// faultStack is a Stack whose every new token needs the OP: JWTs are checked at
// userinfo (mode required), opaque tokens always are.
func faultStack(t *testing.T, clock *Clock, httpTimeout time.Duration) *Stack {
	t.Helper()
	return NewStack(t, Options{
		Now:         clock.Now,
		Userinfo:    "required",
		HTTPTimeout: httpTimeout,
		Breaker:     authz.BreakerConfig{FailureThreshold: faultThreshold, OpenDuration: authz.Duration(faultOpenFor)},
	})
}

func opHost(t *testing.T, op *oidctest.OP) string {
	t.Helper()
	u, err := url.Parse(op.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// onEndpoints sets f on userinfo and introspection (what new tokens need).
func onEndpoints(f oidctest.Fault) func(*Stack) {
	return func(s *Stack) {
		s.OP.SetFault(oidctest.Userinfo, f)
		s.OP.SetFault(oidctest.Introspection, f)
	}
}

// TestFaultInjection breaks the OP in one way per case while tokens arrive. For every
// case: tokens verified before the fault keep working (cache), new tokens get 503 —
// never 200 and never a gRPC error (Check must answer) — and after the OP is back (and
// the breaker's open period has passed) a new token is allowed again on the first try.
func TestFaultInjection(t *testing.T) {
	evil := newElsewhere(t, []byte(`{"sub":"attacker"}`), nil)
	cases := []struct {
		name string
		// set breaks the OP; clear repairs it (default: ClearFaults).
		set, clear func(s *Stack)
		// breaker: the fault counts as a failure, so at most faultThreshold requests
		// reach the OP before the breaker opens.
		breaker bool
		// openFor overrides how long the clock must move before a probe is let through.
		openFor time.Duration
		check   func(t *testing.T, s *Stack)
	}{
		{name: "down (connection refused)", breaker: true,
			set:   func(s *Stack) { s.Net.Refuse(opHost(t, s.OP), true) },
			clear: func(s *Stack) { s.Net.Refuse(opHost(t, s.OP), false) }},
		{name: "connection dropped", breaker: true, set: func(s *Stack) { s.OP.Down() }},
		{name: "hanging until timeout", breaker: true, set: onEndpoints(oidctest.Fault{Hang: true})},
		{name: "500", breaker: true, set: onEndpoints(oidctest.Fault{Status: 500})},
		{name: "503", breaker: true, set: onEndpoints(oidctest.Fault{Status: 503})},
		{name: "429 with Retry-After 60", breaker: true, openFor: 60 * time.Second,
			set: func(s *Stack) {
				onEndpoints(oidctest.Fault{Status: 429})(s)
				s.Net.SetHook(func(req *http.Request, next http.RoundTripper) (*http.Response, error) {
					res, err := next.RoundTrip(req)
					if err == nil && res.StatusCode == 429 {
						res.Header.Set("Retry-After", "60")
					}
					return res, err
				})
			},
			check: func(t *testing.T, s *Stack) {
				if st := s.BreakerTotals(); st.State != resilience.Open || st.Failures != 1 {
					t.Errorf("one 429 with Retry-After must open the breaker at once: %+v", st)
				}
			}},
		// 200s that are no usable reply count as failures too: without that, an OP
		// answering garbage would be bounded only by the concurrency limit.
		{name: "malformed JSON", breaker: true, set: onEndpoints(oidctest.Fault{MalformedJSON: true})},
		{name: "HTML error page", breaker: true, set: onEndpoints(oidctest.Fault{HTML: true})},
		{name: "10 MiB body", breaker: true, set: onEndpoints(oidctest.Fault{HugeBody: 10 << 20})},
		{name: "redirect to another host",
			set: func(s *Stack) {
				s.Net.SetHook(func(req *http.Request, next http.RoundTripper) (*http.Response, error) {
					if strings.HasSuffix(req.URL.Path, oidctest.UserinfoPath) {
						return &http.Response{StatusCode: http.StatusFound, Request: req, Body: http.NoBody,
							Header: http.Header{"Location": {evil.URL + oidctest.UserinfoPath}}}, nil
					}
					return next.RoundTrip(req)
				})
			},
			check: func(t *testing.T, s *Stack) {
				if n := evil.hits.Load(); n != 0 {
					t.Errorf("the redirect target got %d requests, want 0", n)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := NewClock()
			s := faultStack(t, clock, 300*time.Millisecond)
			cachedJWT := s.OP.MintJWT(map[string]any{"aud": "api"})
			cachedOpaque := s.OP.MintOpaque(nil)
			for _, tok := range []string{cachedJWT, cachedOpaque} {
				if got, _ := s.Check(t, Req{Authorization: Bearer(tok)}, 0); got != 200 {
					t.Fatalf("warm-up: %d; logs:\n%s", got, s.Logs.String())
				}
			}

			tc.set(s)
			before := s.Net.Total()
			const newTokens = 10
			start := time.Now()
			var new503, cached200 int
			var firstNew string // reached the broken OP: must not be remembered as bad
			for i := 0; i < newTokens; i++ {
				tok := s.OP.MintJWT(map[string]any{"aud": "api"})
				if i%2 == 1 {
					tok = s.OP.MintOpaque(nil)
				}
				if i == 0 {
					firstNew = tok
				}
				got, _ := s.Check(t, Req{Authorization: Bearer(tok)}, 2*time.Second)
				if got == 200 {
					t.Fatalf("new token %d allowed while the OP is broken", i)
				}
				if got == 503 {
					new503++
				} else {
					t.Errorf("new token %d: status %d, want 503", i, got)
				}
				for _, tok := range []string{cachedJWT, cachedOpaque} {
					if got, _ := s.Check(t, Req{Authorization: Bearer(tok)}, 0); got == 200 {
						cached200++
					} else {
						t.Errorf("cached token: status %d, want 200", got)
					}
				}
			}
			elapsed := time.Since(start)
			opRequests := s.Net.Total() - before
			if tc.breaker && opRequests > faultThreshold {
				t.Errorf("%d requests reached the OP during the fault, want at most %d (breaker)", opRequests, faultThreshold)
			}
			if tc.check != nil {
				tc.check(t, s)
			}
			st := s.BreakerTotals()

			// Recovery: repair the OP; once the open period has passed, the first new
			// token is allowed (the probe closes the breaker).
			if tc.clear != nil {
				tc.clear(s)
			} else {
				s.OP.ClearFaults()
			}
			s.Net.SetHook(nil)
			openFor := faultOpenFor
			if tc.openFor > 0 {
				openFor = tc.openFor
			}
			if tc.breaker {
				clock.Advance(openFor - time.Second)
				if got, _ := s.Check(t, Req{Authorization: Bearer(s.OP.MintJWT(map[string]any{"aud": "api"}))}, 0); got != 503 {
					t.Errorf("1s before the breaker's open period ends: %d, want 503 (fail fast)", got)
				}
				clock.Advance(time.Second)
			} else if st.Opened > 0 {
				// A fault that is not a breaker failure by itself (e.g. a redirect) could
				// still open it on a loaded machine, when a reply outlasts the timeout;
				// recovery then starts after the open period, like for the others.
				clock.Advance(openFor)
			}
			recovered := 0
			for i := 1; i <= 3 && recovered == 0; i++ {
				if got, _ := s.Check(t, Req{Authorization: Bearer(s.OP.MintJWT(map[string]any{"aud": "api"}))}, 0); got == 200 {
					recovered = i
				}
			}
			if recovered != 1 {
				t.Errorf("after repair: first 200 on try %d, want 1; logs:\n%s", recovered, tail(s.Logs.String(), 3000))
			}
			if got, _ := s.Check(t, Req{Authorization: Bearer(s.OP.MintOpaque(nil))}, 0); got != 200 {
				t.Errorf("after repair: new opaque token %d, want 200", got)
			}
			if got, _ := s.Check(t, Req{Authorization: Bearer(firstNew)}, 0); got != 200 {
				t.Errorf("after repair: the token first refused during the fault got %d, want 200 (OP errors are never cached)", got)
			}
			report(t, "fault %-26s new tokens: %d/%d got 503, cached: %d/%d got 200, OP requests during fault: %d, breaker opened %d×, rejected fast %d, %v for %d checks, recovered on try %d",
				tc.name+":", new503, newTokens, cached200, 2*newTokens, opRequests, st.Opened, st.RejectedOpen, elapsed.Round(time.Millisecond), 3*newTokens, recovered)
		})
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// TestFaultSlowOP: an OP that answers after 1 s. With Envoy's kind of deadline (250 ms)
// the check answers 503 in time — never a late 200; the verification goes on detached
// and fills the cache, so the same token is allowed from the cache afterwards; with a
// generous deadline a new token is allowed (slow, not broken).
func TestFaultSlowOP(t *testing.T) {
	clock := NewClock()
	s := faultStack(t, clock, 2*time.Second)
	onEndpoints(oidctest.Fault{Delay: time.Second})(s)
	tok := s.OP.MintJWT(map[string]any{"aud": "api"})
	start := time.Now()
	got, _ := s.Check(t, Req{Authorization: Bearer(tok)}, 250*time.Millisecond)
	short := time.Since(start)
	if got != 503 {
		t.Fatalf("slow OP with a 250ms deadline: %d, want 503", got)
	}
	if short > 900*time.Millisecond {
		t.Errorf("the 503 took %v: the check did not honour its deadline", short)
	}
	start = time.Now()
	got, _ = s.Check(t, Req{Authorization: Bearer(tok)}, 3*time.Second)
	joined := time.Since(start)
	if got != 200 {
		t.Fatalf("same token with a 3s deadline: %d, want 200", got)
	}
	start = time.Now()
	if got, _ = s.Check(t, Req{Authorization: Bearer(tok)}, 250*time.Millisecond); got != 200 {
		t.Errorf("same token again (cached): %d, want 200", got)
	}
	cached := time.Since(start)
	other := s.OP.MintOpaque(nil)
	start = time.Now()
	if got, _ = s.Check(t, Req{Authorization: Bearer(other)}, 3*time.Second); got != 200 {
		t.Errorf("new opaque token with a 3s deadline: %d, want 200", got)
	}
	report(t, "fault slow 1s:                  250ms deadline → 503 in %v; same token then 200 in %v (joined the detached verification), cached 200 in %v; new opaque token 200 in %v",
		short.Round(time.Millisecond), joined.Round(time.Millisecond), cached.Round(time.Microsecond), time.Since(start).Round(time.Millisecond))
}

// TestFaultColdStartOPDown: a fresh server whose OP is unreachable answers 503 to the
// very first token (discovery fails) and recovers by itself when the OP comes back.
func TestFaultColdStartOPDown(t *testing.T) {
	clock := NewClock()
	s := faultStack(t, clock, 300*time.Millisecond)
	s.Net.Refuse(opHost(t, s.OP), true)
	for i := 0; i < 5; i++ {
		if got, _ := s.Check(t, Req{Authorization: Bearer(s.OP.MintJWT(map[string]any{"aud": "api"}))}, 0); got != 503 {
			t.Fatalf("cold, OP down, token %d: %d, want 503", i, got)
		}
	}
	if err := s.Authorizer.Ready(t.Context()); err == nil {
		t.Error("Ready() = nil while the OP is down")
	}
	s.Net.Refuse(opHost(t, s.OP), false)
	clock.Advance(faultOpenFor)
	if got, _ := s.Check(t, Req{Authorization: Bearer(s.OP.MintJWT(map[string]any{"aud": "api"}))}, 0); got != 200 {
		t.Fatalf("after the OP came back: %d, want 200; logs:\n%s", got, tail(s.Logs.String(), 3000))
	}
	report(t, "fault cold start, OP down:      5/5 new tokens 503, Ready() failed, first token after recovery 200")
}

// TestFaultJWKSRotationUnderLoad rotates the OP's keys while 4 workers verify tokens:
// tokens with the new kid are accepted after exactly one JWKS refresh, tokens signed
// with the old key keep working while it is published, a failed JWKS fetch keeps the
// last good key set, and a key that is no longer published stops verifying new tokens
// once the set was refreshed.
func TestFaultJWKSRotationUnderLoad(t *testing.T) {
	clock := NewClock()
	s := NewStack(t, Options{Now: clock.Now, Userinfo: "never", JWKSRefreshInterval: 30 * time.Second})
	mint := func() string { return s.OP.MintJWT(map[string]any{"aud": "api"}) }
	const perWorker, workers = 40, 4
	pool := func() []string {
		p := make([]string, perWorker*workers)
		for i := range p {
			p[i] = mint()
		}
		return p
	}
	if got, _ := s.Check(t, Req{Authorization: Bearer(mint())}, 0); got != 200 {
		t.Fatalf("warm-up: %d", got)
	}
	oldPool := pool() // kid 1, not yet verified
	s.OP.Rotate(oidctest.KeepOld())
	newPool := pool() // kid 2
	jwksBefore := s.Net.Path(oidctest.JWKSPath)

	var wrong atomic.Int64
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w * perWorker; i < (w+1)*perWorker; i++ {
				for _, tok := range []string{newPool[i], oldPool[i]} {
					got, _ := s.Check(t, Req{Authorization: Bearer(tok)}, 0)
					mu.Lock()
					statuses[got]++
					mu.Unlock()
					if got != 200 {
						wrong.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	loadTime := time.Since(start)
	refreshes := s.Net.Path(oidctest.JWKSPath) - jwksBefore
	if wrong.Load() != 0 {
		t.Errorf("%d of %d checks under rotation were not 200: %v", wrong.Load(), 2*perWorker*workers, statuses)
	}
	if refreshes != 1 {
		t.Errorf("JWKS fetched %d times for the new kid, want exactly 1", refreshes)
	}

	// A failing JWKS endpoint: the new kid cannot be loaded (503, not 401, not 200), the
	// last good set keeps verifying new tokens signed with the published keys.
	keptPool := pool()[:10] // kid 2, not yet verified
	s.OP.SetFault(oidctest.JWKS, oidctest.Fault{Status: 500})
	s.OP.Rotate(oidctest.KeepOld()) // kid 3
	clock.Advance(31 * time.Second)
	k3 := mint()
	if got, _ := s.Check(t, Req{Authorization: Bearer(k3)}, 0); got != 503 {
		t.Errorf("new kid while the JWKS fails: %d, want 503", got)
	}
	kept := 0
	for _, tok := range keptPool {
		if got, _ := s.Check(t, Req{Authorization: Bearer(tok)}, 0); got == 200 {
			kept++
		}
	}
	if kept != len(keptPool) {
		t.Errorf("with the JWKS failing, %d of %d tokens of the last good set were allowed", kept, len(keptPool))
	}
	s.OP.ClearFaults()
	clock.Advance(31 * time.Second)
	if got, _ := s.Check(t, Req{Authorization: Bearer(k3)}, 0); got != 200 {
		t.Errorf("new kid after the JWKS recovered: %d, want 200", got)
	}

	// Unpublish every old key: once the set is refreshed, new tokens signed with an old
	// key are rejected; tokens already verified stay cached (revocation lag ≤ cache TTL).
	unpublished := pool()[:5] // kid 3, not yet verified
	cachedOld := newPool[0]   // kid 2, verified above
	s.OP.Rotate()             // kid 4 only
	clock.Advance(31 * time.Second)
	if got, _ := s.Check(t, Req{Authorization: Bearer(mint())}, 0); got != 200 {
		t.Fatalf("kid 4: %d", got)
	}
	rejected := 0
	for _, tok := range unpublished {
		if got, _ := s.Check(t, Req{Authorization: Bearer(tok)}, 0); got == 401 {
			rejected++
		}
	}
	if rejected != len(unpublished) {
		t.Errorf("%d of %d tokens signed with an unpublished key were rejected", rejected, len(unpublished))
	}
	cachedStill, _ := s.Check(t, Req{Authorization: Bearer(cachedOld)}, 0)
	report(t, "fault JWKS rotation under load:  %d checks by %d workers in %v, %d not 200, %d JWKS refresh for the new kid; JWKS failing: new kid 503, %d/%d old-set tokens 200; unpublished key: %d/%d rejected, cached token %d",
		2*perWorker*workers, workers, loadTime.Round(time.Millisecond), wrong.Load(), refreshes, kept, len(keptPool), rejected, len(unpublished), cachedStill)
}

// TestFaultNoGoroutineLeak runs an outage scenario (hanging OP, refused connections,
// recovery) in a sub-test, closes everything and checks that the goroutine count is
// back where it started.
func TestFaultNoGoroutineLeak(t *testing.T) {
	scenario := func(t *testing.T) {
		clock := NewClock()
		s := faultStack(t, clock, 200*time.Millisecond)
		tok := s.OP.MintJWT(map[string]any{"aud": "api"})
		s.Check(t, Req{Authorization: Bearer(tok)}, 0)
		onEndpoints(oidctest.Fault{Hang: true})(s)
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.Check(t, Req{Authorization: Bearer(s.OP.MintOpaque(nil))}, time.Second)
				s.Check(t, Req{Authorization: Bearer(tok)}, 0)
			}()
		}
		wg.Wait()
		s.OP.ClearFaults()
		s.Net.Refuse(opHost(t, s.OP), true)
		s.Check(t, Req{Authorization: Bearer(s.OP.MintOpaque(nil))}, 0)
		s.Net.Refuse(opHost(t, s.OP), false)
		clock.Advance(time.Minute)
		if got, _ := s.Check(t, Req{Authorization: Bearer(s.OP.MintOpaque(nil))}, 0); got != 200 {
			t.Errorf("after recovery: %d", got)
		}
	}
	t.Run("warm-up", scenario) // lazily started runtime and net/http goroutines
	before := settledGoroutines(-1)
	for i := 0; i < 3; i++ {
		t.Run(fmt.Sprintf("run %d", i), scenario)
	}
	after := settledGoroutines(before)
	if after > before {
		buf := make([]byte, 1<<16)
		n := runtime.Stack(buf, true)
		t.Errorf("goroutines: %d before, %d after 3 outage scenarios\n%s", before, after, buf[:n])
	}
	report(t, "fault goroutines:               %d before, %d after 3 outage scenarios (closed)", before, after)
}
