package cache

import (
	"hash/maphash"
	"sync"
)

// home is the first slot of k in a table of mask+1 slots. The keys are SHA-256 digests
// of what clients send, but a client can grind tokens whose digests share bits (2^18
// tries for one slot of a table of 2^18), so the slot is a hash of the whole key under
// a seed chosen at random per lru (as Go's own maps do): nobody outside can aim at a
// slot, and probe runs stay short.
func (l *lru[V]) home(k Key, mask int) int { return int(maphash.Comparable(l.seed, k) & uint64(mask)) }

// lru is the bounded least-recently-used store under Cache: a map from Key to an entry,
// holding at most size entries, the least recently used one evicted to make room.
//
// It behaves as github.com/hashicorp/golang-lru/v2's Cache did here (Get moves an entry
// to the front, Peek and Contains do not; Add of a present key replaces its entry
// without calling onEvict; onEvict is called, outside the lock, for every entry
// evicted, removed or purged), but keeps memory per entry small, which is what bounds
// the memory of a full identity cache: the entries live in chunks of lruChunk nodes
// linked by int32 indexes (no allocation and no pointer of their own per entry), and the
// index is an open-addressing table of int32 node numbers (linear probing, at most
// three quarters full, deletion by backward shift: no tombstones), which the garbage
// collector never scans. Every probe compares the whole key kept in the node. An entry
// takes 72 bytes plus 5–11 bytes of table, against a 128-byte list element and a
// 40-byte (pointer) map slot in golang-lru.
type lru[V any] struct {
	mu      sync.RWMutex
	size    int
	seed    maphash.Seed
	slots   []int32     // node+1 of each slot, 0: empty; len is 0 or a power of two
	count   int         // entries (used slots)
	chunks  [][]node[V] // nodes; node i is chunks[i/lruChunk][i%lruChunk]
	n       int32       // nodes allocated (in use or free)
	free    int32       // first free node (linked through next); -1: none
	head    int32       // most recently used node; -1: empty
	tail    int32       // least recently used node; -1: empty
	onEvict func(Key, entry[V])
}

// node is one entry of the list. A free node has the zero key and entry (so that it
// keeps nothing alive).
type node[V any] struct {
	key        Key
	prev, next int32 // -1: none
	e          entry[V]
}

// lruChunk is the number of nodes allocated at once (72 KiB for Cache[*T]).
const lruChunk = 1024

// maxLRUSize is the largest size an lru can hold (int32 node indexes).
const maxLRUSize = 1<<31 - 1

// newLRU returns an empty lru of at most size (1..maxLRUSize) entries; onEvict may be nil.
func newLRU[V any](size int, onEvict func(Key, entry[V])) *lru[V] {
	return &lru[V]{size: size, seed: maphash.MakeSeed(), free: -1, head: -1, tail: -1, onEvict: onEvict}
}

// find returns the node of k. mu is held (read or write).
func (l *lru[V]) find(k Key) (int32, bool) {
	_, i, ok := l.slot(k)
	return i, ok
}

// slot returns the slot and node of k (ok), or the empty slot where k's probe ends
// (slot -1 when the table is not allocated yet).
func (l *lru[V]) slot(k Key) (s int, i int32, ok bool) {
	if len(l.slots) == 0 {
		return -1, -1, false
	}
	mask := len(l.slots) - 1
	for s = l.home(k, mask); ; s = (s + 1) & mask {
		v := l.slots[s]
		if v == 0 {
			return s, -1, false
		}
		if l.at(v-1).key == k {
			return s, v - 1, true
		}
	}
}

// insert enters node i (holding its key, not in the table) into the table, growing it
// first to stay at most three quarters full.
func (l *lru[V]) insert(i int32) {
	if (l.count+1)*4 > len(l.slots)*3 {
		old := l.slots
		l.slots = make([]int32, max(16, 2*len(old)))
		mask := len(l.slots) - 1
		for _, v := range old {
			if v != 0 {
				s := l.home(l.at(v-1).key, mask)
				for l.slots[s] != 0 {
					s = (s + 1) & mask
				}
				l.slots[s] = v
			}
		}
	}
	mask := len(l.slots) - 1
	s := l.home(l.at(i).key, mask)
	for l.slots[s] != 0 {
		s = (s + 1) & mask
	}
	l.slots[s] = i + 1
	l.count++
}

// unslot empties slot s, moving later entries of its probe run back so that every
// entry stays reachable from its home slot without passing an empty slot.
func (l *lru[V]) unslot(s int) {
	mask := len(l.slots) - 1
	for j := s; ; {
		j = (j + 1) & mask
		v := l.slots[j]
		if v == 0 {
			break
		}
		// The entry at j may fill s unless its home lies cyclically in (s, j].
		h := l.home(l.at(v-1).key, mask)
		if (s <= j && (h <= s || h > j)) || (s > j && h <= s && h > j) {
			l.slots[s] = v
			s = j
		}
	}
	l.slots[s] = 0
	l.count--
}

func (l *lru[V]) at(i int32) *node[V] { return &l.chunks[i/lruChunk][i%lruChunk] }

// unlink takes node i out of the list.
func (l *lru[V]) unlink(i int32) {
	n := l.at(i)
	if n.prev >= 0 {
		l.at(n.prev).next = n.next
	} else {
		l.head = n.next
	}
	if n.next >= 0 {
		l.at(n.next).prev = n.prev
	} else {
		l.tail = n.prev
	}
}

// pushFront makes node i (not in the list) the most recently used.
func (l *lru[V]) pushFront(i int32) {
	n := l.at(i)
	n.prev, n.next = -1, l.head
	if l.head >= 0 {
		l.at(l.head).prev = i
	} else {
		l.tail = i
	}
	l.head = i
}

// alloc returns a free node, allocating a chunk when none is left.
func (l *lru[V]) alloc() int32 {
	if i := l.free; i >= 0 {
		l.free = l.at(i).next
		return i
	}
	i := l.n
	if int(i)%lruChunk == 0 { // chunks are full: a new one, no larger than size needs
		l.chunks = append(l.chunks, make([]node[V], min(lruChunk, l.size-int(i))))
	}
	l.n++
	return i
}

// removeLocked takes node i out of the list and the index, frees it and returns what it
// held. mu is held.
func (l *lru[V]) removeLocked(i int32) (Key, entry[V]) {
	l.unlink(i)
	n := l.at(i)
	k, e := n.key, n.e
	s, _, _ := l.slot(k)
	l.unslot(s)
	*n = node[V]{next: l.free, prev: -1}
	l.free = i
	return k, e
}

// Get returns the entry of k and makes it the most recently used.
func (l *lru[V]) Get(k Key) (entry[V], bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, ok := l.find(k)
	if !ok {
		return entry[V]{}, false
	}
	if l.head != i {
		l.unlink(i)
		l.pushFront(i)
	}
	return l.at(i).e, true
}

// Peek returns the entry of k without making it more recently used.
func (l *lru[V]) Peek(k Key) (entry[V], bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	i, ok := l.find(k)
	if !ok {
		return entry[V]{}, false
	}
	return l.at(i).e, true
}

// Contains reports whether k has an entry, without making it more recently used.
func (l *lru[V]) Contains(k Key) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, ok := l.find(k)
	return ok
}

// Add stores e for k as the most recently used entry, replacing k's entry if there is
// one (without calling onEvict), and otherwise evicting the least recently used entry
// when the lru is full (calling onEvict for it). It reports whether it evicted.
func (l *lru[V]) Add(k Key, e entry[V]) (evicted bool) {
	l.mu.Lock()
	if i, ok := l.find(k); ok {
		l.at(i).e = e
		if l.head != i {
			l.unlink(i)
			l.pushFront(i)
		}
		l.mu.Unlock()
		return false
	}
	var ek Key
	var ee entry[V]
	if l.count >= l.size {
		ek, ee = l.removeLocked(l.tail)
		evicted = true
	}
	i := l.alloc()
	n := l.at(i)
	n.key, n.e = k, e
	l.pushFront(i)
	l.insert(i)
	l.mu.Unlock()
	if evicted && l.onEvict != nil {
		l.onEvict(ek, ee)
	}
	return evicted
}

// Remove drops the entry of k, calling onEvict for it, and reports whether there was one.
func (l *lru[V]) Remove(k Key) bool {
	l.mu.Lock()
	i, ok := l.find(k)
	if !ok {
		l.mu.Unlock()
		return false
	}
	rk, re := l.removeLocked(i)
	l.mu.Unlock()
	if l.onEvict != nil {
		l.onEvict(rk, re)
	}
	return true
}

// Purge drops every entry, calling onEvict for each (least recently used first).
func (l *lru[V]) Purge() {
	type kv struct {
		k Key
		e entry[V]
	}
	var gone []kv
	l.mu.Lock()
	if l.onEvict != nil {
		gone = make([]kv, 0, l.count)
		for i := l.tail; i >= 0; i = l.at(i).prev {
			n := l.at(i)
			gone = append(gone, kv{n.key, n.e})
		}
	}
	l.slots, l.count, l.chunks, l.n = nil, 0, nil, 0
	l.free, l.head, l.tail = -1, -1, -1
	l.mu.Unlock()
	for _, g := range gone {
		l.onEvict(g.k, g.e)
	}
}

// Len returns the number of entries.
func (l *lru[V]) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.count
}
