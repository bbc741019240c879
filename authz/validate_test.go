package authz

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	good := IssuerConfig{Issuer: "https://op.example.org"}
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cfg  Config
		want []string // every expected problem location (and message fragment)
	}{
		{"zero config", Config{}, nil},
		{"good", Config{Issuers: []IssuerConfig{good, {Issuer: "http://127.0.0.1:8080/realms/x/", Algorithms: []string{"ES256", "EdDSA"},
			Userinfo: "required", Introspect: "always", ClientID: "c", ClientSecret: "s", Audiences: []string{"api"}}}, OPHint: "example", Leeway: Duration(time.Second)}, nil},
		{"issuer missing", Config{Issuers: []IssuerConfig{{}}}, []string{"issuers[0].issuer: is required"}},
		{"issuer not http", Config{Issuers: []IssuerConfig{{Issuer: "ftp://x"}}}, []string{"issuers[0].issuer: must be an http(s) URL"}},
		{"issuer no host", Config{Issuers: []IssuerConfig{{Issuer: "https://"}}}, []string{"issuers[0].issuer: has no host"}},
		{"issuer with query", Config{Issuers: []IssuerConfig{{Issuer: "https://x/?a=b"}}}, []string{"issuers[0].issuer: must not carry"}},
		{"issuer unparsable", Config{Issuers: []IssuerConfig{{Issuer: "https://x/%zz"}}}, []string{"issuers[0].issuer: not a URL"}},
		{"duplicate issuer", Config{Issuers: []IssuerConfig{good, {Issuer: good.Issuer + "/"}}}, []string{"issuers[1].issuer: duplicates issuers[0]"}},
		{"everything wrong at once", Config{
			Issuers: []IssuerConfig{good, {
				Issuer: "https://b", DiscoveryURL: "file:///etc/passwd", Audiences: []string{""},
				Algorithms: []string{"none", "HS256", "XX1", "RS256"}, Userinfo: "sometimes", Introspect: "maybe",
				ClientSecret: "s",
			}, {Issuer: "https://c", Introspect: "opaque"}},
			OPHint: "(", Leeway: -1, HTTPTimeout: Duration(time.Hour), JWKSRefreshInterval: -1, MaxTokenSize: -1,
			CAFile: notPEM, Cache: CacheConfig{Size: -1, MaxTTL: -1, StaleIfError: -1},
		}, []string{
			"issuers[1].discovery_url: must be an http(s) URL",
			"issuers[1].audiences[0]: must not be empty",
			`issuers[1].algorithms[0]: "none" is never allowed`,
			`issuers[1].algorithms[1]: "HS256" needs a shared secret`,
			`issuers[1].algorithms[2]: unknown algorithm "XX1"`,
			"issuers[1].userinfo: must be required, optional or never",
			"issuers[1].introspect: must be never, opaque or always",
			"issuers[1].client_secret: is set without client_id",
			`issuers[2].introspect: "opaque" needs client_id and client_secret`,
			"verification.op_hint: not a regular expression",
			"verification.leeway: must be between 0 and 1h",
			"verification.http_timeout: must be between 0 and 5m",
			"verification.jwks_refresh_interval: must not be negative",
			"verification.max_token_size: must be between 0 and 1048576",
			"verification.ca_file: " + notPEM + " holds no PEM certificate",
			"verification.cache.size: must not be negative",
			"verification.cache.max_ttl: must not be negative",
			"verification.cache.stale_if_error: must not be negative",
		}},
		{"ca file missing", Config{CAFile: filepath.Join(dir, "missing.pem")}, []string{"verification.ca_file: open"}},
		{"breaker good", Config{Breaker: BreakerConfig{FailureThreshold: 3, OpenDuration: Duration(time.Minute), MaxConcurrent: 8, MaxRetryAfter: Duration(time.Hour)}}, nil},
		{"breaker negative", Config{Breaker: BreakerConfig{FailureThreshold: -1, OpenDuration: -1, MaxConcurrent: -1, MaxRetryAfter: -1}}, []string{
			"verification.breaker.failure_threshold: must be between 0 and 1000",
			"verification.breaker.open_duration: must be between 0 and 1h",
			"verification.breaker.max_concurrent: must be between 0 and 10000",
			"verification.breaker.max_retry_after: must be between 0 and 24h",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected: %v", err)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a *ConfigError", err)
			}
			if len(ce.Problems) != len(c.want) {
				t.Errorf("%d problems, want %d:\n%s", len(ce.Problems), len(c.want), err)
			}
			for _, w := range c.want {
				found := false
				for _, p := range ce.Problems {
					found = found || strings.HasPrefix(p, w)
				}
				if !found {
					t.Errorf("missing problem %q in:\n%s", w, err)
				}
			}
			if _, nerr := New(c.cfg, nil); nerr == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
}

func TestConfigJSONAndDefaults(t *testing.T) {
	var c Config
	in := `{"issuers":[{"issuer":"https://op","userinfo":"never"}],"leeway":"30s","http_timeout":5,"cache":{"max_ttl":"1m"}}`
	if err := json.Unmarshal([]byte(in), &c); err != nil {
		t.Fatal(err)
	}
	if c.Leeway.D() != 30*time.Second || c.HTTPTimeout.D() != 5*time.Second || c.Cache.MaxTTL.D() != time.Minute {
		t.Fatalf("%+v", c)
	}
	if err := json.Unmarshal([]byte(`{"leeway":"soon"}`), &c); err == nil {
		t.Fatal("bad duration accepted")
	}
	if err := json.Unmarshal([]byte(`{"leeway":true}`), &c); err == nil {
		t.Fatal("bool duration accepted")
	}
	b, _ := json.Marshal(Duration(90 * time.Second))
	if string(b) != `"1m30s"` {
		t.Fatalf("marshal %s", b)
	}
	d := Config{}.withDefaults()
	if d.Leeway.D() != DefaultLeeway || d.HTTPTimeout.D() != DefaultHTTPTimeout ||
		d.JWKSRefreshInterval.D() != DefaultJWKSRefreshInterval || d.MaxTokenSize != DefaultMaxTokenSize {
		t.Fatalf("defaults %+v", d)
	}
}

func TestNewHTTPClient(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := newHTTPClient(Config{CAFile: filepath.Join(dir, "nope")}, nil, nil, time.Now, slog.Default()); err == nil {
		t.Fatal("missing CA file accepted")
	}
	c, tr, err := newHTTPClient(Config{InsecureSkipTLSVerify: true, Breaker: BreakerConfig{FailureThreshold: 1}}, nil, nil, time.Now, slog.Default())
	if err != nil || c.CheckRedirect == nil || c.Transport != tr {
		t.Fatalf("%v", err)
	}
}
