package server

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/envoy"
	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
)

// TestBackchannelListener: server.backchannel_listen starts the logout receiver on its
// own listener (never on the check listener); an accepted logout token evicts the
// cached identity and is counted; a replay is refused and counted.
func TestBackchannelListener(t *testing.T) {
	op := oidctest.New(t)
	yaml := fmt.Sprintf(`issuers:
  - {issuer: %q, client_id: rp, userinfo: never}
server: {backchannel_listen: "127.0.0.1:0"}
policy: {default: {authenticated: true}}
`, op.Issuer())
	_, load := writeConfig(t, yaml)
	r := start(t, Options{Load: load})
	if r.Addrs["backchannel"] == "" {
		t.Fatalf("no backchannel listener in %v", r.Addrs)
	}
	tok := op.MintJWT(map[string]any{"sub": "alice", "sid": "s1"})
	for range 2 {
		if code, body := r.Get("http", "/x", map[string]string{"Authorization": "Bearer " + tok}); code != 200 {
			t.Fatalf("check = %d %s", code, body)
		}
	}
	logout := op.MintJWT(map[string]any{"aud": "rp", "jti": "j1", "sid": "s1",
		"events": map[string]any{authz.BackchannelLogoutEvent: map[string]any{}}}, oidctest.WithHeader("typ", "logout+jwt"))
	post := func(listener string) (int, string) {
		resp, err := http.Post("http://"+r.Addrs[listener]+envoy.BackchannelPath, "application/x-www-form-urlencoded",
			strings.NewReader(url.Values{"logout_token": {logout}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post("http"); code == 200 {
		t.Fatalf("the check listener accepted a logout token: %s", body)
	}
	if code, body := post("backchannel"); code != 200 {
		t.Fatalf("logout = %d %s", code, body)
	}
	if code, body := post("backchannel"); code != 400 || !strings.Contains(body, "invalid_request") {
		t.Fatalf("replayed logout = %d %s, want 400 invalid_request", code, body)
	}
	_, metrics := r.Get("admin", "/metrics", nil)
	for _, want := range []string{
		`flaat_extauthz_backchannel_logout_total{result="accepted"} 1`,
		`flaat_extauthz_backchannel_logout_total{result="refused"} 1`,
		`flaat_extauthz_backchannel_logout_evictions_total 1`,
		`flaat_extauthz_backchannel_logout_received_total 2`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
