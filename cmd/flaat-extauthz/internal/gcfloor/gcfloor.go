// Package gcfloor gives the Go garbage collector a heap floor: while the live heap is
// small, the next collection waits until the heap reaches Floor instead of twice the
// live heap (GOGC=100, with the runtime's own minimum of 4 MiB).
//
// A warm flaat-extauthz keeps about 2 MiB live, and every check allocates a few KiB
// (net/http's request and header parsing, mostly). With the runtime's default pacing it
// collects every ~2 MiB of allocation, a few hundred checks, and each collection marks
// the whole live heap and scans every goroutine's stack (and shrinks the stacks of idle
// connections, which then grow again): measured, about a tenth of the CPU of an HTTP
// check. With a 16 MiB floor it collects about seven times less often, for at most
// about Floor more heap in use. When the live heap is large (a big identity cache) the
// floor has no effect: GOGC stays 100 and the heap grows to twice the live heap as
// before.
//
// The floor sets the GC percent (as debug.SetGCPercent) after every collection, from the
// live heap that collection found. It never lowers it below the starting value, never
// changes the memory limit (GOMEMLIMIT, or the one set from the container's), which
// still bounds the heap, and it is not started when GOGC is set: the operator decided.
package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// Floor is the heap size below which the collector does not run (about; bytes).
const Floor = 16 << 20

// runtimeMinimum is the runtime's minimum heap goal at GOGC=100; it scales with the
// percent (4 MiB × percent / 100).
const runtimeMinimum = 4 << 20

// Percent returns the GC percent that puts the next heap goal at floor, never below
// base. The runtime's goal is live + (live + stacks + globals) × percent / 100, but at
// least runtimeMinimum × percent / 100: the percent is the smaller of the two that reach
// the floor, so that neither term goes beyond it (before the first collection nothing
// is live, and only the minimum bounds the goal).
func Percent(floor, live, roots uint64, base int) int {
	if live >= floor {
		return base
	}
	p := 100 * floor / runtimeMinimum
	if scan := live + roots; scan > 0 {
		p = min(p, (100*(floor-live)+scan-1)/scan) // rounded up: the goal reaches the floor
	}
	return max(base, int(p))
}

// Tuner keeps the floor until Stop.
type Tuner struct {
	floor uint64
	base  int

	mu      sync.Mutex
	stopped bool
	percent int // the percent last set
	samples []metrics.Sample

	onCycle func(percent int) // test hook: called after each adjustment, once the next sentinel is armed
}

// active is set while a Tuner runs: the GC percent is the process's, so one at a time.
var active atomic.Bool

// Start starts keeping floor (bytes) and returns the tuner, or nil when GOGC is set in
// the environment (getenv is os.Getenv in production), the collector is off, floor is
// 0, or another Tuner runs (until its Stop).
func Start(getenv func(string) string, floor uint64) *Tuner {
	if getenv("GOGC") != "" || floor == 0 {
		return nil
	}
	return start(floor, nil)
}

func start(floor uint64, onCycle func(int)) *Tuner {
	if !active.CompareAndSwap(false, true) {
		return nil
	}
	base := debug.SetGCPercent(100)
	debug.SetGCPercent(base)
	if base < 0 {
		active.Store(false)
		return nil
	}
	t := &Tuner{floor: floor, base: base, percent: base, onCycle: onCycle, samples: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"},
	}}
	t.mu.Lock()
	p := t.adjust()
	t.mu.Unlock()
	t.arm()
	t.cycled(p)
	return t
}

// sentinel is allocated after each collection; the cleanup that runs once a collection
// found it unreachable adjusts the percent and allocates the next one. It holds a
// pointer so that it is never a tiny allocation (which may outlive its collection).
type sentinel struct{ _ *byte }

func (t *Tuner) arm() {
	runtime.AddCleanup(new(sentinel), (*Tuner).cycle, t)
}

func (t *Tuner) cycle() {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return
	}
	p := t.adjust()
	t.mu.Unlock()
	t.arm()
	t.cycled(p)
}

func (t *Tuner) cycled(percent int) {
	if t.onCycle != nil {
		t.onCycle(percent)
	}
}

// adjust sets the percent for the live heap the last collection found and returns it.
// mu is held.
func (t *Tuner) adjust() int {
	metrics.Read(t.samples)
	var v [3]uint64
	for i, s := range t.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	p := Percent(t.floor, v[0], v[1]+v[2], t.base)
	if p != t.percent {
		debug.SetGCPercent(p)
		t.percent = p
	}
	return p
}

// Stop ends the tuning and restores the starting percent. It is idempotent and safe on
// a nil Tuner.
func (t *Tuner) Stop() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	t.stopped = true
	debug.SetGCPercent(t.base)
	t.percent = t.base
	active.Store(false)
}
