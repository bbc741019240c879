package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/flaat-extauthz/flaat-extauthz/internal/server"
)

// healthFlags are the flags of `healthcheck`.
type healthFlags struct {
	addr, path            string
	grpcAddr, service     string
	tls                   bool
	caFile, certFile, key string
	serverName            string
	insecureSkipTLSVerify bool
	timeout               time.Duration
}

func (a *app) healthcheckCmd() *cobra.Command {
	var hf healthFlags
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Probe a running server's /readyz (or gRPC health); exit 0 if healthy, 1 if not",
		Long: `healthcheck asks a running flaat-extauthz whether it is ready, for Docker's
HEALTHCHECK (the distroless image has no shell or curl), docker compose's
"condition: service_healthy" and other probes. It prints one line and exits 0 when
healthy, 1 when not (not ready, not serving, nothing listening, timeout), 2 on bad flags.

By default it GETs http://127.0.0.1:9090/readyz on the admin listener (plain HTTP):
--addr names another admin address, --path /healthz checks liveness only.

With --grpc ADDR it asks the gRPC health service (grpc.health.v1) of the ext_authz
listener instead, which reports the same readiness; --service names the service to ask
("" is the whole server, or envoy.service.auth.v3.Authorization). When the listener
has server.tls, pass --tls with --ca-file (else the system roots), --server-name when
the certificate does not name the address, and --cert-file/--key-file when it requires
client certificates (server.tls.client_ca_file).`,
		Example: `  flaat-extauthz healthcheck
  flaat-extauthz healthcheck --addr 127.0.0.1:9091 --path /healthz
  flaat-extauthz healthcheck --grpc 127.0.0.1:9001 --tls --ca-file /tls/ca.pem --server-name flaat-extauthz`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if hf.path != server.ReadyzPath && hf.path != server.HealthzPath {
				return exit(exitUsage, fmt.Errorf("healthcheck: --path must be %s or %s", server.ReadyzPath, server.HealthzPath))
			}
			if hf.grpcAddr == "" && (hf.tls || hf.caFile != "" || hf.certFile != "" || hf.key != "" || hf.serverName != "" || hf.insecureSkipTLSVerify) {
				return exit(exitUsage, errors.New("healthcheck: the TLS flags apply to --grpc (the admin listener is plain HTTP)"))
			}
			if (hf.certFile == "") != (hf.key == "") {
				return exit(exitUsage, errors.New("healthcheck: --cert-file and --key-file go together"))
			}
			if hf.timeout <= 0 {
				return exit(exitUsage, errors.New("healthcheck: --timeout must be positive"))
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), hf.timeout)
			defer cancel()
			what, err := hf.probe(ctx)
			if err != nil {
				return exit(exitFail, fmt.Errorf("healthcheck: %s: %w", what, err))
			}
			fmt.Fprintf(a.stdout, "healthy: %s\n", what)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&hf.addr, "addr", "127.0.0.1:9090", "admin listener address (host:port) to GET --path from")
	f.StringVar(&hf.path, "path", server.ReadyzPath, "admin path: /readyz (ready to answer checks) or /healthz (process alive)")
	f.StringVar(&hf.grpcAddr, "grpc", "", "ask the gRPC health service at this address (host:port) instead of the admin listener")
	f.StringVar(&hf.service, "service", "", `gRPC health service name ("" = the whole server)`)
	f.BoolVar(&hf.tls, "tls", false, "--grpc: connect with TLS")
	f.StringVar(&hf.caFile, "ca-file", "", "--grpc with --tls: PEM CA certificates to verify the server with (default: system roots)")
	f.StringVar(&hf.certFile, "cert-file", "", "--grpc with --tls: PEM client certificate, for a listener that requires one")
	f.StringVar(&hf.key, "key-file", "", "--grpc with --tls: PEM key of --cert-file")
	f.StringVar(&hf.serverName, "server-name", "", "--grpc with --tls: name the server certificate must carry (default: the host of --grpc)")
	f.BoolVar(&hf.insecureSkipTLSVerify, "insecure-skip-tls-verify", false,
		"--grpc with --tls: do not verify the server certificate. INSECURE: only for a probe of the same host; never for anything that carries tokens")
	f.DurationVar(&hf.timeout, "timeout", 3*time.Second, "give up (exit 1) after this long")
	return cmd
}

// probe runs the configured probe and returns what it asked.
func (hf *healthFlags) probe(ctx context.Context) (string, error) {
	if hf.grpcAddr == "" {
		what := "http://" + hf.addr + hf.path
		return what, server.Probe(ctx, nil, hf.addr, hf.path)
	}
	what := "grpc health " + hf.grpcAddr
	if hf.service != "" {
		what += " service " + hf.service
	}
	creds := insecure.NewCredentials()
	if hf.tls {
		tc, err := hf.tlsConfig()
		if err != nil {
			return what, err
		}
		creds = credentials.NewTLS(tc)
	}
	cc, err := grpc.NewClient("passthrough:///"+hf.grpcAddr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return what, err
	}
	defer cc.Close()
	res, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: hf.service})
	if err != nil {
		return what, err
	}
	if st := res.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
		return what, fmt.Errorf("status %s", st)
	}
	return what, nil
}

func (hf *healthFlags) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: hf.serverName}
	if tc.ServerName == "" {
		if host, _, err := net.SplitHostPort(hf.grpcAddr); err == nil {
			tc.ServerName = host
		}
	}
	if hf.caFile != "" {
		pem, err := os.ReadFile(hf.caFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", hf.caFile)
		}
	}
	if hf.certFile != "" {
		c, err := tls.LoadX509KeyPair(hf.certFile, hf.key)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{c}
	}
	tc.InsecureSkipVerify = hf.insecureSkipTLSVerify //nolint:gosec // documented: a local probe only
	return tc, nil
}
