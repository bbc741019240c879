package cache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/cache"
)

// TestLookup: Lookup finds fresh positive and negative entries (counted as hits and
// negative hits, refreshing LRU order like Get), finds nothing that is absent or
// expired (counting nothing), and never loads.
func TestLookup(t *testing.T) {
	clk := newClock()
	c, err := cache.New[string](cache.Options{Size: 2, Now: clk.Now, IsNegative: isBad, NegativeTTL: 10 * time.Second, MaxTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	load := func(v string, err error) cache.Loader[string] {
		return func(context.Context) (string, time.Time, error) { return v, time.Time{}, err }
	}
	good, bad, other := cache.KeyOf("good"), cache.KeyOf("bad"), cache.KeyOf("other")
	c.Get(ctx, good, load("g", nil))
	c.Get(ctx, bad, load("", errBad))
	steps := []struct {
		name    string
		advance time.Duration
		key     cache.Key
		val     string
		found   bool
		err     error
		stats   cache.Stats // Hits, NegativeHits, Misses, Loads only
	}{
		{"absent", 0, other, "", false, nil, cache.Stats{Misses: 2, Loads: 2}},
		{"fresh value", 0, good, "g", true, nil, cache.Stats{Hits: 1, Misses: 2, Loads: 2}},
		{"fresh negative", 0, bad, "", true, errBad, cache.Stats{Hits: 1, NegativeHits: 1, Misses: 2, Loads: 2}},
		{"negative expired", 10 * time.Second, bad, "", false, nil, cache.Stats{Hits: 1, NegativeHits: 1, Misses: 2, Loads: 2}},
		{"value still fresh", 0, good, "g", true, nil, cache.Stats{Hits: 2, NegativeHits: 1, Misses: 2, Loads: 2}},
		{"value expired", 50 * time.Second, good, "", false, nil, cache.Stats{Hits: 2, NegativeHits: 1, Misses: 2, Loads: 2}},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		v, found, err := c.Lookup(s.key)
		if v != s.val || found != s.found || !errors.Is(err, s.err) || (s.err == nil && err != nil) {
			t.Errorf("%s: Lookup = (%q, %v, %v), want (%q, %v, %v)", s.name, v, found, err, s.val, s.found, s.err)
		}
		st := c.Stats()
		if got := (cache.Stats{Hits: st.Hits, NegativeHits: st.NegativeHits, Misses: st.Misses, Loads: st.Loads}); got != s.stats {
			t.Errorf("%s: stats %+v, want %+v", s.name, got, s.stats)
		}
	}
}

// TestLookupRefreshesLRU: a Lookup hit makes the entry the most recently used, as Get does.
func TestLookupRefreshesLRU(t *testing.T) {
	c, err := cache.New[string](cache.Options{Size: 2, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, k := range []string{"a", "b"} {
		c.Get(ctx, cache.KeyOf(k), func(context.Context) (string, time.Time, error) { return k, time.Time{}, nil })
	}
	if _, found, _ := c.Lookup(cache.KeyOf("a")); !found {
		t.Fatal("a not found")
	}
	c.Get(ctx, cache.KeyOf("c"), func(context.Context) (string, time.Time, error) { return "c", time.Time{}, nil }) // evicts b
	if _, found, _ := c.Lookup(cache.KeyOf("a")); !found {
		t.Fatal("a was evicted although it was used after b")
	}
	if _, found, _ := c.Lookup(cache.KeyOf("b")); found {
		t.Fatal("b survived")
	}
}
