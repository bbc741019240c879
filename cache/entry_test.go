package cache

import (
	"testing"
	"time"
	"unsafe"
)

// lruElement mirrors the list element of github.com/hashicorp/golang-lru/v2 v2.0.7
// (internal.Entry: next, prev, list, Key, Value, ExpiresAt, ExpireBucket), in which an
// entry is stored by value: its size class is what one cached entry costs besides its
// map slot.
type lruElement[V any] struct {
	next, prev, list unsafe.Pointer
	key              prefix
	value            entry[V]
	expiresAt        time.Time
	bucket           uint8
}

// TestEntrySize: an entry of a pointer value is 40 bytes (the value, the second half of
// the key, one instant, one pointer), so that with the 16-byte prefix the LRU is keyed
// by, the LRU element is 112 bytes (a size class of its own) and not 128.
func TestEntrySize(t *testing.T) {
	if got := unsafe.Sizeof(entry[*int]{}); got != 40 {
		t.Errorf("entry[*int] is %d bytes, want 40", got)
	}
	if got := unsafe.Sizeof(lruElement[*int]{}); got > 112 {
		t.Errorf("LRU element is %d bytes, want at most 112", got)
	}
}
