package cache

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// modelLRU is the obvious LRU the compact one must agree with: keys most recently used
// first.
type modelLRU struct {
	size    int
	keys    []Key
	vals    map[Key]int
	evicted []Key // onEvict calls, in order
}

func (m *modelLRU) touch(k Key) {
	i := slices.Index(m.keys, k)
	m.keys = slices.Insert(slices.Delete(m.keys, i, i+1), 0, k)
}

func (m *modelLRU) get(k Key) (int, bool) {
	v, ok := m.vals[k]
	if ok {
		m.touch(k)
	}
	return v, ok
}

func (m *modelLRU) add(k Key, v int) bool {
	if _, ok := m.vals[k]; ok {
		m.vals[k] = v
		m.touch(k)
		return false
	}
	evicted := false
	if len(m.keys) >= m.size {
		old := m.keys[len(m.keys)-1]
		m.keys = m.keys[:len(m.keys)-1]
		delete(m.vals, old)
		m.evicted = append(m.evicted, old)
		evicted = true
	}
	m.keys = slices.Insert(m.keys, 0, k)
	m.vals[k] = v
	return evicted
}

func (m *modelLRU) remove(k Key) bool {
	i := slices.Index(m.keys, k)
	if i < 0 {
		return false
	}
	m.keys = slices.Delete(m.keys, i, i+1)
	delete(m.vals, k)
	m.evicted = append(m.evicted, k)
	return true
}

func (m *modelLRU) purge() {
	for i := len(m.keys) - 1; i >= 0; i-- {
		m.evicted = append(m.evicted, m.keys[i])
	}
	m.keys, m.vals = nil, map[Key]int{}
}

func lruKey(i int) Key {
	var k Key
	k[0], k[1], k[31] = byte(i), byte(i>>8), 0xaa
	return k
}

// TestLRUAgreesWithModel runs random operations on the compact LRU and on modelLRU and
// requires the same answers, the same onEvict calls and the same order of recency, for
// sizes within one chunk, exactly one chunk and across several (free nodes reused,
// chunks not filled up).
func TestLRUAgreesWithModel(t *testing.T) {
	for _, tc := range []struct {
		name       string
		size, keys int
		ops        int
	}{
		{"size 1", 1, 4, 2000},
		{"size 3", 3, 8, 5000},
		{"one chunk", lruChunk, lruChunk + 200, 20000},
		{"several chunks", 2*lruChunk + 300, 3 * lruChunk, 40000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tc.size)))
			m := &modelLRU{size: tc.size, vals: map[Key]int{}}
			var evicted []Key
			l := newLRU(tc.size, func(k Key, e entry[int]) {
				if want := lruKeyIndex(k) * 10; e.v != want {
					t.Fatalf("onEvict: entry %d for the key of %d", e.v, want)
				}
				evicted = append(evicted, k)
			})
			for op := range tc.ops {
				k := lruKey(rng.IntN(tc.keys))
				switch r := rng.IntN(100); {
				case r < 40:
					v := lruKeyIndex(k) * 10
					if got, want := l.Add(k, entry[int]{v: v}), m.add(k, v); got != want {
						t.Fatalf("op %d: Add evicted %v, model %v", op, got, want)
					}
				case r < 75:
					e, ok := l.Get(k)
					v, mok := m.get(k)
					if ok != mok || (ok && e.v != v) {
						t.Fatalf("op %d: Get %v %v, model %v %v", op, e.v, ok, v, mok)
					}
				case r < 85:
					e, ok := l.Peek(k)
					v, mok := m.vals[k]
					if ok != mok || (ok && e.v != v) || l.Contains(k) != mok {
						t.Fatalf("op %d: Peek %v %v, model %v %v", op, e.v, ok, v, mok)
					}
				case r < 97:
					if got, want := l.Remove(k), m.remove(k); got != want {
						t.Fatalf("op %d: Remove %v, model %v", op, got, want)
					}
				case r < 98:
					l.Purge()
					m.purge()
				default:
				}
				if l.Len() != len(m.keys) {
					t.Fatalf("op %d: Len %d, model %d", op, l.Len(), len(m.keys))
				}
			}
			if !slices.Equal(evicted, m.evicted) {
				t.Fatalf("onEvict calls differ: %d vs model %d", len(evicted), len(m.evicted))
			}
			var order []Key
			for i := l.head; i >= 0; i = l.at(i).next {
				order = append(order, l.at(i).key)
			}
			if !slices.Equal(order, m.keys) {
				t.Fatalf("recency order differs")
			}
			if int(l.n) > tc.size {
				t.Fatalf("%d nodes allocated for size %d", l.n, tc.size)
			}
		})
	}
}

func lruKeyIndex(k Key) int { return int(k[0]) | int(k[1])<<8 }

// TestLRUFreesRemovedEntries: a removed or evicted entry's node keeps nothing alive.
func TestLRUFreesRemovedEntries(t *testing.T) {
	l := newLRU[*int](2, nil)
	for i := range 3 {
		v := i
		l.Add(lruKey(i), entry[*int]{v: &v})
	}
	l.Remove(lruKey(2))
	for c := range l.chunks {
		for i := range l.chunks[c] {
			n := &l.chunks[c][i]
			if _, used := l.index[n.key]; (n.e.v != nil) != (used && n.key != Key{}) {
				t.Fatalf("node %d: key %x used %v holds %v", i, n.key[:2], used, n.e.v)
			}
		}
	}
	if l.Len() != 1 {
		t.Fatalf("Len %d, want 1", l.Len())
	}
}
