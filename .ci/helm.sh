#!/usr/bin/env bash
# Installs helm, pinned below, into ./bin with `go install` (from the Go module proxy, like
# grpcurl in e2e-deps.sh), idempotently. `make deploy-check` runs `helm lint` and
# `helm template` with it.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.22.0

# (go install leaves `helm version` at its default; the module version is in the build info)
if ! go version -m bin/helm 2>/dev/null | grep -Eq "^\s+mod\s+helm.sh/helm/v3\s+${HELM_VERSION}\s"; then
  echo "helm: go install helm.sh/helm/v3/cmd/helm@${HELM_VERSION} into ./bin (a large build: a few minutes)"
  mkdir -p bin
  GOBIN="$PWD/bin" GOFLAGS=-buildvcs=false go install "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
fi
