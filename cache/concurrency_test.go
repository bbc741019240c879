package cache_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/cache"
)

// guard bounds every wait in these tests; it is a failure timeout, never a sleep.
const guard = 10 * time.Second

// countingOP is an httptest userinfo endpoint that counts requests. While gate is open
// (not closed) requests block, so that concurrent callers pile up behind one load.
type countingOP struct {
	srv      *httptest.Server
	requests atomic.Int64
	gate     chan struct{}
}

func newCountingOP(t *testing.T) *countingOP {
	op := &countingOP{gate: make(chan struct{})}
	op.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op.requests.Add(1)
		select {
		case <-op.gate:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"sub":%q}`, r.URL.Query().Get("t"))
	}))
	t.Cleanup(op.srv.Close)
	return op
}

// loader returns a Loader that asks the OP for token tok (the test OP echoes it as sub).
func (op *countingOP) loader(tok string) cache.Loader[string] {
	return func(ctx context.Context) (string, time.Time, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, op.srv.URL+"/userinfo?t="+tok, nil)
		if err != nil {
			return "", time.Time{}, err
		}
		resp, err := op.srv.Client().Do(req)
		if err != nil {
			return "", time.Time{}, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return "", time.Time{}, err
		}
		var ui struct{ Sub string }
		if err := json.Unmarshal(body, &ui); err != nil {
			return "", time.Time{}, err
		}
		return ui.Sub, t0.Add(time.Hour), nil
	}
}

func TestConcurrentSameKeyRunsOneLoad(t *testing.T) {
	const n = 1000
	op := newCountingOP(t)
	c, err := cache.New[string](cache.Options{Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	k := cache.KeyOf("opaque-token", "op")
	var started, done sync.WaitGroup
	type res struct {
		v   string
		err error
	}
	results := make(chan res, n)
	started.Add(n)
	done.Add(n)
	for range n {
		go func() {
			defer done.Done()
			started.Done()
			v, _, err := c.Get(context.Background(), k, op.loader("opaque-token"))
			results <- res{v, err}
		}()
	}
	started.Wait()
	close(op.gate) // let the (single) request answer
	waitOrFail(t, &done)
	close(results)
	for r := range results {
		if r.err != nil || r.v != "opaque-token" {
			t.Fatalf("Get = (%q, %v)", r.v, r.err)
		}
	}
	st := c.Stats()
	if got := op.requests.Load(); got != 1 {
		t.Errorf("OP saw %d requests, want exactly 1", got)
	}
	if st.Loads != 1 || st.Hits+st.Misses != n || st.LoadErrors != 0 || st.Size != 1 {
		t.Errorf("Stats = %+v, want 1 load and %d lookups", st, n)
	}
}

func TestConcurrentDistinctKeysLoadEach(t *testing.T) {
	const n = 1000
	op := newCountingOP(t)
	close(op.gate)
	c, err := cache.New[string](cache.Options{Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	var done sync.WaitGroup
	var bad atomic.Int64
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			tok := fmt.Sprintf("token-%d", i)
			if v, _, err := c.Get(context.Background(), cache.KeyOf(tok, "op"), op.loader(tok)); err != nil || v != tok {
				bad.Add(1)
			}
		}()
	}
	waitOrFail(t, &done)
	if bad.Load() != 0 {
		t.Errorf("%d Gets returned a wrong value or an error", bad.Load())
	}
	if got := op.requests.Load(); got != n {
		t.Errorf("OP saw %d requests, want %d", got, n)
	}
	if st := c.Stats(); st.Loads != n || st.Misses != n || st.Size != n {
		t.Errorf("Stats = %+v", st)
	}
	// Every key is now cached: a second round makes no request.
	for i := range n {
		tok := fmt.Sprintf("token-%d", i)
		if _, hit, err := c.Get(context.Background(), cache.KeyOf(tok, "op"), op.loader(tok)); !hit || err != nil {
			t.Fatalf("second Get(%s): hit=%v err=%v", tok, hit, err)
		}
	}
	if got := op.requests.Load(); got != n {
		t.Errorf("after the warm round the OP saw %d requests, want %d", got, n)
	}
}

// TestCancelledWaiterReturnsAtOnce: the caller that started the load cancels; it gets
// ctx.Err() while the load is still blocked, and another waiter still gets the value
// from the same, uncancelled load.
func TestCancelledWaiterReturnsAtOnce(t *testing.T) {
	c, err := cache.New[string](cache.Options{Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	k := cache.KeyOf("tok")
	gate := make(chan struct{})
	running := make(chan struct{})
	var loads atomic.Int64
	var loadCtxErr atomic.Value
	load := func(ctx context.Context) (string, time.Time, error) {
		if loads.Add(1) == 1 {
			close(running)
		}
		<-gate
		loadCtxErr.Store(fmt.Sprint(ctx.Err()))
		return "v", time.Time{}, nil
	}

	type res struct {
		v   string
		hit bool
		err error
	}
	ctxA, cancelA := context.WithCancel(context.Background())
	a := make(chan res, 1)
	go func() {
		v, hit, err := c.Get(ctxA, k, load)
		a <- res{v, hit, err}
	}()
	waitChan(t, running, "the load to start")

	b := make(chan res, 1)
	go func() {
		v, hit, err := c.Get(context.Background(), k, load)
		b <- res{v, hit, err}
	}()

	cancelA()
	select {
	case r := <-a:
		if !errors.Is(r.err, context.Canceled) || r.v != "" || r.hit {
			t.Errorf("cancelled waiter: Get = (%q, %v, %v), want context.Canceled", r.v, r.hit, r.err)
		}
	case <-time.After(guard):
		t.Fatal("cancelled waiter did not return while the load was blocked")
	}
	close(gate) // only now may the load finish

	select {
	case r := <-b:
		if r.err != nil || r.v != "v" {
			t.Errorf("other waiter: Get = (%q, %v, %v), want v", r.v, r.hit, r.err)
		}
	case <-time.After(guard):
		t.Fatal("other waiter never got the value")
	}
	if loads.Load() != 1 {
		t.Errorf("loads = %d, want 1", loads.Load())
	}
	if got := loadCtxErr.Load(); got != "<nil>" {
		t.Errorf("loader's ctx error after the caller cancelled = %v, want <nil> (detached)", got)
	}
	// The load's result was stored although its initiator had gone.
	if v, hit, err := c.Get(context.Background(), k, load); v != "v" || !hit || err != nil {
		t.Errorf("after the load: Get = (%q, %v, %v), want a hit", v, hit, err)
	}
}

type ctxKey struct{}

func TestLoaderContext(t *testing.T) {
	c, err := cache.New[string](cache.Options{Now: newClock().Now, LoadTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), ctxKey{}, "trace-1"), guard)
	defer cancel()
	var got struct {
		val      any
		deadline time.Time
		ok       bool
	}
	before := time.Now()
	_, _, err = c.Get(ctx, cache.KeyOf("t"), func(lctx context.Context) (string, time.Time, error) {
		got.val = lctx.Value(ctxKey{})
		got.deadline, got.ok = lctx.Deadline()
		return "v", time.Time{}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.val != "trace-1" {
		t.Errorf("loader ctx value = %v, want the caller's values kept", got.val)
	}
	// The deadline is LoadTimeout from the load's start, not the caller's (shorter) one.
	if !got.ok || got.deadline.Before(before.Add(time.Hour-time.Minute)) || got.deadline.After(time.Now().Add(time.Hour)) {
		t.Errorf("loader ctx deadline = %v (set=%v), want about now+1h", got.deadline, got.ok)
	}
}

func TestLoadTimeoutIsNotCached(t *testing.T) {
	c, err := cache.New[string](cache.Options{Now: newClock().Now, LoadTimeout: time.Millisecond,
		IsNegative: func(error) bool { return false }})
	if err != nil {
		t.Fatal(err)
	}
	k := cache.KeyOf("t")
	stuck := func(ctx context.Context) (string, time.Time, error) {
		<-ctx.Done() // honours the detached context's timeout
		return "", time.Time{}, fmt.Errorf("test: userinfo: %w", ctx.Err())
	}
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if _, _, err := c.Get(ctx, k, stuck); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get = %v, want the load's DeadlineExceeded", err)
	}
	if v, hit, err := c.Get(ctx, k, func(context.Context) (string, time.Time, error) { return "v", time.Time{}, nil }); v != "v" || hit || err != nil {
		t.Fatalf("after a timeout: Get = (%q, %v, %v), want a fresh load", v, hit, err)
	}
}

func TestCancelledCallerOnMissStartsNoLoad(t *testing.T) {
	c, err := cache.New[string](cache.Options{Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	k := cache.KeyOf("t")
	loaderOf := func(v string) cache.Loader[string] {
		return func(context.Context) (string, time.Time, error) { return v, time.Time{}, nil }
	}
	if v, hit, err := c.Get(ctx, k, loaderOf("from-cancelled")); !errors.Is(err, context.Canceled) || v != "" || hit {
		t.Fatalf("Get = (%q, %v, %v), want context.Canceled", v, hit, err)
	}
	// Had the cancelled call started a load, this one would join it or hit its result.
	if v, hit, err := c.Get(context.Background(), k, loaderOf("v")); v != "v" || hit || err != nil {
		t.Fatalf("next Get = (%q, %v, %v), want its own load: the cancelled caller must not load", v, hit, err)
	}
	// A hit is served even to a cancelled caller (the caller re-checks its ctx).
	if v, hit, err := c.Get(ctx, k, loaderOf("x")); v != "v" || !hit || err != nil {
		t.Fatalf("hit for a cancelled caller: (%q, %v, %v)", v, hit, err)
	}
	if st := c.Stats(); st.Loads != 1 {
		t.Errorf("Stats = %+v, want 1 load", st)
	}
}

// TestConcurrentMixedRace exercises hits, misses, negative entries, expiry, eviction and
// Purge at once for the race detector; it asserts only invariants.
func TestConcurrentMixedRace(t *testing.T) {
	clk := newClock()
	c, err := cache.New[int](cache.Options{Size: 50, MaxTTL: time.Second, StaleIfError: time.Second,
		Now: clk.Now, IsNegative: func(err error) bool { return errors.Is(err, errBad) }})
	if err != nil {
		t.Fatal(err)
	}
	var done sync.WaitGroup
	var gets atomic.Uint64
	for g := range 8 {
		done.Add(1)
		go func() {
			defer done.Done()
			for i := range 500 {
				n := (i*7 + g) % 100
				_, _, _ = c.Get(context.Background(), cache.KeyOf(fmt.Sprint(n)), func(context.Context) (int, time.Time, error) {
					switch n % 5 {
					case 0:
						return 0, time.Time{}, errBad
					case 1:
						return 0, time.Time{}, errOP
					case 2:
						panic("boom")
					}
					return n, clk.Now().Add(time.Hour), nil
				})
				gets.Add(1)
				if i%50 == 0 {
					clk.Advance(300 * time.Millisecond)
				}
				if g == 0 && i%200 == 0 {
					c.Purge()
				}
			}
		}()
	}
	waitOrFail(t, &done)
	st := c.Stats()
	if st.Hits+st.Misses+st.NegativeHits != gets.Load() || st.Loads > st.Misses || st.LoadErrors > st.Loads ||
		st.StaleHits > st.Misses || c.Len() > 50 {
		t.Errorf("inconsistent Stats %+v for %d Gets, Len %d", st, gets.Load(), c.Len())
	}
}

func waitOrFail(t *testing.T, wg *sync.WaitGroup) {
	t.Helper()
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	waitChan(t, ch, "all goroutines")
}

func waitChan(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(guard):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// hookCtx runs hook the first time Err is called: Get calls ctx.Err() on a miss right
// before joining the load, which lets a test finish another load in exactly that gap.
type hookCtx struct {
	context.Context
	once sync.Once
	hook func()
}

func (h *hookCtx) Err() error {
	h.once.Do(h.hook)
	return h.Context.Err()
}

// TestLoadFinishedAfterLookupIsReused: a caller misses, then (before it joins a load)
// another caller's load finishes and stores the value. The first caller must reuse that
// value, not load again: otherwise "1000 concurrent misses, exactly one load" would
// depend on timing.
func TestLoadFinishedAfterLookupIsReused(t *testing.T) {
	c, err := cache.New[string](cache.Options{Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	k := cache.KeyOf("tok")
	var loads atomic.Int64
	load := func(context.Context) (string, time.Time, error) {
		return fmt.Sprint("v", loads.Add(1)), time.Time{}, nil
	}
	ctx := &hookCtx{Context: context.Background(), hook: func() {
		if v, hit, err := c.Get(context.Background(), k, load); v != "v1" || hit || err != nil {
			t.Errorf("inner Get = (%q, %v, %v)", v, hit, err)
		}
	}}
	v, hit, err := c.Get(ctx, k, load)
	if v != "v1" || !hit || err != nil || loads.Load() != 1 {
		t.Errorf("outer Get = (%q, %v, %v) after %d loads, want (v1, true, nil) after 1", v, hit, err, loads.Load())
	}
	if st := c.Stats(); st.Misses != 2 || st.Loads != 1 || st.Hits != 0 {
		t.Errorf("Stats = %+v", st)
	}
}
