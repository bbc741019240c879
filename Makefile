# flaat-extauthz — every target the README and CI use.
GO        ?= go
PKGS      ?= ./...
FUZZTIME  ?= 5s
BIN       := bin
export GOFLAGS := -buildvcs=false

.PHONY: all build test vet unit fuzz e2e e2e-deps bench loadbench soak clean

all: build

build:
	$(GO) build -o $(BIN)/flaat-extauthz ./cmd/flaat-extauthz

## test: everything CI runs — vet, unit tests with -race and coverage, brief fuzzing, end-to-end tests.
test: vet unit fuzz e2e

vet:
	$(GO) vet $(PKGS)

unit:
	$(GO) test -race -count=1 -coverprofile=$(BIN)/cover.out $(PKGS)
	@$(GO) tool cover -func=$(BIN)/cover.out | tail -1
	@bash .ci/coverage.sh $(BIN)/cover.out

## fuzz: run every Fuzz target in the tree for FUZZTIME each (seeded corpora run in `unit` too).
fuzz:
	@bash .ci/fuzz.sh $(FUZZTIME)

## e2e: end-to-end tests against a real OIDC provider, grpcurl and nginx (installs what they need).
e2e: e2e-deps
	$(GO) test -count=1 -tags e2e -timeout 15m ./e2e/...

e2e-deps:
	@bash .ci/e2e-deps.sh

## bench: micro-benchmarks.
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

## loadbench: load benchmark against a no-op baseline (bounded, prints a table).
loadbench:
	$(GO) run ./bench/cmd/loadbench

## soak: long mixed load with OP faults (SOAK_DURATION, default 10m).
soak:
	$(GO) test -count=1 -tags soak -timeout 30m -run Soak -v ./e2e/...

clean:
	rm -rf $(BIN)
