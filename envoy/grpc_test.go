package envoy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
)

// serveServer serves s with NewGRPCServer(s, nil) on a loopback port and returns a
// plaintext client connection to it.
func serveServer(t *testing.T, s *Server) *grpc.ClientConn {
	t.Helper()
	gs, err := NewGRPCServer(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	return serveGRPC(t, gs, nil)
}

// serveGRPC starts gs on 127.0.0.1:0 and returns a client connection.
func serveGRPC(t *testing.T, gs *grpc.Server, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func TestGRPCLoopback(t *testing.T) {
	s, _ := newTestServer(t, &fakeAuthorizer{d: allowAlice()},
		Config{GRPC: GRPCConfig{MaxConcurrentStreams: 16, KeepaliveTime: authz.Duration(time.Minute)}})
	hs := NewHealth()
	gs, err := NewGRPCServer(s, hs)
	if err != nil {
		t.Fatal(err)
	}
	cc := serveGRPC(t, gs, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("reflection lists the services", func(t *testing.T) {
		stream, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{
			MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		for _, want := range []string{AuthorizationService, "grpc.health.v1.Health"} {
			if !slices.Contains(names, want) {
				t.Errorf("reflection lists %v, missing %s", names, want)
			}
		}
		_ = stream.CloseSend()
	})

	t.Run("health follows SetServing", func(t *testing.T) {
		hc := healthpb.NewHealthClient(cc)
		for _, serving := range []bool{false, true, false} {
			SetServing(hs, serving)
			want := healthpb.HealthCheckResponse_NOT_SERVING
			if serving {
				want = healthpb.HealthCheckResponse_SERVING
			}
			for _, svc := range []string{"", AuthorizationService} {
				r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
				if err != nil {
					t.Fatal(err)
				}
				if r.GetStatus() != want {
					t.Errorf("service %q: %v, want %v", svc, r.GetStatus(), want)
				}
			}
		}
	})

	t.Run("check round-trips", func(t *testing.T) {
		resp, err := authv3.NewAuthorizationClient(cc).Check(ctx, checkRequest(map[string]string{"authorization": "Bearer t"}))
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetStatus().GetCode() != int32(codes.OK) || headerMap(resp)["x-auth-request-user"].GetHeader().GetValue() != "alice" {
			t.Errorf("got %v", resp)
		}
		s.SetAuthorizer(AuthorizerFunc(func(context.Context, authz.Request) authz.Decision { panic("boom") }))
		resp, err = authv3.NewAuthorizationClient(cc).Check(ctx, checkRequest(nil))
		if err != nil {
			t.Fatalf("a panicking authorizer must not become a gRPC error: %v", err)
		}
		if resp.GetDeniedResponse().GetStatus().GetCode() != 503 {
			t.Errorf("got %v", resp)
		}
	})
}

// TestGRPCStreamWorkers: with the default workers, with fewer workers than concurrent
// calls (the rest get goroutines of their own) and with workers off, every one of many
// concurrent checks is answered.
func TestGRPCStreamWorkers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		workers int
	}{{"default", 0}, {"fewer than calls", 2}, {"off", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestServer(t, &fakeAuthorizer{d: allowAlice()}, Config{GRPC: GRPCConfig{StreamWorkers: tc.workers}})
			client := authv3.NewAuthorizationClient(serveServer(t, s))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for range 64 {
				wg.Go(func() {
					resp, err := client.Check(ctx, checkRequest(map[string]string{"authorization": "Bearer t"}))
					if err == nil && resp.GetStatus().GetCode() != int32(codes.OK) {
						err = fmt.Errorf("code %d", resp.GetStatus().GetCode())
					}
					errs <- err
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestGRPCNilHealthIsServing(t *testing.T) {
	s, _ := newTestServer(t, nil, Config{})
	cc := serveServer(t, s)
	r, err := healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("got %v, %v", r, err)
	}
	var _ *health.Server = NewHealth()
}

// testPKI writes a CA, a server certificate for 127.0.0.1 and a client certificate.
type testPKI struct {
	dir                       string
	caPool                    *x509.CertPool
	clientCert                tls.Certificate
	caFile, certFile, keyFile string
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "leaf"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := &testPKI{dir: dir, caPool: x509.NewCertPool()}
	p.caPool.AddCert(ca)
	p.caFile = write("ca.pem", "CERTIFICATE", caDER)
	srvDER, srvKey := issue(2, x509.ExtKeyUsageServerAuth)
	p.certFile = write("server.pem", "CERTIFICATE", srvDER)
	kb, _ := x509.MarshalECPrivateKey(srvKey)
	p.keyFile = write("server-key.pem", "EC PRIVATE KEY", kb)
	cliDER, cliKey := issue(3, x509.ExtKeyUsageClientAuth)
	p.clientCert = tls.Certificate{Certificate: [][]byte{cliDER}, PrivateKey: cliKey}
	return p
}

func TestGRPCTLSAndMTLS(t *testing.T) {
	pki := newTestPKI(t)
	tests := []struct {
		name       string
		tls        TLSConfig
		clientCert bool
		wantOK     bool
	}{
		{name: "tls", tls: TLSConfig{CertFile: pki.certFile, KeyFile: pki.keyFile}, wantOK: true},
		{name: "mtls with client cert", tls: TLSConfig{CertFile: pki.certFile, KeyFile: pki.keyFile, ClientCAFile: pki.caFile}, clientCert: true, wantOK: true},
		{name: "mtls without client cert", tls: TLSConfig{CertFile: pki.certFile, KeyFile: pki.keyFile, ClientCAFile: pki.caFile}, wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestServer(t, &fakeAuthorizer{d: allowAlice()}, Config{TLS: tt.tls})
			gs, err := NewGRPCServer(s, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctc := &tls.Config{RootCAs: pki.caPool, MinVersion: tls.VersionTLS12}
			if tt.clientCert {
				ctc.Certificates = []tls.Certificate{pki.clientCert}
			}
			cc := serveGRPC(t, gs, credentials.NewTLS(ctc))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err = authv3.NewAuthorizationClient(cc).Check(ctx, checkRequest(nil))
			if (err == nil) != tt.wantOK {
				t.Errorf("Check err = %v, want ok=%v", err, tt.wantOK)
			}
		})
	}
}

func TestTLSLoadErrors(t *testing.T) {
	pki := newTestPKI(t)
	notPEM := filepath.Join(pki.dir, "junk")
	_ = os.WriteFile(notPEM, []byte("junk"), 0o600)
	for _, tc := range []TLSConfig{
		{CertFile: filepath.Join(pki.dir, "missing"), KeyFile: pki.keyFile},
		{CertFile: pki.certFile, KeyFile: pki.keyFile, ClientCAFile: filepath.Join(pki.dir, "missing")},
		{CertFile: pki.certFile, KeyFile: pki.keyFile, ClientCAFile: notPEM},
	} {
		s, _ := newTestServer(t, nil, Config{TLS: tc})
		if _, err := NewGRPCServer(s, nil); err == nil {
			t.Errorf("%+v: want error", tc)
		}
	}
	if c, err := (TLSConfig{}).Load(); c != nil || err != nil {
		t.Errorf("disabled TLS: %v, %v", c, err)
	}
}
