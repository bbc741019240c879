package cache

import (
	"testing"
	"time"
)

// TestEntryInstants: the offsets an entry keeps order instants as Time.Before does —
// with the monotonic clock (time.Now) and with an injected wall clock — a zero end of
// life is "unknown", and ends of life centuries away (a token's exp may say year 9999)
// still lie after every realistic now.
func TestEntryInstants(t *testing.T) {
	for _, tc := range []struct {
		name string
		now  func() time.Time
	}{
		{"monotonic", time.Now},
		{"injected wall clock", func() time.Time { return time.Unix(1_800_000_000, 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New[int](Options{Now: tc.now})
			if err != nil {
				t.Fatal(err)
			}
			now := tc.now()
			for _, d := range []time.Duration{-time.Hour, -time.Nanosecond, 0, time.Nanosecond, time.Second, 5 * time.Minute} {
				u := now.Add(d)
				if got, want := c.at(now) < c.at(u), now.Before(u); got != want {
					t.Errorf("at: now < now%+v is %v, Before says %v", d, got, want)
				}
				if got, want := c.wallAt(now) < c.wallAt(u.Round(0)), now.Before(u.Round(0)); got != want {
					t.Errorf("wallAt: now < now%+v is %v, Before says %v", d, got, want)
				}
			}
			if c.wallAt(time.Time{}) != noExpiry {
				t.Error("zero end of life is not noExpiry")
			}
			far := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
			if e := c.wallAt(far); e == noExpiry || !(c.wallAt(now) < e) {
				t.Errorf("year 9999: offset %v not after now", e)
			}
			past := time.Date(1970, 1, 1, 0, 0, 1, 0, time.UTC)
			if e := c.wallAt(past); e == noExpiry || c.wallAt(now) < e {
				t.Errorf("1970: offset %v not before now", e)
			}
		})
	}
}
