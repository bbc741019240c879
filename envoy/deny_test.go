package envoy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// denyCases differ in every input of a denial answer: outcome, reason, token sent or
// not, scopes.
func denyCases() []struct {
	d    authz.Decision
	auth string
} {
	type c = struct {
		d    authz.Decision
		auth string
	}
	var out []c
	for _, o := range []authz.Outcome{authz.OutcomeNoToken, authz.OutcomeInvalidToken, authz.OutcomeForbidden, authz.OutcomeUnavailable} {
		for _, reason := range []string{"", "token expired", "token expired ", `groups: missing "ops"`} {
			for _, auth := range []string{"", "Bearer t", "Basic x"} {
				out = append(out, c{authz.Decision{Outcome: o, Reason: reason}, auth})
			}
		}
	}
	for _, scopes := range [][]string{{"read"}, {"read", "write"}, {"write"}} {
		out = append(out, c{authz.Decision{Outcome: authz.OutcomeForbidden, Reason: "scope missing", Policy: policy.Result{Scopes: scopes}}, "Bearer t"})
	}
	out = append(out, c{authz.Decision{Outcome: authz.OutcomeForbidden, Policy: policy.Result{Reason: "from the policy"}}, "Bearer t"})
	return out
}

// TestDenyMemoMatchesBuiltAnswers: many different denials, answered in rounds by one
// server (memo filled, then hit, slots shared), are each exactly the freshly built
// answer; repeated identical denials share one message; a reload with a new realm
// applies at once.
func TestDenyMemoMatchesBuiltAnswers(t *testing.T) {
	cases := denyCases()
	fa := AuthorizerFunc(func(_ context.Context, r authz.Request) authz.Decision {
		i, _ := strconv.Atoi(r.RequestID)
		return cases[i].d
	})
	for _, realm := range []string{"", "other-realm"} {
		s, _ := newTestServer(t, fa, Config{Realm: realm})
		fresh := newSnapshot(nil, s.Config())
		for round := range 3 {
			for k := range cases {
				i := (k*7 + round) % len(cases)
				req := checkRequest(map[string]string{})
				if cases[i].auth != "" {
					req = checkRequest(map[string]string{"authorization": cases[i].auth})
				}
				req.Attributes.Request.Http.Id = strconv.Itoa(i)
				resp, err := s.Check(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				d := cases[i].d
				want := fresh.buildDenied(d.Outcome, ResponseFor(d.Outcome), cases[i].auth != "", description(&d), d.Policy.Scopes, fresh.dpopChallenge(ResponseFor(d.Outcome), &d), retryAfter(&d))
				if !proto.Equal(resp, want) {
					t.Fatalf("realm %q case %d (%+v, %q):\n got %v\nwant %v", realm, i, d, cases[i].auth, resp, want)
				}
				if again, _ := s.Check(context.Background(), req); (again == resp) != (len(d.Policy.Scopes) == 0) {
					t.Errorf("case %d: repeated identical denial shared = %v", i, again == resp)
				}
			}
		}
		if realm != "" {
			continue
		}
		if err := s.Reload(fa, Config{Realm: "new"}); err != nil {
			t.Fatal(err)
		}
		req := checkRequest(map[string]string{"authorization": "Bearer t"})
		req.Attributes.Request.Http.Id = "4" // an invalid-token case answered above
		resp, _ := s.Check(context.Background(), req)
		if p := denied(t, resp); !strings.HasPrefix(p.www, `Bearer realm="new"`) {
			t.Errorf("after reload: %q", p.www)
		}
	}
}

// logLines parses JSON log lines.
func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// manualClock is a clock tests move by hand.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *manualClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestDenyLogSampling: with deny_log_interval, identical denials of one token are
// logged once per interval with the count of suppressed lines; other tokens, reasons
// and routes, denials without a token, allows and outages are logged as before.
func TestDenyLogSampling(t *testing.T) {
	const secret = "Bearer super-secret-token-value"
	bad := func(hash, reason, route string) authz.Decision {
		return authz.Decision{Outcome: authz.OutcomeInvalidToken, TokenHash: hash, Reason: reason, Route: route}
	}
	type step struct {
		d       authz.Decision
		advance time.Duration // clock moved before the check
		want    string        // "": no line; "decision:N": a decision line with suppressed=N ("decision:-" none); "summary:N"
	}
	tests := []struct {
		name     string
		interval time.Duration
		steps    []step
	}{
		{"off: every denial logged", 0, []step{
			{d: bad("aa", "expired", "api"), want: "decision:-"},
			{d: bad("aa", "expired", "api"), want: "decision:-"},
		}},
		{"repeats suppressed, counted in the next line", 10 * time.Second, []step{
			{d: bad("aa", "expired", "api"), want: "decision:0"},
			{d: bad("aa", "expired", "api"), advance: time.Second, want: ""},
			{d: bad("aa", "expired", "api"), advance: time.Second, want: ""},
			{d: bad("aa", "expired", "api"), advance: 7 * time.Second, want: ""},
			{d: bad("aa", "expired", "api"), advance: time.Second, want: "decision:3"}, // 10 s after the first
			{d: bad("aa", "expired", "api"), want: ""},
			{d: bad("aa", "expired", "api"), advance: 11 * time.Second, want: "decision:1"},
		}},
		{"other tokens, routes and reasons are not identical", 10 * time.Second, []step{
			{d: bad("aa", "expired", "api"), want: "decision:0"},
			{d: bad("bb", "expired", "api"), want: "decision:0"},
			{d: bad("aa", "expired", "admin"), want: "decision:0"},
			{d: bad("aa", "bad signature", "admin"), want: "decision:0"},
			{d: bad("aa", "bad signature", "admin"), want: ""},
			{d: bad("aa", "expired", "admin"), want: "summary:1 decision:0"}, // the other reason's count is reported
		}},
		{"no token, allows and outages are never sampled", time.Hour, []step{
			{d: authz.Decision{Outcome: authz.OutcomeNoToken, Reason: "no bearer token"}, want: "decision:-"},
			{d: authz.Decision{Outcome: authz.OutcomeNoToken, Reason: "no bearer token"}, want: "decision:-"},
			{d: authz.Decision{Outcome: authz.OutcomeUnavailable, TokenHash: "aa", Reason: "op down"}, want: "decision:-"},
			{d: authz.Decision{Outcome: authz.OutcomeUnavailable, TokenHash: "aa", Reason: "op down"}, want: "decision:-"},
			{d: authz.Decision{Outcome: authz.OutcomeAllow, TokenHash: "aa", Identity: alice()}, want: "decision:-"},
			{d: authz.Decision{Outcome: authz.OutcomeAllow, TokenHash: "aa", Identity: alice()}, want: "decision:-"},
			{d: authz.Decision{Outcome: authz.OutcomeForbidden, TokenHash: "aa", Reason: "policy"}, want: "decision:0"},
			{d: authz.Decision{Outcome: authz.OutcomeForbidden, TokenHash: "aa", Reason: "policy"}, want: ""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &manualClock{t: time.Unix(1000, 0)}
			fa := &fakeAuthorizer{}
			s, buf := newTestServer(t, fa, Config{DenyLogInterval: durationPtr(tt.interval)}, WithClock(clock.now))
			for i, st := range tt.steps {
				clock.add(st.advance)
				fa.d = st.d
				buf.Reset()
				req := checkRequest(map[string]string{"authorization": secret})
				if _, err := s.Check(context.Background(), req); err != nil {
					t.Fatal(err)
				}
				if strings.Contains(buf.String(), "super-secret") {
					t.Fatalf("step %d: log leaks the token: %s", i, buf)
				}
				var got []string
				for _, l := range logLines(t, buf) {
					n, ok := l["suppressed"].(float64)
					switch {
					case l["msg"] == "denials suppressed":
						got = append(got, fmt.Sprintf("summary:%d", int(n)))
					case ok:
						got = append(got, fmt.Sprintf("decision:%d", int(n)))
					default:
						got = append(got, "decision:-")
					}
				}
				if g := strings.Join(got, " "); g != st.want {
					t.Errorf("step %d (%+v): lines %q, want %q\n%s", i, st.d, g, st.want, buf)
				}
			}
		})
	}
}

// TestDenyLogDefault: without deny_log_interval in the configuration, the first denial
// of every distinct (token hash, reason) — and route — is logged at info, identical
// repeats within 10 s are not logged, and the next line of that token after the interval
// reports how many were left out.
func TestDenyLogDefault(t *testing.T) {
	clock := &manualClock{t: time.Unix(1000, 0)}
	fa := &fakeAuthorizer{}
	s, buf := newTestServer(t, fa, Config{}, WithClock(clock.now))
	if got := s.Config().DenyLogInterval; got == nil || got.D() != DefaultDenyLogInterval || DefaultDenyLogInterval != 10*time.Second {
		t.Fatalf("effective deny_log_interval %v, want 10s", got)
	}
	type step struct {
		hash, reason, route string
		advance             time.Duration
		want                string // "": no line; else "hash/reason/route suppressed=N", "summary …" for a summary line
	}
	for i, st := range []step{
		{hash: "aa", reason: "token expired", route: "api", want: "aa/token expired/api suppressed=0"},
		{hash: "aa", reason: "token expired", route: "api", advance: time.Second},
		{hash: "aa", reason: "token expired", route: "api"},
		// The same token with another reason: logged at once; the repeats of the first
		// reason are reported by a summary line.
		{hash: "aa", reason: "signature verification failed", route: "api",
			want: "summary aa/token expired/api suppressed=2; aa/signature verification failed/api suppressed=0"},
		{hash: "bb", reason: "token expired", route: "api", want: "bb/token expired/api suppressed=0"},
		{hash: "bb", reason: "token expired", route: "api"},
		{hash: "bb", reason: "token expired", route: "admin", want: "summary bb/token expired/api suppressed=1; bb/token expired/admin suppressed=0"},
		{hash: "bb", reason: "token expired", route: "admin", advance: 5 * time.Second},
		{hash: "bb", reason: "token expired", route: "admin", advance: 4 * time.Second},
		{hash: "bb", reason: "token expired", route: "admin", advance: time.Second, want: "bb/token expired/admin suppressed=2"},
	} {
		clock.add(st.advance)
		fa.d = authz.Decision{Outcome: authz.OutcomeInvalidToken, TokenHash: st.hash, Reason: st.reason, Route: st.route}
		buf.Reset()
		if _, err := s.Check(context.Background(), checkRequest(map[string]string{"authorization": "Bearer x"})); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range logLines(t, buf) {
			prefix := ""
			switch {
			case l["level"] != "INFO":
				t.Errorf("step %d: line not at info: %v", i, l)
			case l["msg"] == "denials suppressed":
				prefix = "summary "
			case l["msg"] != "decision":
				t.Errorf("step %d: unexpected line %v", i, l)
			}
			got = append(got, fmt.Sprintf("%s%v/%v/%v suppressed=%v", prefix, l["token_hash"], l["reason"], l["route"], l["suppressed"]))
		}
		if g := strings.Join(got, "; "); g != st.want {
			t.Errorf("step %d: lines %q, want %q", i, g, st.want)
		}
	}
}

// TestDenyLogSamplingSlotTakeover: a token that takes over another token's slot
// reports the other's suppressed lines in a summary line, with that token's hash.
func TestDenyLogSamplingSlotTakeover(t *testing.T) {
	clock := &manualClock{t: time.Unix(1000, 0)}
	fa := &fakeAuthorizer{}
	s, buf := newTestServer(t, fa, Config{DenyLogInterval: durationPtr(time.Minute)}, WithClock(clock.now))
	slot := s.snap.Load().sampler.slot
	a := "a0"
	b := ""
	for i := range 100000 { // find another hash in the same slot
		if h := fmt.Sprintf("b%d", i); slot(h) == slot(a) {
			b = h
			break
		}
	}
	if b == "" {
		t.Fatal("no colliding hash found")
	}
	for _, h := range []string{a, a, a, b} {
		fa.d = authz.Decision{Outcome: authz.OutcomeInvalidToken, TokenHash: h, Reason: "expired"}
		_, _ = s.Check(context.Background(), checkRequest(nil))
	}
	lines := logLines(t, buf)
	if len(lines) != 3 || lines[1]["msg"] != "denials suppressed" || lines[1]["token_hash"] != a || lines[1]["suppressed"] != 2.0 ||
		lines[2]["token_hash"] != b || lines[2]["suppressed"] != 0.0 {
		t.Errorf("lines: %v", lines)
	}
}

// TestDenyLogSamplingConcurrent: concurrent denials of a few tokens (go test -race)
// log at least one line per token and account for every denial.
func TestDenyLogSamplingConcurrent(t *testing.T) {
	clock := &manualClock{t: time.Unix(1000, 0)}
	fa := AuthorizerFunc(func(_ context.Context, r authz.Request) authz.Decision {
		return authz.Decision{Outcome: authz.OutcomeInvalidToken, TokenHash: r.RequestID, Reason: "expired"}
	})
	s, buf := newTestServer(t, fa, Config{DenyLogInterval: durationPtr(time.Minute)}, WithClock(clock.now))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				req := checkRequest(nil)
				req.Attributes.Request.Http.Id = strconv.Itoa((g + i) % 3)
				_, _ = s.Check(context.Background(), req)
			}
		}()
	}
	wg.Wait()
	clock.add(2 * time.Minute)
	total := 0
	for tok := range 3 { // one more denial each reports the rest
		req := checkRequest(nil)
		req.Attributes.Request.Http.Id = strconv.Itoa(tok)
		_, _ = s.Check(context.Background(), req)
	}
	for _, l := range logLines(t, buf) {
		n, _ := l["suppressed"].(float64)
		total += int(n)
		if l["msg"] == "decision" {
			total++ // the line's own denial
		}
	}
	if total != 800+3 {
		t.Errorf("lines account for %d denials, want 803", total)
	}
}
