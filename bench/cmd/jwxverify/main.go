// Command jwxverify is the "verify every call" baseline of the load benchmark: an Envoy
// ext_authz gRPC server that, on every Check, parses and verifies the bearer JWT with
// jwx/v2 (jwt.Parse with the issuers' key sets, fetched once at start-up, and exp/nbf
// validation) and answers OK or UNAUTHENTICATED. No cache, no policy, no identity
// headers: the cost of the signature check plus jwx's parsing and nothing else.
// It is benchmark code: never put it in front of a service.
//
//	jwxverify -grpc 127.0.0.1:9201 -jwks http://127.0.0.1:8081/jwks,http://127.0.0.1:8082/jwks
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/reflection"
)

type server struct{ keys jwk.Set }

// defaultAlg is the algorithm given to keys of each type that lack "alg".
var defaultAlg = map[jwa.KeyType]jwa.SignatureAlgorithm{jwa.RSA: jwa.RS256, jwa.EC: jwa.ES256, jwa.OKP: jwa.EdDSA}

var (
	allow = &authv3.CheckResponse{Status: &status.Status{}}
	deny  = &authv3.CheckResponse{Status: &status.Status{Code: int32(codes.Unauthenticated)}}
)

func (s *server) Check(_ context.Context, r *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	h := r.GetAttributes().GetRequest().GetHttp().GetHeaders()["authorization"]
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return deny, nil
	}
	if _, err := jwt.Parse([]byte(tok), jwt.WithKeySet(s.keys), jwt.WithValidate(true)); err != nil {
		return deny, nil
	}
	return allow, nil
}

func main() {
	addr := flag.String("grpc", "127.0.0.1:0", "gRPC listen address")
	jwks := flag.String("jwks", "", "comma-separated JWKS URLs, fetched once at start-up")
	flag.Parse()
	if err := run(*addr, *jwks); err != nil {
		fmt.Fprintln(os.Stderr, "jwxverify:", err)
		os.Exit(1)
	}
}

func run(addr, jwks string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	keys := jwk.NewSet()
	for _, u := range strings.Split(jwks, ",") {
		if u == "" {
			continue
		}
		set, err := jwk.Fetch(ctx, u)
		if err != nil {
			return err
		}
		for i := 0; i < set.Len(); i++ {
			k, _ := set.Key(i)
			// The fake OP's JWKS has no "alg" members; jwx matches keys by kid and
			// alg, so give each key the one algorithm the benchmark signs with
			// (inferring would try several algorithms per key).
			if alg, ok := defaultAlg[k.KeyType()]; ok && k.Algorithm().String() == "" {
				if err := k.Set(jwk.AlgorithmKey, alg); err != nil {
					return err
				}
			}
			if err := keys.AddKey(k); err != nil {
				return err
			}
		}
	}
	if keys.Len() == 0 {
		return fmt.Errorf("no keys (use -jwks)")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, &server{keys: keys})
	reflection.Register(gs)
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(l) }()
	fmt.Printf("grpc=%s\n", l.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
		gs.Stop()
		return nil
	case err := <-errc:
		return err
	}
}
