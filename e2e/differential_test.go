//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
)

// The differential test (issue 12): real proxies (nginx with examples/nginx, Caddy with
// examples/caddy) in front of two upstreams that read paths differently, and flaat-extauthz's
// gRPC Check as Envoy would call it. For every request an upstream actually served, the
// token must meet the requirement of the route the upstream says it served. The oracle
// never asks flaat-extauthz's own path code what a path means.

// Limits of the run: requests run on a bounded worker pool, each with its own deadline,
// and the whole table within diffBudget.
const (
	diffWorkers    = 8
	diffReqTimeout = 10 * time.Second
	diffBudget     = 6 * time.Minute
)

// diffRoutes are the routes of the test's policy and of both upstreams (same names).
// need is what a token must have to be served the route.
var diffRoutes = map[string]diffNeed{
	"public":      needNothing,
	"docs-read":   needNothing, // GET/HEAD under /docs
	"default":     needToken,
	"user":        needUsers,
	"user-public": needNothing, // under /user/public: a public area nested in a protected one
	"admin":       needAdmins,
	"docs-write":  needAdmins, // any other method under /docs
}

type diffNeed int

const (
	needNothing diffNeed = iota
	needToken
	needUsers
	needAdmins
)

// diffToken is one of the credentials the table is sent with.
type diffToken struct {
	name   string
	token  string // "" = no Authorization header
	groups []string
	// sub and groupsHeader are the X-Auth-Request-User and -Groups values
	// flaat-extauthz sends upstream for this token.
	sub, groupsHeader string
}

func (tk diffToken) meets(n diffNeed) bool {
	switch n {
	case needNothing:
		return true
	case needToken:
		return tk.token != ""
	case needUsers:
		return tk.token != "" && (contains(tk.groups, "users") || contains(tk.groups, "admins"))
	case needAdmins:
		return tk.token != "" && contains(tk.groups, "admins")
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// caseRule is how a policy of the test treats case, one per row of the "which one to
// use" table in docs/request-target.md.
type caseRule int

const (
	// caseSensitiveRoutes: nothing set (every component routes case-sensitively).
	caseSensitiveRoutes caseRule = iota
	// caseInsensitiveRoutes: every route case_insensitive: some component may ignore
	// case, so the case readings are compared.
	caseInsensitiveRoutes
	// caseInsensitiveAll: policy.paths.case_sensitive: false: every component ignores
	// case, the case-folded reading is the only one.
	caseInsensitiveAll
)

// differentialPolicy returns a Mutate for startServer that replaces the harness's policy
// with the routes above, treating case as rule says. forwarded sets
// server.http.forwarded ("" = the default). The order of the routes matters as it would
// in a real policy: docs-read (GET, HEAD) before docs-write.
func differentialPolicy(rule caseRule, forwarded string) func(map[string]any) {
	return func(cfg map[string]any) {
		writePolicy(cfg, rule)
		if forwarded != "" {
			cfg["server"].(map[string]any)["http"] = map[string]any{"forwarded": forwarded}
		}
	}
}

func writePolicy(cfg map[string]any, rule caseRule) {
	groups := func(g string) map[string]any {
		return map[string]any{"groups": map[string]any{"values": []any{g}}}
	}
	route := func(name, prefix string, m map[string]any) map[string]any {
		r := map[string]any{"name": name, "path": map[string]any{"prefix": prefix}}
		if rule == caseInsensitiveRoutes {
			r["case_insensitive"] = true
		}
		for k, v := range m {
			r[k] = v
		}
		return r
	}
	cfg["policy"] = map[string]any{
		"routes": []any{
			route("public", "/public", map[string]any{"public": true}),
			route("admin", "/admin", map[string]any{"require": groups("admins")}),
			// Nested in /user and listed before it: a path's routes are found by its
			// leading segments (the route index), the earliest listed wins.
			route("user-public", "/user/public", map[string]any{"public": true}),
			route("user", "/user", map[string]any{"require": groups("users")}),
			route("docs-read", "/docs", map[string]any{"public": true, "methods": []any{"GET", "HEAD"}}),
			route("docs-write", "/docs", map[string]any{"require": groups("admins")}),
		},
		"default": map[string]any{"authenticated": true},
	}
	if rule == caseInsensitiveAll {
		cfg["policy"].(map[string]any)["paths"] = map[string]any{"case_sensitive": false}
	}
	// Identity headers only (no debug lines per check): the table is thousands of checks.
	cfg["log"] = map[string]any{"level": "info", "format": "json"}
}

// diffPath is one request-target of the table, sent byte for byte as written.
type diffPath struct {
	name, target string
}

// diffPaths are the tricky request-targets: each tries to make some component read a
// different route than another. "A→B" names mean: looks like route A, may be read as B.
func diffPaths() []diffPath {
	long := strings.Repeat("a", 2000)
	longer := strings.Repeat("b", 7000)
	huge := strings.Repeat("c", 70000)
	return []diffPath{
		// plain controls
		{"plain admin", "/admin/x"},
		{"plain admin root", "/admin"},
		{"plain public", "/public/x"},
		{"plain user", "/user/x"},
		{"plain docs", "/docs/x"},
		{"plain default", "/other/x"},
		{"admin trailing slash", "/admin/"},
		{"adminx is not admin", "/adminx"},
		// a public area nested in a protected one (/user/public before /user)
		{"plain user-public", "/user/public/x"},
		{"user-public root", "/user/public"},
		{"user-publicx is user", "/user/publicx"},
		{"user-public→user ..", "/user/public/../x"},
		{"user-public→user %2e%2e", "/user/public/%2e%2e/x"},
		{"user-public→user ..;", "/user/public/..;/x"},
		{"user-public→user %2f..", "/user/public%2f..%2fx"},
		{"user→user-public //", "/user//public/x"},
		{"user→user-public ;", "/user;x/public/x"},
		{"user→user-public case", "/user/PUBLIC/x"},
		{"user→user-public %70", "/user/%70ublic/x"},
		// dot-segments as sent
		{"public→admin ..", "/public/../admin/x"},
		{"admin→public ..", "/admin/../public/x"},
		{"public→admin ../..", "/public/x/../../admin/x"},
		{"public . segment", "/public/./x"},
		{"admin . segment", "/admin/./x"},
		{"admin trailing ..", "/admin/.."},
		{"public trailing .. (root)", "/public/.."},
		{".. above root", "/../admin/x"},
		// dot-segments encoded
		{"admin→public %2e%2e", "/admin/%2e%2e/public/x"},
		{"admin→public %2E%2E", "/admin/%2E%2E/public/x"},
		{"admin→public .%2e", "/admin/.%2e/public/x"},
		{"admin→public %2e.", "/admin/%2e./public/x"},
		{"public→admin %2e%2e", "/public/%2e%2e/admin/x"},
		{"public→admin %2E%2e", "/public/%2E%2e/admin/x"},
		{"admin %2e segment", "/admin/%2e/x"},
		{"user→public %2e%2e", "/user/%2e%2e/public/x"},
		// double encoding
		{"admin→public %252e%252e", "/admin/%252e%252e/public/x"},
		{"public→admin %252e%252e", "/public/%252e%252e/admin/x"},
		{"public→admin %252f", "/public%252f..%252fadmin/x"},
		{"%2561dmin", "/%2561dmin/x"},
		// encoded slash and backslash
		{"admin→public %2f", "/admin%2f..%2fpublic/x"},
		{"public→admin %2f", "/public%2f..%2fadmin/x"},
		{"public→admin %2F upper", "/public%2F..%2Fadmin/x"},
		{"public→admin ..%2f", "/public/..%2fadmin/x"},
		{"admin→public ..%2f", "/admin/..%2fpublic/x"},
		{"public→admin ..%5c", "/public/..%5cadmin/x"},
		{"admin→public ..%5c", "/admin/..%5cpublic/x"},
		{"public→admin backslashes", `/public\..\admin\x`},
		{"admin→public backslashes", `/admin\..\public\x`},
		{"public→admin ..\\", `/public/..\admin/x`},
		{"admin→public ..\\", `/admin/..\public/x`},
		{"public%2fadmin one segment", "/public%2fadmin"},
		// ;params in every position
		{"admin→public ..;", "/admin/..;/public/x"},
		{"public→admin ..;", "/public/..;/admin/x"},
		{"admin;x=1", "/admin;x=1/x"},
		{"admin;", "/admin;/x"},
		{";x before admin", "/;x/admin/x"},
		{"public;/../admin", "/public;/../admin/x"},
		{"admin/x;.css", "/admin/x;.css"},
		{"public/x;/../../admin", "/public/x;/../../admin/x"},
		{"admin;jsessionid→public", "/admin;jsessionid=1/../public/x"},
		{"public/..;x=y/admin", "/public/..;x=y/admin/x"},
		{".; before admin", "/.;/admin/x"},
		{"public/.;/../admin", "/public/.;/../admin/x"},
		{"admin/;/../public", "/admin/;/../public/x"},
		{"public→admin %3b", "/public/..%3b/admin/x"},
		{"admin%3b", "/admin%3bx/y"},
		// double slashes
		{"//admin", "//admin/x"},
		{"public//../admin", "/public//../admin/x"},
		{"admin//../public", "/admin//../public/x"},
		{"public///..//admin", "/public///..//admin/x"},
		// case
		{"ADMIN", "/ADMIN/x"},
		{"Admin", "/Admin/x"},
		{"%41dmin", "/%41dmin/x"},
		{"PUBLIC/../admin", "/PUBLIC/../admin/x"},
		{"public/%2E%2E/ADMIN", "/public/%2E%2E/ADMIN/x"},
		{"Docs", "/Docs/x"},
		// encoded letters
		{"%61dmin", "/%61dmin/x"},
		{"adm%69n", "/adm%69n/x"},
		{"%70ublic", "/%70ublic/x"},
		// fragments and query
		{"public#/../admin", "/public/x#/../../admin/x"},
		{"admin#/public", "/admin/x#/public"},
		{"public/%23/../../admin", "/public/%23/../../admin/x"},
		{"public?/../admin", "/public?/../admin/x"},
		{"admin?public", "/admin/x?/public"},
		{"public%3f/../admin", "/public%3f/../../admin/x"},
		// over-long
		{"long public→admin", "/public/" + long + "/../../admin/x"},
		{"long admin→public", "/admin/" + longer + "/../../public/x"},
		{"huge public→admin", "/public/" + huge + "/../../admin/x"},
		// control bytes, non-UTF-8, look-alikes
		{"public/%00/../admin", "/public/%00/../../admin/x"},
		{"admin%00", "/admin%00/x"},
		{"public/%09/../admin", "/public/%09/../../admin/x"},
		{"admin/%ff/../public", "/admin/%ff/../../public/x"},
		{"public→admin overlong-dot %c0%ae", "/public/%c0%ae%c0%ae/admin/x"},
		{"public→admin overlong-slash %c0%af", "/public/..%c0%afadmin/x"},
		{"raw 0xff byte", "/admin/\xff/../../public/x"},
		{"raw UTF-8 one-dot-leader", "/admin/\u2024\u2024/public/x"},
		{"fullwidth a", "/%ef%bd%81dmin/x"},
		{"admin. trailing dot", "/admin./x"},
		{"admin%20", "/admin%20/x"},
		{"admin tab", "/admin%09/x"},
		// absolute-form
		{"absolute-form public→admin", "http://127.0.0.1/public/../admin/x"},
		{"absolute-form admin", "http://127.0.0.1/admin/x"},
	}
}

// diffVariant is a set of forwarded headers a client sends itself (spoofing).
type diffVariant struct {
	name    string
	headers [][2]string
}

var diffVariants = []diffVariant{
	{"no forwarded headers", nil},
	{"spoofed X-Original-*", [][2]string{{"X-Original-URI", "/public/spoof"}, {"X-Original-Method", "GET"}}},
	{"spoofed X-Forwarded-*", [][2]string{{"X-Forwarded-Uri", "/public/spoof"}, {"X-Forwarded-Method", "GET"}}},
	{"spoofed both", [][2]string{{"X-Original-URI", "/public/spoof"}, {"X-Original-Method", "GET"},
		{"X-Forwarded-Uri", "/public/spoof"}, {"X-Forwarded-Method", "GET"}}},
}

var diffMethods = []string{"GET", "POST"}

// --- the upstreams ---

// diffUpstream is an application that reports, in a JSON body, which route it served and
// the identity headers it received: {"upstream": name, "route": r, "id": X-Diff-Id,
// "user": X-Auth-Request-User, "groups": X-Auth-Request-Groups}.
type diffUpstream struct {
	name string
	addr string // host:port
	// caseRule is how this upstream's operator configures case: the upstream is the
	// only component that routes, so caseInsensitiveAll when it ignores case.
	caseRule caseRule
}

// startMuxUpstream runs a Go net/http ServeMux app in the test process. ServeMux
// matches on the escaped path split into segments that are unescaped one by one
// ("/admin/%2e%2e/public" is under "/admin/"), case-sensitively, and redirects a path
// that path.Clean changes instead of serving it.
func startMuxUpstream(t testing.TB) *diffUpstream {
	t.Helper()
	serve := func(route string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]string{"upstream": "go-mux", "route": route, "id": r.Header.Get("X-Diff-Id"),
				"user": strings.Join(r.Header.Values("X-Auth-Request-User"), ", "), "groups": strings.Join(r.Header.Values("X-Auth-Request-Groups"), ", ")})
		}
	}
	mux := http.NewServeMux()
	for _, p := range []struct{ pattern, route string }{
		{"/admin", "admin"}, {"/admin/", "admin"},
		{"/public", "public"}, {"/public/", "public"},
		{"/user/public", "user-public"}, {"/user/public/", "user-public"},
		{"/user", "user"}, {"/user/", "user"},
		{"GET /docs", "docs-read"}, {"GET /docs/", "docs-read"},
		{"/docs", "docs-write"}, {"/docs/", "docs-write"},
		{"/", "default"},
	} {
		mux.Handle(p.pattern, serve(p.route))
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &diffUpstream{name: "go-mux", addr: strings.TrimPrefix(srv.URL, "http://")}
}

// startExpressUpstream runs e2e/upstream/server.mjs (express with Tomcat-like path
// normalisation; its header comment documents the semantics).
func startExpressUpstream(t testing.TB) *diffUpstream {
	t.Helper()
	node := tool(t, "node")
	if _, err := os.Stat(filepath.Join(repoRoot, "e2e", "upstream", "node_modules", "express", "package.json")); err != nil {
		missing(t, "npm package express is not installed in e2e/upstream")
	}
	p := startProc(t, "express", t.TempDir(), nil, node, filepath.Join(repoRoot, "e2e", "upstream", "server.mjs"))
	var ready struct {
		Port int `json:"port"`
	}
	waitFor(t, p, "the express upstream's ready line", startTimeout, func() bool {
		sc := bufio.NewScanner(strings.NewReader(p.Log()))
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), "E2E-UPSTREAM-READY "); ok {
				return json.Unmarshal([]byte(line), &ready) == nil && ready.Port != 0
			}
		}
		return false
	})
	return &diffUpstream{name: "express", addr: fmt.Sprintf("127.0.0.1:%d", ready.Port), caseRule: caseInsensitiveAll}
}

// --- raw HTTP/1.1 ---

// rawRequest sends one request with the request-target written byte for byte (no client
// library normalises it) and returns the status and body. err is a transport failure
// (the peer closed the connection, a time-out): the request was not served.
func rawRequest(ctx context.Context, addr, method, target string, headers [][2]string) (int, []byte, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: api.e2e.test\r\nConnection: close\r\n", method, target)
	if method == "POST" {
		b.WriteString("Content-Length: 0\r\n")
	}
	for _, h := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return 0, nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}

// served is an upstream's report of a request it served.
type served struct {
	Upstream, Route, ID string
	User, Groups        string // identity headers the upstream received
}

// servedRoute returns what an upstream reports in body; Route is "" when the response
// is not an upstream's answer to request id (a proxy's or flaat-extauthz's denial, an
// upstream's refusal, a redirect).
func servedRoute(t testing.TB, status int, body []byte, id string) served {
	var r served
	if status < 200 || status > 299 || json.Unmarshal(body, &r) != nil || r.Route == "" {
		return served{}
	}
	if r.ID != id {
		t.Errorf("an upstream answered request %q with the id %q (body %q)", id, r.ID, body)
	}
	return r
}

// --- the run ---

// diffCase is one request of the table and what happened to it.
type diffCase struct {
	lane    string // front (nginx…, caddy…, envoy-grpc) + "→" + upstream
	path    diffPath
	method  string
	token   diffToken
	variant diffVariant
	// results
	status   int    // HTTP status at the client, or the Check's denied/ok HTTP status
	route    string // the route the upstream served ("" = not served)
	beyond   bool
	identity string // set when the upstream received identity headers not from flaat-extauthz
	err      error
}

func (c *diffCase) String() string {
	target := c.path.target
	if len(target) > 120 {
		target = fmt.Sprintf("%s…(%d bytes)", target[:120], len(target))
	}
	return fmt.Sprintf("%s: %s %q [%s] token=%s, %s: status %d, served route %q",
		c.lane, c.method, target, c.path.name, c.token.name, c.variant.name, c.status, c.route)
}

// TestDifferential is issue 12's differential end-to-end test. It prints one line,
// "differential: N requests, M allowed, K allowed beyond policy", and fails when K > 0.
func TestDifferential(t *testing.T) {
	o := startOP(t)
	tokens := []diffToken{
		{name: "none"},
		{name: "user", token: o.jwtToken(t, "e2e-user"), groups: []string{"users"}, sub: "e2e-user", groupsHeader: "users"},
		{name: "admin", token: o.jwtToken(t, "e2e-admin"), groups: []string{"admins", "users"}, sub: "e2e-admin", groupsHeader: "admins,users"},
	}
	upstreams := []*diffUpstream{startMuxUpstream(t), startExpressUpstream(t)}

	// Each proxy runs three times per upstream: with the example config as shipped and
	// without its header-hygiene lines (as a user who skipped them would run it), both
	// against flaat-extauthz's default (server.http.forwarded: auto), and without the
	// hygiene lines against a flaat-extauthz told which proxy it is behind
	// (forwarded: nginx / caddy). flaat-extauthz must be safe in every combination.
	// Each upstream has its own flaat-extauthz processes, configured as its operator
	// would (see differentialPolicy). The shared lanes below add one policy for both.
	nginxBare := withoutLines(t, "nginx", nginxHygiene)
	caddyBare := withoutLines(t, "caddy", caddyHygiene)
	type front struct {
		name, addr string
		up         *diffUpstream
	}
	var fronts []front
	auto := map[*diffUpstream]*server{}
	for _, up := range upstreams {
		s := startServer(t, o, serverOpts{Mutate: differentialPolicy(up.caseRule, "")})
		sNginx := startServer(t, o, serverOpts{Mutate: differentialPolicy(up.caseRule, "nginx")})
		sCaddy := startServer(t, o, serverOpts{Mutate: differentialPolicy(up.caseRule, "caddy")})
		auto[up] = s
		fronts = append(fronts,
			front{"nginx", hostPort(startNginx(t, s.HTTPAddr, up.addr).URL), up},
			front{"nginx-bare", hostPort(startNginx(t, s.HTTPAddr, up.addr, nginxBare).URL), up},
			front{"nginx-bare/fwd=nginx", hostPort(startNginx(t, sNginx.HTTPAddr, up.addr, nginxBare).URL), up},
			front{"caddy", hostPort(startCaddy(t, s.HTTPAddr, up.addr).URL), up},
			front{"caddy-bare", hostPort(startCaddy(t, s.HTTPAddr, up.addr, caddyBare).URL), up},
			front{"caddy-bare/fwd=caddy", hostPort(startCaddy(t, sCaddy.HTTPAddr, up.addr, caddyBare).URL), up},
		)
	}
	// The shared lanes: ONE flaat-extauthz with ONE policy (every route
	// case_insensitive: some component, express, ignores case) in front of both
	// upstreams, through both example proxies and the gRPC Check. Safe for the
	// case-sensitive Go mux only because a path whose case readings select routes with
	// different requirements is denied: GET /Docs/x without a token is docs-read
	// (public) for express and the token-only default for the Go mux.
	shared := startServer(t, o, serverOpts{Mutate: differentialPolicy(caseInsensitiveRoutes, "")})
	for _, up := range upstreams {
		fronts = append(fronts,
			front{"nginx/shared", hostPort(startNginx(t, shared.HTTPAddr, up.addr).URL), up},
			front{"caddy/shared", hostPort(startCaddy(t, shared.HTTPAddr, up.addr).URL), up},
		)
	}

	ctx, cancel := context.WithTimeout(context.Background(), diffBudget)
	defer cancel()
	paths := diffPaths()
	var cases []*diffCase
	for _, f := range fronts {
		for _, p := range paths {
			for _, m := range diffMethods {
				for _, tk := range tokens {
					for _, v := range diffVariants {
						cases = append(cases, &diffCase{lane: f.name + "→" + f.up.name, path: p, method: m, token: tk, variant: v})
					}
				}
			}
		}
	}
	addrOf := map[string]string{}
	for _, f := range fronts {
		addrOf[f.name+"→"+f.up.name] = f.addr
	}
	var seq atomic.Int64
	runPool(ctx, cases, func(ctx context.Context, c *diffCase) {
		id := fmt.Sprintf("d%d", seq.Add(1))
		hdr := append([][2]string{{"X-Diff-Id", id}, {"X-Auth-Request-User", "mallory"}, {"X-Auth-Request-Groups", "admins"}}, c.variant.headers...)
		if c.token.token != "" {
			hdr = append(hdr, [2]string{"Authorization", "Bearer " + c.token.token})
		}
		rctx, cancel := context.WithTimeout(ctx, diffReqTimeout)
		defer cancel()
		status, body, err := rawRequest(rctx, addrOf[c.lane], c.method, c.path.target, hdr)
		c.status, c.err = status, err
		got := servedRoute(t, status, body, id)
		c.route = got.Route
		// The identity headers the upstream saw must be flaat-extauthz's for this token or
		// absent, never the client's spoofed copies.
		if got.Route != "" && (got.User != "" && got.User != c.token.sub || got.Groups != "" && got.Groups != c.token.groupsHeader) {
			c.identity = fmt.Sprintf("upstream saw X-Auth-Request-User %q, X-Auth-Request-Groups %q", got.User, got.Groups)
		}
	})

	// The gRPC lane: the same table as Envoy would send it to Check (path not decoded,
	// query kept, the client's headers passed on), judged against the route each
	// upstream serves for that exact request-target when asked directly.
	for _, up := range upstreams {
		cases = append(cases, grpcLane(t, ctx, "envoy-grpc", auto[up], up, paths, tokens)...)
		cases = append(cases, grpcLane(t, ctx, "envoy-grpc/shared", shared, up, paths, tokens)...)
	}

	// The oracle's canary: the express upstream behind a policy whose operator forgot
	// that express routes case-insensitively. Only a differential test can see this
	// misconfiguration, and it must: /ADMIN/x is then allowed to a user as the default
	// route and express serves it as admin. Not part of the summary line.
	express := upstreams[1]
	canary := startServer(t, o, serverOpts{Mutate: differentialPolicy(caseSensitiveRoutes, "")})
	canaryCases := grpcLane(t, ctx, "envoy-grpc/canary", canary, express, paths, tokens)

	if ctx.Err() != nil {
		t.Fatalf("the differential table did not finish within %s", diffBudget)
	}
	judge(t, cases)

	found, sawAdmin := 0, false
	for _, c := range canaryCases {
		if c.route != "" && !c.token.meets(diffRoutes[c.route]) {
			found++
			sawAdmin = sawAdmin || c.path.name == "ADMIN" && c.token.name == "user"
		}
	}
	t.Logf("oracle canary (express behind a case-sensitive policy): %d requests served beyond policy", found)
	if !sawAdmin {
		t.Errorf("oracle canary: GET /ADMIN/x with a user token was not found served beyond policy by express behind a case-sensitive policy: the oracle or the setup is broken")
	}
}

func hostPort(u string) string { return strings.TrimPrefix(u, "http://") }

// Header-hygiene lines of the example configs: they remove a client's copy of a
// forwarded header before the auth request (nginx: set to "", Caddy: header_up -Name).
var (
	nginxHygiene = regexp.MustCompile(`(?mi)^[ \t]*proxy_set_header[ \t]+X-(Forwarded|Original)-[A-Za-z-]+[ \t]+""[ \t]*;[^\n]*\n`)
	caddyHygiene = regexp.MustCompile(`(?mi)^[ \t]*header_up[ \t]+-X-(Forwarded|Original)-[A-Za-z-]+[ \t]*\n`)
)

// withoutLines returns an edit that deletes the lines re matches; the example must have
// at least one (the examples ship with their hygiene lines).
func withoutLines(t testing.TB, what string, re *regexp.Regexp) func(string) string {
	return func(conf string) string {
		n := len(re.FindAllString(conf, -1))
		if n == 0 {
			t.Fatalf("e2e: the %s example has no header-hygiene line (%s)", what, re)
		}
		t.Logf("e2e: %s-bare: %d header-hygiene line(s) removed from the example", what, n)
		return re.ReplaceAllString(conf, "")
	}
}

// runPool runs fn on every case with diffWorkers goroutines, stopping when ctx ends.
func runPool(ctx context.Context, cases []*diffCase, fn func(context.Context, *diffCase)) {
	work := make(chan *diffCase)
	var wg sync.WaitGroup
	for i := 0; i < diffWorkers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				fn(ctx, c)
			}
		}()
	}
	for _, c := range cases {
		if ctx.Err() != nil {
			break
		}
		work <- c
	}
	close(work)
	wg.Wait()
}

// grpcLane asks up directly which route it serves for every path and method, then sends
// the table to s's Check as Envoy in front of up would, and returns one case per check,
// in the lane front+"→"+up.name.
func grpcLane(t *testing.T, ctx context.Context, front string, s *server, up *diffUpstream, paths []diffPath, tokens []diffToken) []*diffCase {
	t.Helper()
	type key struct{ target, method string }
	var mu sync.Mutex
	routes := map[key]string{}
	var probes []*diffCase
	for _, p := range paths {
		for _, m := range diffMethods {
			probes = append(probes, &diffCase{path: p, method: m})
		}
	}
	var seq atomic.Int64
	runPool(ctx, probes, func(ctx context.Context, c *diffCase) {
		id := fmt.Sprintf("p%d", seq.Add(1))
		rctx, cancel := context.WithTimeout(ctx, diffReqTimeout)
		defer cancel()
		status, body, _ := rawRequest(rctx, up.addr, c.method, c.path.target, [][2]string{{"X-Diff-Id", id}})
		route := servedRoute(t, status, body, id).Route
		mu.Lock()
		routes[key{c.path.target, c.method}] = route
		mu.Unlock()
	})

	conn, err := grpc.NewClient(s.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)

	var checks []*diffCase
	for _, p := range paths {
		for _, m := range diffMethods {
			for _, tk := range tokens {
				for _, v := range diffVariants {
					checks = append(checks, &diffCase{lane: front + "→" + up.name, path: p, method: m, token: tk, variant: v})
				}
			}
		}
	}
	runPool(ctx, checks, func(ctx context.Context, c *diffCase) {
		if !utf8.ValidString(c.path.target) {
			// A protobuf string cannot carry it; Envoy's codec refuses such a request
			// line before any filter runs.
			c.err = fmt.Errorf("not valid UTF-8: not sendable in a CheckRequest")
			return
		}
		headers := map[string]string{"x-request-id": "grpc-diff"}
		for _, h := range c.variant.headers {
			headers[strings.ToLower(h[0])] = h[1]
		}
		if c.token.token != "" {
			headers["authorization"] = "Bearer " + c.token.token
		}
		path := c.path.target
		if strings.HasPrefix(path, "http://") { // Envoy sends the path of an absolute-form target
			path = "/" + strings.SplitN(strings.TrimPrefix(path, "http://"), "/", 2)[1]
		}
		req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Id: "grpc-diff", Method: c.method, Host: "api.e2e.test", Path: path, Scheme: "http", Protocol: "HTTP/1.1",
				Headers: headers,
			}},
		}}
		rctx, cancel := context.WithTimeout(ctx, diffReqTimeout)
		defer cancel()
		resp, err := client.Check(rctx, req)
		if err != nil {
			c.err = err
			return
		}
		if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
			c.status = 200
			// Envoy would now forward the request-target to up unchanged.
			c.route = routes[key{c.path.target, c.method}]
		} else {
			c.status = int(resp.GetDeniedResponse().GetStatus().GetCode())
		}
	})
	return checks
}

// judge applies the oracle, prints the summary line and fails on any request served
// beyond policy, and on results that would make the run meaningless.
func judge(t *testing.T, cases []*diffCase) {
	t.Helper()
	type tally struct {
		n, allowed, beyond, errs int
		status                   map[int]int
	}
	lanes := map[string]*tally{}
	var total tally
	var beyond, spoofed []*diffCase
	for _, c := range cases {
		if c.identity != "" {
			spoofed = append(spoofed, c)
		}
		l := lanes[c.lane]
		if l == nil {
			l = &tally{status: map[int]int{}}
			lanes[c.lane] = l
		}
		l.n++
		l.status[c.status]++
		total.n++
		if c.err != nil {
			l.errs++
		}
		if c.route == "" {
			continue
		}
		l.allowed++
		total.allowed++
		need, ok := diffRoutes[c.route]
		if !ok {
			t.Errorf("%v: the upstream reported an unknown route", c)
			continue
		}
		if !c.token.meets(need) {
			c.beyond = true
			l.beyond++
			total.beyond++
			beyond = append(beyond, c)
		}
	}
	names := make([]string, 0, len(lanes))
	for name := range lanes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		l := lanes[name]
		codes := make([]int, 0, len(l.status))
		for c := range l.status {
			codes = append(codes, c)
		}
		sort.Ints(codes)
		var hist strings.Builder
		for _, c := range codes {
			fmt.Fprintf(&hist, " %d×%d", c, l.status[c])
		}
		t.Logf("lane %-30s %5d requests, %5d allowed, %4d beyond policy, %4d not sent or no answer; statuses:%s",
			name, l.n, l.allowed, l.beyond, l.errs, hist.String())
		// A lane in which nothing (or everything) got through tests nothing.
		if l.allowed == 0 || l.allowed == l.n {
			t.Errorf("lane %s: %d of %d requests allowed: the setup is broken, not the policy", name, l.allowed, l.n)
		}
	}
	fmt.Printf("differential: %d requests, %d allowed, %d allowed beyond policy\n", total.n, total.allowed, total.beyond)
	if out := os.Getenv(diffTableEnv); out != "" {
		writeTable(t, out, cases)
	}

	sort.Slice(beyond, func(i, j int) bool { return beyond[i].String() < beyond[j].String() })
	for i, c := range beyond {
		if i == 200 {
			t.Errorf("… and %d more", len(beyond)-i)
			break
		}
		t.Errorf("beyond policy: %v", c)
	}
	for i, c := range spoofed {
		if i == 50 {
			t.Errorf("… and %d more", len(spoofed)-i)
			break
		}
		t.Errorf("identity headers not from flaat-extauthz: %v: %s", c, c.identity)
	}
	controls(t, cases)
}

// diffTableEnv names a file to write every case of the run to, one tab-separated line
// each (lane, method, path name, token, variant, status, route served, beyond), for
// reading what each component did with a path.
const diffTableEnv = "FLAAT_E2E_DIFF_TABLE"

func writeTable(t *testing.T, name string, cases []*diffCase) {
	t.Helper()
	var b strings.Builder
	b.WriteString("lane\tmethod\tpath\ttoken\tvariant\tstatus\troute\tbeyond\n")
	for _, c := range cases {
		fmt.Fprintf(&b, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%v\n", c.lane, c.method, c.path.name, c.token.name, c.variant.name, c.status, c.route, c.beyond)
	}
	if err := os.WriteFile(name, []byte(b.String()), 0o644); err != nil {
		t.Errorf("%s: %v", diffTableEnv, err)
	}
}

// controls are plain requests whose outcome is known: if these do not come out as
// expected, the proxies, upstreams or tokens are not what the table assumes.
func controls(t *testing.T, cases []*diffCase) {
	t.Helper()
	want := map[string]map[string]string{ // path name → token → route served ("" = denied)
		"plain admin":          {"none": "", "user": "", "admin": "admin"},
		"plain public":         {"none": "public", "user": "public", "admin": "public"},
		"plain user":           {"none": "", "user": "user", "admin": "user"},
		"plain user-public":    {"none": "user-public", "user": "user-public", "admin": "user-public"},
		"user-publicx is user": {"none": "", "user": "user", "admin": "user"},
		"plain default":        {"none": "", "user": "default", "admin": "default"},
		"plain docs":           {"none": "docs-read", "user": "docs-read", "admin": "docs-read"},
	}
	// Behind the shared policy (every route case_insensitive), /Docs/x is docs-read to
	// express and the default to the Go mux: denied for every token, whichever upstream.
	shared := map[string]map[string]string{
		"Docs": {"none": "", "user": "", "admin": ""},
	}
	for _, c := range cases {
		w, ok := want[c.path.name]
		if !ok && strings.Contains(c.lane, "/shared→") {
			w, ok = shared[c.path.name]
		}
		if !ok || c.method != "GET" || c.variant.name != "no forwarded headers" {
			continue
		}
		if got := c.route; got != w[c.token.name] {
			t.Errorf("control %v: served %q, want %q", c, got, w[c.token.name])
		}
	}
}
