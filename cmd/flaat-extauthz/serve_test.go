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

	"github.com/flaat-extauthz/flaat-extauthz/envoy"
	"github.com/flaat-extauthz/flaat-extauthz/internal/devswitch"
	"github.com/flaat-extauthz/flaat-extauthz/internal/testutil/otlptest"
	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
)

var loopback = []string{"--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}

// TestServeEmbeddedDefault is the README's "Two commands": serve with nothing but an
// issuer starts on the embedded default and answers /healthz although no OP is reachable;
// /readyz says why it is not ready; checks fail closed; SIGTERM exits 0.
func TestServeEmbeddedDefault(t *testing.T) {
	a, _, _ := testApp(nil)
	a.transport = offline()
	r := start(t, a, append([]string{"serve", "--issuer", "https://login.example.org"}, loopback...)...)

	if code, body := r.Get("admin", "/healthz", nil); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, body := r.Get("admin", "/readyz", nil); code != 503 || !strings.Contains(body, "issuers not ready") {
		t.Errorf("/readyz = %d %q, want 503 naming the issuers", code, body)
	}
	if code, _ := r.Get("http", "/anything", nil); code != 401 {
		t.Errorf("check without token = %d, want 401", code)
	}
	if code, _ := r.Get("http", "/anything", map[string]string{"Authorization": "Bearer not-a-jwt"}); code != 503 {
		// An opaque token can only be checked at the (unreachable) OP: fail closed.
		t.Errorf("check with opaque token, OP unreachable = %d, want 503", code)
	}
	conn, err := grpc.NewClient(r.Addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hr, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("grpc health = %v %v, want NOT_SERVING until discovery works", hr.GetStatus(), err)
	}
	res := r.Stop(syscall.SIGTERM)
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
	a.transport = offline()
	r := start(t, a, append([]string{"serve"}, loopback...)...)
	if code, body := r.Get("admin", "/healthz", nil); code != 200 {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, _ := r.Get("http", "/x", nil); code != 401 {
		t.Errorf("no token = %d, want 401", code)
	}
	if code, _ := r.Get("http", "/x", map[string]string{"Authorization": "Bearer opaque-token"}); code != 401 {
		t.Errorf("opaque token with no trusted issuer = %d, want 401", code)
	}
	res := r.Stop(syscall.SIGTERM)
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
		{"authorization switch without flag", map[string]string{devswitch.EnvAssumeAuthorized: "YES"}, []string{"serve", "--issuer", "https://op"}, []string{"--allow-insecure-dev-switches"}},
		{"unknown flag", nil, []string{"serve", "--nope"}, []string{"unknown flag"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, _, _ := testApp(tc.env)
			a.transport = offline()
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

// TestServeTracingEnv: bad OTEL_* values are a start-up error (exit 1) naming each; with
// OTEL_TRACES_EXPORTER=otlp the checks' spans reach an OTLP receiver, flushed at stop.
func TestServeTracingEnv(t *testing.T) {
	t.Run("bad values", func(t *testing.T) {
		a, _, _ := testApp(map[string]string{"OTEL_TRACES_EXPORTER": "zipkin", "OTEL_TRACES_SAMPLER": "often"})
		res := runCmd(t, a, append([]string{"serve"}, loopback...)...)
		if res.code != exitFail || !strings.Contains(res.stderr, `"zipkin"`) || !strings.Contains(res.stderr, `"often"`) {
			t.Errorf("exit %d, stderr %s; want 1 naming both values", res.code, res.stderr)
		}
	})
	t.Run("otlp grpc", func(t *testing.T) {
		rcv := otlptest.Start(t)
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.GRPCEndpoint()) // read by the exporter
		a, _, _ := testApp(map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
		a.transport = offline()
		r := start(t, a, append([]string{"serve", "--issuer", "https://login.example.org"}, loopback...)...)
		if code, _ := r.Get("http", "/x", map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}); code != 401 {
			t.Errorf("check without token = %d, want 401", code)
		}
		res := r.Stop(syscall.SIGTERM)
		if res.code != 0 || !strings.Contains(res.stderr, "tracing on") {
			t.Errorf("exit %d; stderr lacks the tracing line:\n%s", res.code, res.stderr)
		}
		var found bool
		for _, s := range rcv.Spans() { // Shutdown flushed before serve returned
			if s.Name == envoy.SpanNameHTTP && s.ParentSpanID == "00f067aa0ba902b7" && s.Attributes["flaat.outcome"] == "no_token" {
				found = true
			}
		}
		if !found {
			t.Errorf("receiver lacks the check span; got %+v", rcv.Spans())
		}
	})
}

// TestServeAssumeAuthorized: with DISABLE_AUTHORIZATION_AND_ASSUME_AUTHORIZED_USER (and
// the guard flag) serve still verifies tokens — none or one of an untrusted OP is 401 —
// but a verified user who lacks the route's group is let through, and the metrics show
// the switch on.
func TestServeAssumeAuthorized(t *testing.T) {
	op := oidctest.New(t)
	cfg := writeFile(t, t.TempDir(), "c.yaml", "issuers: [{issuer: "+op.Issuer()+"}]\npolicy:\n  default: {groups: {values: [admins]}}\n")
	a, _, _ := testApp(map[string]string{devswitch.EnvAssumeAuthorized: "YES"})
	r := start(t, a, append([]string{"serve", "--config", cfg, "--allow-insecure-dev-switches", "--log-format", "text"}, loopback...)...)
	other := oidctest.New(t)
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"no token", "", 401},
		{"token of an untrusted OP", "Bearer " + other.MintJWT(map[string]any{"sub": "mallory", "groups": []string{"admins"}}), 401},
		{"verified, not in the group", "Bearer " + op.MintJWT(map[string]any{"sub": "alice", "groups": []string{"users"}}), 200},
		{"verified, in the group", "Bearer " + op.MintJWT(map[string]any{"sub": "bob", "groups": []string{"admins"}}), 200},
	} {
		h := map[string]string{}
		if tc.auth != "" {
			h["Authorization"] = tc.auth
		}
		if code, body := r.Get("http", "/x", h); code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.want)
		}
	}
	_, body := r.Get("admin", "/metrics", nil)
	for _, want := range []string{"flaat_extauthz_insecure_dev_switches_enabled 1", "flaat_extauthz_insecure_dev_switch_decisions_total 1"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q (one denial was overridden)", want)
		}
	}
	if res := r.Stop(syscall.SIGTERM); !strings.Contains(res.stderr, "policy is NOT enforced") || !strings.Contains(res.stderr, devswitch.EnvAssumeAuthorized+"=YES") {
		t.Errorf("no start-up warning naming the switch:\n%s", res.stderr)
	}
}
