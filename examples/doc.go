// Package examples holds no code: it is the home of the deployment examples
// (docker-compose, Kubernetes, Istio, nginx) and of examples_test.go, which validates
// them in every `go test ./...` run: the Envoy bootstrap against go-control-plane's
// protos, every flaat-extauthz config against the server's own validator, the Keycloak
// realm, the Kubernetes and Istio manifests, the compose file and the Dockerfile, and
// that ports and probe paths agree with the server's defaults.
package examples
