// Package cache is a bounded, TTL'd, deduplicated in-memory store keyed by a hash
// (in flaat-extauthz: the SHA-256 of a bearer token).
//
// It knows nothing about OIDC: a caller supplies a [Loader] that produces the value and
// its own end of life (a token's exp, an introspection exp), and says through
// [Options.IsNegative] which loader errors prove the key invalid. The cache then
//
//   - keeps at most [Options.Size] entries, least recently used out first
//     (github.com/hashicorp/golang-lru/v2, keyed by the first half of a key; an entry
//     keeps the other half and is only ever read with its whole key);
//   - expires each entry at min(now+MaxTTL, expires), measured with an
//     injected clock;
//   - runs exactly one loader for concurrent misses of one key
//     (golang.org/x/sync/singleflight), on a context detached from every caller with its
//     own timeout, while each caller waits on its own context;
//   - remembers "proven invalid" errors for [Options.NegativeTTL] and never caches any
//     other error (OP outages, timeouts, 5xx);
//   - optionally serves an entry that expired less than [Options.StaleIfError] ago when
//     the loader fails, as long as the value's own end of life is still ahead.
//
// The cache never sees a raw token: keys are [Key] values (32-byte hashes, see [KeyOf]),
// and values are whatever the caller stores (claims, not tokens).
package cache

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
)

// Defaults applied by [New] to zero-valued [Options] fields.
const (
	DefaultSize        = 100000
	DefaultMaxTTL      = 5 * time.Minute
	DefaultNegativeTTL = 10 * time.Second
	DefaultLoadTimeout = 5 * time.Second
)

var (
	// ErrInvalidOptions is wrapped by every error [New] returns.
	ErrInvalidOptions = errors.New("cache: invalid options")
	// ErrLoaderPanic is returned (to every waiter of the load) when a [Loader] panics.
	// The panic is recovered, counted as a load error and never cached; the panic value
	// is deliberately not included, since it could hold secret material.
	ErrLoaderPanic = errors.New("cache: loader panicked")
)

// Key identifies an entry: a SHA-256 digest, never a raw token. Build it with [KeyOf].
type Key [32]byte

// KeyOf returns the SHA-256 digest of parts, each preceded by its length as an 8-byte
// big-endian integer, so that distinct part lists always give distinct inputs
// (KeyOf("ab", "c") != KeyOf("a", "bc") != KeyOf("abc")), e.g. KeyOf(token, issuerID);
// the token itself is not kept. A caller that already has a digest of one value uses it
// directly: package authz keys by Key(sha256(token)), the digest it also logs from.
func KeyOf(parts ...string) Key {
	size := 0
	for _, p := range parts {
		size += 8 + len(p)
	}
	// Hash one contiguous buffer: on the stack for tokens of usual size, so that the
	// warm path of a caller (KeyOf + a cache hit) does not allocate.
	var stack [keyStackBuf]byte
	var buf []byte
	if size <= len(stack) {
		buf = stack[:0]
	} else {
		buf = make([]byte, 0, size)
	}
	for _, p := range parts {
		buf = binary.BigEndian.AppendUint64(buf, uint64(len(p)))
		buf = append(buf, p...)
	}
	return Key(sha256.Sum256(buf))
}

// keyStackBuf is the input size up to which KeyOf does not allocate: most access tokens
// are 1–3 KiB. Larger inputs cost one allocation.
const keyStackBuf = 4096

// Options configures a [Cache]. The zero value is valid and means "all defaults".
// The config-file form of these settings is authz.CacheConfig (keys cache.size,
// cache.max_ttl, cache.negative_ttl, cache.stale_if_error, cache.disabled).
type Options struct {
	// Size is the maximum number of entries (positive and negative); the least recently
	// used entry is evicted to make room. Default 100000; negative is an error.
	Size int
	// MaxTTL caps how long a value is reused: an entry lives min(MaxTTL, expires-now).
	// Default 5m; negative is an error. Danger: a value that became invalid at its
	// source (a revoked token) is still served for up to MaxTTL.
	MaxTTL time.Duration
	// NegativeTTL is how long an error for which IsNegative is true is remembered and
	// returned without calling the loader. Default 10s; a negative value disables
	// negative caching. Errors for which IsNegative is false are never cached.
	NegativeTTL time.Duration
	// StaleIfError, when positive, lets Get return an entry that expired less than
	// StaleIfError ago if the loader fails with a non-negative error (an OP outage),
	// provided the value's own expires is known and still in the future. Default 0 (off);
	// negative is an error. Danger: while the source is down, a revoked value stays
	// accepted for up to MaxTTL+StaleIfError.
	StaleIfError time.Duration
	// LoadTimeout bounds the detached context a loader runs on. Default 5s; negative is
	// an error. It is measured with the real clock (context deadlines), not Now.
	LoadTimeout time.Duration
	// Now is the clock used for every expiry decision. Default time.Now.
	Now func() time.Time
	// IsNegative reports whether a loader error proves the key invalid (bad signature,
	// expired, inactive, 401/403), so that it may be cached for NegativeTTL. Default nil:
	// no error is cached. It must return false for outages, timeouts and 5xx.
	IsNegative func(err error) bool
}

// Loader loads the value for a key. expires is the value's own end of life (token exp,
// introspection exp); the zero time means unknown, and then MaxTTL alone applies. A
// value whose expires is already past is returned to the waiting callers but not stored.
// The loader runs on a context detached from every caller (values kept, cancellation
// dropped) with [Options.LoadTimeout]; it must honour that context. Errors it returns
// must not contain the raw token: negative ones are stored and handed to later callers.
type Loader[V any] func(ctx context.Context) (v V, expires time.Time, err error)

// Stats is a snapshot of a cache's counters. Fields are read one by one, not atomically
// as a set.
type Stats struct {
	// Hits: Get found a fresh positive entry at lookup.
	Hits uint64
	// Misses: Get found no fresh entry at lookup and joined or started a load (or
	// returned its cancelled ctx's error). Hits+NegativeHits+Misses counts every Get.
	Misses uint64
	// NegativeHits: Get found a fresh negative entry at lookup and returned its error.
	NegativeHits uint64
	// StaleHits: a missing Get returned an expired entry because the loader failed
	// (stale-if-error); these are also counted in Misses.
	StaleHits uint64
	// Evictions: entries dropped by the LRU to respect Size (not expiry, not Purge).
	Evictions uint64
	// Loads: loader invocations.
	Loads uint64
	// LoadErrors: loader invocations that returned an error or panicked.
	LoadErrors uint64
	// Size: entries held now, including expired ones not yet replaced or evicted.
	Size int
}

// Cache is a bounded LRU with per-entry expiry and deduplicated loads. It is safe for
// concurrent use. It starts no goroutines of its own apart from one per running load
// and needs no Close.
type Cache[V any] struct {
	o     Options
	lru   *lru.Cache[prefix, entry[V]] // read and written through get, peek, add, remove only
	group singleflight.Group
	// base is a reading of o.Now at New; entries keep their instants as offsets from it.
	base time.Time

	hits, misses, negHits, staleHits atomic.Uint64
	evictions, loads, loadErrors     atomic.Uint64

	tagOf func(V) []Tag // NewTagged; nil: no index
	tagMu sync.Mutex
	tags  map[Tag]tagged // tag → keys of stored values with that tag
}

// Tag names a group of entries for RemoveTagged: a 64-bit digest (see TagOf). Two
// groups whose tags collide are removed together, which only costs reloads.
type Tag uint64

// TagOf returns the Tag of parts (the first 8 bytes of KeyOf(parts...)).
func TagOf(parts ...string) Tag {
	k := KeyOf(parts...)
	return Tag(binary.BigEndian.Uint64(k[:8]))
}

// tagged is the set of keys of one tag: the first inline (most tags name one entry:
// one user's one token), further ones in more.
type tagged struct {
	first Key
	more  []Key
}

// prefix is what the LRU is keyed by: the first half of a Key. The entry keeps the
// other half (entry.rest) and every read compares it, so that an entry is only ever
// found by its whole key: two keys that share a prefix (two SHA-256 digests sharing 128
// bits: not expected in the life of the universe, and no cheaper for a client to
// produce than a collision of a 128-bit hash, 2^64 work, which would only make its two
// tokens displace each other) replace each other's entry, and never read it. A 16-byte
// key makes the LRU's map slot 24 bytes instead of 40.
type prefix [16]byte

// split returns the LRU key of k and the half its entry keeps.
func split(k Key) (prefix, [16]byte) { return prefix(k[:16]), [16]byte(k[16:]) }

// join is the Key of the entry e stored under p.
func join[V any](p prefix, e *entry[V]) Key {
	var k Key
	copy(k[:16], p[:])
	copy(k[16:], e.rest[:])
	return k
}

// entry is one stored value or negative error, stored by value in the LRU's own list
// element (one allocation per entry, not two). It is 40 bytes for a pointer V, which
// with the 16-byte LRU key makes the LRU element 112 bytes instead of 128: what most
// entries do not need (a negative entry's error, the value's own end of life that only
// stale-if-error reads) is behind aside, nil for a positive entry of a cache without
// StaleIfError. Instants are offsets from the cache's base (int64s instead of 24-byte
// time.Time values), and compare as the instants would with Time.Before (see at,
// wallAt).
type entry[V any] struct {
	v          V
	rest       [16]byte      // the second half of the entry's Key (see prefix)
	freshUntil time.Duration // at(instant): served by Get before it
	aside      *aside        // nil: a positive entry whose end of life is not kept
}

// aside is the part of an entry that most entries do without: one small allocation for
// a negative entry, and for a positive one only when stale-if-error may serve it.
type aside struct {
	err     error         // non-nil: a negative entry
	expires time.Duration // wallAt(the value's own end of life); noExpiry = unknown
}

// negative returns e's error for a negative entry, nil for a positive one.
func (e *entry[V]) negative() error {
	if e.aside == nil {
		return nil
	}
	return e.aside.err
}

// noExpiry is aside.expires (wallAt) of a value whose end of life is unknown (zero time).
const noExpiry = time.Duration(math.MinInt64)

// at is t as an offset from the cache's base: a.Before(b) exactly when at(a) < at(b),
// on the monotonic clock when both t and the base have a reading of it (time.Now), on
// the wall clock otherwise (an injected clock), as Time.Before and Time.Sub do.
func (c *Cache[V]) at(t time.Time) time.Duration { return t.Sub(c.base) }

// wallAt is at on the wall clock alone, for a value's own end of life: it comes from a
// token's exp, which has no monotonic reading, so Time.Before compares it on the wall
// clock too. A zero t (unknown) is noExpiry.
func (c *Cache[V]) wallAt(t time.Time) time.Duration {
	if t.IsZero() {
		return noExpiry
	}
	return t.Round(0).Sub(c.base.Round(0))
}

// result is what one load hands to all its waiters.
type result[V any] struct {
	v     V
	err   error
	hit   bool // answered from the cache inside the flight (fresh or stale)
	stale bool // an expired entry served because the loader failed
}

// New validates o, applies defaults and returns an empty cache. Every problem with o is
// reported in one error wrapping [ErrInvalidOptions].
func New[V any](o Options) (*Cache[V], error) { return NewTagged[V](o, nil) }

// NewTagged is New with a tag index: tags names the tags of a stored value (in
// flaat-extauthz: TagOf issuer+subject and issuer+session), so that RemoveTagged can
// drop every entry of a tag at once. tags must be a pure function of the value; nil
// means no index (RemoveTagged removes nothing). The index costs one map entry (72
// bytes) per tag of each stored value and is maintained on the miss path and on removal
// only: a hit does not touch it.
func NewTagged[V any](o Options, tags func(v V) []Tag) (*Cache[V], error) {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOptions}, a...)...))
	}
	if o.Size < 0 {
		bad("size %d is negative", o.Size)
	}
	if o.MaxTTL < 0 {
		bad("max_ttl %s is negative", o.MaxTTL)
	}
	if o.StaleIfError < 0 {
		bad("stale_if_error %s is negative", o.StaleIfError)
	}
	if o.LoadTimeout < 0 {
		bad("load timeout %s is negative", o.LoadTimeout)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if o.Size == 0 {
		o.Size = DefaultSize
	}
	if o.MaxTTL == 0 {
		o.MaxTTL = DefaultMaxTTL
	}
	if o.NegativeTTL == 0 {
		o.NegativeTTL = DefaultNegativeTTL
	}
	if o.LoadTimeout == 0 {
		o.LoadTimeout = DefaultLoadTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Cache[V]{o: o, base: o.Now()}
	var l *lru.Cache[prefix, entry[V]]
	var err error
	if tags != nil {
		c.tagOf = tags
		c.tags = map[Tag]tagged{}
		l, err = lru.NewWithEvict[prefix, entry[V]](o.Size, c.untag)
	} else {
		l, err = lru.New[prefix, entry[V]](o.Size)
	}
	if err != nil { // unreachable: Size > 0 here
		return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	c.lru = l
	return c, nil
}

// Get returns the value for k: from a fresh entry if there is one (hit=true), else from
// load, which runs at most once at a time per key however many callers miss together.
//
//   - A fresh negative entry returns its stored error with hit=true (NegativeHits).
//   - On a miss, Get waits for the shared load or for ctx, whichever comes first; a
//     cancelled caller gets ctx.Err() at once and the load goes on for the others. A
//     caller whose ctx is already done on a miss gets ctx.Err() and starts no load.
//   - A loader error for which IsNegative is true is stored for NegativeTTL; any other
//     error is returned to the waiters and not stored, unless stale-if-error applies,
//     in which case the expired value is returned with hit=true and a nil error.
//
// Get does not check ctx on a hit: a fresh entry is returned even to a cancelled caller.
// The value returned is shared with the cache and with other callers: treat it as
// read-only.
func (c *Cache[V]) Get(ctx context.Context, k Key, load Loader[V]) (v V, hit bool, err error) {
	if v, found, err := c.Lookup(k); found {
		return v, true, err
	}
	c.misses.Add(1)
	return c.miss(ctx, k, load)
}

// Lookup is the hit half of Get: the value (or, for a negative entry, its stored error)
// of a fresh entry for k, with found=true, counted as a hit (or negative hit). Without a
// fresh entry it returns found=false, counts nothing and loads nothing: the caller then
// calls Get, which counts the miss. Callers whose loader is a closure over per-call data
// call Lookup first so that the closure is only built (and allocated) on a miss.
func (c *Cache[V]) Lookup(k Key) (v V, found bool, err error) {
	e, ok := c.get(k)
	if !ok || c.at(c.o.Now()) >= e.freshUntil {
		return v, false, nil
	}
	if err := e.negative(); err != nil {
		c.negHits.Add(1)
		return v, true, err
	}
	c.hits.Add(1)
	return e.v, true, nil
}

// miss joins or starts the load of k and waits for it or for ctx. It is a separate
// function so that what its closure captures escapes to the heap on the miss path only,
// keeping Get's hit path free of allocations.
func (c *Cache[V]) miss(ctx context.Context, k Key, load Loader[V]) (v V, hit bool, err error) {
	if err := ctx.Err(); err != nil {
		return v, false, err
	}
	ch := c.group.DoChan(string(k[:]), func() (any, error) {
		return c.flight(ctx, k, load), nil
	})
	select {
	case <-ctx.Done():
		return v, false, ctx.Err()
	case res := <-ch:
		r := res.Val.(*result[V])
		if r.stale {
			c.staleHits.Add(1)
		}
		return r.v, r.hit, r.err
	}
}

// flight runs inside singleflight: at most one per key at a time, so it is the only
// writer of k and may add or remove k without racing another load of it.
func (c *Cache[V]) flight(ctx context.Context, k Key, load Loader[V]) *result[V] {
	// A load that finished between the caller's lookup and DoChan has stored a fresh
	// entry: use it rather than loading again.
	if e, ok := c.peek(k); ok && c.at(c.o.Now()) < e.freshUntil {
		return &result[V]{v: e.v, err: e.negative(), hit: true}
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.o.LoadTimeout)
	defer cancel()
	c.loads.Add(1)
	v, expires, err, panicked := safeLoad(lctx, load)
	now := c.o.Now()
	if err == nil {
		ttl := c.o.MaxTTL
		if !expires.IsZero() {
			ttl = min(ttl, expires.Sub(now))
		}
		if ttl > 0 {
			e := entry[V]{v: v, freshUntil: c.at(now.Add(ttl))}
			if c.o.StaleIfError > 0 && !expires.IsZero() { // only staleUsable reads it
				e.aside = &aside{expires: c.wallAt(expires)}
			}
			c.add(k, e)
		} else {
			c.remove(k) // do not leave an older entry behind the fresh answer
		}
		return &result[V]{v: v}
	}
	c.loadErrors.Add(1)
	if !panicked && c.o.IsNegative != nil && c.o.IsNegative(err) {
		if c.o.NegativeTTL > 0 {
			c.add(k, entry[V]{aside: &aside{err: err}, freshUntil: c.at(now.Add(c.o.NegativeTTL))})
		} else {
			c.remove(k) // a proven-invalid key must not be served stale
		}
		return &result[V]{err: err}
	}
	if e, ok := c.peek(k); ok {
		if c.staleUsable(e, now) {
			return &result[V]{v: e.v, hit: true, stale: true}
		}
		c.remove(k) // expired and, as time only moves on, of no further use
	}
	return &result[V]{err: err}
}

// staleUsable reports whether an expired positive entry may be served after a failed load.
func (c *Cache[V]) staleUsable(e entry[V], now time.Time) bool {
	return c.o.StaleIfError > 0 && e.aside != nil && e.aside.err == nil && e.aside.expires != noExpiry &&
		c.wallAt(now) < e.aside.expires && c.at(now)-e.freshUntil < c.o.StaleIfError
}

// get returns the entry of k, marking it recently used: the entry stored under k's
// prefix if it is k's (see prefix).
func (c *Cache[V]) get(k Key) (entry[V], bool) {
	p, rest := split(k)
	e, ok := c.lru.Get(p)
	if !ok || e.rest != rest {
		return entry[V]{}, false
	}
	return e, true
}

// peek is get without marking the entry used.
func (c *Cache[V]) peek(k Key) (entry[V], bool) {
	p, rest := split(k)
	e, ok := c.lru.Peek(p)
	if !ok || e.rest != rest {
		return entry[V]{}, false
	}
	return e, true
}

// remove drops the entry of k, if any, and reports whether there was one. (An entry
// of another key with k's prefix stored between the check and the removal is dropped
// too, which only costs that key a load.)
func (c *Cache[V]) remove(k Key) bool {
	if _, ok := c.peek(k); !ok {
		return false
	}
	return c.lru.Remove(prefix(k[:16]))
}

// add stores e for k and counts an eviction when the LRU had to drop its oldest entry
// to make room, or when e replaces the entry of another key with k's prefix.
// Evictions are counted from Add's result rather than from an eviction callback:
// golang-lru calls the callback for Remove and Purge too, which are not evictions.
func (c *Cache[V]) add(k Key, e entry[V]) {
	p, rest := split(k)
	e.rest = rest
	old, hadOld := c.lru.Peek(p)
	if c.lru.Add(p, e) || hadOld && old.rest != rest {
		c.evictions.Add(1)
	}
	if c.tags == nil {
		return
	}
	// The index follows the LRU, after it: an eviction callback that runs concurrently
	// keeps the tags of whatever the LRU holds for k by then (untag), and a key that is
	// already gone again is not indexed (the check below). Between the Add and the
	// tagging the entry can be found but not removed by tag: a caller that removes by
	// tag while loads run handles that itself (authz re-checks after every load).
	c.tagMu.Lock()
	defer c.tagMu.Unlock()
	var tags []Tag
	if e.negative() == nil {
		tags = c.tagOf(e.v)
	}
	if hadOld && old.negative() == nil { // Add replaced it without calling the eviction callback
		oldKey := join(p, &old)
		for _, t := range c.tagOf(old.v) {
			if oldKey != k || !slices.Contains(tags, t) {
				c.dropLocked(t, oldKey)
			}
		}
	}
	if _, ok := c.peek(k); len(tags) == 0 || !ok {
		return
	}
	for _, t := range tags {
		if ks, ok := c.tags[t]; !ok {
			c.tags[t] = tagged{first: k}
		} else if ks.first != k && !slices.Contains(ks.more, k) {
			ks.more = append(ks.more, k)
			c.tags[t] = ks
		}
	}
}

// untag drops k from the index of e's tags (the LRU's eviction callback: it runs for
// evictions, Remove and Purge, outside the LRU's lock). Tags that a value stored for k
// since then also has are kept.
func (c *Cache[V]) untag(p prefix, e entry[V]) {
	if e.negative() != nil {
		return
	}
	k := join(p, &e)
	c.tagMu.Lock()
	defer c.tagMu.Unlock()
	var keep []Tag
	if cur, ok := c.peek(k); ok && cur.negative() == nil {
		keep = c.tagOf(cur.v)
	}
	for _, t := range c.tagOf(e.v) {
		if !slices.Contains(keep, t) {
			c.dropLocked(t, k)
		}
	}
}

// dropLocked removes k from tag t's keys. tagMu is held.
func (c *Cache[V]) dropLocked(t Tag, k Key) {
	ks, ok := c.tags[t]
	if !ok {
		return
	}
	switch i := slices.Index(ks.more, k); {
	case i >= 0:
		ks.more = slices.Delete(ks.more, i, i+1)
	case ks.first != k:
		return
	case len(ks.more) == 0:
		delete(c.tags, t)
		return
	default:
		ks.first, ks.more = ks.more[len(ks.more)-1], ks.more[:len(ks.more)-1]
	}
	if len(ks.more) == 0 {
		ks.more = nil
	}
	c.tags[t] = ks
}

// RemoveTagged drops every entry whose value has tag t (see NewTagged) and returns how
// many it dropped. A load running at the same time may still store its value
// afterwards: a caller that must exclude that (a logout) makes its loader aware of it.
func (c *Cache[V]) RemoveTagged(t Tag) int {
	if c.tags == nil {
		return 0
	}
	c.tagMu.Lock()
	ks, ok := c.tags[t]
	var keys []Key
	if ok {
		keys = append(append(keys, ks.first), ks.more...)
	}
	c.tagMu.Unlock()
	n := 0
	for _, k := range keys {
		if c.remove(k) { // the callback updates the index
			n++
		}
	}
	return n
}

// Remove drops the entry of k, if any, and reports whether there was one.
func (c *Cache[V]) Remove(k Key) bool { return c.remove(k) }

// TagCount returns the number of distinct tags in the index (for tests and metrics).
func (c *Cache[V]) TagCount() int {
	if c.tags == nil {
		return 0
	}
	c.tagMu.Lock()
	defer c.tagMu.Unlock()
	return len(c.tags)
}

// safeLoad calls load, turning a panic into ErrLoaderPanic (singleflight's DoChan would
// otherwise re-panic on a fresh goroutine and crash the process). A panic is a bug, not a
// proof of invalidity: the caller never offers it to IsNegative.
func safeLoad[V any](ctx context.Context, load Loader[V]) (v V, expires time.Time, err error, panicked bool) {
	defer func() {
		if recover() != nil {
			var zero V
			v, expires, err, panicked = zero, time.Time{}, ErrLoaderPanic, true
		}
	}()
	v, expires, err = load(ctx)
	return v, expires, err, false
}

// Stats returns a snapshot of the counters.
func (c *Cache[V]) Stats() Stats {
	return Stats{
		Hits:         c.hits.Load(),
		Misses:       c.misses.Load(),
		NegativeHits: c.negHits.Load(),
		StaleHits:    c.staleHits.Load(),
		Evictions:    c.evictions.Load(),
		Loads:        c.loads.Load(),
		LoadErrors:   c.loadErrors.Load(),
		Size:         c.lru.Len(),
	}
}

// Len returns the number of entries held, including expired ones not yet replaced or
// evicted (they are never served fresh).
func (c *Cache[V]) Len() int { return c.lru.Len() }

// Purge drops every entry. Counters are kept; Purge does not count as evictions. A load
// already running when Purge is called may still store its result afterwards.
func (c *Cache[V]) Purge() { c.lru.Purge() }
