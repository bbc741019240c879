package clocktest

import (
	"sync"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	c := New(t0)
	if !c.Now().Equal(t0) {
		t.Fatalf("Now = %v, want %v", c.Now(), t0)
	}
	c.Advance(90 * time.Second)
	if got := c.Now().Sub(t0); got != 90*time.Second {
		t.Fatalf("after Advance: %v", got)
	}
	c.Advance(-30 * time.Second)
	if got := c.Now().Sub(t0); got != time.Minute {
		t.Fatalf("after negative Advance: %v", got)
	}
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); c.Advance(time.Millisecond); _ = c.Now() }()
	}
	wg.Wait()
	if got := c.Now().Sub(t0); got != time.Minute+100*time.Millisecond {
		t.Fatalf("after concurrent Advance: %v", got)
	}
}
