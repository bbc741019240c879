// Package soak holds the soak test of flaat-extauthz: steady, bounded gRPC load against
// an in-process server (envoy gRPC server on 127.0.0.1:0, real authz.Authorizer and
// policy, the fake OP of package oidctest behind the outbound resilience Transport) that
// mixes warm, cold, denied and opaque tokens while the OP rotates its keys and has an
// outage in the middle. Every response is checked against the expected outcome.
//
// Run it with `make soak` (SOAK_DURATION, default 10m there) or as part of `go test
// ./...` (default 60s; 10s with -short). The package has no non-test code.
package soak
