package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
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
	"github.com/flaat-extauthz/flaat-extauthz/internal/clocktest"
	"github.com/flaat-extauthz/flaat-extauthz/internal/config"
	"github.com/flaat-extauthz/flaat-extauthz/internal/optest"
)

var loopback = []string{"--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}

// TestServeEmbeddedDefault is the README's "Two commands": serve with nothing but an
// issuer starts on the embedded default and answers /healthz although no OP is reachable;
// /readyz says why it is not ready; checks fail closed; SIGTERM exits 0.
func TestServeEmbeddedDefault(t *testing.T) {
	a, _, _ := testApp(nil)
	a.httpClient = offlineClient()
	r := start(t, a, append([]string{"serve", "--issuer", "https://login.example.org"}, loopback...)...)

	if code, body := r.get("admin", "/healthz", nil); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, body := r.get("admin", "/readyz", nil); code != 503 || !strings.Contains(body, "issuers not ready") {
		t.Errorf("/readyz = %d %q, want 503 naming the issuers", code, body)
	}
	if code, _ := r.get("http", "/anything", nil); code != 401 {
		t.Errorf("check without token = %d, want 401", code)
	}
	if code, _ := r.get("http", "/anything", map[string]string{"Authorization": "Bearer not-a-jwt"}); code != 503 {
		// An opaque token can only be checked at the (unreachable) OP: fail closed.
		t.Errorf("check with opaque token, OP unreachable = %d, want 503", code)
	}
	conn, err := grpc.NewClient(r.addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hr, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("grpc health = %v %v, want NOT_SERVING until discovery works", hr.GetStatus(), err)
	}
	res := r.stop(syscall.SIGTERM)
	if res.code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0; stderr:\n%s", res.code, res.stderr)
	}
	for _, want := range []string{`"msg":"flaat-extauthz serving"`, `"msg":"stopping"`, `"msg":"stopped"`} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("log lacks %s:\n%s", want, res.stderr)
		}
	}
}

// TestServeNoArguments: `serve` with no arguments at all starts on the embedded default,
// answers health, warns that no issuer is trusted, and denies every token (fail closed).
func TestServeNoArguments(t *testing.T) {
	a, _, _ := testApp(nil)
	a.httpClient = offlineClient()
	r := start(t, a, append([]string{"serve"}, loopback...)...)
	if code, body := r.get("admin", "/healthz", nil); code != 200 {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, _ := r.get("http", "/x", nil); code != 401 {
		t.Errorf("no token = %d, want 401", code)
	}
	if code, _ := r.get("http", "/x", map[string]string{"Authorization": "Bearer opaque-token"}); code != 401 {
		t.Errorf("opaque token with no trusted issuer = %d, want 401", code)
	}
	res := r.stop(syscall.SIGTERM)
	if res.code != 0 || !strings.Contains(res.stderr, "no trusted issuer is configured") {
		t.Errorf("exit %d; stderr lacks the no-issuer warning:\n%s", res.code, res.stderr)
	}
}

func TestServeReadyAndMetrics(t *testing.T) {
	op := optest.New(t)
	a, _, _ := testApp(nil)
	r := start(t, a, append([]string{"serve", "--issuer", op.Issuer(), "--log-format", "text"}, loopback...)...)

	if code, body := r.get("admin", "/readyz", nil); code != 200 {
		t.Fatalf("/readyz = %d %q", code, body)
	}
	conn, err := grpc.NewClient(r.addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hr, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("grpc health = %v %v, want SERVING once ready", hr.GetStatus(), err)
	}
	tok := op.MintJWT(map[string]any{"sub": "alice"})
	if code, body := r.get("http", "/x", map[string]string{"Authorization": "Bearer " + tok}); code != 200 {
		t.Errorf("valid token = %d %s", code, body)
	}
	code, body := r.get("admin", "/metrics", nil)
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
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if res := r.stop(os.Interrupt); res.code != 0 || !strings.Contains(res.stderr, "msg=stopped") {
		t.Errorf("exit %d; stderr:\n%s", res.code, res.stderr)
	}
}

func TestServeRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("server: {readiness: sometimes}\nissuers: [{issuer: ftp://x}]\nlog: {format: xml}\n"), 0o600)
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{"every problem at once", nil, []string{"serve", "--config", bad}, []string{"server.readiness", "issuers[0].issuer", `format "xml"`}},
		{"config from env", map[string]string{envConfig: bad}, []string{"serve"}, []string{"server.readiness"}},
		{"dev switch without flag", map[string]string{config.EnvAssumeUser: "YES"}, []string{"serve", "--issuer", "https://op"}, []string{"--allow-insecure-dev-switches"}},
		{"unknown flag", nil, []string{"serve", "--nope"}, []string{"unknown flag"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, _, _ := testApp(tc.env)
			a.httpClient = offlineClient()
			res := runCmd(t, a, append(tc.args, loopback...)...)
			if res.code == 0 {
				t.Fatalf("exit 0, want failure")
			}
			for _, w := range tc.want {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, res.stderr)
				}
			}
		})
	}
}

// gatedClient blocks every userinfo request while the gate is armed, announcing it on
// entered: the test holds a check in flight as long as it likes, without sleeping.
type gatedClient struct {
	mu      sync.Mutex
	gate    chan struct{}
	entered chan struct{}
}

func (g *gatedClient) client() *http.Client {
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		g.mu.Lock()
		gate := g.gate
		g.mu.Unlock()
		if gate != nil && strings.HasSuffix(r.URL.Path, optest.UserinfoPath) {
			g.entered <- struct{}{}
			<-gate
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
}

// TestServeReload: a valid new configuration applies without dropping the check in
// flight (it finishes on the old configuration); an invalid one is refused and the old
// one keeps serving.
func TestServeReload(t *testing.T) {
	op := optest.New(t)
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
	a, _, _ := testApp(nil)
	a.httpClient = gc.client()
	reloaded := make(chan bool, 4)
	a.reloaded = func(ok bool) { reloaded <- ok }
	r := start(t, a, append([]string{"serve", "--config", path}, loopback...)...)

	alice := map[string]string{"Authorization": "Bearer " + op.MintJWT(map[string]any{"sub": "alice", "groups": []string{"admins"}})}
	gc.mu.Lock()
	gc.gate = make(chan struct{})
	gc.mu.Unlock()
	inflight := make(chan int, 1)
	go func() { code, _ := r.get("http", "/admin", alice); inflight <- code }()
	<-gc.entered // the check is now waiting for userinfo on the old configuration

	write("ops") // alice is not in ops
	r.sigs <- syscall.SIGHUP
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
	if code, _ := r.get("http", "/admin", alice); code != 403 {
		t.Errorf("after reload = %d, want 403 from the new configuration", code)
	}

	os.WriteFile(path, []byte("policy: {routes: [{name: x, nonsense: 1}]}\n"), 0o600)
	r.sigs <- syscall.SIGHUP
	if ok := <-reloaded; ok {
		t.Fatal("invalid reload applied")
	}
	if code, _ := r.get("http", "/admin", alice); code != 403 {
		t.Errorf("after refused reload = %d, want 403 (previous configuration)", code)
	}
	bob := map[string]string{"Authorization": "Bearer " + op.MintJWT(map[string]any{"sub": "bob", "groups": []string{"ops"}})}
	code, _, hdr := r.getH("http", "/admin", bob)
	if code != 200 {
		t.Errorf("ops member after refused reload = %d, want 200", code)
	}
	if hdr.Get("x-ops-user") != "bob" || hdr.Get("x-admins-user") != "" {
		t.Errorf("identity headers after reload: %v, want the reloaded x-ops-user only", hdr)
	}
	_, metrics := r.get("admin", "/metrics", nil)
	for _, want := range []string{`flaat_extauthz_config_reloads_total{result="ok"} 1`, `flaat_extauthz_config_reloads_total{result="failed"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	res := r.stop(syscall.SIGTERM)
	if res.code != 0 || !strings.Contains(res.stderr, "configuration reload refused") || !strings.Contains(res.stderr, "configuration reloaded") {
		t.Errorf("exit %d; stderr:\n%s", res.code, res.stderr)
	}
}

func TestServeDevSwitches(t *testing.T) {
	env := map[string]string{config.EnvAssumeGroups: `["admins"]`}
	a, _, _ := testApp(env)
	a.httpClient = offlineClient()
	ticks := make(chan time.Time)
	a.tick = func(time.Duration) <-chan time.Time { return ticks }
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte("issuers: [{issuer: https://op.example}]\npolicy:\n  routes:\n    - {name: admin, path: {prefix: /admin}, require: {groups: {values: [admins]}}}\n    - {name: ops, path: {prefix: /ops}, require: {groups: {values: [ops]}}}\n"), 0o600)
	r := start(t, a, append([]string{"serve", "--config", path, "--allow-insecure-dev-switches"}, loopback...)...)
	if code, _ := r.get("http", "/admin", nil); code != 200 {
		t.Errorf("/admin with assumed group admins = %d, want 200 without any token", code)
	}
	if code, _ := r.get("http", "/ops", nil); code != 403 {
		t.Errorf("/ops = %d, want 403 (only the assumed groups)", code)
	}
	ticks <- time.Now()
	_, metrics := r.get("admin", "/metrics", nil)
	if !strings.Contains(metrics, "flaat_extauthz_insecure_dev_switches_enabled 1") ||
		!strings.Contains(metrics, "flaat_extauthz_insecure_dev_switch_decisions_total 2") {
		t.Errorf("dev switch metrics missing:\n%s", metrics)
	}
	res := r.stop(syscall.SIGTERM)
	if n := strings.Count(res.stderr, "INSECURE DEVELOPMENT SWITCHES ARE ON"); n != 2 {
		t.Errorf("%d warnings, want 2 (start-up and one tick):\n%s", n, res.stderr)
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

	a, _, errb := testApp(nil)
	a.httpClient = offlineClient()
	fixed := time.Now()
	a.now = func() time.Time { return fixed }
	reloaded := make(chan bool, 4)
	a.reloaded = func(ok bool) { reloaded <- ok }
	r := start(t, a, append([]string{"serve", "--config", cfg}, loopback...)...)
	serial := func(listener string) int64 {
		t.Helper()
		c, err := tls.Dial("tcp", r.addrs[listener], &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"}})
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
	r.sigs <- syscall.SIGHUP
	<-reloaded
	for _, l := range []string{"grpc", "http"} {
		if got := serial(l); got != 101 {
			t.Errorf("%s serial %d after SIGHUP, want 101", l, got)
		}
	}
	os.WriteFile(certFile, []byte("garbage"), 0o600)
	r.sigs <- syscall.SIGHUP
	<-reloaded
	for _, l := range []string{"grpc", "http"} {
		if got := serial(l); got != 101 {
			t.Errorf("%s serial %d after a bad certificate file, want 101 (last good)", l, got)
		}
	}
	if !strings.Contains(errb.String(), "tls files not reloaded") {
		t.Errorf("bad certificate not logged:\n%s", errb.String())
	}
}

// TestServeHealthFollowsReload: the gRPC health service describes the configuration
// that serves. A reload that adds an issuer whose discovery fails turns it NOT_SERVING
// (and /readyz 503 naming the issuer) until the discovery succeeds, as at start-up; a
// refused reload and a reload whose OPs answer leave it SERVING (the new issuers are
// fetched before the swap).
func TestServeHealthFollowsReload(t *testing.T) {
	op1, op2 := optest.New(t), optest.New(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	write := func(issuers ...string) {
		t.Helper()
		if err := os.WriteFile(path, []byte("issuers: [{issuer: "+strings.Join(issuers, "}, {issuer: ")+"}]\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(op1.Issuer())
	a, _, _ := testApp(nil)
	clk := clocktest.New(time.Now())
	a.now = clk.Now // a failed discovery is retried after a back-off on this clock
	reloaded := make(chan bool, 4)
	a.reloaded = func(ok bool) { reloaded <- ok }
	r := start(t, a, append([]string{"serve", "--config", path}, loopback...)...)
	conn, err := grpc.NewClient(r.addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
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
		r.sigs <- syscall.SIGHUP
		if ok := <-reloaded; ok != want {
			t.Fatalf("reload ok=%v, want %v", ok, want)
		}
	}
	if code, body := r.get("admin", "/readyz", nil); code != 200 { // readies the first configuration
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
	op2.SetFault(optest.Discovery, optest.Fault{Status: http.StatusNotFound})
	write(op1.Issuer(), op2.Issuer())
	sighup(true)
	if st := health(); st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health %v after adding an issuer whose discovery fails, want NOT_SERVING", st)
	}
	if code, body := r.get("admin", "/readyz", nil); code != 503 || !strings.Contains(body, "issuers not ready") {
		t.Fatalf("/readyz = %d %q, want 503", code, body)
	}
	// The OP recovers: the next readiness attempt (here /readyz's) makes it SERVING.
	op2.ClearFaults()
	clk.Advance(time.Minute) // past the authorizer's back-off after a failed discovery
	if code, body := r.get("admin", "/readyz", nil); code != 200 {
		t.Fatalf("/readyz = %d %q after the OP recovered", code, body)
	}
	if st := health(); st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health %v once the new issuer is ready, want SERVING", st)
	}
	if res := r.stop(syscall.SIGTERM); res.code != 0 {
		t.Fatalf("exit %d:\n%s", res.code, res.stderr)
	}
}
