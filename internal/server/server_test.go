package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/flaat-extauthz/flaat-extauthz/envoy"
	"github.com/flaat-extauthz/flaat-extauthz/internal/config"
	"github.com/flaat-extauthz/flaat-extauthz/internal/devswitch"
	"github.com/flaat-extauthz/flaat-extauthz/internal/testutil/clocktest"
	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
)

func TestServeReadyAndMetrics(t *testing.T) {
	op := oidctest.New(t)
	r := start(t, Options{Load: defaultLoader(config.Overrides{Issuers: []string{op.Issuer()}, LogFormat: "text"})})

	if code, body := r.Get("admin", "/readyz", nil); code != 200 {
		t.Fatalf("/readyz = %d %q", code, body)
	}
	conn, err := grpc.NewClient(r.Addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hr, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("grpc health = %v %v, want SERVING once ready", hr.GetStatus(), err)
	}
	tok := op.MintJWT(map[string]any{"sub": "alice"})
	if code, body := r.Get("http", "/x", map[string]string{"Authorization": "Bearer " + tok}); code != 200 {
		t.Errorf("valid token = %d %s", code, body)
	}
	code, body := r.Get("admin", "/metrics", nil)
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`flaat_extauthz_decisions_total{outcome="allow",reason="",route="default"} 1`,
		`flaat_extauthz_op_requests_total{endpoint="discovery"`,
		`flaat_extauthz_jwks_refreshes_total{issuer=`,
		`flaat_extauthz_cache_misses_total 1`,
		`flaat_extauthz_insecure_dev_switches_enabled 0`,
		`flaat_extauthz_check_duration_seconds_bucket`,
		`flaat_extauthz_op_breaker_state{host="` + strings.TrimPrefix(op.Issuer(), "http://") + `"} 0`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if log, err := r.stop(os.Interrupt); err != nil || !strings.Contains(log, "msg=stopped") {
		t.Errorf("Run = %v; log:\n%s", err, log)
	}
}

// gatedClient blocks every userinfo request while the gate is armed, announcing it on
// entered: the test holds a check in flight as long as it likes, without sleeping.
type gatedClient struct {
	mu      sync.Mutex
	gate    chan struct{}
	entered chan struct{}
}

func (g *gatedClient) transport() http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		g.mu.Lock()
		gate := g.gate
		g.mu.Unlock()
		if gate != nil && strings.HasSuffix(r.URL.Path, oidctest.UserinfoPath) {
			g.entered <- struct{}{}
			<-gate
		}
		return http.DefaultTransport.RoundTrip(r)
	})
}

// TestServeReload: a valid new configuration applies without dropping the check in
// flight (it finishes on the old configuration); an invalid one is refused and the old
// one keeps serving.
func TestServeReload(t *testing.T) {
	op := oidctest.New(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	write := func(group string) {
		t.Helper()
		y := "issuers: [{issuer: " + op.Issuer() + "}]\n" +
			"server: {headers: [{name: x-" + group + "-user, claim: sub}]}\n" +
			"policy:\n  routes:\n    - name: admin\n      path: {prefix: /admin}\n      require: {groups: {values: [" + group + "]}}\n"
		if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("admins")
	gc := &gatedClient{entered: make(chan struct{}, 1)}
	reloaded := make(chan bool, 4)
	r := start(t, Options{Load: fileLoader(path, config.Overrides{}), Transport: gc.transport(), OnReload: func(ok bool) { reloaded <- ok }})

	alice := map[string]string{"Authorization": "Bearer " + op.MintJWT(map[string]any{"sub": "alice", "groups": []string{"admins"}})}
	gc.mu.Lock()
	gc.gate = make(chan struct{})
	gc.mu.Unlock()
	inflight := make(chan int, 1)
	go func() { code, _ := r.Get("http", "/admin", alice); inflight <- code }()
	<-gc.entered // the check is now waiting for userinfo on the old configuration

	write("ops") // alice is not in ops
	r.Sigs <- syscall.SIGHUP
	if ok := <-reloaded; !ok {
		t.Fatal("valid reload refused")
	}
	gc.mu.Lock()
	close(gc.gate)
	gc.gate = nil
	gc.mu.Unlock()
	if code := <-inflight; code != 200 {
		t.Errorf("check in flight during reload = %d, want 200 from the old configuration", code)
	}
	if code, _ := r.Get("http", "/admin", alice); code != 403 {
		t.Errorf("after reload = %d, want 403 from the new configuration", code)
	}

	os.WriteFile(path, []byte("policy: {routes: [{name: x, nonsense: 1}]}\n"), 0o600)
	r.Sigs <- syscall.SIGHUP
	if ok := <-reloaded; ok {
		t.Fatal("invalid reload applied")
	}
	if code, _ := r.Get("http", "/admin", alice); code != 403 {
		t.Errorf("after refused reload = %d, want 403 (previous configuration)", code)
	}
	bob := map[string]string{"Authorization": "Bearer " + op.MintJWT(map[string]any{"sub": "bob", "groups": []string{"ops"}})}
	code, _, hdr := r.GetH("http", "/admin", bob)
	if code != 200 {
		t.Errorf("ops member after refused reload = %d, want 200", code)
	}
	if hdr.Get("x-ops-user") != "bob" || hdr.Get("x-admins-user") != "" {
		t.Errorf("identity headers after reload: %v, want the reloaded x-ops-user only", hdr)
	}
	_, metrics := r.Get("admin", "/metrics", nil)
	for _, want := range []string{`flaat_extauthz_config_reloads_total{result="ok"} 1`, `flaat_extauthz_config_reloads_total{result="failed"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if log, err := r.stop(syscall.SIGTERM); err != nil || !strings.Contains(log, "configuration reload refused") || !strings.Contains(log, "configuration reloaded") {
		t.Errorf("Run = %v; log:\n%s", err, log)
	}
}

func TestServeDevSwitches(t *testing.T) {
	ticks := make(chan time.Time)
	_, load := writeConfig(t, "issuers: [{issuer: https://op.example}]\npolicy:\n  routes:\n    - {name: admin, path: {prefix: /admin}, require: {groups: {values: [admins]}}}\n    - {name: ops, path: {prefix: /ops}, require: {groups: {values: [ops]}}}\n")
	r := start(t, Options{Load: load, Transport: offline(), DevSwitches: devswitch.Switches{AssumeGroups: []string{"admins"}},
		Tick: func(time.Duration) <-chan time.Time { return ticks }})
	if code, _ := r.Get("http", "/admin", nil); code != 200 {
		t.Errorf("/admin with assumed group admins = %d, want 200 without any token", code)
	}
	if code, _ := r.Get("http", "/ops", nil); code != 403 {
		t.Errorf("/ops = %d, want 403 (only the assumed groups)", code)
	}
	ticks <- time.Now()
	_, metrics := r.Get("admin", "/metrics", nil)
	if !strings.Contains(metrics, "flaat_extauthz_insecure_dev_switches_enabled 1") ||
		!strings.Contains(metrics, "flaat_extauthz_insecure_dev_switch_decisions_total 2") {
		t.Errorf("dev switch metrics missing:\n%s", metrics)
	}
	log, _ := r.stop(syscall.SIGTERM)
	if n := strings.Count(log, "INSECURE DEVELOPMENT SWITCHES ARE ON"); n != 2 {
		t.Errorf("%d warnings, want 2 (start-up and one tick):\n%s", n, log)
	}
}

// TestServeTLSReloadOnSIGHUP: SIGHUP re-reads the listener certificate files (both
// listeners share them); the clock stands still, so the automatic check cannot be what
// picked them up. A bad certificate file is refused and the last good one keeps serving.
func TestServeTLSReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeCert := func(serial int64) {
		t.Helper()
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := x509.MarshalECPrivateKey(k)
		os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
		os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	}
	writeCert(100)
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("issuers: [{issuer: https://op.example}]\nserver: {tls: {cert_file: "+certFile+", key_file: "+keyFile+"}}\n"), 0o600)

	fixed := time.Now()
	reloaded := make(chan bool, 4)
	r := start(t, Options{Load: fileLoader(cfg, config.Overrides{}), Transport: offline(),
		Now: func() time.Time { return fixed }, OnReload: func(ok bool) { reloaded <- ok }})
	serial := func(listener string) int64 {
		t.Helper()
		c, err := tls.Dial("tcp", r.Addrs[listener], &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatalf("%s handshake: %v", listener, err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	for _, l := range []string{"grpc", "http"} {
		if got := serial(l); got != 100 {
			t.Fatalf("%s serial %d, want 100", l, got)
		}
	}
	writeCert(101)
	r.Sigs <- syscall.SIGHUP
	<-reloaded
	for _, l := range []string{"grpc", "http"} {
		if got := serial(l); got != 101 {
			t.Errorf("%s serial %d after SIGHUP, want 101", l, got)
		}
	}
	os.WriteFile(certFile, []byte("garbage"), 0o600)
	r.Sigs <- syscall.SIGHUP
	<-reloaded
	for _, l := range []string{"grpc", "http"} {
		if got := serial(l); got != 101 {
			t.Errorf("%s serial %d after a bad certificate file, want 101 (last good)", l, got)
		}
	}
	if !strings.Contains(r.log.String(), "tls files not reloaded") {
		t.Errorf("bad certificate not logged:\n%s", r.log)
	}
}

// TestServeHealthFollowsReload: the gRPC health service describes the configuration
// that serves. A reload that adds an issuer whose discovery fails turns it NOT_SERVING
// (and /readyz 503 naming the issuer) until the discovery succeeds, as at start-up; a
// refused reload and a reload whose OPs answer leave it SERVING (the new issuers are
// fetched before the swap).
func TestServeHealthFollowsReload(t *testing.T) {
	op1, op2 := oidctest.New(t), oidctest.New(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	write := func(issuers ...string) {
		t.Helper()
		if err := os.WriteFile(path, []byte("issuers: [{issuer: "+strings.Join(issuers, "}, {issuer: ")+"}]\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(op1.Issuer())
	clk := clocktest.New(time.Now()) // a failed discovery is retried after a back-off on this clock
	reloaded := make(chan bool, 4)
	r := start(t, Options{Load: fileLoader(path, config.Overrides{}), Now: clk.Now, OnReload: func(ok bool) { reloaded <- ok }})
	conn, err := grpc.NewClient(r.Addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	health := func() healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		hr, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: envoy.AuthorizationService})
		if err != nil {
			t.Fatal(err)
		}
		return hr.GetStatus()
	}
	sighup := func(want bool) {
		t.Helper()
		r.Sigs <- syscall.SIGHUP
		if ok := <-reloaded; ok != want {
			t.Fatalf("reload ok=%v, want %v", ok, want)
		}
	}
	if code, body := r.Get("admin", "/readyz", nil); code != 200 { // readies the first configuration
		t.Fatalf("/readyz = %d %q", code, body)
	}
	if st := health(); st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health %v at start, want SERVING", st)
	}

	// A refused reload keeps the old configuration, and its health.
	os.WriteFile(path, []byte("issuers: [{issuer: ftp://nope}]\n"), 0o600)
	sighup(false)
	if st := health(); st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health %v after a refused reload, want SERVING", st)
	}
	// A reload whose OPs answer stays SERVING.
	write(op1.Issuer())
	sighup(true)
	if st := health(); st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health %v after a reload of reachable issuers, want SERVING", st)
	}

	// A new issuer whose discovery fails: not ready, as at start-up.
	op2.SetFault(oidctest.Discovery, oidctest.Fault{Status: http.StatusNotFound})
	write(op1.Issuer(), op2.Issuer())
	sighup(true)
	if st := health(); st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health %v after adding an issuer whose discovery fails, want NOT_SERVING", st)
	}
	if code, body := r.Get("admin", "/readyz", nil); code != 503 || !strings.Contains(body, "issuers not ready") {
		t.Fatalf("/readyz = %d %q, want 503", code, body)
	}
	// The OP recovers: the next readiness attempt (here /readyz's) makes it SERVING.
	op2.ClearFaults()
	clk.Advance(time.Minute) // past the authorizer's back-off after a failed discovery
	if code, body := r.Get("admin", "/readyz", nil); code != 200 {
		t.Fatalf("/readyz = %d %q after the OP recovered", code, body)
	}
	if st := health(); st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health %v once the new issuer is ready, want SERVING", st)
	}
	if log, err := r.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("Run = %v:\n%s", err, log)
	}
}

// TestServeBreakerFromConfig: verification.breaker reaches the OP client serve runs, and
// its state is exported per OP host: with failure_threshold 1, the one failed discovery
// at start-up opens the breaker (gauge 2); checks fail closed meanwhile.
func TestServeBreakerFromConfig(t *testing.T) {
	tests := []struct {
		name      string
		threshold int
		state     string
	}{
		{"threshold 1: open after one failure", 1, "2"},
		{"default threshold 5: still closed", 0, "0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			refuse := roundTripFunc(func(r *http.Request) (*http.Response, error) {
				return nil, errors.New("test: connection refused")
			})
			_, load := writeConfig(t, fmt.Sprintf("issuers: [{issuer: https://op.example}]\nverification: {breaker: {failure_threshold: %d}}\n", tc.threshold))
			r := start(t, Options{Load: load, Transport: refuse})
			// The start-up discovery attempt has failed once the first readiness check ends.
			if code, _ := r.Get("admin", ReadyzPath, nil); code != 503 {
				t.Fatalf("/readyz = %d, want 503", code)
			}
			if code, _ := r.Get("http", "/x", map[string]string{"Authorization": "Bearer opaque-token"}); code != 503 {
				t.Errorf("check with the OP down = %d, want 503", code)
			}
			_, body := r.Get("admin", MetricsPath, nil)
			if want := `flaat_extauthz_op_breaker_state{host="op.example"} ` + tc.state; !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %s:\n%s", want, grepLines(body, "op_"))
			}
		})
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
