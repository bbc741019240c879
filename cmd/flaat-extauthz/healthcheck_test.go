package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"github.com/flaat-extauthz/flaat-extauthz/internal/testutil"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// pki is a CA with a server certificate for 127.0.0.1 and a client certificate, as files.
type pki struct {
	caFile, certFile, keyFile, clientCert, clientKey, otherCA string
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newCA := func(name string) (*x509.Certificate, *ecdsa.PrivateKey, string) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, IsCA: true,
			BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c, k, write(name+".pem", "CERTIFICATE", der)
	}
	ca, caKey, caFile := newCA("ca")
	_, _, otherCA := newCA("other-ca")
	issue := func(serial int64, usage x509.ExtKeyUsage, name string) (string, string) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			DNSNames: []string{"flaat-extauthz"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := x509.MarshalECPrivateKey(k)
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kb)
	}
	p := pki{caFile: caFile, otherCA: otherCA}
	p.certFile, p.keyFile = issue(2, x509.ExtKeyUsageServerAuth, "server")
	p.clientCert, p.clientKey = issue(3, x509.ExtKeyUsageClientAuth, "client")
	return p
}

// serveWith runs serve with the configuration yaml on loopback ports, no OP reachable.
func serveWith(t *testing.T, yaml string) *testutil.Running[result] {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	a, _, _ := testApp(nil)
	a.transport = offline()
	return start(t, a, append([]string{"serve", "--config", path}, loopback...)...)
}

// TestHealthcheck: exit 0 exactly when the probed server is ready (or, for /healthz,
// alive), 1 otherwise, 2 on bad flags; over the admin listener and gRPC health, with
// TLS and mTLS.
func TestHealthcheck(t *testing.T) {
	certs := newPKI(t)
	ready := serveWith(t, "server: {readiness: lazy}\nissuers: [{issuer: https://op.example}]\n")
	notReady := serveWith(t, "issuers: [{issuer: https://op.example}]\n") // eager, OP unreachable
	mtls := serveWith(t, "server: {readiness: lazy, tls: {cert_file: "+certs.certFile+", key_file: "+certs.keyFile+
		", client_ca_file: "+certs.caFile+"}}\nissuers: [{issuer: https://op.example}]\n")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()

	tls := func(extra ...string) []string {
		return append([]string{"--grpc", mtls.Addrs["grpc"], "--tls"}, extra...)
	}
	for _, c := range []struct {
		name string
		args []string
		code int
		out  string // in stdout (code 0) or stderr
	}{
		{"readyz ready", []string{"--addr", ready.Addrs["admin"]}, 0, "healthy: http://"},
		{"readyz not ready", []string{"--addr", notReady.Addrs["admin"]}, 1, "503"},
		{"healthz of a server not ready", []string{"--addr", notReady.Addrs["admin"], "--path", "/healthz"}, 0, "/healthz"},
		{"nothing listening", []string{"--addr", closed, "--timeout", "2s"}, 1, "healthcheck:"},
		{"grpc serving", []string{"--grpc", ready.Addrs["grpc"]}, 0, "healthy: grpc health"},
		{"grpc service serving", []string{"--grpc", ready.Addrs["grpc"], "--service", "envoy.service.auth.v3.Authorization"}, 0, "service envoy"},
		{"grpc not serving", []string{"--grpc", notReady.Addrs["grpc"]}, 1, "NOT_SERVING"},
		{"grpc unknown service", []string{"--grpc", ready.Addrs["grpc"], "--service", "nope"}, 1, "NotFound"},
		{"grpc nothing listening", []string{"--grpc", closed, "--timeout", "2s"}, 1, "healthcheck:"},
		{"mtls with client cert", tls("--ca-file", certs.caFile, "--cert-file", certs.clientCert, "--key-file", certs.clientKey), 0, "healthy"},
		{"mtls by name", tls("--ca-file", certs.caFile, "--cert-file", certs.clientCert, "--key-file", certs.clientKey,
			"--server-name", "flaat-extauthz"), 0, "healthy"},
		{"mtls without client cert", tls("--ca-file", certs.caFile, "--timeout", "2s"), 1, "healthcheck:"},
		{"tls with the wrong CA", tls("--ca-file", certs.otherCA, "--cert-file", certs.clientCert, "--key-file", certs.clientKey, "--timeout", "2s"), 1, "certificate"},
		{"tls with the wrong name", tls("--ca-file", certs.caFile, "--cert-file", certs.clientCert, "--key-file", certs.clientKey,
			"--server-name", "other", "--timeout", "2s"), 1, "certificate"},
		{"plaintext to a tls listener", []string{"--grpc", mtls.Addrs["grpc"], "--timeout", "2s"}, 1, "healthcheck:"},
		{"bad path", []string{"--path", "/metrics"}, 2, "--path"},
		{"tls flags without grpc", []string{"--tls"}, 2, "--grpc"},
		{"cert without key", tls("--cert-file", certs.clientCert), 2, "--key-file"},
		{"zero timeout", []string{"--timeout", "0s"}, 2, "--timeout"},
		{"argument", []string{"extra"}, 2, "unknown command"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, _, _ := testApp(nil)
			res := runCmd(t, a, append([]string{"healthcheck"}, c.args...)...)
			out := res.stderr
			if c.code == 0 {
				out = res.stdout
			}
			if res.code != c.code || !strings.Contains(out, c.out) {
				t.Errorf("exit %d, want %d with %q\nstdout: %s\nstderr: %s", res.code, c.code, c.out, res.stdout, res.stderr)
			}
		})
	}
}

// TestDockerHealthcheck runs the Dockerfile's HEALTHCHECK command line (with --addr
// appended, as no server may use the real port here): its flags parse, it names the
// ENTRYPOINT binary, and it exits 0 for a ready server and 1 for none.
func TestDockerHealthcheck(t *testing.T) {
	df, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^HEALTHCHECK [^\n]*\\\n\s+CMD (\[.*\])\s*$`).FindSubmatch(df)
	if m == nil {
		t.Fatal("no HEALTHCHECK ... CMD [...] in the Dockerfile")
	}
	var argv []string
	if err := json.Unmarshal(m[1], &argv); err != nil {
		t.Fatalf("HEALTHCHECK CMD is not an exec-form JSON array: %v", err)
	}
	entry := regexp.MustCompile(`(?m)^ENTRYPOINT \["([^"]+)"\]`).FindSubmatch(df)
	if entry == nil || len(argv) < 2 || argv[0] != string(entry[1]) {
		t.Fatalf("HEALTHCHECK runs %v, want the ENTRYPOINT binary %s", argv, entry)
	}
	ready := serveWith(t, "server: {readiness: lazy}\nissuers: [{issuer: https://op.example}]\n")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	for _, c := range []struct {
		addr string
		code int
	}{{ready.Addrs["admin"], 0}, {closed, 1}} {
		a, _, _ := testApp(nil)
		if res := runCmd(t, a, append(argv[1:], "--addr", c.addr)...); res.code != c.code {
			t.Errorf("%v --addr %s: exit %d, want %d\n%s", argv, c.addr, res.code, c.code, res.stderr)
		}
	}
}
