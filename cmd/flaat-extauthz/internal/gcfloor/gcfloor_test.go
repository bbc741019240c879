package gcfloor

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name               string
		floor, live, roots uint64
		base, want         int
	}{
		{"small heap: the runtime minimum reaches the floor", 16 * mib, 2 * mib, 0, 100, 400},
		{"larger heap: the goal formula reaches the floor", 16 * mib, 4 * mib, 0, 100, 300},
		{"roots count in the goal", 16 * mib, 4 * mib, 2 * mib, 100, 200},
		{"rounded up", 16 * mib, 6 * mib, 0, 100, 167},
		{"never below base", 16 * mib, 10 * mib, 0, 100, 100},
		{"live at the floor", 16 * mib, 16 * mib, 0, 100, 100},
		{"live above the floor", 16 * mib, 200 * mib, 0, 100, 100},
		{"a higher base is kept", 16 * mib, 2 * mib, 0, 500, 500},
		{"nothing live yet: the runtime minimum bounds it", 16 * mib, 0, 0, 100, 400},
		{"floor below the runtime minimum: base", 2 * mib, 1 * mib, 0, 100, 100},
		{"32 MiB floor", 32 * mib, 2 * mib, 0, 100, 800},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percent(tc.floor, tc.live, tc.roots, tc.base); got != tc.want {
				t.Errorf("Percent(%d, %d, %d, %d) = %d, want %d", tc.floor, tc.live, tc.roots, tc.base, got, tc.want)
			}
		})
	}
}

// TestPercentGoalReachesFloor checks the percent against the runtime's goal,
// max(live + (live+roots)×percent/100, 4 MiB×percent/100), over a range of heaps: the
// goal is the floor (within rounding), or twice the heap when that is above it.
func TestPercentGoalReachesFloor(t *testing.T) {
	const floor = 16 << 20
	for live := uint64(0); live < 2*floor; live += 97 << 10 {
		for _, roots := range []uint64{0, 300 << 10, 1 << 20} {
			p := uint64(Percent(floor, live, roots, 100))
			goal := max(live+(live+roots)*p/100, runtimeMinimum*p/100)
			if p == 100 { // the base: the goal is twice the heap, at or above the floor
				if goal < floor {
					t.Fatalf("live %d roots %d: base percent gives goal %d below the floor", live, roots, goal)
				}
				continue
			}
			if goal < floor-(live+roots)/100-1 || goal > floor+(live+roots)/100+1 {
				t.Fatalf("live %d roots %d: percent %d gives goal %d, want about %d", live, roots, p, goal, floor)
			}
		}
	}
}

func TestStartNotWhenGOGCSet(t *testing.T) {
	for _, v := range []string{"100", "off", "50"} {
		if tu := Start(func(k string) string {
			if k == "GOGC" {
				return v
			}
			return ""
		}, Floor); tu != nil {
			tu.Stop()
			t.Errorf("GOGC=%s: tuner started", v)
		}
	}
	if tu := Start(func(string) string { return "" }, 0); tu != nil {
		tu.Stop()
		t.Error("floor 0: tuner started")
	}
}

// TestTunerFollowsCollections runs the tuner through real collections: the percent it
// sets after each one puts the goal at the floor while the heap is small; a live heap
// above the floor brings it back to the base; Stop restores the base and ends it.
func TestTunerFollowsCollections(t *testing.T) {
	base := debug.SetGCPercent(100)
	defer debug.SetGCPercent(base)
	cycles := make(chan int, 64)
	const floor = 64 << 20 // far above this test binary's live heap
	runtime.GC()           // the live heap of now, not of an earlier test's
	tu := start(floor, func(p int) {
		select {
		case cycles <- p:
		default:
		}
	})
	if tu == nil {
		t.Fatal("tuner not started")
	}
	defer tu.Stop()
	if other := Start(func(string) string { return "" }, Floor); other != nil {
		other.Stop()
		t.Fatal("a second tuner started while one runs")
	}
	first := <-cycles // start adjusts at once
	if first <= 100 {
		t.Fatalf("small heap: percent %d, want above 100", first)
	}
	if got := debug.SetGCPercent(first); got != first {
		t.Fatalf("runtime percent %d, want the tuner's %d", got, first)
	}
	// runtime.GC returns after the sweep, which queues the sentinel's cleanup; the
	// cleanup goroutine then adjusts and arms the next sentinel before reporting.
	waitCycle := func() int {
		t.Helper()
		runtime.GC()
		select {
		case p := <-cycles:
			return p
		case <-time.After(10 * time.Second):
			t.Fatal("no adjustment within 10s of a collection")
		}
		return 0
	}
	if p := waitCycle(); p <= 100 {
		t.Fatalf("after a collection: percent %d, want above 100", p)
	}
	big := make([]*[1 << 20]byte, 80) // 80 MiB live, above the floor
	for i := range big {
		big[i] = new([1 << 20]byte)
	}
	if p := waitCycle(); p != 100 {
		t.Fatalf("80 MiB live, floor 64 MiB: percent %d, want the base 100", p)
	}
	runtime.KeepAlive(big)
	tu.Stop()
	tu.Stop() // idempotent
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("after Stop: percent %d, want the base 100", got)
	}
	again := Start(func(string) string { return "" }, Floor) // free again after Stop
	if again == nil {
		t.Fatal("no tuner after the first one's Stop")
	}
	again.Stop()
	var nilTuner *Tuner
	nilTuner.Stop()
}
