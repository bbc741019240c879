package cache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/cache"
)

// collidingKeys returns two keys that share their first 16 bytes (the part the LRU is
// keyed by) and differ in the last byte only: what no two SHA-256 digests are expected
// to do, forced here.
func collidingKeys() (a, b cache.Key) {
	a = cache.KeyOf("alice's token")
	b = a
	b[31] ^= 1
	return a, b
}

// TestPrefixCollisionIsAMiss: an entry is only ever read with its whole key. Two keys
// that share the LRU's 16-byte prefix never read each other's value, negative error,
// stale value or tags; the later one replaces the earlier one (counted as an
// eviction), which only costs the earlier one a load.
func TestPrefixCollisionIsAMiss(t *testing.T) {
	ctx := context.Background()
	value := func(v string) cache.Loader[string] {
		return func(context.Context) (string, time.Time, error) { return v, time.Time{}, nil }
	}
	fail := func(err error) cache.Loader[string] {
		return func(context.Context) (string, time.Time, error) { return "", time.Time{}, err }
	}
	cases := []struct {
		name string
		run  func(t *testing.T, a, b cache.Key)
	}{
		{"a fresh value is not the other key's", func(t *testing.T, a, b cache.Key) {
			c := mustNew[string](t, cache.Options{})
			if _, _, err := c.Get(ctx, a, value("alice")); err != nil {
				t.Fatal(err)
			}
			if v, found, _ := c.Lookup(b); found {
				t.Fatalf("Lookup(b) = %q, found", v)
			}
			v, hit, err := c.Get(ctx, b, value("bob"))
			if v != "bob" || hit || err != nil {
				t.Fatalf("Get(b) = (%q, %v, %v), want a load of bob", v, hit, err)
			}
			if v, found, _ := c.Lookup(a); found {
				t.Fatalf("Lookup(a) after b replaced it = %q, found", v)
			}
			if v, found, _ := c.Lookup(b); !found || v != "bob" {
				t.Fatalf("Lookup(b) = (%q, %v), want bob", v, found)
			}
			if s := c.Stats(); s.Loads != 2 || s.Evictions != 1 || s.Size != 1 {
				t.Fatalf("stats %+v, want 2 loads, 1 eviction, size 1", s)
			}
		}},
		{"a negative entry is not the other key's", func(t *testing.T, a, b cache.Key) {
			c := mustNew[string](t, cache.Options{IsNegative: isBad})
			if _, _, err := c.Get(ctx, a, fail(errBad)); !errors.Is(err, errBad) {
				t.Fatalf("Get(a) = %v, want errBad", err)
			}
			if _, found, err := c.Lookup(b); found || err != nil {
				t.Fatalf("Lookup(b) = (%v, %v), want not found", found, err)
			}
			if v, hit, err := c.Get(ctx, b, value("bob")); v != "bob" || hit || err != nil {
				t.Fatalf("Get(b) = (%q, %v, %v), want a load of bob", v, hit, err)
			}
		}},
		{"a stale value is not served for the other key", func(t *testing.T, a, b cache.Key) {
			clk := newClock()
			c := mustNew[string](t, cache.Options{Now: clk.Now, MaxTTL: time.Minute, StaleIfError: time.Hour})
			exp := func(context.Context) (string, time.Time, error) { return "alice", t0.Add(time.Hour), nil }
			if _, _, err := c.Get(ctx, a, exp); err != nil {
				t.Fatal(err)
			}
			clk.Advance(2 * time.Minute) // a expired, within stale-if-error and its own exp
			if v, hit, err := c.Get(ctx, b, fail(errOP)); !errors.Is(err, errOP) || v != "" || hit {
				t.Fatalf("Get(b) with the OP down = (%q, %v, %v), want errOP", v, hit, err)
			}
			if v, hit, err := c.Get(ctx, a, fail(errOP)); err != nil || v != "alice" || !hit {
				t.Fatalf("Get(a) with the OP down = (%q, %v, %v), want alice stale", v, hit, err)
			}
		}},
		{"Remove of one key leaves the other's entry", func(t *testing.T, a, b cache.Key) {
			c := mustNew[string](t, cache.Options{})
			if _, _, err := c.Get(ctx, a, value("alice")); err != nil {
				t.Fatal(err)
			}
			if c.Remove(b) {
				t.Fatal("Remove(b) removed a's entry")
			}
			if v, found, _ := c.Lookup(a); !found || v != "alice" {
				t.Fatalf("Lookup(a) = (%q, %v), want alice", v, found)
			}
		}},
		{"tags follow the whole key", func(t *testing.T, a, b cache.Key) {
			c, err := cache.NewTagged[string](cache.Options{}, func(v string) []cache.Tag { return []cache.Tag{cache.TagOf(v)} })
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := c.Get(ctx, a, value("alice")); err != nil {
				t.Fatal(err)
			}
			if _, _, err := c.Get(ctx, b, value("bob")); err != nil { // replaces a's entry
				t.Fatal(err)
			}
			if n := c.TagCount(); n != 1 {
				t.Fatalf("TagCount = %d, want 1 (alice's tag dropped with her entry)", n)
			}
			if n := c.RemoveTagged(cache.TagOf("alice")); n != 0 {
				t.Fatalf("RemoveTagged(alice) = %d, want 0", n)
			}
			if n := c.RemoveTagged(cache.TagOf("bob")); n != 1 || c.Len() != 0 || c.TagCount() != 0 {
				t.Fatalf("RemoveTagged(bob) = %d, Len %d, TagCount %d", n, c.Len(), c.TagCount())
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := collidingKeys()
			tc.run(t, a, b)
			tc.run(t, b, a) // and the other way round
		})
	}
}
