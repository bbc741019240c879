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

// OP is a running fake OP. All methods are safe for concurrent use.
type OP = devop.OP

// Option configures an OP (WithClock, WithClient, WithIssuerPath, WithSigningAlgs).
type Option = devop.Option

// Endpoint names one endpoint of the fake OP, for fault switches and counters.
type Endpoint = devop.Endpoint

// Fault changes how one endpoint answers; the zero Fault answers normally.
type Fault = devop.Fault

// MintOption changes how OP.MintJWT and OP.MintOpaque mint a token.
type MintOption = devop.MintOption

// RotateOption configures OP.Rotate.
type RotateOption = devop.RotateOption

// The endpoints of the fake OP; Other is every request to an unknown path.
const (
	Discovery     = devop.Discovery
	JWKS          = devop.JWKS
	Userinfo      = devop.Userinfo
	Introspection = devop.Introspection
	Other         = devop.Other
)

// Paths of the endpoints below the issuer URL.
const (
	DiscoveryPath     = devop.DiscoveryPath
	JWKSPath          = devop.JWKSPath
	UserinfoPath      = devop.UserinfoPath
	IntrospectionPath = devop.IntrospectionPath
)

// DefaultSubject is the sub of minted tokens whose claims do not set one.
const DefaultSubject = devop.DefaultSubject

// Endpoints lists the endpoints that have fault switches, in a fixed order.
var Endpoints = devop.Endpoints

// Options and mint options; see internal/devop for each one's documentation.
var (
	WithClock            = devop.WithClock
	WithClient           = devop.WithClient
	WithIssuerPath       = devop.WithIssuerPath
	WithSigningAlgs      = devop.WithSigningAlgs
	KeepOld              = devop.KeepOld
	WithAlg              = devop.WithAlg
	WithKid              = devop.WithKid
	WithoutKid           = devop.WithoutKid
	WithHeader           = devop.WithHeader
	WithHMACSecret       = devop.WithHMACSecret
	WithSigner           = devop.WithSigner
	ExpiresIn            = devop.ExpiresIn
	NotBefore            = devop.NotBefore
	WithUserinfo         = devop.WithUserinfo
	WithIntrospection    = devop.WithIntrospection
	WithIntrospectionExt = devop.WithIntrospectionExt
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
