// Package devswitch is the one place of flaat's development switches: reading them
// from the environment (FromEnv, which refuses them without
// --allow-insecure-dev-switches); for the DISABLE_AUTHENTICATION_* switches (flaat
// 0.13.3) an authorizer that verifies nothing: it makes up an identity for every request
// and evaluates the policy on it; and for DISABLE_AUTHORIZATION_AND_ASSUME_AUTHORIZED_USER
// (flaat 1.x) a wrapper of the real authorizer: tokens are verified, the policy is not
// enforced. They exist for compatibility with flaat and MUST NOT be used anywhere but on
// a developer's machine; the server (internal/server) builds them only when the
// switches are allowed, and logs a
// warning at start-up and every minute.
package devswitch

import (
	"context"
	"log/slog"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// Made-up identity values.
const (
	// Issuer is the iss of every made-up identity.
	Issuer = "urn:flaat-extauthz:insecure-dev-switch"
	// Subject is the sub of every made-up identity.
	Subject = "insecure-dev-switch-user"
)

// GroupClaims are the claims that carry the groups of
// DISABLE_AUTHENTICATION_AND_ASSUME_GROUPS, so that group requirements on any of these
// common claim names see them.
var GroupClaims = []string{"groups", "eduperson_entitlement", "entitlements"}

// Authorizer answers every request with a made-up identity. It does not look at the
// Authorization header at all.
type Authorizer struct {
	sw       Switches
	pol      *policy.Engine
	clock    func() time.Time
	decision func() // called once per decision (metric); may be nil
}

// New returns an Authorizer for the switches sw (which must be Enabled) and the policy
// pol. onDecision, if non-nil, is called for every decision it makes up.
func New(sw Switches, pol *policy.Engine, clock func() time.Time, onDecision func()) *Authorizer {
	if clock == nil {
		clock = time.Now
	}
	return &Authorizer{sw: sw, pol: pol, clock: clock, decision: onDecision}
}

// Identity returns the made-up identity (Sources = authz.SourceInsecureDevSwitch). It
// expires one hour after now.
func (a *Authorizer) Identity() *authz.Identity {
	claims := map[string]any{"sub": Subject, "iss": Issuer, "insecure_dev_switch": true}
	if len(a.sw.AssumeGroups) > 0 {
		for _, c := range GroupClaims {
			gs := make([]any, len(a.sw.AssumeGroups))
			for i, g := range a.sw.AssumeGroups {
				gs[i] = g
			}
			claims[c] = gs
		}
	}
	return &authz.Identity{
		Issuer:  Issuer,
		Claims:  policy.MapClaims(claims),
		Expiry:  authz.InstantOf(a.clock().Add(time.Hour)),
		Sources: authz.SourceInsecureDevSwitch,
	}
}

// Authorize selects the route of r and evaluates its requirement on the made-up
// identity. With AssumeValidGroups or AssumeAuthorized every requirement counts as met.
// A path that cannot be normalised or is ambiguous, or an unknown context_extensions
// level, is still denied (authz.SelectDenial).
func (a *Authorizer) Authorize(ctx context.Context, r authz.Request) authz.Decision {
	if a.decision != nil {
		a.decision()
	}
	sel, err := a.pol.Select(policy.Request{Method: r.Method, Host: r.Host, Path: r.Path, ContextExtensions: r.ContextExtensions})
	if err != nil {
		return authz.SelectDenial(err)
	}
	if sel.Public {
		return authz.Decision{Outcome: authz.OutcomeAllow, Route: sel.Name, Public: true, Policy: sel.Evaluate(nil)}
	}
	id := a.Identity()
	res := sel.EvaluateMemo(id.Claims, nil)
	if !res.Allowed && (a.sw.AssumeValidGroups || a.sw.AssumeAuthorized) {
		env := EnvAssumeValidGroups
		if !a.sw.AssumeValidGroups {
			env = EnvAssumeAuthorized
		}
		res = assumeMet(res, env, sel.Description)
	}
	if err := ctx.Err(); err != nil {
		return authz.Decision{Outcome: authz.OutcomeCancelled, Reason: "request cancelled", Err: err, Route: sel.Name}
	}
	return authz.PolicyDecision(sel.Name, id, res, "devswitch: policy not met by the made-up identity")
}

// assumeMet turns the unmet result res of the requirement desc into a met one that says
// which switch did it.
func assumeMet(res policy.Result, env, desc string) policy.Result {
	return policy.Result{Allowed: true, Reason: "INSECURE: " + env + " assumes every requirement is met",
		Details: append([]string{"assumed met (insecure dev switch): " + desc}, res.Details...)}
}

// Authorizer is what the switches wrap and answer like: package envoy's Authorizer.
type authorizer interface {
	Authorize(ctx context.Context, r authz.Request) authz.Decision
}

// AssumeAuthorized is DISABLE_AUTHORIZATION_AND_ASSUME_AUTHORIZED_USER (flaat 1.x) in
// front of the real authorizer: every request is decided by next as usual (tokens
// verified, routes selected), and a denial only because the verified identity does not
// meet the route's requirement becomes an allow. A request without a valid token, with
// a path that cannot be normalised or is ambiguous (400), or with an unknown access
// level is still denied, and an OP outage is still a 503.
type AssumeAuthorized struct {
	next     authorizer
	decision func()
}

// NewAssumeAuthorized wraps next. onDecision, if non-nil, is called for every denial it
// turns into an allow.
func NewAssumeAuthorized(next authorizer, onDecision func()) *AssumeAuthorized {
	return &AssumeAuthorized{next: next, decision: onDecision}
}

// Authorize asks next and overrides a policy denial of a verified identity.
func (a *AssumeAuthorized) Authorize(ctx context.Context, r authz.Request) authz.Decision {
	d := a.next.Authorize(ctx, r)
	// A policy denial is the only Forbidden decision with a verified identity and no Err.
	if d.Outcome != authz.OutcomeForbidden || d.Identity == nil || d.Route == "" || d.Err != nil {
		return d
	}
	if ctx.Err() != nil { // next already reports a cancelled ctx as unavailable; be sure
		return d
	}
	if a.decision != nil {
		a.decision()
	}
	d.Policy = assumeMet(d.Policy, EnvAssumeAuthorized, d.Route)
	d.Outcome, d.Reason = authz.OutcomeAllow, d.Policy.Reason
	return d
}

// Warn logs the loud warning that the switches are on; call it at start-up and then
// every minute (Nag).
func Warn(log *slog.Logger, sw Switches) {
	if !sw.MakesUpIdentity() {
		log.Warn("INSECURE DEVELOPMENT SWITCH IS ON: tokens are verified but the policy is NOT enforced, every verified user is allowed; never use this in production",
			"switches", sw.String())
		return
	}
	log.Warn("INSECURE DEVELOPMENT SWITCHES ARE ON: tokens are NOT verified, every request gets a made-up identity; never use this in production",
		"switches", sw.String())
}

// Nag calls Warn every interval until ctx is done. It uses tick to create the ticker
// channel (time.Tick in production) so tests need not wait.
func Nag(ctx context.Context, log *slog.Logger, sw Switches, tick <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			Warn(log, sw)
		}
	}
}
