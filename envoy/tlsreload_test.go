package envoy

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/flaat-extauthz/flaat-extauthz/internal/testutil/clocktest"
)

// rotPKI issues certificates from fresh CAs and writes them where a CertReloader reads
// them, the way cert-manager rewrites a Secret's files in place.
type rotPKI struct {
	t                         *testing.T
	dir                       string
	certFile, keyFile, caFile string
	mtime                     time.Time // every write moves the files' mtime on by a second
}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
	pool *x509.CertPool
}

func newRotPKI(t *testing.T) *rotPKI {
	dir := t.TempDir()
	return &rotPKI{t: t, dir: dir, certFile: filepath.Join(dir, "tls.crt"), keyFile: filepath.Join(dir, "tls.key"),
		caFile: filepath.Join(dir, "ca.crt"), mtime: time.Now().Add(-time.Hour)}
}

func (p *rotPKI) newCA(name string) *testCA {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		p.t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &testCA{cert: c, key: k, der: der, pool: pool}
}

// issue returns a leaf (DER) and its key, for 127.0.0.1.
func (p *rotPKI) issue(ca *testCA, serial int64, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &k.PublicKey, ca.key)
	if err != nil {
		p.t.Fatal(err)
	}
	return der, k
}

// write replaces a file's content and moves its mtime on (real rewrites change it too;
// setting it keeps the test independent of the file system's timestamp resolution).
func (p *rotPKI) write(name string, b []byte) {
	p.t.Helper()
	if err := os.WriteFile(name, b, 0o600); err != nil {
		p.t.Fatal(err)
	}
	p.mtime = p.mtime.Add(time.Second)
	if err := os.Chtimes(name, p.mtime, p.mtime); err != nil {
		p.t.Fatal(err)
	}
}

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// writeServer writes a server certificate with serial and its key.
func (p *rotPKI) writeServer(ca *testCA, serial int64) {
	p.t.Helper()
	der, k := p.issue(ca, serial, x509.ExtKeyUsageServerAuth)
	kb, _ := x509.MarshalECPrivateKey(k)
	p.write(p.certFile, pemOf("CERTIFICATE", der))
	p.write(p.keyFile, pemOf("EC PRIVATE KEY", kb))
}

func (p *rotPKI) clientCert(ca *testCA) tls.Certificate {
	der, k := p.issue(ca, 99, x509.ExtKeyUsageClientAuth)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}

// serveTLS accepts TLS connections with cfg on 127.0.0.1:0; each connection that
// completes the handshake (client certificate verified, for mTLS) gets "ok".
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if c.(*tls.Conn).Handshake() == nil {
					_, _ = io.WriteString(c, "ok")
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// handshake connects to addr and returns the serial of the server certificate; err
// when the handshake or the server's verification of the client certificate failed.
func handshake(t *testing.T, addr string, roots *x509.CertPool, client *tls.Certificate) (int64, error) {
	t.Helper()
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if client != nil {
		cfg.Certificates = []tls.Certificate{*client}
	}
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil { // TLS 1.3: a refused client certificate shows here
		return 0, err
	}
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

func wantSerial(t *testing.T, addr string, roots *x509.CertPool, client *tls.Certificate, want int64) {
	t.Helper()
	got, err := handshake(t, addr, roots, client)
	if err != nil {
		t.Fatalf("handshake: %v (want serial %d)", err, want)
	}
	if got != want {
		t.Fatalf("server certificate serial %d, want %d", got, want)
	}
}

func TestCertReloaderRotatesInPlace(t *testing.T) {
	p := newRotPKI(t)
	ca := p.newCA("server ca")
	p.writeServer(ca, 10)
	clk := clocktest.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	logs := &lockedWriter{w: &bytes.Buffer{}}
	r, err := NewCertReloader(TLSConfig{CertFile: p.certFile, KeyFile: p.keyFile}, slog.New(slog.NewJSONHandler(logs, nil)), clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, r.ServerConfig())
	wantSerial(t, addr, ca.pool, nil, 10)

	// cert-manager rewrites the files: not looked at before TLSCheckInterval…
	p.writeServer(ca, 11)
	clk.Advance(TLSCheckInterval - time.Millisecond)
	wantSerial(t, addr, ca.pool, nil, 10)
	// …and served by the first handshake after it.
	clk.Advance(time.Millisecond)
	wantSerial(t, addr, ca.pool, nil, 11)

	// A broken certificate file keeps the last good certificate, logged once.
	p.write(p.certFile, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n"))
	for range 3 {
		clk.Advance(TLSCheckInterval)
		wantSerial(t, addr, ca.pool, nil, 11)
	}
	if n := strings.Count(logs.String(), "tls files not reloaded"); n != 1 {
		t.Fatalf("%d error lines for one bad file, want 1:\n%s", n, logs.String())
	}

	// Half a rotation (new certificate, old key) is refused too; the key completes it.
	der, k := p.issue(ca, 12, x509.ExtKeyUsageServerAuth)
	p.write(p.certFile, pemOf("CERTIFICATE", der))
	clk.Advance(TLSCheckInterval)
	wantSerial(t, addr, ca.pool, nil, 11)
	kb, _ := x509.MarshalECPrivateKey(k)
	p.write(p.keyFile, pemOf("EC PRIVATE KEY", kb))
	clk.Advance(TLSCheckInterval)
	wantSerial(t, addr, ca.pool, nil, 12)

	// Missing files (a Secret volume mid-update) keep the last good certificate.
	if err := os.Remove(p.keyFile); err != nil {
		t.Fatal(err)
	}
	clk.Advance(TLSCheckInterval)
	wantSerial(t, addr, ca.pool, nil, 12)

	// Reload (SIGHUP) re-reads at once, without waiting for the interval; a bad file
	// is an ErrTLSReload and changes nothing.
	if err := r.Reload(); !errors.Is(err, ErrTLSReload) {
		t.Fatalf("Reload with a missing key: %v, want ErrTLSReload", err)
	}
	wantSerial(t, addr, ca.pool, nil, 12)
	p.writeServer(ca, 13)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	wantSerial(t, addr, ca.pool, nil, 13)
	if got := r.Leaf().SerialNumber.Int64(); got != 13 {
		t.Fatalf("Leaf serial %d", got)
	}
	if !strings.Contains(logs.String(), `"serial":"13"`) {
		t.Fatalf("reload not logged:\n%s", logs.String())
	}
}

func TestCertReloaderRotatesClientCA(t *testing.T) {
	p := newRotPKI(t)
	srvCA, oldCA, newCA := p.newCA("server ca"), p.newCA("old client ca"), p.newCA("new client ca")
	p.writeServer(srvCA, 20)
	p.write(p.caFile, pemOf("CERTIFICATE", oldCA.der))
	clk := clocktest.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	r, err := NewCertReloader(TLSConfig{CertFile: p.certFile, KeyFile: p.keyFile, ClientCAFile: p.caFile}, discardLogger(), clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, r.ServerConfig())
	oldClient, newClient := p.clientCert(oldCA), p.clientCert(newCA)
	wantSerial(t, addr, srvCA.pool, &oldClient, 20)
	if _, err := handshake(t, addr, srvCA.pool, &newClient); err == nil {
		t.Fatal("client of the new CA accepted before the rotation")
	}
	if _, err := handshake(t, addr, srvCA.pool, nil); err == nil {
		t.Fatal("client without certificate accepted")
	}

	p.write(p.caFile, pemOf("CERTIFICATE", newCA.der))
	clk.Advance(TLSCheckInterval)
	wantSerial(t, addr, srvCA.pool, &newClient, 20)
	if _, err := handshake(t, addr, srvCA.pool, &oldClient); err == nil {
		t.Fatal("client of the old CA accepted after the rotation")
	}

	// A CA file without a certificate keeps the last good CA: mTLS stays on.
	p.write(p.caFile, []byte("not a certificate"))
	clk.Advance(TLSCheckInterval)
	wantSerial(t, addr, srvCA.pool, &newClient, 20)
	if _, err := handshake(t, addr, srvCA.pool, nil); err == nil {
		t.Fatal("client without certificate accepted after a bad CA file")
	}
}

// TestGRPCListenerPicksUpRotatedCertificate: the wiring — NewGRPCServer serves the
// reloader's certificate (with ALPN h2), a rotation reaches new connections, and
// ListenerTLS hands the same reloader to the HTTP listener.
func TestGRPCListenerPicksUpRotatedCertificate(t *testing.T) {
	p := newRotPKI(t)
	ca := p.newCA("server ca")
	p.writeServer(ca, 30)
	clk := clocktest.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s, _ := newTestServer(t, &fakeAuthorizer{d: allowAlice()}, Config{TLS: TLSConfig{CertFile: p.certFile, KeyFile: p.keyFile}}, WithClock(clk.Now))
	gs, err := NewGRPCServer(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	check := func(want int64) {
		t.Helper()
		var serial int64
		ctc := &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12, VerifyConnection: func(cs tls.ConnectionState) error {
			serial = cs.PeerCertificates[0].SerialNumber.Int64()
			return nil
		}}
		cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(ctc)))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := authv3.NewAuthorizationClient(cc).Check(ctx, checkRequest(nil)); err != nil {
			t.Fatalf("Check: %v", err)
		}
		if serial != want {
			t.Fatalf("serial %d, want %d", serial, want)
		}
	}
	check(30)
	p.writeServer(ca, 31)
	clk.Advance(TLSCheckInterval)
	check(31)

	r, err := s.ListenerTLS()
	if err != nil || r == nil {
		t.Fatalf("ListenerTLS = %v, %v", r, err)
	}
	addr := serveTLS(t, r.ServerConfig())
	wantSerial(t, addr, ca.pool, nil, 31)
	if r2, _ := s.ListenerTLS(); r2 != r {
		t.Fatal("ListenerTLS returned a second reloader")
	}
	if r, err := (&Server{}).ListenerTLS(); r != nil || err != nil {
		t.Fatalf("TLS off: %v, %v", r, err)
	}
}

// String returns what was written so far.
func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}
