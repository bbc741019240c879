#!/usr/bin/env bash
# Installs everything the end-to-end tests (`go test -tags e2e ./e2e/...`) need, idempotently:
#   - the OIDC provider: npm package oidc-provider, pinned by e2e/op/package-lock.json (`npm ci`);
#   - the differential test's Node upstream: npm package express, pinned by
#     e2e/upstream/package-lock.json (`npm ci`);
#   - grpcurl and Caddy, pinned below, built with `go install` into ./bin;
#   - Debian's nginx and docker-compose (only when missing and we are root: CI runs as root).
# A tool it cannot install is reported; the tests then skip (locally) or fail (CI sets
# FLAAT_E2E_REQUIRE_ALL=1).
set -euo pipefail
cd "$(dirname "$0")/.."

GRPCURL_VERSION=v1.9.3
CADDY_VERSION=v2.11.9

log() { echo "e2e-deps: $*"; }

# --- Debian packages: nginx (auth_request is built in), docker-compose (config validation) ---
apt_missing=()
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then apt_missing+=(nginx); fi
if ! command -v docker-compose >/dev/null 2>&1; then apt_missing+=(docker-compose); fi
if ! command -v node >/dev/null 2>&1; then apt_missing+=(nodejs); fi
if ! command -v npm >/dev/null 2>&1; then apt_missing+=(npm); fi
if [ ${#apt_missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing ${apt_missing[*]} (apt-get)"
    # Keep package scripts from starting services (nginx would grab port 80): the tests start
    # their own nginx. Only add the policy file if the machine has none, and remove it again.
    policy_added=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
      chmod +x /usr/sbin/policy-rc.d
      policy_added=1
    fi
    trap '[ -n "$policy_added" ] && rm -f /usr/sbin/policy-rc.d' EXIT
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
    if [ -n "$policy_added" ]; then rm -f /usr/sbin/policy-rc.d; policy_added=; fi
  else
    log "missing ${apt_missing[*]} and not root: the tests that need them will skip (or fail under FLAAT_E2E_REQUIRE_ALL)"
  fi
fi

# --- the OIDC provider ---
if command -v npm >/dev/null 2>&1; then
  log "npm ci in e2e/op (node $(node --version))"
  (cd e2e/op && npm ci --no-audit --no-fund --loglevel=error)
  log "npm ci in e2e/upstream"
  (cd e2e/upstream && npm ci --no-audit --no-fund --loglevel=error)
else
  log "npm missing: the OP-based tests will skip (or fail under FLAAT_E2E_REQUIRE_ALL)"
fi

# --- grpcurl ---
# (go install leaves -version unset; the module version is in the binary's build info)
if ! go version -m bin/grpcurl 2>/dev/null | grep -Eq "^\s+mod\s+github.com/fullstorydev/grpcurl\s+${GRPCURL_VERSION}\s"; then
  log "go install grpcurl ${GRPCURL_VERSION} into ./bin"
  mkdir -p bin
  GOBIN="$PWD/bin" GOFLAGS=-buildvcs=false go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@${GRPCURL_VERSION}"
fi

# --- Caddy (forward_auth in the differential test; validates examples/caddy/Caddyfile) ---
if ! go version -m bin/caddy 2>/dev/null | grep -Eq "^\s+mod\s+github.com/caddyserver/caddy/v2\s+${CADDY_VERSION}\s"; then
  log "go install caddy ${CADDY_VERSION} into ./bin (a few minutes on a cold module cache)"
  mkdir -p bin
  GOBIN="$PWD/bin" GOFLAGS=-buildvcs=false go install "github.com/caddyserver/caddy/v2/cmd/caddy@${CADDY_VERSION}"
fi

nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
log "ready: grpcurl ${GRPCURL_VERSION}; caddy ${CADDY_VERSION}; $("$nginx_bin" -v 2>&1 || echo 'no nginx'); docker-compose $(docker-compose version --short 2>/dev/null || echo 'missing'); node $(node --version 2>/dev/null || echo 'missing')"
