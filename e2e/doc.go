// Package e2e holds the end-to-end tests of flaat-extauthz (build tag e2e): the server binary
// built from this tree runs as a separate process against a real OIDC provider (the npm package
// oidc-provider, in e2e/op), and is called by real clients: grpcurl over gRPC, Debian's nginx
// through auth_request and Caddy through forward_auth. TestDifferential puts nginx and Caddy
// in front of two upstreams that read paths differently (a Go ServeMux and express, in
// e2e/upstream) and checks that nothing an upstream served was beyond the policy
// (docs/differential-test.md). Every process runs on loopback with ports chosen at run time
// and is killed by PID when its test ends, even when the test fails.
//
// Run with `make e2e` (it installs the tools first via .ci/e2e-deps.sh) or
// `go test -count=1 -tags e2e ./e2e/...`. A missing tool makes its tests skip with the reason,
// unless FLAAT_E2E_REQUIRE_ALL is set (CI), which turns the skip into a failure.
package e2e
