//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// Timeouts of the harness. They bound waits for external processes; nothing here sleeps
// for a fixed time to let something happen.
const (
	startTimeout   = 60 * time.Second // a process becomes ready
	opStartTimeout = 30 * time.Second // one attempt to start the OP (see startOP)
	stopTimeout    = 5 * time.Second  // SIGTERM before SIGKILL
	callTimeout    = 20 * time.Second // one client call (grpcurl, HTTP)
	pollEvery      = 25 * time.Millisecond
)

// requireAllEnv turns "tool missing" skips into failures (.ci/run sets it).
const requireAllEnv = "FLAAT_E2E_REQUIRE_ALL"

// repoRoot is the module root (the parent of this package's directory).
var repoRoot = func() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("e2e: cannot locate the source directory")
	}
	return filepath.Dir(filepath.Dir(file))
}()

// missing reports a missing tool: a skip with the reason, or a failure in CI.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...) + " (install with: bash .ci/e2e-deps.sh)"
	if os.Getenv(requireAllEnv) != "" {
		t.Fatalf("e2e: %s; %s is set, so this is a failure", msg, requireAllEnv)
	}
	t.Skipf("e2e: %s", msg)
}

// tool finds an executable on PATH or at one of the given fallback paths.
func tool(t testing.TB, name string, fallbacks ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, f := range fallbacks {
		if st, err := os.Stat(f); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return f
		}
	}
	missing(t, "%s not found on PATH or in %v", name, fallbacks)
	return ""
}

// --- the flaat-extauthz binary, built once per test run ---

var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// binaryEnv names a prebuilt flaat-extauthz binary to test instead of building one.
const binaryEnv = "FLAAT_E2E_BINARY"

// flaatBinary builds ./cmd/flaat-extauthz from this tree once and returns its path
// (or returns $FLAAT_E2E_BINARY when set).
func flaatBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(binaryEnv); p != "" {
		return p
	}
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "flaat-e2e-bin-")
		if build.err != nil {
			return
		}
		build.path = filepath.Join(build.dir, "flaat-extauthz")
		cmd := exec.Command("go", "build", "-o", build.path, "./cmd/flaat-extauthz")
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/flaat-extauthz: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatalf("e2e: %v", build.err)
	}
	return build.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// --- processes ---

// proc is a child process with its output in a log file. It is stopped (its whole
// process group) by t.Cleanup, and killed by the kernel (Pdeathsig) if the test binary
// itself dies, for example on a -timeout panic.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // from Wait; read after done is closed
	once sync.Once
}

// startProc starts argv with its stdout and stderr in <dir>/<name>.log.
func startProc(t testing.TB, name, dir string, env []string, argv ...string) *proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("e2e: %s: %v", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("e2e: start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("e2e: --- log of %s (%s) ---\n%s", name, logPath, tail(p.Log(), 8000))
		}
	})
	return p
}

// Stop sends SIGTERM to the process group, waits up to stopTimeout, then SIGKILLs it.
// It is idempotent and safe after the process has exited.
func (p *proc) Stop() {
	p.once.Do(func() {
		pgid := p.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.done
		}
		// Children that ignored SIGTERM while the leader exited (nginx workers).
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	})
}

// Exited reports whether the process has ended.
func (p *proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Log returns the process's output so far.
func (p *proc) Log() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// waitFor polls cond until it returns true, the process exits, or the timeout passes.
func waitFor(t testing.TB, p *proc, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		if cond() {
			return
		}
		if p != nil && p.Exited() {
			t.Fatalf("e2e: %s exited (%v) while waiting for %s; log:\n%s", p.name, p.err, what, tail(p.Log(), 8000))
		}
		if time.Now().After(deadline) {
			log, state := "", ""
			if p != nil {
				log = tail(p.Log(), 8000)
				state = procState(p.cmd.Process.Pid)
			}
			t.Fatalf("e2e: timed out after %s waiting for %s; process state: %s; log:\n%s", timeout, what, state, log)
		}
		<-tick.C
	}
}

// waitUntil polls cond until it returns true (true), or the process exits or the
// timeout passes (false).
func waitUntil(p *proc, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		if p.Exited() || time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
}

// procState describes a running process from /proc (state, CPU ticks, wait channel),
// so that a start-up time-out says whether the process was busy, blocked or stopped.
func procState(pid int) string {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return err.Error()
	}
	wchan, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", pid))
	// Fields after the command name: state is the 1st, utime the 12th, stime the 13th.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+2:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return string(stat)
	}
	return fmt.Sprintf("state=%s utime=%s stime=%s wchan=%s", f[0], f[11], f[12], wchan)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("e2e: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// --- secrets that must never be logged ---

var secrets struct {
	sync.Mutex
	tokens []string
}

// remember records a token so that every flaat-extauthz log can be checked for it.
func remember(tok string) string {
	secrets.Lock()
	defer secrets.Unlock()
	secrets.tokens = append(secrets.tokens, tok)
	return tok
}

// tokenFragments returns what must not appear in a log: every token and, for JWTs,
// their payload and signature parts on their own.
func tokenFragments() []string {
	secrets.Lock()
	defer secrets.Unlock()
	var out []string
	for _, tok := range secrets.tokens {
		out = append(out, tok)
		if parts := strings.Split(tok, "."); len(parts) == 3 {
			for _, p := range parts[1:] {
				if len(p) >= 16 {
					out = append(out, p)
				}
			}
		}
	}
	return out
}

// assertNoTokens fails t if any remembered token (or JWT part) occurs in text.
func assertNoTokens(t testing.TB, what, text string) {
	t.Helper()
	for _, frag := range tokenFragments() {
		if n := strings.Count(text, frag); n > 0 {
			t.Errorf("e2e: %s contains a token (or part of one) %d time(s): %.12s…", what, n, frag)
		}
	}
}

// --- the OIDC provider (e2e/op/server.mjs) ---

// op is a running oidc-provider.
type op struct {
	proc      *proc
	Issuer    string            `json:"issuer"`
	Port      int               `json:"port"`
	Resource  string            `json:"resource"`
	MintGrant string            `json:"mint_grant"`
	Clients   map[string]string `json:"clients"`
}

const opReady = "E2E-OP-READY "

// startOP starts a fresh OP on a free port and waits for its ready line.
func startOP(t testing.TB) *op {
	t.Helper()
	node := tool(t, "node")
	script := filepath.Join(repoRoot, "e2e", "op", "server.mjs")
	if _, err := os.Stat(filepath.Join(repoRoot, "e2e", "op", "node_modules", "oidc-provider", "package.json")); err != nil {
		missing(t, "npm package oidc-provider is not installed in e2e/op")
	}
	// The OP is a third-party fixture: once (seen twice in many runs on a loaded
	// machine) it printed its start-up warning and then nothing for 30 s. A stalled
	// start is logged with the process state and retried once with a fresh process;
	// flaat-extauthz's own start-up is never retried.
	var o op
	var p *proc
	for attempt := 1; ; attempt++ {
		p = startProc(t, fmt.Sprintf("op-%d", attempt), t.TempDir(), []string{"NODE_ENV=test"}, node, script)
		ready := waitUntil(p, opStartTimeout, func() bool {
			sc := bufio.NewScanner(strings.NewReader(p.Log()))
			for sc.Scan() {
				if line, ok := strings.CutPrefix(sc.Text(), opReady); ok {
					if err := json.Unmarshal([]byte(line), &o); err != nil {
						t.Fatalf("e2e: OP ready line: %v: %q", err, line)
					}
					return true
				}
			}
			return false
		})
		if ready {
			break
		}
		state := procState(p.cmd.Process.Pid)
		p.Stop()
		if attempt == 2 || p.err != nil && !strings.Contains(p.err.Error(), "signal") {
			t.Fatalf("e2e: the OP did not print its ready line within %s (attempt %d; process state: %s); log:\n%s",
				opStartTimeout, attempt, state, tail(p.Log(), 8000))
		}
		t.Logf("e2e: the OP did not start within %s (process state: %s); starting a fresh one; log:\n%s",
			opStartTimeout, state, tail(p.Log(), 2000))
	}
	o.proc = p
	return &o
}

// Stop stops the OP (an outage, from the server's point of view).
func (o *op) Stop() { o.proc.Stop() }

// post sends a form to an OP endpoint with client_secret_basic and decodes the JSON reply.
func (o *op) post(t testing.TB, path, client string, form url.Values) (int, map[string]any) {
	t.Helper()
	return o.postH(t, path, client, form, nil)
}

// postH is post with extra request headers (a DPoP proof, the test-only client
// certificate header).
func (o *op) postH(t testing.TB, path, client string, form url.Values, hdr map[string]string) (int, map[string]any) {
	t.Helper()
	secret, ok := o.Clients[client]
	if !ok {
		t.Fatalf("e2e: unknown OP client %q", client)
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.Issuer+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(client), url.QueryEscape(secret))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("e2e: OP %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var out map[string]any
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("e2e: OP %s: status %d, body not JSON: %q", path, resp.StatusCode, body)
		}
	}
	return resp.StatusCode, out
}

func (o *op) token(t testing.TB, client string, form url.Values) string {
	t.Helper()
	status, out := o.post(t, "/token", client, form)
	tok, _ := out["access_token"].(string)
	if status != http.StatusOK || tok == "" {
		t.Fatalf("e2e: OP /token (%s, %v): status %d, %v", client, form, status, out)
	}
	return remember(tok)
}

// jwtToken returns an RS256 JWT access token of a client_credentials grant with the
// resource indicator; its groups depend on the client (e2e-admin: admins+users,
// e2e-user: users).
func (o *op) jwtToken(t testing.TB, client string) string {
	t.Helper()
	tok := o.token(t, client, url.Values{"grant_type": {"client_credentials"}, "resource": {o.Resource}})
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("e2e: expected a JWT from the OP, got an opaque token")
	}
	return tok
}

// accountToken returns an access token bound to account (alice: admins+users, bob:
// users) in format "opaque" (works at userinfo and introspection) or "jwt".
func (o *op) accountToken(t testing.TB, account, format string) string {
	t.Helper()
	tok := o.token(t, "e2e-user", url.Values{"grant_type": {o.MintGrant}, "account": {account}, "format": {format}})
	if isJWT := strings.Count(tok, ".") == 2; isJWT != (format == "jwt") {
		t.Fatalf("e2e: asked the OP for a %s token, got %.10s…", format, tok)
	}
	return tok
}

// revoke revokes tok at the OP (RFC 7009) as the client that obtained it.
func (o *op) revoke(t testing.TB, client, tok string) {
	t.Helper()
	if status, out := o.post(t, "/token/revocation", client, url.Values{"token": {tok}}); status != http.StatusOK {
		t.Fatalf("e2e: OP revocation: status %d, %v", status, out)
	}
}

// introspect asks the OP directly (as flaat-extauthz's client) whether tok is active.
func (o *op) introspect(t testing.TB, tok string) map[string]any {
	t.Helper()
	status, out := o.post(t, "/token/introspection", "flaat-extauthz", url.Values{"token": {tok}})
	if status != http.StatusOK {
		t.Fatalf("e2e: OP introspection: status %d, %v", status, out)
	}
	return out
}

// --- flaat-extauthz ---

// server is a running flaat-extauthz process.
type server struct {
	proc                        *proc
	GRPCAddr, HTTPAddr, AdmAddr string
	ConfigPath                  string
}

// serverOpts tweaks the configuration written by startServer.
type serverOpts struct {
	// CacheDisabled turns the identity cache off (every check asks the OP again).
	CacheDisabled bool
	// Userinfo and Introspect override the issuer's modes (defaults optional / opaque).
	Userinfo, Introspect string
	// Mutate edits the configuration document before it is written.
	Mutate func(cfg map[string]any)
	// Env is added to the server's environment (e.g. OTEL_* variables).
	Env []string
}

// serverConfig is the configuration the e2e tests run flaat-extauthz with: the OP as the
// only trusted issuer, debug logging (so the no-token-in-logs check sees every line),
// /admin needs the group "admins", /public is public, everything else needs a valid token.
func serverConfig(o *op, grpcAddr, httpAddr, admAddr string, opts serverOpts) map[string]any {
	userinfo, introspect := "optional", "opaque"
	if opts.Userinfo != "" {
		userinfo = opts.Userinfo
	}
	if opts.Introspect != "" {
		introspect = opts.Introspect
	}
	cfg := map[string]any{
		"server": map[string]any{
			"grpc_listen":  grpcAddr,
			"http_listen":  httpAddr,
			"admin_listen": admAddr,
			"readiness":    "eager",
		},
		"issuers": []any{map[string]any{
			"issuer":        o.Issuer,
			"userinfo":      userinfo,
			"introspect":    introspect,
			"client_id":     "flaat-extauthz",
			"client_secret": o.Clients["flaat-extauthz"],
		}},
		"verification": map[string]any{
			"http_timeout": "2s",
			"cache": map[string]any{
				"disabled":     opts.CacheDisabled,
				"max_ttl":      "5m",
				"negative_ttl": "10s",
			},
		},
		"policy": map[string]any{
			"routes": []any{
				map[string]any{"name": "public", "path": map[string]any{"prefix": "/public"}, "public": true},
				map[string]any{"name": "admin", "path": map[string]any{"prefix": "/admin"},
					"require": map[string]any{"groups": map[string]any{"values": []any{"admins"}}}},
			},
			"default": map[string]any{"authenticated": true},
		},
		"log": map[string]any{"level": "debug", "format": "json"},
	}
	if opts.Mutate != nil {
		opts.Mutate(cfg)
	}
	return cfg
}

// startServer writes a config trusting o and starts flaat-extauthz serve on free ports,
// waiting until /readyz answers 200. At cleanup it checks the server's whole log for
// every token the tests used.
func startServer(t testing.TB, o *op, opts serverOpts) *server {
	t.Helper()
	bin := flaatBinary(t)
	dir := t.TempDir()
	s := &server{
		GRPCAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		HTTPAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		AdmAddr:  fmt.Sprintf("127.0.0.1:%d", freePort(t)),
	}
	doc, err := yaml.Marshal(serverConfig(o, s.GRPCAddr, s.HTTPAddr, s.AdmAddr, opts))
	if err != nil {
		t.Fatal(err)
	}
	s.ConfigPath = filepath.Join(dir, "flaat-extauthz.yaml")
	if err := os.WriteFile(s.ConfigPath, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	s.proc = startProc(t, "flaat-extauthz", dir, opts.Env, bin, "serve", "--config", s.ConfigPath)
	t.Cleanup(func() {
		s.proc.Stop()
		assertNoTokens(t, "the flaat-extauthz log "+s.proc.log, s.proc.Log())
	})
	waitFor(t, s.proc, "flaat-extauthz /readyz", startTimeout, func() bool {
		return httpStatus("http://"+s.AdmAddr+"/readyz") == http.StatusOK
	})
	return s
}

// Stop stops the server (SIGTERM, then SIGKILL).
func (s *server) Stop() { s.proc.Stop() }

// httpStatus GETs u and returns the status code, or 0 when the request failed.
func httpStatus(u string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// runCmd runs a short-lived client command with a timeout and returns stdout, stderr.
func runCmd(t testing.TB, stdin string, argv ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("e2e: %v timed out after %s", argv, callTimeout)
	}
	return out.String(), errb.String(), err
}
