package authz

import (
	"sync"
	"time"
)

// replayCache remembers identifiers (hashes of a DPoP proof's or logout token's jti) for
// a fixed window, to refuse a second use. It is bounded: entries are kept in insertion
// order in a ring, and since each one lives for the same window from its insertion, the
// oldest is always the first to expire. When the ring is full of unexpired entries, add
// refuses (replayFull): a proof that cannot be remembered is not accepted. The ring
// grows with use (doubling) up to its size, so an unused cache costs next to nothing.
//
// It is per process: a replay to another replica is not detected (see DPoPConfig).
type replayCache struct {
	window time.Duration
	size   int

	mu   sync.Mutex
	seen map[[32]byte]struct{}
	ring []replayEntry
	head int // index of the oldest entry
	n    int // entries in the ring
}

type replayEntry struct {
	key     [32]byte
	expires int64 // Unix nanoseconds
}

func newReplayCache(size int, window time.Duration) *replayCache {
	return &replayCache{window: window, size: size, seen: make(map[[32]byte]struct{})}
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
	t := now.UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.n > 0 && t >= c.ring[c.head].expires {
		delete(c.seen, c.ring[c.head].key)
		c.ring[c.head] = replayEntry{}
		c.head = (c.head + 1) % len(c.ring)
		c.n--
	}
	if _, ok := c.seen[key]; ok {
		return replaySeen
	}
	if c.n == len(c.ring) {
		if len(c.ring) >= c.size {
			return replayFull
		}
		grown := make([]replayEntry, min(max(2*len(c.ring), 64), c.size))
		for i := range c.n {
			grown[i] = c.ring[(c.head+i)%len(c.ring)]
		}
		c.ring, c.head = grown, 0
	}
	c.ring[(c.head+c.n)%len(c.ring)] = replayEntry{key: key, expires: t + int64(c.window)}
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
