package securitytest

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"

	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
)

// needles returns what must never appear in logs, metrics or errors for one
// Authorization value: every whitespace/comma-separated credential in it, and for
// JWT-shaped ones also the signature (the part that makes a token usable).
func needles(authorization string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(authorization, func(r rune) bool {
		return r == ' ' || r == ',' || r == '\r' || r == '\n' || r == '\t' || r == 0
	}) {
		if strings.EqualFold(f, "bearer") || strings.EqualFold(f, "basic") || len(f) < 16 || strings.Contains(f, ":") {
			continue
		}
		out = append(out, f)
		if p := strings.Split(f, "."); len(p) == 3 && len(p[2]) >= 16 {
			out = append(out, p[2])
		}
	}
	return out
}

// TestSecrets runs the adversarial table, the OP faults and ordinary traffic through one
// Stack with debug logging, then searches every log line, the /metrics text, every
// Decision error and reason, every CheckResponse and every error returned by
// Authorizer.Verify for every token used: 0 occurrences allowed.
func TestSecrets(t *testing.T) {
	e := newAdvEnv(t)
	s := e.s
	var auths []string
	var responses strings.Builder
	var errStrings []string
	run := func(r Req) {
		auths = append(auths, r.Authorization)
		_, resp := s.Check(t, r, time.Second)
		responses.WriteString(prototext.Format(resp))
		if tok, ok := strings.CutPrefix(r.Authorization, "Bearer "); ok {
			if _, err := s.Authorizer.Verify(context.Background(), tok); err != nil {
				errStrings = append(errStrings, err.Error())
			}
		}
	}

	// Ordinary traffic, allowed and denied.
	for i := 0; i < 5; i++ {
		run(Req{Authorization: Bearer(e.mint(nil))})
		run(Req{Authorization: Bearer(e.mint(nil)), Path: "/admin"})
		run(Req{Authorization: Bearer(s.OP.MintOpaque(nil))})
		run(Req{Authorization: Bearer(e.mint(nil, oidctest.ExpiresIn(-time.Hour)))})
	}
	revoked := s.OP.MintOpaque(nil)
	s.OP.Revoke(revoked)
	run(Req{Authorization: Bearer(revoked)})

	// Every attack of the table.
	for _, tc := range adversarialCases() {
		r := tc.req(e)
		if tc.before != nil {
			tc.before(e)
		}
		run(r)
		if tc.after != nil {
			tc.after(e)
		}
	}

	// OP faults: optional userinfo failing (logged at warn with the error), broken
	// replies, hangs and refused connections.
	for _, f := range []oidctest.Fault{{Status: 500}, {MalformedJSON: true}, {HTML: true}, {Hang: true}, {WrongSub: true}, {Close: true}} {
		onEndpoints(f)(s)
		run(Req{Authorization: Bearer(e.mint(nil))})
		run(Req{Authorization: Bearer(s.OP.MintOpaque(nil))})
		s.OP.ClearFaults()
		e.clock.Advance(time.Minute) // let the breaker half-open
	}
	s.Net.Refuse(opHost(t, s.OP), true)
	run(Req{Authorization: Bearer(s.OP.MintOpaque(nil))})
	s.Net.Refuse(opHost(t, s.OP), false)
	s.Net.SetHook(func(req *http.Request, next http.RoundTripper) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusFound, Request: req, Body: http.NoBody,
			Header: http.Header{"Location": {e.evil.URL + "/steal"}}}, nil
	})
	e.clock.Advance(time.Minute)
	run(Req{Authorization: Bearer(s.OP.MintOpaque(nil))})
	s.Net.SetHook(nil)

	logs := s.Logs.String()
	metricsText := s.MetricsText(t)
	errStrings = append(errStrings, s.Errors()...)
	allErrs := strings.Join(errStrings, "\n")
	resp := responses.String()
	if !strings.Contains(logs, `"level":"DEBUG"`) || !strings.Contains(logs, "token_hash") {
		t.Fatalf("debug logs were not captured (the test would prove nothing):\n%s", tail(logs, 2000))
	}
	if !strings.Contains(metricsText, "flaat_extauthz_decisions_total") || !strings.Contains(metricsText, "flaat_extauthz_op_requests_total") {
		t.Fatalf("metrics text incomplete:\n%s", tail(metricsText, 2000))
	}

	seen := map[string]bool{}
	tokens, found := 0, 0
	for _, a := range auths {
		for _, n := range needles(a) {
			if seen[n] {
				continue
			}
			seen[n] = true
			tokens++
			for where, text := range map[string]string{"logs": logs, "metrics": metricsText, "errors": allErrs, "responses": resp} {
				if c := strings.Count(text, n); c > 0 {
					found += c
					t.Errorf("a token (hash %s…) appears %d× in %s", n[:8], c, where)
				}
			}
		}
	}
	if tokens < 100 {
		t.Errorf("only %d distinct token strings were checked", tokens)
	}
	report(t, "secrets: %d token strings × (%d KiB debug logs, %d KiB metrics, %d error strings, %d KiB responses): %d occurrences",
		tokens, len(logs)>>10, len(metricsText)>>10, len(errStrings), len(resp)>>10, found)
}
