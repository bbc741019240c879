package cache

import "sync"

// lru is the bounded least-recently-used store under Cache: a map from Key to an entry,
// holding at most size entries, the least recently used one evicted to make room.
//
// It behaves as github.com/hashicorp/golang-lru/v2's Cache did here (Get moves an entry
// to the front, Peek and Contains do not; Add of a present key replaces its entry
// without calling onEvict; onEvict is called, outside the lock, for every entry
// evicted, removed or purged), but keeps memory per entry small, which is what bounds
// the memory of a full identity cache: the entries live in chunks of lruChunk nodes
// linked by int32 indexes (no allocation and no pointer of their own per entry), and the
// index maps a Key to an int32, so that the garbage collector never scans it. An entry
// takes 80 bytes plus about 40–80 bytes of index, against a 128-byte list element and a
// 40-byte (pointer) index slot in golang-lru.
type lru[V any] struct {
	mu      sync.RWMutex
	size    int
	index   map[Key]int32 // key → node
	chunks  [][]node[V]   // nodes; node i is chunks[i/lruChunk][i%lruChunk]
	n       int32         // nodes allocated (in use or free)
	free    int32         // first free node (linked through next); -1: none
	head    int32         // most recently used node; -1: empty
	tail    int32         // least recently used node; -1: empty
	onEvict func(Key, entry[V])
}

// node is one entry of the list. A free node has the zero key and entry (so that it
// keeps nothing alive).
type node[V any] struct {
	key        Key
	prev, next int32 // -1: none
	e          entry[V]
}

// lruChunk is the number of nodes allocated at once (80 KiB for Cache[*T]).
const lruChunk = 1024

// maxLRUSize is the largest size an lru can hold (int32 node indexes).
const maxLRUSize = 1<<31 - 1

// newLRU returns an empty lru of at most size (1..maxLRUSize) entries; onEvict may be nil.
func newLRU[V any](size int, onEvict func(Key, entry[V])) *lru[V] {
	return &lru[V]{size: size, index: map[Key]int32{}, free: -1, head: -1, tail: -1, onEvict: onEvict}
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
	delete(l.index, k)
	*n = node[V]{next: l.free, prev: -1}
	l.free = i
	return k, e
}

// Get returns the entry of k and makes it the most recently used.
func (l *lru[V]) Get(k Key) (entry[V], bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, ok := l.index[k]
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
	i, ok := l.index[k]
	if !ok {
		return entry[V]{}, false
	}
	return l.at(i).e, true
}

// Contains reports whether k has an entry, without making it more recently used.
func (l *lru[V]) Contains(k Key) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, ok := l.index[k]
	return ok
}

// Add stores e for k as the most recently used entry, replacing k's entry if there is
// one (without calling onEvict), and otherwise evicting the least recently used entry
// when the lru is full (calling onEvict for it). It reports whether it evicted.
func (l *lru[V]) Add(k Key, e entry[V]) (evicted bool) {
	l.mu.Lock()
	if i, ok := l.index[k]; ok {
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
	if len(l.index) >= l.size {
		ek, ee = l.removeLocked(l.tail)
		evicted = true
	}
	i := l.alloc()
	n := l.at(i)
	n.key, n.e = k, e
	l.pushFront(i)
	l.index[k] = i
	l.mu.Unlock()
	if evicted && l.onEvict != nil {
		l.onEvict(ek, ee)
	}
	return evicted
}

// Remove drops the entry of k, calling onEvict for it, and reports whether there was one.
func (l *lru[V]) Remove(k Key) bool {
	l.mu.Lock()
	i, ok := l.index[k]
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
		gone = make([]kv, 0, len(l.index))
		for i := l.tail; i >= 0; i = l.at(i).prev {
			n := l.at(i)
			gone = append(gone, kv{n.key, n.e})
		}
	}
	l.index, l.chunks, l.n = map[Key]int32{}, nil, 0
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
	return len(l.index)
}
