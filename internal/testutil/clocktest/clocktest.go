// Package clocktest provides the manual clock that tests inject wherever the code takes
// a `now func() time.Time` (STYLE.md rule 6): time moves only when the test says so, so
// tests never sleep.
package clocktest

import (
	"sync/atomic"
	"time"
)

// Clock is a concurrency-safe manual clock. The zero value stands at the Unix epoch;
// use New.
type Clock struct{ ns atomic.Int64 }

// New returns a clock standing at t.
func New(t time.Time) *Clock {
	c := &Clock{}
	c.Set(t)
	return c
}

// Now returns the clock's time. Pass c.Now wherever a clock function is injected.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// Advance moves the clock by d (which may be negative).
func (c *Clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// Set puts the clock at t.
func (c *Clock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }
