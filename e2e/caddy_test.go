//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// caddyBinary returns the pinned Caddy (./bin, installed by .ci/e2e-deps.sh) or one on PATH.
func caddyBinary(t testing.TB) string {
	t.Helper()
	local := filepath.Join(repoRoot, "bin", "caddy")
	if st, err := os.Stat(local); err == nil && st.Mode()&0o111 != 0 {
		return local
	}
	return tool(t, "caddy")
}

// caddyProc is Caddy running examples/caddy/Caddyfile.
type caddyProc struct {
	proc *proc
	URL  string
}

// caddyEnv keeps Caddy's data and config directories (autosave, certificates) inside dir.
func caddyEnv(dir string) []string {
	return []string{"HOME=" + dir, "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir}
}

// caddyfile returns the example Caddyfile with its four addresses replaced by the test's.
func caddyfile(t testing.TB, authAddr, upstreamAddr string, port, adminPort int) string {
	t.Helper()
	example, err := os.ReadFile(filepath.Join(repoRoot, "examples", "caddy", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	site := string(example)
	for _, r := range [][2]string{
		{"admin 127.0.0.1:2019", fmt.Sprintf("admin 127.0.0.1:%d", adminPort)},
		{"\n:8000 {", fmt.Sprintf("\n:%d {", port)},
		{"forward_auth 127.0.0.1:9002 {", "forward_auth " + authAddr + " {"},
		{"reverse_proxy 127.0.0.1:8080", "reverse_proxy " + upstreamAddr},
	} {
		if strings.Count(site, r[0]) != 1 {
			t.Fatalf("e2e: examples/caddy/Caddyfile must contain %q exactly once", r[0])
		}
		site = strings.Replace(site, r[0], r[1], 1)
	}
	return site
}

// startCaddy validates and runs the example Caddyfile in front of upstreamAddr, with
// flaat-extauthz's HTTP listener at authAddr (and, when given, edited by edit).
func startCaddy(t testing.TB, authAddr, upstreamAddr string, edit ...func(string) string) *caddyProc {
	t.Helper()
	bin := caddyBinary(t)
	dir := t.TempDir()
	port := freePort(t)
	conf := filepath.Join(dir, "Caddyfile")
	site := caddyfile(t, authAddr, upstreamAddr, port, freePort(t))
	for _, e := range edit {
		site = e(site)
	}
	if err := os.WriteFile(conf, []byte(site), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, stderr, err := runCaddy(t, dir, bin, "validate", "--config", conf, "--adapter", "caddyfile"); err != nil {
		t.Fatalf("e2e: caddy validate: %v\n%s\n%s", err, out, stderr)
	}
	p := startProc(t, "caddy", dir, caddyEnv(dir), bin, "run", "--config", conf, "--adapter", "caddyfile")
	c := &caddyProc{proc: p, URL: fmt.Sprintf("http://127.0.0.1:%d", port)}
	waitFor(t, p, "caddy to listen", startTimeout, func() bool { return httpStatus(c.URL+"/public/ready") != 0 })
	return c
}

// runCaddy runs a short caddy subcommand with its state directories in dir.
func runCaddy(t testing.TB, dir string, argv ...string) (string, string, error) {
	t.Helper()
	old := os.Environ()
	env := append(old[:len(old):len(old)], caddyEnv(dir)...)
	return runCmdEnv(t, env, argv...)
}

// TestCaddyExample checks examples/caddy/Caddyfile with Caddy's own tools: `caddy validate`
// accepts it, and `caddy adapt` shows that the header hygiene survives the translation to
// Caddy's JSON config: the auth request drops the client's X-Original-URI and
// X-Original-Method, sets X-Forwarded-Method/-Uri from the request, and every copied
// identity header is deleted before it is set from flaat-extauthz's answer.
func TestCaddyExample(t *testing.T) {
	bin := caddyBinary(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(conf, []byte(caddyfile(t, "127.0.0.1:9002", "127.0.0.1:8080", 8000, 2019)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, stderr, err := runCaddy(t, dir, bin, "validate", "--config", conf, "--adapter", "caddyfile"); err != nil {
		t.Fatalf("caddy validate: %v\n%s\n%s", err, out, stderr)
	}
	out, stderr, err := runCaddy(t, dir, bin, "adapt", "--config", conf, "--adapter", "caddyfile")
	if err != nil {
		t.Fatalf("caddy adapt: %v\n%s", err, stderr)
	}
	// The parts of Caddy's JSON config this test reads.
	type headerOps struct {
		Delete []string            `json:"delete"`
		Set    map[string][]string `json:"set"`
	}
	type handler struct {
		Handler   string `json:"handler"`
		Upstreams []struct {
			Dial string `json:"dial"`
		} `json:"upstreams"`
		Headers *struct {
			Request headerOps `json:"request"`
		} `json:"headers"`
		Request        *headerOps                    `json:"request"`
		Rewrite        *struct{ Method, URI string } `json:"rewrite"`
		HandleResponse []struct {
			Routes []struct {
				Handle []handler `json:"handle"`
			} `json:"routes"`
		} `json:"handle_response"`
		Routes []struct {
			Handle []handler `json:"handle"`
		} `json:"routes"`
	}
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Listen []string `json:"listen"`
					Routes []struct {
						Handle []handler `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("caddy adapt output: %v\n%s", err, out)
	}
	var all []handler
	var walk func(hs []handler)
	walk = func(hs []handler) {
		for _, h := range hs {
			all = append(all, h)
			for _, r := range h.Routes {
				walk(r.Handle)
			}
			for _, hr := range h.HandleResponse {
				for _, r := range hr.Routes {
					walk(r.Handle)
				}
			}
		}
	}
	for _, srv := range cfg.Apps.HTTP.Servers {
		if !slices.Equal(srv.Listen, []string{"127.0.0.1:8000"}) {
			t.Errorf("listen %v, want only loopback 127.0.0.1:8000", srv.Listen)
		}
		for _, r := range srv.Routes {
			walk(r.Handle)
		}
	}
	var auth, app *handler
	for i := range all {
		h := &all[i]
		if h.Handler == "reverse_proxy" && len(h.Upstreams) == 1 {
			switch h.Upstreams[0].Dial {
			case "127.0.0.1:9002":
				auth = h
			case "127.0.0.1:8080":
				app = h
			}
		}
	}
	if auth == nil || app == nil {
		t.Fatalf("caddy adapt: no reverse_proxy to flaat-extauthz (%v) or to the app (%v):\n%s", auth != nil, app != nil, out)
	}
	if auth.Rewrite == nil || auth.Rewrite.Method != "GET" || auth.Headers == nil {
		t.Fatalf("the auth request is not forward_auth's GET with header operations: %+v", auth)
	}
	for _, h := range []string{"X-Original-URI", "X-Original-Method"} {
		if !slices.Contains(auth.Headers.Request.Delete, h) {
			t.Errorf("the auth request does not delete the client's %s (delete: %v)", h, auth.Headers.Request.Delete)
		}
	}
	for h, want := range map[string]string{"X-Forwarded-Method": "{http.request.method}", "X-Forwarded-Uri": "{http.request.uri}"} {
		if got := auth.Headers.Request.Set[h]; !slices.Equal(got, []string{want}) {
			t.Errorf("the auth request sets %s = %v, want [%s]", h, got, want)
		}
	}
	var deleted []string
	for _, h := range all {
		if h.Handler == "headers" && h.Request != nil {
			deleted = append(deleted, h.Request.Delete...)
		}
	}
	for _, h := range []string{"X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups", "X-Auth-Request-Issuer"} {
		if !slices.Contains(deleted, h) {
			t.Errorf("a client's %s is not deleted before the identity is copied (deleted: %v)", h, deleted)
		}
	}
}
