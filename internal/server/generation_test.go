package server

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/cache"
)

// gateEngine answers with its outcome; Authorize blocks while gate is non-nil and open.
type gateEngine struct {
	outcome authz.Outcome
	entered chan struct{} // receives once per Authorize call
	gate    chan struct{} // Authorize waits for it to close (nil: no wait)
	closed  atomic.Bool
	calls   atomic.Int64
}

func (e *gateEngine) Authorize(ctx context.Context, r authz.Request) authz.Decision {
	e.calls.Add(1)
	if e.closed.Load() {
		return authz.Decision{Outcome: authz.OutcomeUnavailable, Reason: "closed engine used"}
	}
	if e.entered != nil {
		e.entered <- struct{}{}
	}
	if e.gate != nil {
		<-e.gate
	}
	if e.closed.Load() {
		return authz.Decision{Outcome: authz.OutcomeUnavailable, Reason: "engine closed while in flight"}
	}
	return authz.Decision{Outcome: e.outcome}
}
func (e *gateEngine) Ready(context.Context) error { return nil }
func (e *gateEngine) CacheStats() cache.Stats     { return cache.Stats{} }
func (e *gateEngine) Close()                      { e.closed.Store(true) }

// TestGenerationDrainsBeforeClose: a check in flight on the old generation finishes on
// it (not dropped, not answered by a closed engine); the drain signal comes only after
// it; checks that reach the retired generation go to the new one.
func TestGenerationDrainsBeforeClose(t *testing.T) {
	var cur atomic.Pointer[generation]
	current := func() *generation { return cur.Load() }
	oldEng := &gateEngine{outcome: authz.OutcomeAllow, entered: make(chan struct{}, 1), gate: make(chan struct{})}
	newEng := &gateEngine{outcome: authz.OutcomeForbidden}
	old := newGeneration(oldEng, nil, current)
	cur.Store(old)

	res := make(chan authz.Decision, 1)
	go func() { res <- old.Authorize(context.Background(), authz.Request{}) }()
	<-oldEng.entered
	if n := old.inFlight(); n != 1 {
		t.Fatalf("in flight = %d, want 1", n)
	}

	next := newGeneration(newEng, nil, current)
	cur.Store(next)
	drained := old.retire()
	closedAfterDrain := make(chan struct{})
	go func() { <-drained; oldEng.Close(); close(closedAfterDrain) }()

	select {
	case <-drained:
		t.Fatal("drained while a check is in flight")
	default:
	}
	// A straggler that still holds the old generation is served by the new one.
	if d := old.Authorize(context.Background(), authz.Request{}); d.Outcome != authz.OutcomeForbidden {
		t.Errorf("straggler outcome = %v, want the new generation's forbidden", d.Outcome)
	}
	if oldEng.calls.Load() != 1 {
		t.Errorf("old engine calls = %d, want 1", oldEng.calls.Load())
	}
	close(oldEng.gate)
	if d := <-res; d.Outcome != authz.OutcomeAllow {
		t.Errorf("in-flight check outcome = %v (%s), want allow from the old engine", d.Outcome, d.Reason)
	}
	<-closedAfterDrain
	if !oldEng.closed.Load() {
		t.Error("old engine not closed after the drain")
	}
	if again := old.retire(); again != drained {
		t.Error("retire is not idempotent")
	}
}

func TestGenerationRetireIdle(t *testing.T) {
	g := newGeneration(&gateEngine{}, nil, func() *generation { return nil })
	select {
	case <-g.retire():
	default:
		t.Fatal("idle generation not drained at once")
	}
	if d := g.Authorize(context.Background(), authz.Request{}); d.Outcome != authz.OutcomeUnavailable {
		t.Errorf("retired generation without successor: %v, want unavailable (fail closed)", d.Outcome)
	}
}
