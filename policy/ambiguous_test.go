package policy

import (
	"errors"
	"net/url"
	"path"
	"strings"
	"testing"
)

// bypassConfig is the configuration of issue 12's report: an admin area and a public
// area side by side.
const bypassConfig = `{
  "routes": [
    {"name": "admin",  "path": {"prefix": "/admin"},  "require": {"groups": {"values": ["admins"]}}},
    {"name": "public", "path": {"prefix": "/public"}, "public": true}
  ]
}`

// TestAmbiguousPathDenied: a path whose plausible readings select different routes is an
// ErrAmbiguousPath, never the permissive reading.
func TestAmbiguousPathDenied(t *testing.T) {
	e := mustEngine(t, bypassConfig)
	for _, tc := range []struct {
		name, path string
	}{
		{"params dot-dot (issue 12)", "/admin/..;/public"},
		{"encoded dot-dot (issue 12)", "/admin/%2e%2e/public"},
		{"encoded dot-dot upper case", "/admin/%2E%2E/public"},
		{"half-encoded dot-dot", "/admin/.%2e/public"},
		{"params on the dot-dot", "/admin/..;x=1/public"},
		{"encoded params", "/admin/..%3B/public"},
		{"opposite direction params", "/public/..;/admin"},
		{"opposite direction encoded", "/public/%2e%2e/admin"},
		{"backslash", "/admin\\..\\public"},
		{"encoded backslash", "/admin%5c..%5cpublic"},
		{"encoded slash", "/admin%2f..%2fpublic"},
		{"encoded slash into admin", "/public%2f..%2fadmin"},
		{"fragment hides a dot-dot", "/public#/../admin"},
		{"double slash", "//admin"},
		{"double slash dot-dot", "/public//../admin"},
		{"encoded letter", "/%61dmin"},
		{"encoded trailing slash", "/admin%2F"},
		{"jsessionid on the route segment", "/admin;jsessionid=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sel, err := e.Select(Request{Method: "GET", Path: tc.path})
			if !errors.Is(err, ErrAmbiguousPath) {
				t.Fatalf("got %q, %v; want ErrAmbiguousPath", sel.Name, err)
			}
			var ae *AmbiguousPathError
			if !errors.As(err, &ae) || len(ae.Readings) < 2 || ae.Readings[0].Route == ae.Readings[len(ae.Readings)-1].Route {
				t.Fatalf("error does not name two routes: %#v", ae)
			}
			if sel.Evaluate(nil).Allowed {
				t.Fatal("the selection returned with the error allows")
			}
		})
	}
}

// TestUnambiguousPathsKeepTheirRoute: paths that read one way (ordinary paths, and
// escapes or parameters that no reading moves across a route boundary) keep the route
// they always had.
func TestUnambiguousPathsKeepTheirRoute(t *testing.T) {
	e := mustEngine(t, bypassConfig)
	for _, tc := range []struct{ path, want string }{
		{"/admin", "admin"},
		{"/admin/", "admin"},
		{"/admin/users/1?x=/../public", "admin"},
		{"/public/a/../b", "public"},
		{"/admin/a/../../admin/x", "admin"},
		{"/public/%C3%A9t%C3%A9", "public"},
		{"/public/a%20b", "public"},
		{"/public/x;v=1", "public"},
		{"/public/a%2Fb", "public"},
		{"/public/page#frag", "public"},
		{"/other", "default"},
		{"/Admin", "default"}, // case-sensitive by default
	} {
		sel, err := e.Select(Request{Method: "GET", Path: tc.path})
		if err != nil || sel.Name != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.path, sel.Name, err, tc.want)
		}
	}
}

// TestPathSwitches: policy.paths tells how the upstream reads paths; each switch removes
// one reading (or rejects the feature) and nothing else.
func TestPathSwitches(t *testing.T) {
	for _, tc := range []struct {
		name, paths, path string
		want              string // route, "ambiguous" or "bad"
	}{
		{"params compare", `{}`, "/admin/..;/public", "ambiguous"},
		{"params before a dot-dot agree", `{}`, "/admin;x/../public", "public"},
		{"params keep", `{"params":"keep"}`, "/admin/..;/public", "admin"},
		{"params strip", `{"params":"strip"}`, "/admin/..;/public", "public"},
		{"params strip: jsessionid", `{"params":"strip"}`, "/admin;jsessionid=1", "admin"},
		{"params reject", `{"params":"reject"}`, "/public;x", "bad"},
		{"params reject encoded", `{"params":"reject"}`, "/public%3bx", "bad"},
		{"slashes keep", `{"escaped_slashes":"keep"}`, "/public/a%2Fb", "public"},
		{"slashes keep: no separator", `{"escaped_slashes":"keep"}`, "/admin%2F..%2F..%2Fpublic", "default"},
		{"slashes unescape", `{"escaped_slashes":"unescape"}`, "/admin%2Fx", "admin"},
		{"slashes unescape still compares dots", `{"escaped_slashes":"unescape"}`, "/admin/%2e%2e/public", "ambiguous"},
		{"slashes reject", `{"escaped_slashes":"reject"}`, "/public/a%2Fb", "bad"},
		{"slashes reject backslash escape", `{"escaped_slashes":"reject"}`, "/public/a%5cb", "bad"},
		// case_sensitive: false says every component ignores case: the case-folded
		// reading is the only one (no case-sensitive reading to compare with).
		{"case-insensitive upstream", `{"case_sensitive":false}`, "/ADMIN/x", "admin"},
		{"case-insensitive upstream, public", `{"case_sensitive":false}`, "/Public", "public"},
		{"case-insensitive upstream still compares dots", `{"case_sensitive":false}`, "/Admin/%2e%2e/public", "ambiguous"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := strings.Replace(bypassConfig, `"routes"`, `"paths": `+tc.paths+`, "routes"`, 1)
			e := mustEngine(t, cfg)
			wantSelected(t, e, tc.path, tc.want)
		})
	}
}

// TestPathSwitchesValidated: unknown switch values are configuration errors.
func TestPathSwitchesValidated(t *testing.T) {
	_, err := New(decodeConfig(t, `{"paths":{"escaped_slashes":"decode","params":"drop"}}`))
	if err == nil || !strings.Contains(err.Error(), "paths.escaped_slashes") || !strings.Contains(err.Error(), "paths.params") {
		t.Fatalf("got %v", err)
	}
}

// TestCaseInsensitiveRoute: a case_insensitive route lets a differently-cased path
// through only when every case reading agrees on the requirement: as configured
// (case_insensitive routes ignore case), case-sensitive (every route compares case, as a
// Go ServeMux or Envoy's default prefix routes would) and case-folded (every route
// ignores case, as express would). Issue 12's differential test found the
// case-sensitive reading missing: "GET /Docs/x" was allowed as public docs and a
// case-sensitive upstream served it under the token-only default.
func TestCaseInsensitiveRoute(t *testing.T) {
	e := mustEngine(t, `{"access_levels":{"staff":{"groups":{"values":["staff"]}}},"routes":[
	  {"name":"docs","path":{"prefix":"/docs"},"case_insensitive":true,"public":true},
	  {"name":"api-docs","path":{"prefix":"/api/docs"},"public":true},
	  {"name":"api","path":{"prefix":"/api"},"case_insensitive":true,"require":{"authenticated":true}},
	  {"name":"staff","path":{"prefix":"/staff"},"case_insensitive":true,"require":"staff"},
	  {"name":"ro","path":{"regex":"/Reports/[0-9]+"},"case_insensitive":true,"public":true}
	], "default":"staff"}`)
	for _, tc := range []struct {
		name, path, want string // want: a route, or "ambiguous"
	}{
		{"lower case is the route", "/docs/x", "docs"},
		{"case-sensitive reading picks the default (differential test)", "/Docs/x", "ambiguous"},
		{"all upper case", "/DOCS", "ambiguous"},
		{"non-ordinary path, case-sensitive reading", "/Docs/a%20b", "ambiguous"},
		{"non-ordinary path, lower case", "/docs/a%20b", "docs"},
		{"ci route with a token requirement", "/API/x", "ambiguous"},
		{"case-folded reading picks another route", "/API/DOCS/x", "ambiguous"},
		{"cs route below a ci one", "/api/docs/x", "api-docs"},
		{"every reading has the same access level", "/STAFF/x", "staff"},
		{"same access level, non-ordinary path", "/Staff/a%20b", "staff"},
		{"regex route as written", "/Reports/7", "ro"},
		{"regex route, other case", "/REPORTS/7", "ambiguous"},
		{"regex route, lower case: case-sensitive reading misses it", "/reports/7", "ambiguous"},
		{"no route in any reading", "/Other", "default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantSelected(t, e, tc.path, tc.want)
		})
	}
}

// TestCaseReadingNamedInError: the ambiguity error says which case reading disagreed.
func TestCaseReadingNamedInError(t *testing.T) {
	e := mustEngine(t, `{"routes":[
	  {"name":"docs","path":{"prefix":"/docs"},"case_insensitive":true,"public":true},
	  {"name":"admin","path":{"prefix":"/admin"},"require":{"groups":{"values":["admins"]}}}
	], "default":{"authenticated":true}}`)
	for _, tc := range []struct {
		path, wantCase, wantRoute, wantMsg string
	}{
		{"/Docs/x", CaseSensitive, "default", `read as "/Docs/x" it selects route "docs", read as "/Docs/x" (case-sensitive) route "default"`},
		{"/ADMIN/x", CaseFolded, "admin", `read as "/ADMIN/x" it selects route "default", read as "/admin/x" (case-folded) route "admin"`},
	} {
		_, err := e.Select(Request{Method: "GET", Path: tc.path})
		var ae *AmbiguousPathError
		if !errors.As(err, &ae) {
			t.Fatalf("%s: %v, want an *AmbiguousPathError", tc.path, err)
		}
		last := ae.Readings[len(ae.Readings)-1]
		if ae.Readings[0].Case != "" || last.Case != tc.wantCase || last.Route != tc.wantRoute || !strings.Contains(err.Error(), tc.wantMsg) {
			t.Errorf("%s: readings %+v, error %q", tc.path, ae.Readings, err)
		}
	}
}

// TestUpperCasePatternComparedForLowerCasePaths: when a pattern has an upper-case
// letter, a lower-case path is a case variant of it: a case-sensitive component does not
// route "/docs/x" to "/Docs".
func TestUpperCasePatternComparedForLowerCasePaths(t *testing.T) {
	e := mustEngine(t, `{"routes":[
	  {"name":"docs","path":{"prefix":"/Docs"},"case_insensitive":true,"public":true}
	], "default":{"authenticated":true}}`)
	for _, tc := range []struct{ path, want string }{
		{"/Docs/x", "docs"},
		{"/docs/x", "ambiguous"},
		{"/other", "default"},
	} {
		wantSelected(t, e, tc.path, tc.want)
	}
}

// TestSameRequirementIsNotAmbiguous: readings that select different routes with the
// same requirement (two public routes, one access level) do not deny.
func TestSameRequirementIsNotAmbiguous(t *testing.T) {
	e := mustEngine(t, `{"access_levels":{"staff":{"groups":{"values":["staff"]}}},"routes":[
	  {"name":"a","path":{"prefix":"/a"},"require":"staff"},
	  {"name":"b","path":{"prefix":"/b"},"require":"staff"},
	  {"name":"p","path":{"prefix":"/p"},"public":true},
	  {"name":"q","path":{"prefix":"/q"},"public":true}
	]}`)
	for _, p := range []string{"/a/..;/b", "/p/%2e%2e/q"} {
		if _, err := e.Select(Request{Method: "GET", Path: p}); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// TestReadingsTable pins the interpretation of single paths under each reading.
func TestReadingsTable(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		r    reading
		want string
	}{
		{"/admin/..;/public", reading{}, "/admin/..;/public"},
		{"/admin/..;/public", reading{params: 1}, "/public"},
		{"/admin/%2e%2e/public", reading{}, "/admin/%2e%2e/public"},
		{"/admin/%2e%2e/public", reading{decode: true}, "/public"},
		{"/a%2fb/c", reading{decode: true}, "/a%2Fb/c"},
		{"/a%2fb/c", reading{decode: true, slashSep: true}, "/a/b/c"},
		{"/a%2fb/c", reading{slashSep: true}, "/a/b/c"},
		{"/a\\b", reading{}, "/a\\b"},
		{"/a\\b", reading{backslash: true}, "/a/b"},
		{"/a#/../b", reading{}, "/a"},
		{"/a#/../b", reading{keepFrag: true}, "/b"},
		{"/a//../b", reading{}, "/b"},
		{"/a//../b", reading{keepEmpty: true}, "/a/b"},
		{"//a", reading{keepEmpty: true}, "//a"},
		{"/a/b/", reading{keepEmpty: true}, "/a/b"},
		{"/..", reading{}, "/"},
		{"/a%3bx/..;/b", reading{decode: true, params: 2}, "/b"},
		{"/a%3bx/..;/b", reading{decode: true, params: 1}, "/b"},
		{"/x/%2e", reading{}, "/x/%2e"},
	} {
		if got := interpret(tc.raw, tc.r); got != tc.want {
			t.Errorf("interpret(%q, %+v) = %q, want %q", tc.raw, tc.r, got, tc.want)
		}
	}
}

// TestOrdinaryPathsOneReading: ordinary paths (the fast path) have exactly one reading,
// path.Clean of themselves, under every reading of the full set.
func TestOrdinaryPathsOneReading(t *testing.T) {
	for _, p := range []string{"/", "/a", "/a/b/", "/a.b/c..d/.e", "/ü/x", "/a+b=c,d"} {
		if !ordinaryPath(p) {
			t.Fatalf("%q not ordinary", p)
		}
		for _, r := range allReadings() {
			if got := interpret(p, r); got != path.Clean(p) {
				t.Errorf("interpret(%q, %+v) = %q, want %q", p, r, got, path.Clean(p))
			}
		}
	}
	for _, p := range []string{"//a", "/a/./b", "/a/..", "/%61", "/a;b", "/a\\b", "/a#b", "/.", "/a/../"} {
		if ordinaryPath(p) {
			t.Errorf("%q taken as ordinary", p)
		}
	}
}

// allReadings is the full cross product of reading flags (no pruning).
func allReadings() []reading {
	var out []reading
	for _, f := range []bool{false, true} {
		for _, b := range []bool{false, true} {
			for _, d := range []bool{false, true} {
				for _, s := range []bool{false, true} {
					for _, p := range []uint8{0, 1, 2} {
						for _, e := range []bool{false, true} {
							out = append(out, reading{keepFrag: f, backslash: b, decode: d, slashSep: s, params: p, keepEmpty: e})
						}
					}
				}
			}
		}
	}
	return out
}

// upstreamReadings are independent models of how real servers read a path (not our
// interpret): Go's net/http (decode, then clean), a raw reader (no decoding, clean),
// and Tomcat (strip ";params" from raw segments, decode, clean).
func upstreamReadings(raw string) []string {
	var out []string
	if i := strings.IndexByte(raw, '#'); i >= 0 {
		raw = raw[:i]
	}
	if d, err := url.PathUnescape(raw); err == nil {
		out = append(out, path.Clean(d))
	}
	out = append(out, path.Clean(raw))
	segs := strings.Split(raw, "/")
	for i, s := range segs {
		if j := strings.IndexByte(s, ';'); j >= 0 {
			segs[i] = s[:j]
		}
	}
	if d, err := url.PathUnescape(strings.Join(segs, "/")); err == nil {
		out = append(out, path.Clean(d))
	}
	return out
}

// FuzzSelectNeverAllowsBeyondAReading: for any path, when Select picks a route whose
// requirement an identity meets, every reading of the path (the full cross product of
// reading flags, and independent models of real upstreams) selects a route that
// identity meets as well, under every case reading: as configured, case-sensitive
// (the case_insensitive route compares case too) and case-folded.
func FuzzSelectNeverAllowsBeyondAReading(f *testing.F) {
	for _, s := range []string{"/admin/..;/public", "/admin/%2e%2e/public", "/public#/../admin", "//admin",
		"/public/..%2fadmin", "/public\\..\\admin", "/ADMIN", "/public/%2E%2E/Admin", "/public;/../admin", "/a",
		"/Docs/x", "/docs/x", "/DOCS", "/X/y", "/Help/x", "/public/%2e%2e/HELP"} {
		f.Add(s)
	}
	// Two engines: one with an upper-case pattern ("/Docs": case readings are compared
	// for every path), one with lower-case patterns only (compared only for paths with
	// an upper-case letter: the gate itself is under test).
	const cfg = `{"routes":[
	  {"name":"admin","path":{"prefix":"/admin"},"require":{"groups":{"values":["admins"]}}},
	  {"name":"ci","path":{"prefix":"/Docs"},"case_insensitive":true,"require":{"groups":{"values":["docs"]}}},
	  {"name":"help","path":{"prefix":"/help"},"case_insensitive":true,"public":true},
	  {"name":"exact","path":{"exact":"/x/y"},"require":{"groups":{"values":["xy"]}}},
	  {"name":"public","path":{"prefix":"/public"},"public":true},
	  {"name":"root","path":{"exact":"/"},"public":true}
	], "default": {"groups": {"values": ["users"]}}}`
	engines := []*Engine{mustEngine(f, cfg), mustEngine(f, strings.Replace(cfg, `"/Docs"`, `"/docs"`, 1))}
	if !engines[0].caseAlways || engines[1].caseAlways || len(engines[1].caseReads) == 0 {
		f.Fatal("the engines do not cover both case gates")
	}
	ids := []map[string]any{nil, {"groups": []any{"users"}}, {"groups": []any{"admins"}}, {"groups": []any{"docs", "xy"}}}
	f.Fuzz(func(t *testing.T, p string) {
		for _, e := range engines {
			sel, err := e.Select(Request{Method: "GET", Path: p})
			if err != nil {
				continue
			}
			raw := p
			if i := strings.IndexByte(raw, '?'); i >= 0 {
				raw = raw[:i]
			}
			if ordinaryPath(raw) { // the fast path: its one reading is what NormalizePath gives
				if n, err := NormalizePath(p); err != nil || n != sel.Path || n != path.Clean(raw) {
					t.Fatalf("ordinary %q: selection path %q, NormalizePath %q %v", p, sel.Path, n, err)
				}
			}
			reads := upstreamReadings(raw)
			for _, r := range allReadings() {
				reads = append(reads, interpret(raw, r))
			}
			for _, id := range ids {
				if !sel.Evaluate(id).Allowed {
					continue
				}
				for _, rp := range reads {
					for _, cr := range []caseReading{caseAsConfigured, caseSensitive, caseFolded} {
						i := e.route("", rp, e.fold(rp), "GET", cr)
						if !e.selection(i, rp).Evaluate(id).Allowed {
							t.Fatalf("%q allowed for %v as route %q, but read as %q (case reading %d) it selects %q, which denies", p, id, sel.Name, rp, cr, e.selection(i, rp).Name)
						}
					}
				}
			}
		}
	})
}

// TestLongNonOrdinaryPathRefused: a path with several readings is read only up to 8 KiB
// (each reading is a pass over it); an ordinary path up to the general limit.
func TestLongNonOrdinaryPathRefused(t *testing.T) {
	e := mustEngine(t, bypassConfig)
	long := "/public/" + strings.Repeat("a", maxReadPathLen)
	if sel, err := e.Select(Request{Method: "GET", Path: long}); err != nil || sel.Name != "public" {
		t.Fatalf("ordinary long path: %q %v", sel.Name, err)
	}
	if _, err := e.Select(Request{Method: "GET", Path: long + "/%2e%2e/x"}); !errors.Is(err, ErrBadPath) {
		t.Fatalf("long path with escapes: %v, want ErrBadPath", err)
	}
}

// TestRouteMatchingIsCaseSensitiveByDefault: like Envoy's prefix, "/Admin" is not the
// route "/admin" unless the route (case_insensitive) or policy.paths.case_sensitive:
// false says the upstream ignores case.
func TestRouteMatchingIsCaseSensitiveByDefault(t *testing.T) {
	e := mustEngine(t, bypassConfig)
	for _, p := range []string{"/Admin", "/ADMIN/x", "/PUBLIC"} {
		if sel, err := e.Select(Request{Method: "GET", Path: p}); err != nil || sel.Name != "default" {
			t.Errorf("%s: %q %v, want the default", p, sel.Name, err)
		}
	}
}

// TestPathShapesTable pins every row of the path-shape table in docs/request-target.md
// (routes /admin for admins and /public public, policy.paths defaults).
func TestPathShapesTable(t *testing.T) {
	e := mustEngine(t, bypassConfig)
	for _, tc := range []struct{ path, want string }{
		{"/admin/x", "admin"}, {"/admin/", "admin"},
		{"/admin/x?next=/../public", "admin"},
		{"/public/a/../b", "public"},
		{"/public/a%20b", "public"}, {"/public/%C3%A9", "public"},
		{"/public/x;v=1", "public"},
		{"/public/a%2Fb", "public"},
		{"/public/page#top", "public"},
		{"/Admin", "default"},
		{"/admin/..;/public", "ambiguous"},
		{"/admin/%2e%2e/public", "ambiguous"}, {"/admin/.%2E/public", "ambiguous"},
		{"/admin/..%3B/public", "ambiguous"},
		{"/admin%2f..%2fpublic", "ambiguous"}, {"/admin%5c..%5cpublic", "ambiguous"},
		{"/admin\\..\\public", "ambiguous"},
		{"/public#/../admin", "ambiguous"},
		{"//admin", "ambiguous"}, {"/admin//../public", "ambiguous"},
		{"/%61dmin", "ambiguous"},
		{"/admin;jsessionid=1", "ambiguous"},
		{"/admin%252F", "bad"},
		{"/admin%00", "bad"}, {"/admin/%c0%ae%c0%ae/public", "bad"},
	} {
		wantSelected(t, e, tc.path, tc.want)
	}
}

// TestCaseShapesTable pins every row of the case table in docs/request-target.md
// (routes /docs public and case_insensitive, /admin for admins, a token-only default).
func TestCaseShapesTable(t *testing.T) {
	e := mustEngine(t, `{"routes":[
	  {"name":"docs","path":{"prefix":"/docs"},"case_insensitive":true,"public":true},
	  {"name":"admin","path":{"prefix":"/admin"},"require":{"groups":{"values":["admins"]}}}
	], "default":{"authenticated":true}}`)
	for _, tc := range []struct{ path, want string }{
		{"/docs/x", "docs"}, {"/docs/a%20b", "docs"}, {"/docs/ReadMe", "docs"},
		{"/other", "default"}, {"/Other", "default"},
		{"/Docs/x", "ambiguous"}, {"/DOCS", "ambiguous"},
		{"/ADMIN/x", "ambiguous"},
		{"/Docs/a%20b", "ambiguous"},
		{"/admin/x", "admin"},
	} {
		wantSelected(t, e, tc.path, tc.want)
	}
}

// wantSelected fails t unless a GET of path in e selects the route want, where
// "ambiguous" stands for ErrAmbiguousPath and "bad" for ErrBadPath; any other error of
// Select is fatal.
func wantSelected(t testing.TB, e *Engine, path, want string) {
	t.Helper()
	sel, err := e.Select(Request{Method: "GET", Path: path})
	got := sel.Name
	switch {
	case errors.Is(err, ErrAmbiguousPath):
		got = "ambiguous"
	case errors.Is(err, ErrBadPath):
		got = "bad"
	case err != nil:
		t.Fatalf("%s: %v", path, err)
	}
	if got != want {
		t.Errorf("%s: got %s (%v), want %s", path, got, err, want)
	}
}
