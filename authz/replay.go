package authz

import (
	"sync"
	"time"
)

// replayCache remembers identifiers (hashes of a DPoP proof's or logout token's jti) for
// a fixed window, to refuse a second use. It is bounded: entries are kept in insertion
// order in a ring, and since each one lives for the same window from its insertion, the
// oldest is always the first to expire. When the ring is full of unexpired entries, add
// refuses (errReplayCacheFull): a proof that cannot be remembered is not accepted.
//
// It is per process: a replay to another replica is not detected (see DPoPConfig).
type replayCache struct {
	window time.Duration

	mu   sync.Mutex
	seen map[[32]byte]struct{}
	ring []replayEntry
	head int // index of the oldest entry
	n    int // entries in the ring
}

type replayEntry struct {
	key     [32]byte
	expires time.Time
}

func newReplayCache(size int, window time.Duration) *replayCache {
	return &replayCache{window: window, seen: make(map[[32]byte]struct{}), ring: make([]replayEntry, size)}
}

// replayResult is the answer of add.
type replayResult int

const (
	replayFresh replayResult = iota // not seen before; now remembered
	replaySeen                      // seen within the window: a replay
	replayFull                      // full of unexpired entries: cannot remember it
)

// add remembers key at now unless it was seen within the window.
func (c *replayCache) add(key [32]byte, now time.Time) replayResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.n > 0 && !now.Before(c.ring[c.head].expires) {
		delete(c.seen, c.ring[c.head].key)
		c.ring[c.head] = replayEntry{}
		c.head = (c.head + 1) % len(c.ring)
		c.n--
	}
	if _, ok := c.seen[key]; ok {
		return replaySeen
	}
	if c.n == len(c.ring) {
		return replayFull
	}
	c.ring[(c.head+c.n)%len(c.ring)] = replayEntry{key: key, expires: now.Add(c.window)}
	c.n++
	c.seen[key] = struct{}{}
	return replayFresh
}

// len returns the number of remembered entries (expired ones included until the next add).
func (c *replayCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
