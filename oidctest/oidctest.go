// Package oidctest is a fake OpenID Connect provider (OP) for tests: yours and ours.
//
// New starts one on a random loopback port and closes it when the test ends. It serves
// what flaat-extauthz talks to — OIDC discovery, a JWKS with RSA, EC P-256 and Ed25519
// keys (generated at start, rotated on demand), userinfo, and RFC 7662 introspection with
// HTTP Basic client authentication — and mints tokens in-process with any claims
// (OP.MintJWT, OP.MintOpaque). Every endpoint has fault switches (OP.SetFault: status
// codes, delays, hangs, malformed JSON, HTML, wrong sub, huge bodies, closed connections)
// and a request counter (OP.Count), so a test can assert how many calls were made.
//
// A typical test of your own policy:
//
//	op := oidctest.New(t)
//	token := op.MintJWT(map[string]any{"sub": "alice", "groups": []string{"admins"}})
//	// trust op.Issuer() in the configuration (or op.IssuerConfig() with authz.New)
//	// and send "Authorization: Bearer "+token
//
// The implementation lives in internal/devop (which also runs the `demo` command's
// development OP and links neither testing nor httptest); the names below are that
// package's, so its documentation describes every method of OP. This package adds only
// what needs package testing.
package oidctest

import (
	"testing"

	"github.com/flaat-extauthz/flaat-extauthz/internal/devop"
)

// The types of the fake OP (documented in internal/devop).
type (
	// OP is a running fake OP. All methods are safe for concurrent use.
	OP = devop.OP
	// Option configures an OP (WithClock, WithClient, WithIssuerPath, WithSigningAlgs).
	Option = devop.Option
	// Endpoint names one endpoint of the fake OP, for fault switches and counters.
	Endpoint = devop.Endpoint
	// Fault changes how one endpoint answers; the zero Fault answers normally.
	Fault = devop.Fault
	// MintOption changes how OP.MintJWT and OP.MintOpaque mint a token.
	MintOption = devop.MintOption
	// RotateOption configures OP.Rotate.
	RotateOption = devop.RotateOption
)

// The endpoints (Other is every request to an unknown path), their paths below the
// issuer URL, and the sub of minted tokens whose claims do not set one.
const (
	Discovery, JWKS, Userinfo, Introspection, Other = devop.Discovery, devop.JWKS, devop.Userinfo, devop.Introspection, devop.Other

	DiscoveryPath, JWKSPath, UserinfoPath, IntrospectionPath = devop.DiscoveryPath, devop.JWKSPath, devop.UserinfoPath, devop.IntrospectionPath

	DefaultSubject = devop.DefaultSubject
)

// Endpoints lists the endpoints that have fault switches, in a fixed order.
var Endpoints = devop.Endpoints

// The options of New, OP.Rotate and the mint methods (documented in internal/devop).
var (
	WithClock, WithClient, WithIssuerPath, WithSigningAlgs = devop.WithClock, devop.WithClient, devop.WithIssuerPath, devop.WithSigningAlgs

	KeepOld = devop.KeepOld

	WithAlg, WithKid, WithoutKid, WithHeader, WithHMACSecret, WithSigner = devop.WithAlg, devop.WithKid, devop.WithoutKid, devop.WithHeader, devop.WithHMACSecret, devop.WithSigner

	ExpiresIn, NotBefore, WithUserinfo, WithIntrospection, WithIntrospectionExt = devop.ExpiresIn, devop.NotBefore, devop.WithUserinfo, devop.WithIntrospection, devop.WithIntrospectionExt
)

// New starts an OP on a random loopback port for the test t and closes it when the test
// ends. It fails the test if the OP cannot start.
func New(t testing.TB, opts ...Option) *OP {
	t.Helper()
	op, err := devop.Start(opts...)
	if err != nil {
		t.Fatalf("oidctest: %v", err)
	}
	t.Cleanup(op.Close)
	return op
}

// Start starts an OP outside a test (a runnable example, a local tool); call Close when
// done. Tests use New.
func Start(opts ...Option) (*OP, error) { return devop.Start(opts...) }
