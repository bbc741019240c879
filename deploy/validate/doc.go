// Package validate holds no code: its tests check the deployment artefacts against the
// real API types — the Helm chart (helm lint and helm template with every values file in
// the chart's ci/ directory, each rendered document decoded strictly into k8s.io/api and
// prometheus-operator types), the alert rules and Grafana dashboard (every PromQL
// expression parsed, every metric it names found in a live /metrics scrape of the
// server), and the Kubernetes and Istio examples (k8s.io/api and istio.io/api).
//
// It is a Go module of its own so that these heavy, test-only dependencies (k8s.io/api,
// the Prometheus server's PromQL parser, Istio's and the Prometheus operator's API types)
// stay out of the server's go.mod; a `replace` points at the repository's root module for
// the server's own configuration validator, default ports and the public fake OP.
// `make deploy-check` (part of `make test`) runs it.
//
// Because of that replace, a new dependency of those root-module packages must be listed
// here too: when Go says "updates to go.mod needed", run `go mod tidy` in this directory.
package validate
