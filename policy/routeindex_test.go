package policy

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// scanRoute is the reference the route index must agree with: the route selection of
// before the index, trying every route in table order.
func scanRoute(e *Engine, host, p, method string, cr caseReading) int {
	pl := p
	if cr == caseFolded || cr == caseAsConfigured && e.anyCI {
		pl = asciiLower(p)
	}
	for i := range e.routes {
		if e.routes[i].matches(host, p, pl, method, cr) {
			return i
		}
	}
	return -1
}

// scanned returns a copy of e whose index has every route in rest, in order: its Select
// tries every route in table order, like scanRoute.
func scanned(e *Engine) *Engine {
	c := *e
	c.index = &routeIndex{routes: e.routes}
	for i := range e.routes {
		c.index.rest = append(c.index.rest, i)
	}
	return &c
}

// indexConfig: filler routes first (so that the interesting routes have high indices),
// then overlapping prefixes, host and method limits, exact
// paths, a case-insensitive route, an upper-case case-sensitive pattern, a regex, a "/"
// catch-all for DELETE that shadows a later route.
func indexConfig() string {
	var b strings.Builder
	b.WriteString(`{"access_levels":{"l1":{"authenticated":true},"l2":{"groups":{"values":["g"]}}},"routes":[`)
	for k := range 20 {
		fmt.Fprintf(&b, `{"name":"f%d","path":{"prefix":"/f%d"},"require":"l2"},`, k, k)
	}
	b.WriteString(`
	  {"name":"api","path":{"prefix":"/api"},"methods":["GET"],"require":"l1"},
	  {"name":"api-host","host":["h.example"],"path":{"prefix":"/api"},"require":"l2"},
	  {"name":"api-v1","path":{"prefix":"/api/v1"},"require":"l2"},
	  {"name":"root","path":{"exact":"/"},"public":true},
	  {"name":"docs","path":{"prefix":"/Docs"},"case_insensitive":true,"public":true},
	  {"name":"upper","path":{"prefix":"/Upper"},"require":"l1"},
	  {"name":"re","path":{"regex":"/re/[0-9]+"},"require":"l1"},
	  {"name":"xy","path":{"exact":"/x/y"},"require":"l1"},
	  {"name":"catch","path":{"prefix":"/"},"methods":["DELETE"],"require":"l2"},
	  {"name":"late","path":{"prefix":"/late"},"require":"l1"}
	], "default":{"groups":{"values":["nobody"]}}}`)
	return b.String()
}

// TestRouteIndexTable: route lookups in an indexed table, per read path and case
// reading, agree with the named route and with the scan.
func TestRouteIndexTable(t *testing.T) {
	e := mustEngine(t, indexConfig())
	if len(e.index.rest) != 2 {
		t.Fatalf("routes %v are not indexed, want the regex and the catch-all only", e.index.rest)
	}
	ref := scanned(e)
	as, cs, cf := caseAsConfigured, caseSensitive, caseFolded
	for _, tc := range []struct {
		name, host, method, path string
		cr                       caseReading
		want                     string
	}{
		{"prefix is segment-wise", "", "GET", "/apix", as, "default"},
		{"prefix itself", "", "GET", "/api", as, "api"},
		{"below the prefix", "", "GET", "/api/x", as, "api"},
		{"trailing slash of a read path", "", "GET", "/api/", as, "api"},
		{"first of overlapping prefixes", "", "GET", "/api/v1/x", as, "api"},
		{"method passes over to the longer prefix", "", "POST", "/api/v1/x", as, "api-v1"},
		{"host-limited route between", "h.example:8443", "POST", "/api/v1", as, "api-host"},
		{"other host", "other.example", "POST", "/api", as, "default"},
		{"exact root", "", "GET", "/", as, "root"},
		{"empty first segment", "", "GET", "//api", as, "default"},
		{"empty first segment, catch-all", "", "DELETE", "//api", as, "catch"},
		{"exact is not a prefix", "", "GET", "/x/y/z", as, "default"},
		{"exact with a trailing slash in the read path", "", "GET", "/x/y/", as, "default"},
		{"escaped slash is data", "", "GET", "/x%2Fy", as, "default"},
		{"escaped letter is not the letter", "", "GET", "/ap%69", as, "default"},
		{"case-insensitive as configured", "", "GET", "/DOCS/a", as, "docs"},
		{"case-insensitive read case-sensitively", "", "GET", "/DOCS/a", cs, "default"},
		{"case-insensitive read case-sensitively, pattern case", "", "GET", "/Docs/a", cs, "docs"},
		{"case-folded reading folds every route", "", "GET", "/API/x", cf, "api"},
		{"case-sensitive route as configured", "", "GET", "/API/x", as, "default"},
		{"upper-case pattern as configured", "", "GET", "/upper", as, "default"},
		{"upper-case pattern, its case", "", "GET", "/Upper/x", as, "upper"},
		{"upper-case pattern folded", "", "GET", "/uPPER", cf, "upper"},
		{"regex", "", "GET", "/re/12", as, "re"},
		{"regex is anchored", "", "GET", "/re/12/x", as, "default"},
		{"catch-all shadows a later route", "", "DELETE", "/late/x", as, "catch"},
		{"later route for other methods", "", "GET", "/late/x", as, "late"},
		{"filler route", "", "GET", "/f3/x", as, "f3"},
		{"filler prefix is segment-wise", "", "GET", "/f30", as, "default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host, method := normalizeHost(tc.host), strings.ToUpper(tc.method)
			i, j := e.route(host, tc.path, e.fold(tc.path), method, tc.cr), scanRoute(e, host, tc.path, method, tc.cr)
			if got := e.selection(i, tc.path).Name; got != tc.want {
				t.Errorf("indexed: got %q, want %q", got, tc.want)
			}
			if i != j {
				t.Errorf("indexed %d, scan %d", i, j)
			}
		})
	}
	for _, tc := range []struct{ path, want string }{
		{"/x/y/", "xy"},
		{"/api/../x/y", "xy"},
		{"/ap%69", "ambiguous"},
		{"/api;v=1/x", "ambiguous"},
		{"//api", "ambiguous"},
		{"/DOCS/x", "ambiguous"},
		{"/docs/x", "ambiguous"}, // the pattern is "/Docs": read case-sensitively, no route
		{"/Docs/x", "docs"},
		{"/f1/a%2Fb", "f1"},
		{"/f1%2Fx", "ambiguous"},
		{"/f1%2F..%2Fapi", "ambiguous"},
	} {
		wantSelected(t, e, tc.path, tc.want)
		wantSelected(t, ref, tc.path, tc.want)
	}
}

// randomRouteConfig is a random policy section from r: 0 to 48 routes of every kind
// (exact, prefix, "/" prefix, regex, no path), patterns built from few segments so that
// they overlap, host and method limits, case_insensitive routes, requirements that are
// the same or different (access levels, public, inline), random policy.paths switches.
func randomRouteConfig(r *rand.Rand) string {
	segs := []string{"a", "A", "api", "Api", "apix", "b", "v1", "x%20y", "x y", "%2F"}
	pattern := func() string {
		var b strings.Builder
		for range 1 + r.IntN(3) {
			b.WriteString("/" + segs[r.IntN(len(segs))])
		}
		if r.IntN(8) == 0 {
			b.WriteString("/")
		}
		return b.String()
	}
	regexes := []string{"/a(/.*)?", "/[Aa]pi/.*", "/b", ".*", "/api/v[0-9]+", "/x y"}
	requires := []any{"l1", "l2", map[string]any{"authenticated": true}, map[string]any{"groups": map[string]any{"values": []string{"g"}}}}
	var routes []any
	for k := range r.IntN(49) {
		rt := map[string]any{"name": fmt.Sprintf("r%d", k)}
		switch r.IntN(10) {
		case 0, 1, 2:
			rt["path"] = map[string]any{"exact": pattern()}
		case 3, 4, 5, 6:
			rt["path"] = map[string]any{"prefix": pattern()}
		case 7:
			rt["path"] = map[string]any{"prefix": "/"}
		case 8:
			rt["path"] = map[string]any{"regex": regexes[r.IntN(len(regexes))]}
		}
		if r.IntN(5) == 0 {
			rt["host"] = [][]string{{"h.example"}, {"*.h.example"}, {"*"}, {"h.example", "o.example"}}[r.IntN(4)]
		}
		if r.IntN(4) == 0 {
			rt["methods"] = [][]string{{"GET"}, {"post"}, {"GET", "HEAD"}}[r.IntN(3)]
		}
		if r.IntN(4) == 0 {
			rt["case_insensitive"] = true
		}
		if r.IntN(5) == 0 {
			rt["public"] = true
		} else {
			rt["require"] = requires[r.IntN(len(requires))]
		}
		routes = append(routes, rt)
	}
	paths := map[string]any{
		"escaped_slashes": []string{"", "keep", "unescape", "reject"}[r.IntN(4)],
		"params":          []string{"", "keep", "strip", "reject"}[r.IntN(4)],
	}
	if r.IntN(6) == 0 {
		paths["case_sensitive"] = false
	}
	cfg := map[string]any{
		"access_levels": map[string]any{"l1": map[string]any{"authenticated": true}, "l2": map[string]any{"groups": map[string]any{"values": []string{"g"}}}},
		"routes":        routes,
		"paths":         paths,
		"default":       "l1",
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		panic(err)
	}
	return string(js)
}

// randomPath is a request path from r over the route patterns' segments and the
// things that give a path several readings.
func randomPath(r *rand.Rand) string {
	segs := []string{"a", "A", "api", "API", "apix", "b", "v1", "v2", "x%20y", "%2F", "", ".", "..", "a;v=1",
		"%61pi", "A%2fb", "..;", "a#b", "a\\..", "%2e%2e", "%3B", "Api"}
	var b strings.Builder
	for range r.IntN(5) {
		b.WriteString("/" + segs[r.IntN(len(segs))])
	}
	if b.Len() == 0 || r.IntN(8) == 0 {
		b.WriteString("/")
	}
	if r.IntN(8) == 0 {
		b.WriteString("?q=/a")
	}
	return b.String()
}

// FuzzRouteIndexEqualsScan: for random route tables (seed) and paths (the fuzzed path
// and paths drawn from the tables' vocabulary), with a random host and method, the
// indexed table selects what the scan selects: the same Selection or the same error
// from Select, and the same route for every reading of the path (the full cross
// product of reading flags, and the path as sent) under every case reading Select
// compares.
func FuzzRouteIndexEqualsScan(f *testing.F) {
	for i, p := range []string{"/", "/api", "/apix/v1", "//a", "/A/b", "/a%2Fb", "/api;v=1/x", "/x%20y/a", "/x y", "/a/../API"} {
		f.Add(uint64(i), p)
	}
	hosts := []string{"", "h.example", "a.h.example:443", "O.EXAMPLE"}
	methods := []string{"GET", "post", "HEAD"}
	f.Fuzz(func(t *testing.T, seed uint64, p string) {
		r := rand.New(rand.NewPCG(seed, seed>>32|1))
		js := randomRouteConfig(r)
		e, err := New(decodeConfig(t, js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		ix, ref := e, scanned(e)
		paths := []string{p}
		for range 4 {
			paths = append(paths, randomPath(r))
		}
		for _, p := range paths {
			req := Request{Method: methods[r.IntN(len(methods))], Host: hosts[r.IntN(len(hosts))], Path: p}
			s1, err1 := ix.Select(req)
			s2, err2 := ref.Select(req)
			if fmt.Sprint(err1) != fmt.Sprint(err2) || !reflect.DeepEqual(s1, s2) {
				t.Fatalf("%s\n%+v: indexed %q %v, scan %q %v", js, req, s1.Name, err1, s2.Name, err2)
			}
			raw, _, _ := strings.Cut(p, "?")
			if _, err := NormalizePath(raw); err != nil || len(raw) > maxReadPathLen {
				continue
			}
			reads := map[string]bool{raw: true}
			for _, rd := range allReadings() {
				reads[interpret(raw, rd)] = true
			}
			host, method := normalizeHost(req.Host), strings.ToUpper(req.Method)
			for rp := range reads {
				for _, cr := range append([]caseReading{caseAsConfigured}, e.caseReads...) {
					if i, j := ix.route(host, rp, e.fold(rp), method, cr), scanRoute(e, host, rp, method, cr); i != j {
						t.Fatalf("%s\n%+v (read %q, case reading %d): indexed route %d, scan %d", js, req, rp, cr, i, j)
					}
				}
			}
		}
	})
}
