package server

import (
	"os"
	"strings"
	"testing"
)

// TestMetricsFromFirstScrape: before any check, reload or JWKS fetch, the first
// /metrics scrape already shows the labelled counters whose labels the configuration
// determines, at 0: reloads by result, decisions by outcome for every route, JWKS
// refreshes by result for every issuer.
func TestMetricsFromFirstScrape(t *testing.T) {
	_, load := writeConfig(t, `server: {readiness: lazy}
issuers: [{issuer: "https://op.example/"}]
policy:
  routes: [{name: api, path: {prefix: /api}, require: {authenticated: true}}]
  default: {authenticated: true}
`)
	r := start(t, Options{Load: load, Transport: offline()})
	code, body := r.Get("admin", "/metrics", nil)
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`flaat_extauthz_config_reloads_total{result="ok"} 0`,
		`flaat_extauthz_config_reloads_total{result="failed"} 0`,
		`flaat_extauthz_decisions_total{outcome="allow",reason="",route="api"} 0`,
		`flaat_extauthz_decisions_total{outcome="unavailable",reason="",route="api"} 0`,
		`flaat_extauthz_decisions_total{outcome="forbidden",reason="",route="default"} 0`,
		`flaat_extauthz_decisions_total{outcome="no_token",reason="",route="none"} 0`,
		`flaat_extauthz_jwks_refreshes_total{issuer="https://op.example",result="ok"} 0`,
		`flaat_extauthz_jwks_refreshes_total{issuer="https://op.example",result="error"} 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if _, err := r.stop(os.Interrupt); err != nil {
		t.Fatal(err)
	}
}
