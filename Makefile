# flaat-extauthz — every target the README and CI use.
GO        ?= go
PKGS      ?= ./...
FUZZTIME  ?= 20000x
BIN       := bin
export GOFLAGS := -buildvcs=false

.PHONY: all build test vet unit security fuzz e2e e2e-deps deploy-check bench loadbench soak clean

# Packages whose tests print figures (attack counts, fault outcomes, soak numbers, the
# flaat-compatibility line) run in `security` with -v so that the figures reach the
# output; `unit` runs everything else.
FIGURE_PKGS := ./internal/testutil/securitytest/ ./soak/ ./internal/testutil/compat/
UNIT_PKGS    = $(shell $(GO) list $(PKGS) | grep -v -e /internal/testutil/securitytest -e /soak -e /internal/testutil/compat)

all: build

build:
	$(GO) build -o $(BIN)/flaat-extauthz ./cmd/flaat-extauthz

## test: everything CI runs — vet, unit tests with -race and coverage, the security and
## fault suites with a 60 s soak, brief fuzzing, end-to-end tests, the deployment checks.
test: vet unit security fuzz e2e deploy-check

vet:
	$(GO) vet $(PKGS)

unit:
	@mkdir -p $(BIN)
	$(GO) test -race -count=1 -coverprofile=$(BIN)/cover.out $(UNIT_PKGS)
	@$(GO) tool cover -func=$(BIN)/cover.out | tail -1
	@bash .ci/coverage.sh $(BIN)/cover.out

## security: adversarial table, fault injection, secrets scan, 60 s soak, flaat compatibility; prints their figures.
security:
	@mkdir -p $(BIN)
	@$(GO) test -race -count=1 -timeout 20m -v $(FIGURE_PKGS) > $(BIN)/security.log 2>&1 \
		|| { cat $(BIN)/security.log; exit 1; }
	@grep -E '^(adversarial|fault|secrets|soak|flaat-compat)[ :]|^(ok|FAIL|---) ' $(BIN)/security.log | grep -v -e '^--- PASS' || true

## fuzz: run every Fuzz target in the tree for FUZZTIME each (a count, or a duration) (seeded corpora run in `unit` too).
fuzz:
	@bash .ci/fuzz.sh $(FUZZTIME)

## e2e: end-to-end tests against a real OIDC provider, grpcurl, nginx and Caddy (installs what
## they need); prints the differential test's summary line (docs/differential-test.md).
e2e: e2e-deps
	@mkdir -p $(BIN)
	@$(GO) test -count=1 -tags e2e -timeout 15m -v ./e2e/... > $(BIN)/e2e.log 2>&1 \
		|| { cat $(BIN)/e2e.log; exit 1; }
	@grep -E '^differential:|^(ok|FAIL|---) ' $(BIN)/e2e.log | grep -v -e '^--- PASS' || true

e2e-deps:
	@bash .ci/e2e-deps.sh

## deploy-check: the Helm chart (helm lint/template with its ci/ values files, every document
## decoded strictly into k8s.io/api and prometheus-operator types), the alert rules and
## dashboard (PromQL parsed, metric names checked against a live scrape) and the strict
## decoding of the Kubernetes, Istio and Keycloak examples. A nested Go module
## (deploy/validate) so that its heavy test-only dependencies stay out of the server's go.mod.
deploy-check:
	@bash .ci/helm.sh
	cd deploy/validate && $(GO) vet ./... && $(GO) test -count=1 -timeout 10m ./...

## bench: micro-benchmarks.
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

## loadbench: load benchmark against a no-op baseline (bounded, prints a table).
loadbench:
	$(GO) run ./bench/cmd/loadbench $(LOADBENCH_ARGS)

## soak: long mixed load with OP faults (SOAK_DURATION, default 10m).
soak:
	SOAK_DURATION=$${SOAK_DURATION:-10m} $(GO) test -count=1 -timeout 60m -run Soak -v ./soak/

clean:
	rm -rf $(BIN)
