package authz

import (
	"testing"
	"time"
)

// TestReplayCache: a key is refused within its window and accepted after it; the ring
// grows on demand up to its size, keeps insertion order across growth, and refuses
// (full) rather than forgets an unexpired entry.
func TestReplayCache(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newReplayCache(100, 10*time.Second)
	key := func(i int) (k [32]byte) { k[0], k[1] = byte(i), byte(i>>8); return k }
	for i := range 70 { // beyond the first ring of 64: one growth
		if r := c.add(key(i), now.Add(time.Duration(i)*time.Millisecond)); r != replayFresh {
			t.Fatalf("key %d: %v", i, r)
		}
	}
	if r := c.add(key(3), now.Add(time.Second)); r != replaySeen {
		t.Fatalf("replay within the window: %v", r)
	}
	for i := 70; i < 100; i++ {
		c.add(key(i), now.Add(time.Second))
	}
	if r := c.add(key(100), now.Add(2*time.Second)); r != replayFull {
		t.Fatalf("full cache: %v, want replayFull", r)
	}
	if len(c.ring) != 100 {
		t.Fatalf("ring grew to %d, want its size 100", len(c.ring))
	}
	// After the first keys' window, they expire in insertion order and make room.
	later := now.Add(10*time.Second + 5*time.Millisecond)
	if r := c.add(key(100), later); r != replayFresh {
		t.Fatalf("after expiry: %v", r)
	}
	if r := c.add(key(3), later); r != replayFresh {
		t.Fatalf("key 3 after its window: %v", r)
	}
	if r := c.add(key(69), later); r != replaySeen {
		t.Fatalf("key 69 still within its window: %v", r)
	}
	if c.len() != 100-6+2 {
		t.Fatalf("len %d", c.len())
	}
}
