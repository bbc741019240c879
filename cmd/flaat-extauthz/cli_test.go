package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
)

// fixedNow is the clock of every CLI test: tokens are minted and checked at this instant.
var fixedNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func clock() time.Time { return fixedNow }

// normalise replaces the run-dependent parts of an output (OP URL, key ids, token
// hashes) with placeholders, for golden files.
func normalise(s string, op *oidctest.OP, tokens ...string) string {
	if op != nil {
		s = strings.ReplaceAll(s, op.Issuer(), "http://OP")
		for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
			if kid := op.KeyID(alg); kid != "" {
				s = strings.ReplaceAll(s, kid, "KID-"+alg)
			}
		}
	}
	for _, t := range tokens {
		s = strings.ReplaceAll(s, authz.TokenHash(t), "TOKENHASH")
		s = strings.ReplaceAll(s, t, "TOKEN")
	}
	return s
}

func TestUserinfo(t *testing.T) {
	op := oidctest.New(t, oidctest.WithClock(clock))
	other := oidctest.New(t, oidctest.WithClock(clock))
	down := oidctest.New(t, oidctest.WithClock(clock))
	alice := op.MintJWT(map[string]any{"sub": "alice", "jti": "jti-alice", "email": "alice@example.org", "groups": []string{"admins", "users"}})
	expired := op.MintJWT(map[string]any{"sub": "alice", "jti": "jti-expired"}, oidctest.ExpiresIn(-10*time.Minute))
	foreign := other.MintJWT(map[string]any{"sub": "mallory", "jti": "jti-foreign"})
	downTok := down.MintJWT(map[string]any{"sub": "alice", "jti": "jti-down"})
	down.Close()
	opaque := op.MintOpaque(map[string]any{"sub": "carol", "groups": []string{"users"}})
	// An opaque token is random base64url and may begin with '-': pass it after "--".

	tests := []struct {
		name     string
		env      map[string]string
		stdin    string
		args     []string
		code     int
		golden   string   // testdata file for stdout, normalised
		contains []string // substrings of stdout
		stderr   []string // substrings of stderr
	}{
		{name: "valid jwt as argument", args: []string{"--issuer", op.Issuer(), alice}, code: 0, golden: "userinfo_valid.txt"},
		{name: "valid jwt from stdin as json", stdin: alice + "\n", args: []string{"--issuer", op.Issuer(), "-o", "json", "-"}, code: 0, golden: "userinfo_valid.json"},
		{name: "token from ACCESS_TOKEN, only claims", env: map[string]string{"ACCESS_TOKEN": alice, envIssuers: op.Issuer()}, args: []string{"--only", "at"}, code: 0,
			contains: []string{`"sub": "alice"`, `"jti": "jti-alice"`}},
		{name: "token from OIDC with Bearer prefix", env: map[string]string{"OIDC": "Bearer " + alice}, args: []string{"--issuer", op.Issuer(), "--only", "userinfo"}, code: 0,
			contains: []string{`"email": "alice@example.org"`}},
		{name: "no token", args: []string{"--issuer", op.Issuer()}, code: 1, stderr: []string{"no token", "ACCESS_TOKEN", "WATTSON_TOKEN"}},
		{name: "expired", args: []string{"--issuer", op.Issuer(), expired}, code: 2, golden: "userinfo_expired.txt"},
		{name: "untrusted issuer", args: []string{"--issuer", op.Issuer(), foreign}, code: 2,
			contains: []string{"Claims (NOT verified)", `"sub": "mallory"`, "Result: INVALID", "untrusted"}},
		{name: "trust-any trusts the token's own issuer", args: []string{"--trust-any", foreign}, code: 0,
			contains: []string{"Claims (verified)", "--trust-any (DEBUGGING ONLY", "Result: valid"}, stderr: []string{"WARNING: --trust-any", "DEBUGGING ONLY"}},
		{name: "trust-any with opaque token", args: []string{"--trust-any", "--", opaque}, code: 3, stderr: []string{"needs a JWT"}},
		{name: "OP down", args: []string{"--issuer", down.Issuer(), downTok}, code: 3, contains: []string{"Result: ERROR", "unavailable"}},
		{name: "opaque with introspection credentials", args: []string{"--issuer", op.Issuer(), "--client-id", op.ClientID(), "--client-secret", op.ClientSecret(), "--", opaque}, code: 0,
			contains: []string{"Access token: opaque (verified)", `"active": true`, `"sub": "carol"`, "Verified by: userinfo, introspection"}},
		{name: "opaque only introspection", args: []string{"--issuer", op.Issuer(), "--client-id", op.ClientID(), "--client-secret", op.ClientSecret(), "--only", "introspection", "--", opaque}, code: 0,
			contains: []string{`"active": true`}},
		{name: "no issuer configured", args: []string{alice}, code: 3, stderr: []string{"no trusted issuer"}},
		{name: "bad output", args: []string{"-o", "yaml", alice}, code: 3, stderr: []string{"--output"}},
		{name: "bad only", args: []string{"--only", "everything", alice}, code: 3, stderr: []string{"--only"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, _, _ := testApp(tc.env)
			a.now = clock
			a.stdin = strings.NewReader(tc.stdin)
			res := runCmd(t, a, append([]string{"userinfo"}, tc.args...)...)
			expectResult(t, res, tc.code, tc.golden, normalise(res.stdout, op, alice, expired), tc.contains, tc.stderr)
			for _, tok := range []string{alice, expired, foreign, opaque} {
				if strings.Contains(res.stderr, tok) {
					t.Error("a raw token leaked to stderr")
				}
			}
		})
	}
}

// checkConfig writes a configuration with two routes and an access level.
func checkConfig(t *testing.T, issuer string) string {
	t.Helper()
	y := `issuers: [{issuer: ` + issuer + `}]
policy:
  access_levels:
    ops: {groups: {values: [ops]}}
  routes:
    - name: public-health
      path: {exact: /health}
      public: true
    - name: admin
      path: {prefix: /admin}
      require: {groups: {values: [admins, users, ops], match: 2}}
  default: {authenticated: true}
`
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheck(t *testing.T) {
	op := oidctest.New(t, oidctest.WithClock(clock))
	down := oidctest.New(t, oidctest.WithClock(clock))
	cfg := checkConfig(t, op.Issuer())
	downCfg := checkConfig(t, down.Issuer())
	downTok := down.MintJWT(map[string]any{"sub": "alice"})
	down.Close()
	alice := op.MintJWT(map[string]any{"sub": "alice", "jti": "j1", "email": "alice@example.org", "groups": []string{"admins", "users"}})
	bob := op.MintJWT(map[string]any{"sub": "bob", "jti": "j2", "groups": []string{"users"}})
	dir := t.TempDir()
	claimsOK := filepath.Join(dir, "ok.json")
	os.WriteFile(claimsOK, []byte(`{"sub":"carol","iss":"https://op.example","groups":["ops","users"]}`), 0o600)
	claimsBad := filepath.Join(dir, "bad.json")
	os.WriteFile(claimsBad, []byte(`["not","an","object"]`), 0o600)

	tests := []struct {
		name     string
		args     []string
		stdin    string
		code     int
		golden   string
		contains []string
		stderr   []string
	}{
		{name: "allow with upstream headers", args: []string{"--config", cfg, "--token", alice, "--path", "/admin/x?y=1", "--host", "api.example.org"}, code: 0, golden: "check_allow.txt"},
		{name: "forbidden", args: []string{"--config", cfg, "--token", bob, "--path", "/admin/x"}, code: 1, golden: "check_forbidden.txt"},
		{name: "no token", args: []string{"--config", cfg, "--path", "/admin"}, code: 1,
			contains: []string{"DENY (no_token)", "HTTP 401", "www-authenticate: Bearer realm="}},
		{name: "public route without token", args: []string{"--config", cfg, "--path", "/health"}, code: 0,
			contains: []string{"Route:       public-health", "Requirement: none (public route)", "ALLOW"}},
		{name: "token from stdin, json", stdin: bob, args: []string{"--config", cfg, "--token", "-", "--path", "/other", "-o", "json"}, code: 0, golden: "check_default.json"},
		{name: "context extension selects an access level", args: []string{"--config", cfg, "--token", bob, "--context-extension", "flaat_policy=ops"}, code: 1,
			contains: []string{"selected by context_extensions", "DENY (forbidden)"}},
		{name: "claims file allowed", args: []string{"--config", cfg, "--claims", claimsOK, "--path", "/admin"}, code: 0,
			contains: []string{"skipped (--claims", "x-auth-request-user: carol", "x-auth-request-groups: ops,users"}},
		{name: "claims file, embedded default, no issuer needed", args: []string{"--claims", claimsOK, "--path", "/"}, code: 0,
			contains: []string{"Route:       default", "Requirement: authenticated", "ALLOW"}},
		{name: "claims file not an object", args: []string{"--config", cfg, "--claims", claimsBad}, code: 3, stderr: []string{"JSON object"}},
		{name: "OP down: fail closed", args: []string{"--config", downCfg, "--token", downTok, "--path", "/x"}, code: 3,
			contains: []string{"ERROR (fail closed)", "HTTP 503"}},
		{name: "bad context extension", args: []string{"--config", cfg, "--context-extension", "novalue"}, code: 3, stderr: []string{"key=value"}},
		{name: "invalid config", args: []string{"--config", cfg, "--issuer", "ftp://x"}, code: 3, stderr: []string{"issuers[0].issuer"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, _, _ := testApp(nil)
			a.now = clock
			a.stdin = strings.NewReader(tc.stdin)
			res := runCmd(t, a, append([]string{"check"}, tc.args...)...)
			expectResult(t, res, tc.code, tc.golden, normalise(res.stdout, op, alice, bob), tc.contains, tc.stderr)
		})
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("issuers: [{issuer: https://op.example}]\npolicy:\n  routes: [{name: open, path: {prefix: /pub}, public: true}]\n  default: {authenticated: true}\n"), 0o600)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(`server: {grpc_listen: nonsense, readiness: sometimes}
issuers: [{issuer: "ftp://op", userinfo: sometimes}]
verification: {leeway: 2h}
policy:
  routes: [{name: r, require: {groups: {values: [a], match: 0}}}]
log: {level: loud}
`), 0o600)
	tests := []struct {
		name   string
		env    map[string]string
		args   []string
		code   int
		golden string
		want   []string
	}{
		{name: "valid", args: []string{"--config", good}, code: 0, want: []string{"valid (1 issuer(s), 1 route(s))", "warning:"}},
		{name: "embedded default with issuer", args: []string{"--issuer", "https://op.example"}, code: 0, want: []string{"embedded default: valid"}},
		{name: "issuers from env", env: map[string]string{envIssuers: "https://a.example, https://b.example"}, code: 0, want: []string{"valid (2 issuer(s)"}},
		{name: "every problem at once", args: []string{"--config", bad}, code: 1, golden: "validate_bad.txt"},
		{name: "unknown key", args: []string{"--config", writeFile(t, dir, "typo.yaml", "isuers: []\n")}, code: 1, want: []string{`unknown section "isuers"`}},
		{name: "dev switch without flag", env: map[string]string{"DISABLE_AUTHENTICATION_AND_ASSUME_VALID_GROUPS": "YES"}, args: []string{"--config", good}, code: 1,
			want: []string{"--allow-insecure-dev-switches"}},
		{name: "dev switch with flag", env: map[string]string{"DISABLE_AUTHENTICATION_AND_ASSUME_VALID_GROUPS": "YES"}, args: []string{"--config", good, "--allow-insecure-dev-switches"}, code: 0},
		{name: "authorization switch without flag", env: map[string]string{"DISABLE_AUTHORIZATION_AND_ASSUME_AUTHORIZED_USER": "YES"}, args: []string{"--config", good}, code: 1,
			want: []string{"--allow-insecure-dev-switches"}},
		{name: "authorization switch with flag", env: map[string]string{"DISABLE_AUTHORIZATION_AND_ASSUME_AUTHORIZED_USER": "YES"}, args: []string{"--config", good, "--allow-insecure-dev-switches"}, code: 0},
		{name: "missing file", args: []string{"--config", filepath.Join(dir, "nope.yaml")}, code: 1, want: []string{"no such file"}},
		{name: "tracing on", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
			"OTEL_TRACES_SAMPLER_ARG": "0.1"}, args: []string{"--config", good}, code: 0},
		{name: "bad OTEL values with a bad file", env: map[string]string{"OTEL_TRACES_EXPORTER": "jaeger", "OTEL_PROPAGATORS": "xray"},
			args: []string{"--config", writeFile(t, dir, "typo2.yaml", "isuers: []\n")}, code: 1,
			want: []string{`unknown section "isuers"`, `OTEL_TRACES_EXPORTER="jaeger"`, `"xray"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, _, _ := testApp(tc.env)
			res := runCmd(t, a, append([]string{"validate"}, tc.args...)...)
			if res.code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", res.code, tc.code, res.stdout, res.stderr)
			}
			all := res.stdout + res.stderr
			if tc.golden != "" {
				golden(t, tc.golden, strings.ReplaceAll(all, dir, "DIR"))
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
		})
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVersion(t *testing.T) {
	a, _, _ := testApp(nil)
	res := runCmd(t, a, "version", "-o", "json")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	var b buildInfo
	if err := json.Unmarshal([]byte(res.stdout), &b); err != nil {
		t.Fatal(err)
	}
	if b.GoVersion != runtime.Version() || b.Version == "" || b.Commit == "" {
		t.Errorf("version = %+v", b)
	}
	a, _, _ = testApp(nil)
	if res := runCmd(t, a, "version"); res.code != 0 || !strings.Contains(res.stdout, "go: "+runtime.Version()) {
		t.Errorf("text version = %d %q", res.code, res.stdout)
	}

	tests := []struct {
		name                 string
		ldVersion, ldCommit  string
		info                 *debug.BuildInfo
		wantVersion, wantCom string
	}{
		{"nothing known", "", "", nil, "(devel)", "unknown"},
		{"ldflags win", "v1.2.3", "abc", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.1"}}, "v1.2.3", "abc"},
		{"build info", "", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "deadbeef"}, {Key: "vcs.modified", Value: "true"}}}, "v0.9.0", "deadbeef-dirty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			oldV, oldC := version, commit
			defer func() { version, commit = oldV, oldC }()
			version, commit = tc.ldVersion, tc.ldCommit
			b := currentBuild(func() (*debug.BuildInfo, bool) { return tc.info, tc.info != nil })
			if b.Version != tc.wantVersion || b.Commit != tc.wantCom {
				t.Errorf("got %s %s, want %s %s", b.Version, b.Commit, tc.wantVersion, tc.wantCom)
			}
		})
	}
}

func TestUnknownCommand(t *testing.T) {
	a, _, _ := testApp(nil)
	if res := runCmd(t, a, "frobnicate"); res.code != exitUsage || !strings.Contains(res.stderr, "unknown command") {
		t.Errorf("exit %d, stderr %q", res.code, res.stderr)
	}
}

// TestHelpForEveryFlag: every flag of every command has help text.
func TestHelpForEveryFlag(t *testing.T) {
	a, _, _ := testApp(nil)
	root := a.rootCmd()
	for _, c := range root.Commands() {
		if c.Short == "" {
			t.Errorf("%s: no short help", c.Name())
		}
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if strings.TrimSpace(f.Usage) == "" {
				t.Errorf("%s --%s: no help text", c.Name(), f.Name)
			}
		})
	}
}

var tokenLine = regexp.MustCompile(`(?m)^export (ADMIN|USER)_TOKEN=(\S+)$`)

// TestDemo runs demo, takes the printed tokens and checks the promised outcomes over
// HTTP and gRPC, then stops it with Ctrl-C.
func TestDemo(t *testing.T) {
	a, out, _ := testApp(nil)
	r := start(t, a, "demo", "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	banner := out.String()
	toks := map[string]string{}
	for _, m := range tokenLine.FindAllStringSubmatch(banner, -1) {
		toks[m[1]] = m[2]
	}
	if toks["ADMIN"] == "" || toks["USER"] == "" {
		t.Fatalf("tokens not printed:\n%s", banner)
	}
	for _, want := range []string{"DEVELOPMENT OP", "curl -i", "grpcurl -plaintext", r.Addrs["http"], r.Addrs["grpc"], "envoy.service.auth.v3.Authorization/Check"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q", want)
		}
	}
	bearer := func(k string) map[string]string { return map[string]string{"Authorization": "Bearer " + toks[k]} }
	httpCases := []struct {
		name string
		path string
		hdr  map[string]string
		want int
	}{
		{"admin on /admin", "/admin/settings", bearer("ADMIN"), 200},
		{"user on /admin", "/admin/settings", bearer("USER"), 403},
		{"user elsewhere", "/hello", bearer("USER"), 200},
		{"no token", "/hello", nil, 401},
	}
	for _, tc := range httpCases {
		if code, body := r.Get("http", tc.path, tc.hdr); code != tc.want {
			t.Errorf("%s: HTTP %d %s, want %d", tc.name, code, body, tc.want)
		}
	}
	conn, err := grpc.NewClient(r.Addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	grpcCases := []struct {
		tok  string
		want codes.Code
	}{{"ADMIN", codes.OK}, {"USER", codes.PermissionDenied}, {"", codes.Unauthenticated}}
	for _, tc := range grpcCases {
		hdrs := map[string]string{}
		if tc.tok != "" {
			hdrs["authorization"] = "Bearer " + toks[tc.tok]
		}
		resp, err := client.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/admin/settings", Headers: hdrs}}}})
		if err != nil || codes.Code(resp.GetStatus().GetCode()) != tc.want {
			t.Errorf("gRPC %q: %v %v, want %v", tc.tok, codes.Code(resp.GetStatus().GetCode()), err, tc.want)
		}
	}
	if res := r.Stop(syscall.SIGINT); res.code != 0 {
		t.Errorf("exit %d after Ctrl-C:\n%s", res.code, res.stderr)
	}
}

// expectResult checks a command's exit code, its normalised stdout against the golden
// file (when one is named), and that stdout and stderr contain the given strings.
func expectResult(t *testing.T, res result, code int, goldenName, out string, stdout, stderr []string) {
	t.Helper()
	if res.code != code {
		t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", res.code, code, res.stdout, res.stderr)
	}
	if goldenName != "" {
		golden(t, goldenName, out)
	}
	for _, w := range stdout {
		if !strings.Contains(res.stdout, w) {
			t.Errorf("stdout lacks %q:\n%s", w, res.stdout)
		}
	}
	for _, w := range stderr {
		if !strings.Contains(res.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, res.stderr)
		}
	}
}

// TestUsageErrorNeverEchoesAToken: a token that starts with "-" reads as flags, and
// pflag quotes the whole argument in its error; the message names its hash instead.
func TestUsageErrorNeverEchoesAToken(t *testing.T) {
	const token = "-6-K005xQ2mZr8vYp3LwT9aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"
	for _, args := range [][]string{
		{"userinfo", token},
		{"check", "--path", "/x", token},
		{"userinfo", "--" + token[1:]},
	} {
		a, _, _ := testApp(nil)
		res := runCmd(t, a, args...)
		if res.code != exitUsage {
			t.Fatalf("%q: exit %d, want %d (stderr %q)", args, res.code, exitUsage, res.stderr)
		}
		if strings.Contains(res.stderr, token[1:]) || !strings.Contains(res.stderr, "<argument sha256:") {
			t.Errorf("%q: stderr %q echoes the token or names no hash", args, res.stderr)
		}
	}
}
