// Package deps pins the chosen dependencies in go.mod while the packages that use them are being written.
// Delete it once every dependency is imported by real code.
package deps
import (
 _ "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
 _ "google.golang.org/grpc"
 _ "github.com/lestrrat-go/jwx/v2/jwt"
 _ "github.com/hashicorp/golang-lru/v2"
 _ "golang.org/x/sync/singleflight"
 _ "github.com/prometheus/client_golang/prometheus"
 _ "sigs.k8s.io/yaml"
 _ "github.com/spf13/cobra"
)
