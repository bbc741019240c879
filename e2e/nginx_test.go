//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// upstream is the application behind nginx: it records the headers of every request it
// receives and echoes them.
type upstream struct {
	srv *httptest.Server
	mu  sync.Mutex
	got map[string]http.Header // by request URI
}

func startUpstream(t testing.TB) *upstream {
	t.Helper()
	u := &upstream{got: map[string]http.Header{}}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.got[r.RequestURI] = r.Header.Clone()
		u.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		for k, v := range r.Header {
			fmt.Fprintf(w, "%s: %s\n", k, strings.Join(v, ","))
		}
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// seen returns the headers the upstream received for uri, or nil if it never saw it.
func (u *upstream) seen(uri string) http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.got[uri]
}

// nginxProc is Debian's nginx running examples/nginx/flaat-extauthz.conf.
type nginxProc struct {
	proc *proc
	URL  string
}

// startNginx runs the example config with its addresses replaced by the test's (and,
// when given, edited by edit: the differential test also runs it without its
// header-hygiene lines).
func startNginx(t testing.TB, authAddr, upstreamAddr string, edit ...func(string) string) *nginxProc {
	t.Helper()
	port := freePort(t)
	return startNginxSite(t, "flaat-extauthz.conf", map[string]string{
		"server 127.0.0.1:9002;": "server " + authAddr + ";",
		"server 127.0.0.1:8080;": "server " + upstreamAddr + ";",
		"listen 127.0.0.1:8000;": fmt.Sprintf("listen 127.0.0.1:%d;", port),
	}, fmt.Sprintf("http://127.0.0.1:%d", port), nil, edit...)
}

// startNginxSite runs examples/nginx/<example> with each key of repl (which must occur
// exactly once) replaced and then edited by edit, as the site at url; ready reports
// whether it serves (nil: any HTTP answer to url/public/ready).
func startNginxSite(t testing.TB, example string, repl map[string]string, url string, ready func() bool, edit ...func(string) string) *nginxProc {
	t.Helper()
	bin := tool(t, "nginx", "/usr/sbin/nginx")
	raw, err := os.ReadFile(filepath.Join(repoRoot, "examples", "nginx", example))
	if err != nil {
		t.Fatal(err)
	}
	site := string(raw)
	for old, r := range repl {
		if strings.Count(site, old) != 1 {
			t.Fatalf("e2e: examples/nginx/%s must contain %q exactly once", example, old)
		}
		site = strings.Replace(site, old, r, 1)
	}
	for _, e := range edit {
		site = e(site)
	}
	dir := t.TempDir()
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers must reach the test's private temp directory
	}
	main := fmt.Sprintf(`%[2]s
daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/site.conf;
}
`, dir, user)
	for name, body := range map[string]string{"site.conf": site, "nginx.conf": main} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, _, err := runCmd(t, "", bin, "-t", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf")); err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		t.Fatalf("e2e: nginx -t: %v\n%s\n%s", err, out, b)
	}
	p := startProc(t, "nginx", dir, nil, bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf"))
	n := &nginxProc{proc: p, URL: url}
	if ready == nil {
		ready = func() bool { return httpStatus(n.URL+"/public/ready") != 0 }
	}
	waitFor(t, p, "nginx to listen", startTimeout, ready)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("e2e: nginx error.log:\n%s", tail(string(b), 8000))
		}
	})
	return n
}

// get sends a GET through nginx with the given headers.
func (n *nginxProc) get(t testing.TB, uri string, headers map[string]string) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.URL+uri, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("e2e: GET %s through nginx: %v", uri, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, string(body)
}

// TestNginxAuthRequest: Debian's nginx with auth_request against flaat-extauthz's HTTP
// mode and the real OP. Each request has a unique URI so the upstream's record shows
// whether it got through.
func TestNginxAuthRequest(t *testing.T) {
	o := startOP(t)
	s := startServer(t, o, serverOpts{})
	up := startUpstream(t)
	n := startNginx(t, s.HTTPAddr, strings.TrimPrefix(up.srv.URL, "http://"))

	adminJWT := o.jwtToken(t, "e2e-admin")
	userJWT := o.jwtToken(t, "e2e-user")
	alice := o.accountToken(t, "alice", "opaque")

	tests := []struct {
		name      string
		uri       string
		headers   map[string]string
		status    int
		reached   bool              // the upstream saw the request
		upHeaders map[string]string // headers the upstream saw ("" = absent)
		challenge string            // substring of WWW-Authenticate at the client
	}{
		{name: "jwt allowed, identity reaches upstream", uri: "/admin/1", headers: bearer(adminJWT), status: 200, reached: true,
			upHeaders: map[string]string{"X-Auth-Request-User": "e2e-admin", "X-Auth-Request-Groups": "admins,users", "X-Auth-Request-Issuer": o.Issuer}},
		{name: "opaque allowed via userinfo", uri: "/admin/2", headers: bearer(alice), status: 200, reached: true,
			upHeaders: map[string]string{"X-Auth-Request-User": "alice", "X-Auth-Request-Email": "alice@e2e.test"}},
		{name: "no token is 401 with challenge", uri: "/data/3", status: 401, challenge: "Bearer"},
		{name: "bad token is 401 invalid_token", uri: "/data/4", headers: bearer(remember("bad-token-" + strings.Repeat("y", 24))), status: 401, challenge: `error="invalid_token"`},
		{name: "missing group is 403", uri: "/admin/5", headers: bearer(userJWT), status: 403},
		{name: "client-sent identity header on an allowed request is replaced", uri: "/data/6",
			headers: map[string]string{"Authorization": "Bearer " + userJWT, "X-Auth-Request-User": "root", "X-Auth-Request-Email": "root@evil.test"},
			status:  200, reached: true, upHeaders: map[string]string{"X-Auth-Request-User": "e2e-user", "X-Auth-Request-Email": ""}},
		{name: "client-sent identity header on a public route never reaches upstream", uri: "/public/7",
			headers: map[string]string{"X-Auth-Request-User": "root", "X-Auth-Request-Groups": "admins"},
			status:  200, reached: true, upHeaders: map[string]string{"X-Auth-Request-User": "", "X-Auth-Request-Groups": ""}},
		{name: "client-sent X-Original-URI cannot move the check to a public path", uri: "/admin/8",
			headers: map[string]string{"X-Original-URI": "/public/x", "Authorization": "Bearer " + userJWT}, status: 403},
		// issue 12: the example removes a client's X-Forwarded-* from the subrequest.
		{name: "client-sent X-Forwarded-Uri cannot move the check to a public path", uri: "/admin/10",
			headers: map[string]string{"X-Forwarded-Uri": "/public/x", "X-Forwarded-Method": "GET", "Authorization": "Bearer " + userJWT}, status: 403},
		{name: "client-sent X-Forwarded-Uri without a token is still a 401", uri: "/admin/11",
			headers: map[string]string{"X-Forwarded-Uri": "/public/x"}, status: 401, challenge: "Bearer"},
		// issue 12: from a protected route onto the public one without a token.
		{name: "params dot-dot onto the public route is refused", uri: "/admin/..;/public/12", status: 500},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := n.get(t, tc.uri, tc.headers)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d; body %q", resp.StatusCode, tc.status, body)
			}
			if c := resp.Header.Get("WWW-Authenticate"); !strings.Contains(c, tc.challenge) {
				t.Errorf("WWW-Authenticate %q, want it to contain %q", c, tc.challenge)
			}
			got := up.seen(tc.uri)
			if (got != nil) != tc.reached {
				t.Fatalf("upstream reached = %v, want %v", got != nil, tc.reached)
			}
			for k, want := range tc.upHeaders {
				if v := strings.Join(got.Values(k), ","); v != want {
					t.Errorf("upstream saw %s = %q, want %q", k, v, want)
				}
			}
		})
	}

	t.Run("fail closed when flaat-extauthz is stopped", func(t *testing.T) {
		s.Stop()
		resp, body := n.get(t, "/data/9", bearer(adminJWT))
		if resp.StatusCode < 500 {
			t.Fatalf("status %d with flaat-extauthz down, want a 5xx; body %q", resp.StatusCode, body)
		}
		if up.seen("/data/9") != nil {
			t.Fatal("the upstream was reached while flaat-extauthz was down")
		}
	})
}
