package cache_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/cache"
	"github.com/flaat-extauthz/flaat-extauthz/internal/testutil/clocktest"
)

// clock is an injected, manually advanced clock.
type clock = clocktest.Clock

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newClock() *clock { return clocktest.New(t0) }

var (
	errBad = errors.New("test: token invalid")  // "proven invalid": cached negatively
	errOP  = errors.New("test: op unavailable") // outage: never cached
	isBad  = func(err error) bool { return errors.Is(err, errBad) }
	never  = time.Duration(0)                  // exp offset meaning "unknown"
	panics = errors.New("test: loader panics") // marker for a panicking loader
)

// step is one Get in a scenario: move the clock, then Get key "k" with a loader that
// returns (val, t0+exp or zero time when exp == never, err).
type step struct {
	advance time.Duration
	val     string
	exp     time.Duration
	err     error

	wantVal   string
	wantHit   bool
	wantErr   error
	wantLoads uint64 // cumulative
}

func TestGetScenarios(t *testing.T) {
	tests := []struct {
		name  string
		opts  cache.Options
		steps []step
		stats cache.Stats
	}{
		{
			name: "entry expires exactly at the value's expires",
			opts: cache.Options{MaxTTL: 5 * time.Minute},
			steps: []step{
				{val: "v1", exp: time.Minute, wantVal: "v1", wantLoads: 1},
				{advance: 59 * time.Second, val: "x", exp: time.Hour, wantVal: "v1", wantHit: true, wantLoads: 1},
				{advance: time.Second, val: "v2", exp: time.Hour, wantVal: "v2", wantLoads: 2},
				{val: "x", exp: time.Hour, wantVal: "v2", wantHit: true, wantLoads: 2},
			},
			stats: cache.Stats{Hits: 2, Misses: 2, Loads: 2, Size: 1},
		},
		{
			name: "MaxTTL caps a long-lived value",
			opts: cache.Options{MaxTTL: time.Minute},
			steps: []step{
				{val: "v1", exp: time.Hour, wantVal: "v1", wantLoads: 1},
				{advance: 59*time.Second + 999*time.Millisecond, val: "x", wantVal: "v1", wantHit: true, wantLoads: 1},
				{advance: time.Millisecond, val: "v2", exp: time.Hour, wantVal: "v2", wantLoads: 2},
			},
			stats: cache.Stats{Hits: 1, Misses: 2, Loads: 2, Size: 1},
		},
		{
			name: "unknown expires: MaxTTL alone applies",
			opts: cache.Options{MaxTTL: 2 * time.Minute},
			steps: []step{
				{val: "v1", exp: never, wantVal: "v1", wantLoads: 1},
				{advance: 119 * time.Second, val: "x", wantVal: "v1", wantHit: true, wantLoads: 1},
				{advance: time.Second, val: "v2", exp: never, wantVal: "v2", wantLoads: 2},
			},
			stats: cache.Stats{Hits: 1, Misses: 2, Loads: 2, Size: 1},
		},
		{
			name: "default MaxTTL is 5m",
			opts: cache.Options{},
			steps: []step{
				{val: "v1", exp: time.Hour, wantVal: "v1", wantLoads: 1},
				{advance: 5*time.Minute - time.Nanosecond, val: "x", wantVal: "v1", wantHit: true, wantLoads: 1},
				{advance: time.Nanosecond, val: "v2", exp: time.Hour, wantVal: "v2", wantLoads: 2},
			},
			stats: cache.Stats{Hits: 1, Misses: 2, Loads: 2, Size: 1},
		},
		{
			name: "value already past its expires is returned but not stored",
			opts: cache.Options{},
			steps: []step{
				{val: "v1", exp: -time.Second, wantVal: "v1", wantLoads: 1},
				{val: "v2", exp: -time.Nanosecond, wantVal: "v2", wantLoads: 2},
				{val: "v3", exp: never, wantVal: "v3", wantLoads: 3}, // unknown: stored
				{val: "x", wantVal: "v3", wantHit: true, wantLoads: 3},
			},
			stats: cache.Stats{Hits: 1, Misses: 3, Loads: 3, Size: 1},
		},
		{
			name: "negative entry served for NegativeTTL, then reloaded",
			opts: cache.Options{NegativeTTL: 10 * time.Second, IsNegative: isBad},
			steps: []step{
				{err: errBad, wantErr: errBad, wantLoads: 1},
				{advance: 9 * time.Second, val: "x", wantErr: errBad, wantHit: true, wantLoads: 1},
				{advance: 999 * time.Millisecond, val: "x", wantErr: errBad, wantHit: true, wantLoads: 1},
				{advance: time.Millisecond, val: "v1", exp: time.Hour, wantVal: "v1", wantLoads: 2},
				{val: "x", wantVal: "v1", wantHit: true, wantLoads: 2},
			},
			stats: cache.Stats{Hits: 1, Misses: 2, NegativeHits: 2, Loads: 2, LoadErrors: 1, Size: 1},
		},
		{
			name: "default NegativeTTL is 10s",
			opts: cache.Options{IsNegative: isBad},
			steps: []step{
				{err: errBad, wantErr: errBad, wantLoads: 1},
				{advance: 10*time.Second - time.Nanosecond, val: "x", wantErr: errBad, wantHit: true, wantLoads: 1},
				{advance: time.Nanosecond, err: errBad, wantErr: errBad, wantLoads: 2},
			},
			stats: cache.Stats{Misses: 2, NegativeHits: 1, Loads: 2, LoadErrors: 2, Size: 1},
		},
		{
			name: "negative caching disabled",
			opts: cache.Options{NegativeTTL: -1, IsNegative: isBad},
			steps: []step{
				{err: errBad, wantErr: errBad, wantLoads: 1},
				{err: errBad, wantErr: errBad, wantLoads: 2},
				{val: "v1", exp: time.Hour, wantVal: "v1", wantLoads: 3},
			},
			stats: cache.Stats{Misses: 3, Loads: 3, LoadErrors: 2, Size: 1},
		},
		{
			name: "IsNegative nil: no error is cached",
			opts: cache.Options{},
			steps: []step{
				{err: errBad, wantErr: errBad, wantLoads: 1},
				{err: errBad, wantErr: errBad, wantLoads: 2},
			},
			stats: cache.Stats{Misses: 2, Loads: 2, LoadErrors: 2, Size: 0},
		},
		{
			name: "OP error is never cached",
			opts: cache.Options{IsNegative: isBad},
			steps: []step{
				{err: errOP, wantErr: errOP, wantLoads: 1},
				{err: fmt.Errorf("wrapped: %w", errOP), wantErr: errOP, wantLoads: 2},
				{err: context.DeadlineExceeded, wantErr: context.DeadlineExceeded, wantLoads: 3},
				{val: "v1", exp: time.Hour, wantVal: "v1", wantLoads: 4},
				{val: "x", wantVal: "v1", wantHit: true, wantLoads: 4},
			},
			stats: cache.Stats{Hits: 1, Misses: 4, Loads: 4, LoadErrors: 3, Size: 1},
		},
		{
			name: "stale-if-error off: OP error after expiry is returned",
			opts: cache.Options{MaxTTL: time.Minute, IsNegative: isBad},
			steps: []step{
				{val: "v1", exp: time.Hour, wantVal: "v1", wantLoads: 1},
				{advance: time.Minute, err: errOP, wantErr: errOP, wantLoads: 2},
				{err: errOP, wantErr: errOP, wantLoads: 3},
			},
			stats: cache.Stats{Misses: 3, Loads: 3, LoadErrors: 2, Size: 0},
		},
		{
			name: "stale-if-error on: served within the window, not after",
			opts: cache.Options{MaxTTL: time.Minute, StaleIfError: 30 * time.Second, IsNegative: isBad},
			steps: []step{
				{val: "v1", exp: time.Hour, wantVal: "v1", wantLoads: 1},
				{advance: time.Minute, err: errOP, wantVal: "v1", wantHit: true, wantLoads: 2},
				{advance: 29 * time.Second, err: errOP, wantVal: "v1", wantHit: true, wantLoads: 3},
				{advance: time.Second, err: errOP, wantErr: errOP, wantLoads: 4},
				{err: errOP, wantErr: errOP, wantLoads: 5}, // the useless entry was dropped
			},
			stats: cache.Stats{Misses: 5, StaleHits: 2, Loads: 5, LoadErrors: 4, Size: 0},
		},
		{
			name: "stale-if-error: a successful reload replaces the stale entry",
			opts: cache.Options{MaxTTL: time.Minute, StaleIfError: time.Minute},
			steps: []step{
				{val: "v1", exp: time.Hour, wantVal: "v1", wantLoads: 1},
				{advance: time.Minute, err: errOP, wantVal: "v1", wantHit: true, wantLoads: 2},
				{val: "v2", exp: time.Hour, wantVal: "v2", wantLoads: 3},
				{val: "x", wantVal: "v2", wantHit: true, wantLoads: 3},
			},
			stats: cache.Stats{Hits: 1, Misses: 3, StaleHits: 1, Loads: 3, LoadErrors: 1, Size: 1},
		},
		{
			name: "stale-if-error: not served once the value's own expires passed",
			opts: cache.Options{MaxTTL: time.Minute, StaleIfError: time.Hour},
			steps: []step{
				{val: "v1", exp: 70 * time.Second, wantVal: "v1", wantLoads: 1},
				{advance: time.Minute, err: errOP, wantVal: "v1", wantHit: true, wantLoads: 2},
				{advance: 9 * time.Second, err: errOP, wantVal: "v1", wantHit: true, wantLoads: 3},
				{advance: time.Second, err: errOP, wantErr: errOP, wantLoads: 4},
			},
			stats: cache.Stats{Misses: 4, StaleHits: 2, Loads: 4, LoadErrors: 3, Size: 0},
		},
		{
			name: "stale-if-error: not served when the value's expires is unknown",
			opts: cache.Options{MaxTTL: time.Minute, StaleIfError: time.Hour},
			steps: []step{
				{val: "v1", exp: never, wantVal: "v1", wantLoads: 1},
				{advance: time.Minute, err: errOP, wantErr: errOP, wantLoads: 2},
			},
			stats: cache.Stats{Misses: 2, Loads: 2, LoadErrors: 1, Size: 0},
		},
		{
			name: "stale-if-error: a proven-invalid answer wins over the stale value",
			opts: cache.Options{MaxTTL: time.Minute, StaleIfError: time.Hour, NegativeTTL: 10 * time.Second, IsNegative: isBad},
			steps: []step{
				{val: "v1", exp: time.Hour, wantVal: "v1", wantLoads: 1},
				{advance: time.Minute, err: errBad, wantErr: errBad, wantLoads: 2},
				{err: errOP, wantErr: errBad, wantHit: true, wantLoads: 2},
				{advance: 10 * time.Second, err: errOP, wantErr: errOP, wantLoads: 3},
			},
			stats: cache.Stats{Misses: 3, NegativeHits: 1, Loads: 3, LoadErrors: 2, Size: 0},
		},
		{
			name: "stale-if-error: proven invalid with negative caching off still drops the value",
			opts: cache.Options{MaxTTL: time.Minute, StaleIfError: time.Hour, NegativeTTL: -1, IsNegative: isBad},
			steps: []step{
				{val: "v1", exp: time.Hour, wantVal: "v1", wantLoads: 1},
				{advance: time.Minute, err: errBad, wantErr: errBad, wantLoads: 2},
				{err: errOP, wantErr: errOP, wantLoads: 3},
			},
			stats: cache.Stats{Misses: 3, Loads: 3, LoadErrors: 2, Size: 0},
		},
		{
			name: "loader panic is recovered, returned as an error and not cached even if IsNegative says so",
			opts: cache.Options{IsNegative: func(error) bool { return true }},
			steps: []step{
				{err: panics, wantErr: cache.ErrLoaderPanic, wantLoads: 1},
				{val: "v1", exp: time.Hour, wantVal: "v1", wantLoads: 2},
			},
			stats: cache.Stats{Misses: 2, Loads: 2, LoadErrors: 1, Size: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			o := tc.opts
			o.Now = clk.Now
			c, err := cache.New[string](o)
			if err != nil {
				t.Fatal(err)
			}
			k := cache.KeyOf("token", "issuer")
			var loads uint64
			for i, s := range tc.steps {
				clk.Advance(s.advance)
				load := func(ctx context.Context) (string, time.Time, error) {
					loads++
					if s.err == panics {
						panic("boom")
					}
					var exp time.Time
					if s.exp != never {
						exp = t0.Add(s.exp)
					}
					if s.err != nil {
						return "", time.Time{}, s.err
					}
					return s.val, exp, nil
				}
				v, hit, err := c.Get(context.Background(), k, load)
				if v != s.wantVal || hit != s.wantHit || !errors.Is(err, s.wantErr) || (err == nil) != (s.wantErr == nil) {
					t.Errorf("step %d: Get = (%q, %v, %v), want (%q, %v, %v)", i, v, hit, err, s.wantVal, s.wantHit, s.wantErr)
				}
				if loads != s.wantLoads {
					t.Errorf("step %d: loads = %d, want %d", i, loads, s.wantLoads)
				}
			}
			if got := c.Stats(); got != tc.stats {
				t.Errorf("Stats = %+v\n want %+v", got, tc.stats)
			}
		})
	}
}

// TestNegativeEntryDoesNotLeakToOtherKeys checks that keys are independent.
func TestKeysAreIndependent(t *testing.T) {
	clk := newClock()
	c, err := cache.New[string](cache.Options{Now: clk.Now, IsNegative: isBad})
	if err != nil {
		t.Fatal(err)
	}
	bad, good := cache.KeyOf("bad", "iss"), cache.KeyOf("good", "iss")
	if _, _, err := c.Get(context.Background(), bad, func(context.Context) (string, time.Time, error) {
		return "", time.Time{}, errBad
	}); !errors.Is(err, errBad) {
		t.Fatalf("bad key: err = %v", err)
	}
	v, hit, err := c.Get(context.Background(), good, func(context.Context) (string, time.Time, error) {
		return "g", time.Time{}, nil
	})
	if v != "g" || hit || err != nil {
		t.Fatalf("good key: (%q, %v, %v)", v, hit, err)
	}
}

func TestLRUEvictionAtSizeBound(t *testing.T) {
	clk := newClock()
	c, err := cache.New[string](cache.Options{Size: 3, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	var loads int
	get := func(name string) (string, bool) {
		t.Helper()
		v, hit, err := c.Get(context.Background(), cache.KeyOf(name), func(context.Context) (string, time.Time, error) {
			loads++
			return name, time.Time{}, nil
		})
		if err != nil || v != name {
			t.Fatalf("Get(%s) = (%q, %v)", name, v, err)
		}
		return v, hit
	}
	steps := []struct {
		key     string
		wantHit bool
		wantLen int
		wantEv  uint64
	}{
		{"a", false, 1, 0},
		{"b", false, 2, 0},
		{"c", false, 3, 0},
		{"a", true, 3, 0},  // a becomes most recently used; b is now the oldest
		{"d", false, 3, 1}, // evicts b
		{"a", true, 3, 1},
		{"c", true, 3, 1},
		{"b", false, 3, 2}, // reloaded; evicts d (a and c were used after d)
		{"d", false, 3, 3}, // evicts a
		{"c", true, 3, 3},
	}
	for i, s := range steps {
		_, hit := get(s.key)
		if hit != s.wantHit || c.Len() != s.wantLen || c.Stats().Evictions != s.wantEv {
			t.Errorf("step %d (%s): hit=%v len=%d evictions=%d, want %v %d %d",
				i, s.key, hit, c.Len(), c.Stats().Evictions, s.wantHit, s.wantLen, s.wantEv)
		}
	}
	if loads != 6 {
		t.Errorf("loads = %d, want 6", loads)
	}
	if st := c.Stats(); st.Size != 3 || st.Loads != 6 || st.Hits != 4 || st.Misses != 6 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestPurge(t *testing.T) {
	c, err := cache.New[int](cache.Options{Size: 2, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	var loads int
	load := func(context.Context) (int, time.Time, error) { loads++; return loads, time.Time{}, nil }
	for _, k := range []string{"a", "b", "c"} {
		if _, _, err := c.Get(context.Background(), cache.KeyOf(k), load); err != nil {
			t.Fatal(err)
		}
	}
	c.Purge()
	if c.Len() != 0 || c.Stats().Evictions != 1 {
		t.Fatalf("after Purge: len=%d stats=%+v", c.Len(), c.Stats())
	}
	if v, hit, _ := c.Get(context.Background(), cache.KeyOf("c"), load); hit || v != 4 {
		t.Fatalf("after Purge: Get = (%d, %v), want a fresh load", v, hit)
	}
}

func TestNewValidatesOptions(t *testing.T) {
	tests := []struct {
		name    string
		o       cache.Options
		wantErr []string // substrings; nil: valid
	}{
		{name: "zero value", o: cache.Options{}},
		{name: "negative NegativeTTL disables, valid", o: cache.Options{NegativeTTL: -time.Second}},
		{name: "all set", o: cache.Options{Size: 1, MaxTTL: time.Second, NegativeTTL: time.Second, StaleIfError: time.Second, LoadTimeout: time.Second}},
		{name: "negative size", o: cache.Options{Size: -1}, wantErr: []string{"size -1"}},
		{name: "every problem at once", o: cache.Options{Size: -1, MaxTTL: -1, StaleIfError: -1, LoadTimeout: -1},
			wantErr: []string{"size -1", "max_ttl -1ns", "stale_if_error -1ns", "load timeout -1ns"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := cache.New[string](tc.o)
			if tc.wantErr == nil {
				if err != nil || c == nil {
					t.Fatalf("New = (%v, %v), want a cache", c, err)
				}
				return
			}
			if err == nil || c != nil || !errors.Is(err, cache.ErrInvalidOptions) {
				t.Fatalf("New = (%v, %v), want ErrInvalidOptions", c, err)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestKeyOf(t *testing.T) {
	// KeyOf is SHA-256 over length-prefixed parts.
	want := sha256.Sum256([]byte("\x00\x00\x00\x00\x00\x00\x00\x03tok\x00\x00\x00\x00\x00\x00\x00\x03iss"))
	if got := cache.KeyOf("tok", "iss"); got != cache.Key(want) {
		t.Fatalf("KeyOf(tok, iss) = %x, want %x", got, want)
	}
	// Inputs larger than KeyOf's stack buffer take the allocating path: same encoding.
	big := strings.Repeat("x", 5000)
	wantBig := sha256.Sum256([]byte("\x00\x00\x00\x00\x00\x00\x13\x88" + big + "\x00\x00\x00\x00\x00\x00\x00\x01i"))
	if got := cache.KeyOf(big, "i"); got != cache.Key(wantBig) {
		t.Fatalf("KeyOf(5000 bytes, i) = %x, want %x", got, wantBig)
	}
	distinct := [][]string{
		{}, {""}, {"", ""}, {"abc"}, {"ab", "c"}, {"a", "bc"}, {"a", "b", "c"},
		{"abc", ""}, {"", "abc"}, {"tok", "iss"}, {"iss", "tok"},
		{"\x00\x00\x00\x00\x00\x00\x00\x01a"}, {"a", ""},
	}
	seen := map[cache.Key][]string{}
	for _, parts := range distinct {
		k := cache.KeyOf(parts...)
		if prev, ok := seen[k]; ok {
			t.Errorf("KeyOf(%q) == KeyOf(%q)", parts, prev)
		}
		seen[k] = parts
		if k != cache.KeyOf(parts...) {
			t.Errorf("KeyOf(%q) is not deterministic", parts)
		}
	}
}

// FuzzKeyOf checks that KeyOf separates parts unambiguously: two different pairs never
// share a key.
func FuzzKeyOf(f *testing.F) {
	f.Add("ab", "c", "a", "bc")
	f.Add("", "x", "x", "")
	f.Add("tok", "iss", "tok", "iss")
	f.Add("\x00\x00\x00\x00\x00\x00\x00\x01", "", "", "\x01")
	f.Fuzz(func(t *testing.T, a, b, c, d string) {
		same := a == c && b == d
		if (cache.KeyOf(a, b) == cache.KeyOf(c, d)) != same {
			t.Fatalf("KeyOf(%q,%q) vs KeyOf(%q,%q): equal=%v", a, b, c, d, !same)
		}
		if cache.KeyOf(a+b) == cache.KeyOf(a, b) {
			t.Fatalf("KeyOf(%q) == KeyOf(%q,%q)", a+b, a, b)
		}
	})
}

// TestRemoveTagged: every entry of a tag goes at once, other entries stay, the index
// follows evictions, replacements and removals, and a cache without tags removes nothing.
func TestRemoveTagged(t *testing.T) {
	type val struct{ tags []string }
	tagsOf := func(v val) []cache.Tag {
		out := make([]cache.Tag, len(v.tags))
		for i, s := range v.tags {
			out[i] = cache.TagOf(s)
		}
		return out
	}
	c, err := cache.NewTagged[val](cache.Options{Size: 3}, tagsOf)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put := func(k string, tags ...string) {
		t.Helper()
		c.Remove(cache.KeyOf(k))
		if _, _, err := c.Get(ctx, cache.KeyOf(k), func(context.Context) (val, time.Time, error) { return val{tags}, time.Time{}, nil }); err != nil {
			t.Fatal(err)
		}
	}
	has := func(k string) bool { _, ok, _ := c.Lookup(cache.KeyOf(k)); return ok }
	put("a1", "alice", "s1")
	put("a2", "alice")
	put("b1", "bob", "s1")
	if n := c.RemoveTagged(cache.TagOf("alice")); n != 2 || has("a1") || has("a2") || !has("b1") {
		t.Fatalf("RemoveTagged(alice) = %d; a1 %v a2 %v b1 %v", n, has("a1"), has("a2"), has("b1"))
	}
	if n := c.RemoveTagged(cache.TagOf("alice")); n != 0 {
		t.Fatalf("second RemoveTagged = %d", n)
	}
	if n := c.TagCount(); n != 2 { // bob, s1
		t.Fatalf("TagCount = %d, want 2 (index must drop removed entries)", n)
	}
	put("c1", "carol")
	put("c2", "carol")
	put("c3", "carol") // evicts b1 (LRU, size 3)
	if has("b1") || c.TagCount() != 1 {
		t.Fatalf("after eviction: b1 %v, TagCount %d (want only carol)", has("b1"), c.TagCount())
	}
	if n := c.RemoveTagged(cache.TagOf("s1")); n != 0 {
		t.Fatalf("RemoveTagged of an evicted tag = %d", n)
	}
	if n := c.RemoveTagged(cache.TagOf("carol")); n != 3 || c.Len() != 0 || c.TagCount() != 0 {
		t.Fatalf("RemoveTagged(carol) = %d, Len %d, TagCount %d", n, c.Len(), c.TagCount())
	}
	plain, _ := cache.New[val](cache.Options{})
	if _, _, err := plain.Get(ctx, cache.KeyOf("x"), func(context.Context) (val, time.Time, error) { return val{[]string{"t"}}, time.Time{}, nil }); err != nil {
		t.Fatal(err)
	}
	if n := plain.RemoveTagged(cache.TagOf("t")); n != 0 || plain.Len() != 1 {
		t.Fatalf("untagged cache: RemoveTagged = %d, Len %d", n, plain.Len())
	}
}

// TestTagIndexConcurrent: under concurrent loads (entries expire at once, so most loads
// replace a stored entry), LRU evictions, removals and
// RemoveTagged, the index ends up naming exactly the stored entries: removing every tag
// empties both the cache and the index.
func TestTagIndexConcurrent(t *testing.T) {
	const tagsN = 10
	c, err := cache.NewTagged[int](cache.Options{Size: 50, MaxTTL: time.Microsecond}, func(v int) []cache.Tag {
		return []cache.Tag{cache.TagOf(strconv.Itoa(v % tagsN)), cache.TagOf("all")}
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 3000 {
				id := (i*7 + g*13) % 200
				k := cache.KeyOf(strconv.Itoa(id))
				switch i % 50 {
				case 0:
					c.RemoveTagged(cache.TagOf(strconv.Itoa(id % tagsN)))
				case 1:
					c.Remove(k)
				default:
					_, _, _ = c.Get(context.Background(), k, func(context.Context) (int, time.Time, error) { return id, time.Time{}, nil })
				}
			}
		}()
	}
	wg.Wait()
	if c.Len() == 0 {
		t.Fatal("nothing cached: the test proves nothing")
	}
	n := c.Len()
	if got := c.RemoveTagged(cache.TagOf("all")); got != n || c.Len() != 0 {
		t.Fatalf("RemoveTagged(all) removed %d of %d; %d left unindexed", got, n, c.Len())
	}
	if c.TagCount() != 0 {
		t.Fatalf("%d tags left in the index of an empty cache", c.TagCount())
	}
}
