package server

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/cache"
	"github.com/flaat-extauthz/flaat-extauthz/envoy"
	"github.com/flaat-extauthz/flaat-extauthz/internal/config"
	"github.com/flaat-extauthz/flaat-extauthz/internal/devswitch"
)

// engine is what the server needs of one configuration's authorizer: authz.Authorizer, or
// the dev-switch authorizer adapted to it.
type engine interface {
	envoy.Authorizer
	Ready(ctx context.Context) error
	CacheStats() cache.Stats
	Close()
}

// retiredBit marks a generation that no longer accepts checks; the low bits count the
// checks in flight.
const retiredBit = int64(1) << 62

// generation is one applied configuration: its engine, counted so that a reload can
// close it only after every check that started on it has finished. Checks that reach a
// retired generation (they loaded it just before the swap) are passed to the current one.
type generation struct {
	eng     engine
	cfg     *config.File
	current func() *generation // the generation now serving

	ready   atomic.Bool // Ready succeeded once
	state   atomic.Int64
	drained chan struct{}
	once    sync.Once
}

func newGeneration(eng engine, cfg *config.File, current func() *generation) *generation {
	return &generation{eng: eng, cfg: cfg, current: current, drained: make(chan struct{})}
}

// Authorize implements envoy.Authorizer.
func (g *generation) Authorize(ctx context.Context, r authz.Request) authz.Decision {
	for {
		s := g.state.Load()
		if s&retiredBit != 0 {
			if cur := g.current(); cur != nil && cur != g {
				return cur.Authorize(ctx, r)
			}
			return authz.Decision{Outcome: authz.OutcomeUnavailable, Reason: "server is shutting down"}
		}
		if g.state.CompareAndSwap(s, s+1) {
			break
		}
	}
	defer g.release()
	return g.eng.Authorize(ctx, r)
}

func (g *generation) release() {
	if g.state.Add(-1) == retiredBit {
		g.once.Do(func() { close(g.drained) })
	}
}

// retire stops accepting checks and returns a channel closed once the checks in flight
// have finished. Idempotent.
func (g *generation) retire() <-chan struct{} {
	for {
		s := g.state.Load()
		if s&retiredBit != 0 {
			return g.drained
		}
		if g.state.CompareAndSwap(s, s|retiredBit) {
			if s == 0 {
				g.once.Do(func() { close(g.drained) })
			}
			return g.drained
		}
	}
}

// inFlight returns the number of checks running on g.
func (g *generation) inFlight() int64 { return g.state.Load() &^ retiredBit }

// authzEngine adapts *authz.Authorizer to engine.
type authzEngine struct{ *authz.Authorizer }

func (e authzEngine) Close() { _ = e.Authorizer.Close() }

// assumeAuthorizedEngine is authz behind DISABLE_AUTHORIZATION_AND_ASSUME_AUTHORIZED_USER.
type assumeAuthorizedEngine struct {
	authzEngine
	off *devswitch.AssumeAuthorized
}

func (e assumeAuthorizedEngine) Authorize(ctx context.Context, r authz.Request) authz.Decision {
	return e.off.Authorize(ctx, r)
}

// devEngine adapts the dev-switch authorizer to engine: always ready, no cache.
type devEngine struct{ *devswitch.Authorizer }

func (devEngine) Ready(context.Context) error { return nil }
func (devEngine) CacheStats() cache.Stats     { return cache.Stats{} }
func (devEngine) Close()                      {}
