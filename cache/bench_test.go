package cache_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/cache"
)

// keyN returns a distinct key for n without hashing (benchmarks measure the cache, not SHA-256).
func keyN(n int) cache.Key {
	var k cache.Key
	binary.BigEndian.PutUint64(k[:], uint64(n))
	return k
}

var farFuture = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)

func constLoader(v int) cache.Loader[int] {
	return func(context.Context) (int, time.Time, error) { return v, farFuture, nil }
}

func mustNew[V any](b testing.TB, o cache.Options) *cache.Cache[V] {
	c, err := cache.New[V](o)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkGetHit: one fresh key, serial. Must report 0 allocs/op.
func BenchmarkGetHit(b *testing.B) {
	c := mustNew[int](b, cache.Options{})
	ctx, k, load := context.Background(), keyN(1), constLoader(1)
	if _, _, err := c.Get(ctx, k, load); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, hit, _ := c.Get(ctx, k, load); !hit {
			b.Fatal("miss")
		}
	}
}

// BenchmarkGetHitParallel: 1000 fresh keys, all Ps reading at once (one LRU lock).
func BenchmarkGetHitParallel(b *testing.B) {
	const n = 1000
	c := mustNew[int](b, cache.Options{})
	ctx, load := context.Background(), constLoader(1)
	for i := range n {
		if _, _, err := c.Get(ctx, keyN(i), load); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, hit, _ := c.Get(ctx, keyN(i%n), load); !hit {
				b.Error("miss")
				return
			}
			i++
		}
	})
}

// BenchmarkGetMissLoad: every Get is a miss that runs a (trivial) loader and stores.
func BenchmarkGetMissLoad(b *testing.B) {
	c := mustNew[int](b, cache.Options{Size: 1 << 20})
	ctx, load := context.Background(), constLoader(1)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, hit, _ := c.Get(ctx, keyN(i), load); hit {
			b.Fatal("hit")
		}
		i++
	}
}

// BenchmarkEvictionChurn: 10000 keys cycled through a size-1000 cache, so every Get
// misses, loads and evicts the least recently used entry.
func BenchmarkEvictionChurn(b *testing.B) {
	c := mustNew[int](b, cache.Options{Size: 1000})
	ctx, load := context.Background(), constLoader(1)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_, _, _ = c.Get(ctx, keyN(i%10000), load)
		i++
	}
	b.ReportMetric(float64(c.Stats().Evictions)/float64(i), "evictions/op")
}

// BenchmarkKeyOf: hashing a typical JWT-sized token with an issuer id.
func BenchmarkKeyOf(b *testing.B) {
	tok := string(make([]byte, 900))
	b.ReportAllocs()
	for b.Loop() {
		_ = cache.KeyOf(tok, "https://login.example.org")
	}
}

// typicalClaims decodes a JSON claims document of 20 claims, as userinfo or a JWT
// payload would yield, distinct per i.
func typicalClaims(i int) map[string]any {
	doc := fmt.Sprintf(`{
		"sub": "a1b2c3d4-e5f6-4711-8899-%012d",
		"iss": "https://login.example.org/realms/research",
		"aud": ["flaat-extauthz", "storage"],
		"exp": 1767322800, "iat": 1767319200, "nbf": 1767319200,
		"jti": "7f6e5d4c-%08d",
		"client_id": "portal",
		"scope": "openid profile email eduperson_entitlement",
		"email": "user%d@example.org",
		"email_verified": true,
		"name": "Ada Lovelace",
		"given_name": "Ada",
		"family_name": "Lovelace",
		"preferred_username": "alovelace%d",
		"acr": "https://refeds.org/profile/mfa",
		"sid": "0c1d2e3f-%08d",
		"groups": ["/research", "/research/hpc", "/admins"],
		"eduperson_entitlement": [
			"urn:mace:egi.eu:group:research:role=member#aai.egi.eu",
			"urn:mace:egi.eu:group:research:hpc:role=member#aai.egi.eu",
			"urn:mace:egi.eu:group:research:role=vm_operator#aai.egi.eu"
		],
		"eduperson_assurance": ["https://refeds.org/assurance/IAP/medium", "https://refeds.org/assurance/ID/unique"]
	}`, i, i, i, i, i)
	var m map[string]any
	if err := json.Unmarshal([]byte(doc), &m); err != nil {
		panic(err)
	}
	return m
}

// heapPerEntry fills a fresh cache with n entries made by mk and returns the live heap
// growth per entry, measured after GC.
// settleHeap collects garbage twice: objects that earlier tests left in sync.Pools
// survive one collection (in the pools' victim caches) and would otherwise be freed in
// the middle of a measurement, making it come out low or even negative.
func settleHeap() {
	runtime.GC()
	runtime.GC()
}

func heapPerEntry[V any](n int, mk func(int) V) float64 {
	c, err := cache.New[V](cache.Options{Size: n})
	if err != nil {
		panic(err)
	}
	vals := make([]V, n) // built first: the cache must not be charged for building them
	for i := range vals {
		vals[i] = mk(i)
	}
	var before, after runtime.MemStats
	settleHeap()
	runtime.ReadMemStats(&before)
	keepVals := vals
	ctx := context.Background()
	for i := range n {
		v := vals[i]
		_, _, _ = c.Get(ctx, keyN(i), func(context.Context) (V, time.Time, error) { return v, farFuture, nil })
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(c)
	runtime.KeepAlive(keepVals)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}

// claimsBytes measures the heap held by n typical claims maps alone.
func claimsBytes(n int) float64 {
	var before, after runtime.MemStats
	settleHeap()
	runtime.ReadMemStats(&before)
	vals := make([]map[string]any, n)
	for i := range vals {
		vals[i] = typicalClaims(i)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(vals)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}

// TestBytesPerEntry measures (and bounds, so a regression fails) what one entry costs:
// the cache's own overhead (LRU element, map slot, entry header) and a typical 20-claim
// map. Run with -v to see the numbers the README quotes.
func TestBytesPerEntry(t *testing.T) {
	const n = 5000
	overhead := heapPerEntry(n, func(i int) map[string]any { return nil })
	claims := claimsBytes(n)
	t.Logf("cache overhead per entry: %.0f B; typical 20-claim map: %.0f B; total ≈ %.0f B/entry (%.0f MiB per 100000 entries)",
		overhead, claims, overhead+claims, (overhead+claims)*100000/(1<<20))
	// About 156 B: the 112-byte LRU element holding the entry, its 24-byte map slot
	// (16-byte key prefix) and the map's spare room (191 B with a 32-byte key, 207 B with
	// a 128-byte element, 255 B with the entry in an allocation of its own).
	if overhead <= 0 || overhead > 170 {
		t.Errorf("cache overhead %.0f B/entry, want (0, 170]", overhead)
	}
	if claims < 500 || claims > 8192 {
		t.Errorf("claims map %.0f B, outside the plausible range: measurement broken?", claims)
	}
}

// BenchmarkBytesPerEntry reports the same numbers under `make bench`.
func BenchmarkBytesPerEntry(b *testing.B) {
	const n = 20000
	var overhead, claims float64
	for b.Loop() {
		overhead = heapPerEntry(n, func(i int) map[string]any { return nil })
		claims = claimsBytes(n)
	}
	b.ReportMetric(overhead, "overhead-B/entry")
	b.ReportMetric(claims, "claims-B/entry")
}
