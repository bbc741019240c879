package policy

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNormalizePath(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" : ErrBadPath
	}{
		{"/", "/"},
		{"/admin", "/admin"},
		{"/admin/", "/admin"},
		{"//admin", "/admin"},
		{"/a//b///c", "/a/b/c"},
		{"/a/../admin", "/admin"},
		{"/a/./b/.", "/a/b"},
		{"/../../admin", "/admin"},
		{"/%61dmin", "/admin"},
		{"/admin%2F", "/admin"},
		{"/admin%2f..%2Fx", "/x"},
		{"/admin?x", "/admin"},
		{"/admin?x=/../../public", "/admin"},
		{"/admin#frag", "/admin"},
		{"/a%3Fb", "/a?b"},
		{"/a%23b", "/a#b"},
		{"/a+b", "/a+b"},
		{"/a%20b", "/a b"},
		{"/%2e%2e/admin", "/admin"},
		{"/public/%2e%2e/admin", "/admin"},
		{"/public\\..\\admin", "/admin"},
		{"/public%5c..%5cadmin", "/admin"},
		{"/caf%C3%A9", "/café"},
		{"/admin;jsessionid=1", "/admin"},
		{"/public/..;/admin", "/admin"},
		{"/public/..%3B/admin", "/admin"},
		{"/admin;x/y;z=1/", "/admin/y"},
		{"/;x/admin", "/admin"},
		{"/;", "/"},
		{"/a%25b", "/a%b"},
		{"/%25", "/%"},
		{"", ""},
		{"admin", ""},
		{"?x", ""},
		{"*", ""},
		{"/a%zz", ""},
		{"/a%2", ""},
		{"/a%", ""},
		{"/a%00b", ""},
		{"/a\x00b", ""},
		{"/a%0a", ""},
		{"/a\tb", ""},
		{"/a%7f", ""},
		{"/a%ff", ""},
		{"/admin%252F", ""},
		{"/%252e%252e/admin", ""},
		{"/a%255Cb", ""},
		{"/%2561dmin", ""},     // 'a' encoded twice
		{"/%2541DMIN", ""},     // 'A' encoded twice
		{"/a%252525b", ""},     // '%' encoded three times
		{"/a%257Eb", ""},       // '~' encoded twice
		{"/a%2520b", "/a%20b"}, // an encoded space stays data: it must be encoded
		{"/a%253Fb", "/a%3Fb"}, // so does an encoded '?'
		{"/a%25%32%46b", ""},
		{"/" + strings.Repeat("a", maxPathLen), ""},
	} {
		got, err := NormalizePath(tc.in)
		if tc.want == "" {
			if err == nil || !errors.Is(err, ErrBadPath) {
				t.Errorf("%q: got %q, %v; want ErrBadPath", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

const routesConfig = `{
  "access_levels": {
    "user":  {"authenticated": true},
    "admin": {"all_of": ["user", {"groups": {"values": ["admins"]}}]},
    "ops":   {"groups": {"values": ["ops"]}}
  },
  "routes": [
    {"name": "health", "path": {"exact": "/healthz"}, "methods": ["GET", "head"], "public": true},
    {"name": "admin", "path": {"prefix": "/admin"}, "require": "admin"},
    {"name": "api-write", "host": ["api.example.org", "*.api.example.org"], "path": {"regex": "/v[0-9]+/items(/.*)?"}, "methods": "POST", "require": {"scope": "write"}},
    {"name": "api", "host": "api.example.org", "require": "user"},
    {"name": "root-exact", "path": {"exact": "/"}, "public": true}
  ],
  "default": "ops"
}`

func TestSelectRoutes(t *testing.T) {
	e := mustEngine(t, routesConfig)
	for _, tc := range []struct {
		name   string
		req    Request
		want   string
		source Source
		public bool
	}{
		{"health", Request{Method: "GET", Path: "/healthz"}, "health", SourceRoute, true},
		{"health head lower-case", Request{Method: "head", Path: "/healthz/"}, "health", SourceRoute, true},
		{"health wrong method", Request{Method: "POST", Path: "/healthz"}, "default", SourceDefault, false},
		{"health suffix is not exact", Request{Method: "GET", Path: "/healthz/x"}, "default", SourceDefault, false},
		{"admin", Request{Method: "GET", Path: "/admin"}, "admin", SourceRoute, false},
		{"admin below", Request{Method: "DELETE", Path: "/admin/users/1"}, "admin", SourceRoute, false},
		{"administrator is not below admin", Request{Method: "GET", Path: "/administrator"}, "default", SourceDefault, false},
		// Paths whose every reading selects /admin pick /admin (the ambiguous ones are
		// in TestSelectAmbiguous).
		{"attack /a/../admin", Request{Method: "GET", Path: "/a/../admin"}, "admin", SourceRoute, false},
		{"attack /admin?x", Request{Method: "GET", Path: "/admin?x"}, "admin", SourceRoute, false},
		{"attack /healthz/../admin", Request{Method: "GET", Path: "/healthz/../admin"}, "admin", SourceRoute, false},
		{"attack /./admin/.", Request{Method: "GET", Path: "/./admin/."}, "admin", SourceRoute, false},
		{"encoded byte inside an admin segment", Request{Method: "GET", Path: "/admin/%61"}, "admin", SourceRoute, false},
		{"params below admin", Request{Method: "GET", Path: "/admin/x;v=1"}, "admin", SourceRoute, false},
		{"api write", Request{Method: "POST", Host: "API.Example.org:8443", Path: "/v2/items/7"}, "api-write", SourceRoute, false},
		{"api write wildcard host", Request{Method: "POST", Host: "eu.api.example.org.", Path: "/v1/items"}, "api-write", SourceRoute, false},
		{"api write regex anchored", Request{Method: "POST", Host: "api.example.org", Path: "/x/v1/items"}, "api", SourceRoute, false},
		{"api read", Request{Method: "GET", Host: "api.example.org", Path: "/v2/items"}, "api", SourceRoute, false},
		{"wildcard does not match bare", Request{Method: "POST", Host: "xapi.example.org", Path: "/v1/items"}, "default", SourceDefault, false},
		{"wildcard needs a label", Request{Method: "POST", Host: ".api.example.org", Path: "/v1/items"}, "default", SourceDefault, false},
		{"other host", Request{Method: "GET", Host: "www.example.org", Path: "/v2/items"}, "default", SourceDefault, false},
		{"root exact", Request{Method: "GET", Path: "/"}, "root-exact", SourceRoute, true},
		{"root via dots", Request{Method: "GET", Path: "/a/.."}, "root-exact", SourceRoute, true},
		{"context extension wins", Request{Method: "GET", Path: "/healthz", ContextExtensions: map[string]string{"flaat_policy": "admin"}}, "admin", SourceContextExtension, false},
		{"empty context extension ignored", Request{Method: "GET", Path: "/healthz", ContextExtensions: map[string]string{"flaat_policy": ""}}, "health", SourceRoute, true},
		{"other context extension key ignored", Request{Method: "GET", Path: "/healthz", ContextExtensions: map[string]string{"policy": "admin"}}, "health", SourceRoute, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sel, err := e.Select(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if sel.Name != tc.want || sel.Source != tc.source || sel.Public != tc.public {
				t.Fatalf("got %q/%s public=%v, want %q/%s public=%v", sel.Name, sel.Source, sel.Public, tc.want, tc.source, tc.public)
			}
			if sel.Description == "" {
				t.Fatal("no description")
			}
		})
	}
}

func TestSelectErrors(t *testing.T) {
	e := mustEngine(t, routesConfig)
	for _, tc := range []struct {
		req  Request
		want error
	}{
		{Request{Method: "GET", Path: "/admin%00"}, ErrBadPath},
		{Request{Method: "GET", Path: "/admin%252F"}, ErrBadPath},
		{Request{Method: "GET", Path: "admin"}, ErrBadPath},
		{Request{Method: "GET", Path: "/healthz%"}, ErrBadPath},
		{Request{Method: "GET", Path: "/x", ContextExtensions: map[string]string{"flaat_policy": "root"}}, ErrUnknownAccessLevel},
		{Request{Method: "GET", Path: "/x%zz", ContextExtensions: map[string]string{"flaat_policy": "admin"}}, ErrBadPath},
	} {
		sel, err := e.Select(tc.req)
		if !errors.Is(err, tc.want) {
			t.Errorf("%+v: err %v, want %v", tc.req, err, tc.want)
		}
		if sel.Evaluate(map[string]any{"sub": "u", "iss": "i", "groups": []any{"admins", "ops"}}).Allowed {
			t.Errorf("%+v: selection returned with an error allows", tc.req)
		}
	}
}

func TestPrefixRoot(t *testing.T) {
	e := mustEngine(t, `{"routes":[{"name":"api","path":{"prefix":"/api/"},"require":{"authenticated":true}},{"name":"all","path":{"prefix":"/"},"public":true}]}`)
	for p, want := range map[string]string{"/": "all", "/x/y": "all", "/api": "api", "/api/": "api", "/api/v1": "api", "/apix": "all"} {
		sel, err := e.Select(Request{Path: p})
		if err != nil || sel.Name != want {
			t.Errorf("%s: %q %v, want %q", p, sel.Name, err, want)
		}
	}
}

func TestContextExtensionKey(t *testing.T) {
	e := mustEngine(t, `{"context_extension_key":"policy","access_levels":{"a":{"authenticated":true}},"routes":[{"public":true}]}`)
	sel, err := e.Select(Request{Path: "/", ContextExtensions: map[string]string{"policy": "a", "flaat_policy": "zzz"}})
	if err != nil || sel.Name != "a" || sel.Source != SourceContextExtension || sel.Public {
		t.Fatalf("%+v %v", sel, err)
	}
	if _, err := e.Level("nope"); !errors.Is(err, ErrUnknownAccessLevel) {
		t.Fatalf("Level(nope): %v", err)
	}
	sel, err = e.Level("a")
	if err != nil || sel.Source != SourceAccessLevel || sel.Description != `access level "a" = authenticated` {
		t.Fatalf("%+v %v", sel, err)
	}
}

func TestSelectEvaluateEndToEnd(t *testing.T) {
	e := mustEngine(t, routesConfig)
	admin := map[string]any{"sub": "u", "iss": "i", "groups": []any{"admins"}}
	user := map[string]any{"sub": "u", "iss": "i", "groups": []any{"ops"}}
	for _, tc := range []struct {
		path   string
		claims map[string]any
		want   bool
	}{
		{"/admin/x", admin, true},
		{"/admin/x", user, false},
		{"//admin", user, false},
		{"/%61dmin/", user, false},
		{"//admin", admin, false}, // ambiguous: denied to everyone
		{"/healthz", nil, true},
		{"/other", user, true}, // default: ops
		{"/other", admin, false},
	} {
		sel, err := e.Select(Request{Method: "GET", Path: tc.path})
		if err != nil && tc.want {
			t.Fatal(err)
		}
		if got := err == nil && sel.Evaluate(tc.claims).Allowed; got != tc.want {
			t.Errorf("%s %v: allowed=%v want %v", tc.path, tc.claims, got, tc.want)
		}
	}
}

func TestNormalizeHost(t *testing.T) {
	for in, want := range map[string]string{
		"Example.ORG": "example.org", "example.org:443": "example.org", "example.org.": "example.org",
		"[::1]:8080": "[::1]", "[::1]": "[::1]", "": "", " a ": "a", "::1": "::1",
	} {
		if got := normalizeHost(in); got != want {
			t.Errorf("%q: %q want %q", in, got, want)
		}
	}
}

func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{
		"/", "//admin", "/a/../admin", "/%61dmin", "/admin%2F", "/admin?x", "/a%zz", "/%2e%2e/%2e",
		"/a\\b", "/%252F", "/caf%C3%A9", "/a/./b//../c/", "", "admin", "/%", "/#?", "/p/..;/a", "/a;b/c;d",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		n, err := NormalizePath(p)
		if slow, serr := normalizePath(p, false); slow != n || (serr == nil) != (err == nil) {
			t.Fatalf("%q: fast path %q, %v; full decoding %q, %v", p, n, err, slow, serr)
		}
		if err != nil {
			if !errors.Is(err, ErrBadPath) {
				t.Fatalf("%q: error %v does not wrap ErrBadPath", p, err)
			}
			return
		}
		if !strings.HasPrefix(n, "/") || !utf8.ValidString(n) {
			t.Fatalf("%q → %q: not an absolute UTF-8 path", p, n)
		}
		if n != "/" && strings.HasSuffix(n, "/") || strings.ContainsAny(n, "\\;") || strings.Contains(n, "//") {
			t.Fatalf("%q → %q: not canonical", p, n)
		}
		for seg := range strings.SplitSeq(n, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("%q → %q: dot segment left", p, n)
			}
		}
		for _, r := range n {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("%q → %q: control character", p, n)
			}
		}
		// Without escapes, the result is a fixed point: matching it again picks the
		// same route.
		if !strings.ContainsAny(n, "%?#") {
			if again, err := NormalizePath(n); err != nil || again != n {
				t.Fatalf("%q → %q → %q, %v", p, n, again, err)
			}
		}
	})
}

// The Engine is shared by all request goroutines (run with -race).
func TestEngineConcurrentUse(t *testing.T) {
	e := mustEngine(t, routesConfig)
	claims := map[string]any{"sub": "u", "iss": "i", "groups": []any{"admins"}}
	done := make(chan bool)
	for g := 0; g < 4; g++ {
		go func() {
			ok := true
			for i := 0; i < 200; i++ {
				sel, err := e.Select(Request{Method: "GET", Path: "/admin/x"})
				ok = ok && err == nil && sel.Evaluate(claims).Allowed
			}
			done <- ok
		}()
	}
	for g := 0; g < 4; g++ {
		if !<-done {
			t.Fatal("concurrent evaluation failed")
		}
	}
}
