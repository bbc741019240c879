package authz

import (
	"cmp"
	"testing"
	"time"
	"unsafe"
)

// TestIdentitySize: what a cached identity costs besides its claims' values. A field
// more, or a pointer turned into a value, moves it to the next size class for every
// cached token (the memory target of issue 16): change the bound deliberately.
func TestIdentitySize(t *testing.T) {
	if got := unsafe.Sizeof(Identity{}); got > 80 {
		t.Errorf("Identity is %d bytes, want at most 80", got)
	}
}

// TestInstant: an Instant reads back the time it was made of, to the nanosecond, keeps
// order, and keeps "unknown" (the zero time) apart from every real time, the Unix epoch
// included; times beyond its range are clamped to its ends.
func TestInstant(t *testing.T) {
	epoch := time.Unix(0, 0)
	exp := time.Unix(1767225600, 500) // a token exp with a fraction of a second
	cases := []struct {
		name  string
		in    time.Time
		want  time.Time // what Time returns
		zero  bool
		order int // compared with InstantOf(exp): -1 before, 0 equal, 1 after
	}{
		{"zero time is unknown", time.Time{}, time.Time{}, true, -1},
		{"an exp", exp, exp, false, 0},
		{"a nanosecond later", exp.Add(1), exp.Add(1), false, 1},
		{"in another zone", exp.In(time.FixedZone("x", 3600)), exp, false, 0},
		{"the epoch is not unknown", epoch, epoch.Add(-1), false, -1},
		{"before 1678: clamped", time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC), minInstant.Time(), false, -1},
		{"after 2262: clamped", time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), maxInstant.Time(), false, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			i := InstantOf(c.in)
			if i.IsZero() != c.zero {
				t.Fatalf("IsZero %v, want %v", i.IsZero(), c.zero)
			}
			if got := i.Time(); !got.Equal(c.want) || got.IsZero() != c.want.IsZero() {
				t.Fatalf("Time() = %v, want %v", got, c.want)
			}
			if got := cmp.Compare(i, InstantOf(exp)); !c.zero && got != c.order {
				t.Fatalf("order %d, want %d", got, c.order)
			}
		})
	}
}

// TestNewSlim: a cached identity and its compact claim values are one allocation for up
// to 12 values, two beyond.
func TestNewSlim(t *testing.T) {
	for n := range 15 {
		id, vals := newSlim(n)
		if id == nil || len(vals) != n || cap(vals) != n {
			t.Fatalf("newSlim(%d): id %v, %d values (cap %d)", n, id, len(vals), cap(vals))
		}
		together := n > 0 && uintptr(unsafe.Pointer(&vals[0])) == uintptr(unsafe.Pointer(id))+unsafe.Sizeof(Identity{})
		if together != (n >= 1 && n <= 12) {
			t.Errorf("newSlim(%d): values next to the identity %v", n, together)
		}
		want := 1.0
		if n > 12 {
			want = 2
		}
		if allocs := testing.AllocsPerRun(10, func() { newSlim(n) }); allocs != want {
			t.Errorf("newSlim(%d): %v allocations, want %v", n, allocs, want)
		}
	}
}
