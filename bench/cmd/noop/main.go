// Command noop is the baseline of the load benchmark: an Envoy ext_authz server that
// answers every Check with OK (gRPC) and every HTTP request with 200, doing nothing
// else. It registers server reflection like flaat-extauthz does, so both servers carry
// the same gRPC set-up. It is benchmark code: never put it in front of a service.
//
//	noop -grpc 127.0.0.1:9101 -http 127.0.0.1:9102 [-http-header 'Name: value' …]
//
// -http-header (repeatable) adds a fixed header to every HTTP answer: the load benchmark
// passes the headers flaat-extauthz answers an allow with, so that the cost of sending
// them (net/http and the client) is in the baseline too.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
)

type noop struct{}

var okResponse = &authv3.CheckResponse{Status: &status.Status{}}

func (noop) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return okResponse, nil
}

func main() {
	grpcAddr := flag.String("grpc", "127.0.0.1:0", "gRPC listen address")
	httpAddr := flag.String("http", "127.0.0.1:0", "HTTP listen address")
	headers := http.Header{}
	flag.Func("http-header", "`Name: value` added to every HTTP answer (repeatable)", func(s string) error {
		name, value, ok := strings.Cut(s, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return fmt.Errorf("want Name: value, got %q", s)
		}
		headers.Add(strings.TrimSpace(name), strings.TrimSpace(value))
		return nil
	})
	flag.Parse()
	if err := run(*grpcAddr, *httpAddr, headers); err != nil {
		fmt.Fprintln(os.Stderr, "noop:", err)
		os.Exit(1)
	}
}

func run(grpcAddr, httpAddr string, headers http.Header) error {
	gl, err := net.Listen("tcp", grpcAddr)
	if err != nil {
		return err
	}
	hl, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return err
	}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, noop{})
	reflection.Register(gs)
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			h := w.Header()
			for k, v := range headers {
				h[k] = v // shared, never modified
			}
			w.WriteHeader(http.StatusOK)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	errc := make(chan error, 2)
	go func() { errc <- gs.Serve(gl) }()
	go func() { errc <- hs.Serve(hl) }()
	fmt.Printf("grpc=%s http=%s\n", gl.Addr(), hl.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
		gs.Stop()
		hs.Close()
		return nil
	case err := <-errc:
		return err
	}
}
