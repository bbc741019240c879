package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/flaat-extauthz/flaat-extauthz/internal/devswitch"
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
		{"dev switch without flag", map[string]string{devswitch.EnvAssumeUser: "YES"}, []string{"serve", "--issuer", "https://op"}, []string{"--allow-insecure-dev-switches"}},
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
