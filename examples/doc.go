// Package examples holds no code: it is the home of the deployment examples
// (docker-compose, Kubernetes, Istio, Envoy Gateway, nginx, Caddy, Traefik) and of
// examples_test.go,
// which validates in every `go test ./...` run what needs only the server's own
// dependencies: the Envoy bootstrap against go-control-plane's protos (strictly), the
// demo's flaat-extauthz config against the server's validator, the compose file and its
// pinned images, the Dockerfile, and the nginx, Caddy and Traefik snippets.
//
// The Kubernetes, Istio, Envoy Gateway and Keycloak files are decoded strictly into their
// real API types (k8s.io/api, istio.io/api, Envoy Gateway, Keycloak's realm keys) by the
// nested module deploy/validate (`make deploy-check`), which keeps those dependencies out
// of the server's go.mod; it also checks that they agree with each other and with the
// server's defaults.
package examples
