package envoy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
)

func TestChallengeEscaping(t *testing.T) {
	tests := []struct {
		name   string
		o      authz.Outcome
		sent   bool
		reason string
		scopes []string
		want   string
	}{
		{name: "quotes and backslashes", o: authz.OutcomeInvalidToken, reason: `say "hi" \ bye`,
			want: `Bearer realm="r", error="invalid_token", error_description="say 'hi' / bye"`},
		{name: "CR LF and non-ASCII", o: authz.OutcomeInvalidToken, reason: "a\r\nb\x00ü",
			want: `Bearer realm="r", error="invalid_token", error_description="a??b???"`},
		{name: "scope tokens lose spaces and quotes", o: authz.OutcomeForbidden, reason: "x", scopes: []string{`a"b`, "c d"},
			want: `Bearer realm="r", error="insufficient_scope", error_description="x", scope="a'b c?d"`},
		{name: "no token sent: plain challenge", o: authz.OutcomeNoToken, reason: "ignored",
			want: `Bearer realm="r"`},
		{name: "malformed token sent", o: authz.OutcomeNoToken, sent: true, reason: "bad scheme",
			want: `Bearer realm="r", error="invalid_token", error_description="bad scheme"`},
		{name: "allow has none", o: authz.OutcomeAllow, want: ""},
		{name: "outage has none", o: authz.OutcomeUnavailable, reason: "x", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := challenge("r", ResponseFor(tt.o), tt.sent, tt.reason, tt.scopes, ""); got != tt.want {
				t.Errorf("\n got %q\nwant %q", got, tt.want)
			}
		})
	}
	long := challenge("r", ResponseFor(authz.OutcomeInvalidToken), true, strings.Repeat("x", 5000), nil, "")
	if len(long) > maxDescription+100 {
		t.Errorf("description not bounded: %d bytes", len(long))
	}
}

func TestJSONBody(t *testing.T) {
	for _, desc := range []string{
		"plain", `quote " backslash \ `, "ctl \x00\x01\x1f\x7f nl \n tab \t cr \r", "<script>&", "bad utf8 \xff\xfe ok é",
		"line sep \u2028 para \u2029", strings.Repeat("ü", 400),
	} {
		body := jsonBody("invalid_token", desc)
		var m map[string]string
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatalf("%q → invalid JSON %q: %v", desc, body, err)
		}
		if m["error"] != "invalid_token" {
			t.Errorf("error %q", m["error"])
		}
		if strings.ContainsAny(body, "<>&\n\r") {
			t.Errorf("unescaped characters in %q", body)
		}
		want := strings.Map(func(r rune) rune { return r }, desc) // one U+FFFD per invalid byte
		if len(desc) <= maxDescription && m["error_description"] != want {
			t.Errorf("description %q, want %q", m["error_description"], want)
		}
	}
}
