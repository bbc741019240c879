package policy

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkSelectEvaluate measures the per-request cost: route selection with path
// normalisation plus evaluation of a nested requirement.
func BenchmarkSelectEvaluate(b *testing.B) {
	e := mustEngine(b, routesConfig)
	claims := claimsOf(b, `{"sub":"u","iss":"i","groups":["x","y","admins"],"scope":"openid write"}`)
	reqs := []Request{
		{Method: "GET", Host: "www.example.org", Path: "/admin/users?x=1"},
		{Method: "POST", Host: "eu.api.example.org:443", Path: "/v2/items/7"},
		{Method: "GET", Host: "www.example.org", Path: "/somewhere/else"},
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sel, err := e.Select(reqs[i%len(reqs)])
		if err != nil {
			b.Fatal(err)
		}
		if res := sel.Evaluate(claims); res.Reason == "" {
			b.Fatal("no reason")
		}
	}
}

// BenchmarkSelectReadings: route selection for paths with several readings (escapes,
// params, dot-segments, "//"), the slow path; BenchmarkSelectEvaluate is the fast one.
func BenchmarkSelectReadings(b *testing.B) {
	e := mustEngine(b, routesConfig)
	reqs := []Request{
		{Method: "GET", Host: "www.example.org", Path: "/a/../admin/users?x=1"},
		{Method: "GET", Host: "www.example.org", Path: "/admin/a%20b;v=1"},
		{Method: "GET", Host: "www.example.org", Path: "/admin/..;/healthz"}, // ambiguous
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_, _ = e.Select(reqs[i%len(reqs)])
	}
}

// BenchmarkEntitlements: 20 held entitlements against 3 required.
func BenchmarkEntitlements(b *testing.B) {
	e := mustEngine(b, `{"default":{"entitlements":{"values":["urn:geant:h-df.de:group:a","urn:geant:h-df.de:group:b:sub","urn:geant:h-df.de:group:c:role=member"],"match":2}}}`)
	held := make([]any, 0, 20)
	for _, g := range []string{"x", "y", "z", "w", "a", "b", "c", "d", "e", "f"} {
		held = append(held, "urn:geant:h-df.de:group:"+g+"#auth", "urn:geant:h-df.de:group:"+g+":sub:role=member#auth")
	}
	claims := map[string]any{"eduperson_entitlement": held}
	sel, _ := e.Select(Request{Path: "/"})
	b.ReportAllocs()
	for b.Loop() {
		if !sel.Evaluate(claims).Allowed {
			b.Fatal("denied")
		}
	}
}

// BenchmarkSelectCaseReadings: with a case_insensitive route, a path with an upper-case
// letter is read three ways (as configured, case-sensitive, case-folded); a lower-case
// path against lower-case patterns keeps the one reading. Compare the two in one run.
func BenchmarkSelectCaseReadings(b *testing.B) {
	e := mustEngine(b, `{"routes":[
	  {"name":"docs","path":{"prefix":"/docs"},"case_insensitive":true,"public":true},
	  {"name":"admin","path":{"prefix":"/admin"},"require":{"groups":{"values":["admins"]}}},
	  {"name":"user","path":{"prefix":"/user"},"require":{"groups":{"values":["users"]}}}
	], "default":{"authenticated":true}}`)
	for _, bc := range []struct{ name, path string }{
		{"lower", "/docs/guide/readme"},
		{"upper", "/docs/guide/ReadMe"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := Request{Method: "GET", Host: "www.example.org", Path: bc.path}
			b.ReportAllocs()
			for b.Loop() {
				if sel, err := e.Select(req); err != nil || sel.Name != "docs" {
					b.Fatal(sel.Name, err)
				}
			}
		})
	}
}

// routes1000Config is the load benchmark's route table with 1 000 prefix routes
// ("/svc-<k>") in front of it: a public exact path, a prefix, a regex route with
// methods, a host-limited prefix route, a prefix; default authenticated.
func routes1000Config() string {
	var b strings.Builder
	b.WriteString(`{"routes":[`)
	for k := range 1000 {
		fmt.Fprintf(&b, `{"name":"svc-%d","path":{"prefix":"/svc-%d"},"require":{"authenticated":true}},`, k, k)
	}
	b.WriteString(`{"name":"health","path":{"exact":"/healthz"},"methods":["GET","HEAD"],"public":true},
	  {"name":"admin","path":{"prefix":"/admin"},"require":{"groups":{"values":["admins"]}}},
	  {"name":"api-write","host":["api.example.org","*.api.example.org"],"path":{"regex":"/api/v[0-9]+/items(/.*)?"},"methods":["POST","PUT","DELETE"],"require":{"scope":["items.write"]}},
	  {"name":"api-read","host":["api.example.org"],"path":{"prefix":"/api"},"methods":["GET","HEAD"],"require":{"groups":{"values":["members"]}}},
	  {"name":"docs","path":{"prefix":"/docs"},"require":{"authenticated":true}}
	], "default":{"authenticated":true}}`)
	return b.String()
}

// BenchmarkSelectRoutes1000: route selection behind 1 000 prefix routes, for a path
// matched after them (the load benchmark's request), one matched in their middle, one
// no route matches, and a path with several readings. Compare with
// BenchmarkSelectEvaluate (a table of a few routes).
func BenchmarkSelectRoutes1000(b *testing.B) {
	e := mustEngine(b, routes1000Config())
	for _, bc := range []struct{ name, path, want string }{
		{"after", "/api/v1/items/42?expand=owner", "api-read"},
		{"middle", "/svc-500/x", "svc-500"},
		{"none", "/nothing/here", "default"},
		{"readings", "/svc-500/a%2Fb;v=1", "svc-500"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := Request{Method: "GET", Host: "api.example.org", Path: bc.path}
			b.ReportAllocs()
			for b.Loop() {
				if sel, err := e.Select(req); err != nil || sel.Name != bc.want {
					b.Fatal(sel.Name, err)
				}
			}
		})
	}
}
