package envoy

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/yaml"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
)

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if c.GRPCListen != ":9001" || c.HTTPListen != ":9002" || c.AdminListen != ":9090" || c.Realm != "flaat-extauthz" ||
		c.Readiness != "eager" || c.ShutdownGrace.D() != 10*time.Second || len(c.Headers) != 4 ||
		c.AccessTokenHeader != "x-auth-request-access-token" || c.ForwardAccessToken || c.StripAuthorization {
		t.Errorf("defaults: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
}

// decode mimics the config loader: YAML → JSON → DisallowUnknownFields into DefaultConfig().
func decode(t *testing.T, y string) (Config, error) {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	return c, dec.Decode(&c)
}

func TestConfigDecodesFromYAML(t *testing.T) {
	c, err := decode(t, `
grpc_listen: 127.0.0.1:7001
token_header: X-Forwarded-Access-Token
headers:
  - {name: x-user, claim: preferred_username}
forward_access_token: true
metadata_claims: [email]
path_prefix: /check
grpc: {max_concurrent_streams: 100, keepalive_min_time: 5s, max_connection_age: 300, stream_workers: 8}
tls: {cert_file: c.pem, key_file: k.pem}
shutdown_grace: 3s
readiness: lazy
deny_log_interval: 30s
`)
	if err != nil {
		t.Fatal(err)
	}
	if c.GRPCListen != "127.0.0.1:7001" || c.HTTPListen != ":9002" || len(c.Headers) != 1 || c.Headers[0].Claim != "preferred_username" ||
		c.GRPC.KeepaliveMinTime.D() != 5*time.Second || c.GRPC.StreamWorkers != 8 || c.GRPC.MaxConnectionAge.D() != 5*time.Minute ||
		c.ShutdownGrace.D() != 3*time.Second || c.Readiness != "lazy" || !c.ForwardAccessToken ||
		c.DenyLogInterval.D() != 30*time.Second {
		t.Errorf("decoded %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	if _, err := decode(t, "grpc_listn: :1\n"); err == nil {
		t.Error("unknown field accepted")
	}
	// Round trip: the effective config marshals to something that decodes back.
	b, _ := json.Marshal(DefaultConfig())
	var back Config
	if err := json.Unmarshal(b, &back); err != nil || back.withDefaults().Realm != DefaultRealm {
		t.Errorf("round trip %s: %v", b, err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Config{
		GRPCListen:     "nope",
		HTTPListen:     ":99999",
		AdminListen:    ":9001",
		TokenHeader:    "bad header",
		Realm:          "a\"b",
		Headers:        []HeaderConfig{{Name: "x-a", Claim: "sub"}, {Name: "X-A", Claim: ""}, {Name: "Authorization", Claim: "sub"}, {Name: "", Claim: "x"}},
		MetadataClaims: []string{""},
		PathPrefix:     "check",
		GRPC:           GRPCConfig{KeepaliveTime: authz.Duration(-time.Second), StreamWorkers: 1<<16 + 1},
		TLS:            TLSConfig{CertFile: "c.pem", ClientCAFile: "ca.pem"},
		Readiness:      "sometimes",
		DenyLogLevel:   "loud",

		DenyLogInterval: durationPtr(-time.Second),
	}
	err := c.Validate()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("got %v", err)
	}
	for _, want := range []string{
		"server.grpc_listen", "server.http_listen", "server.token_header", "server.realm",
		"server.headers[1].name", "server.headers[1].claim", "server.headers[2].name", "server.headers[3].name",
		"server.metadata_claims[0]", "server.path_prefix", "server.grpc.keepalive_time", "server.grpc.stream_workers", "server.tls:",
		"server.readiness", "server.deny_log_level", "server.deny_log_interval",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	dup := Config{GRPCListen: ":9002"}
	if err := dup.Validate(); err == nil || !strings.Contains(err.Error(), "server.http_listen") {
		t.Errorf("duplicate listen address: %v", err)
	}
	if err := (Config{GRPCListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", AdminListen: "127.0.0.1:0"}).Validate(); err != nil {
		t.Errorf("port 0 on all listeners: %v", err)
	}
	if err := (Config{TLS: TLSConfig{ClientCAFile: "ca.pem"}}).Validate(); err == nil || !strings.Contains(err.Error(), "tls.client_ca_file") {
		t.Errorf("mTLS without cert: %v", err)
	}
	if err := (Config{TokenHeader: "authorization"}).Validate(); err == nil {
		t.Error("token_header authorization accepted")
	}
}

func TestNewMetricsRegisters(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("second registration accepted")
	}
	m, _ := NewMetrics(prometheus.NewRegistry())
	var nilM *Metrics
	nilM.begin()
	nilM.end(TransportGRPC, "r", authz.OutcomeAllow, time.Second, "") // no panic
	m.end(TransportGRPC, "", authz.Outcome(77), 0, "")
	if got := counterValue(t, m.decisions.WithLabelValues("unavailable", "none", "")); got != 1 {
		t.Errorf("unknown outcome counted as %v unavailable", got)
	}
}
