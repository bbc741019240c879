package policy

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// preparedPolicies use every requirement form, shared and nested access levels, partly
// met combinators, an n_of that can never be met, empty combinators, a public route and
// the built-in default deny.
var preparedPolicies = []string{
	`{}`,
	`{"default":{"authenticated":true}}`,
	`{"default":{"claim":"email"}}`,
	`{"default":{"claim":{"name":"roles","separator":","}}}`,
	`{"default":{"groups":{"values":["a","b","c"],"match":2}}}`,
	`{"default":{"groups":{"values":["a","b"]}}}`,
	`{"default":{"groups":{"claim":"realm_access.roles","values":["a","x"],"match":"one"}}}`,
	`{"default":{"groups":{"values":["a","b"],"match":3}}}`,
	`{"default":{"entitlements":{"values":["urn:geant:h-df.de:group:a","urn:geant:h-df.de:group:b:role=member","plain"],"match":2}}}`,
	`{"default":{"issuer":["https://op","https://op2"]}}`,
	`{"default":{"subject":"u"}}`,
	`{"default":{"audience":["api","x"]}}`,
	`{"default":{"scope":["read","write"]}}`,
	`{"default":{"all_of":[]}}`,
	`{"default":{"any_of":[{"groups":{"values":["a"]}},{"scope":"read"},{"claim":"email"}]}}`,
	`{"default":{"n_of":{"min":2,"of":[{"groups":{"values":["a"]}},{"scope":"read"},{"claim":"email"}]}}}`,
	`{"default":{"n_of":{"min":4,"of":[{"claim":"a"},{"claim":"b"}]}}}`,
	`{"access_levels":{"user":{"authenticated":true},"member":{"all_of":["user",{"groups":{"values":["a"]}}]},
	  "admin":{"all_of":["member",{"any_of":[{"scope":"admin"},{"entitlements":{"values":["urn:geant:h-df.de:group:a"]}}]}]},
	  "x":{"all_of":["user"]},"diamond":{"all_of":["x","member","user"]}},
	  "routes":[{"path":{"exact":"/h"},"public":true},{"path":{"prefix":"/admin"},"require":"admin"},
	    {"path":{"prefix":"/d"},"require":"diamond"},{"path":{"prefix":"/m"},"require":"member"}],
	  "default":"user"}`,
}

// preparedClaims are claims documents that meet, partly meet and fail the policies.
var preparedClaims = []string{
	`{}`,
	`{"sub":"u","iss":"https://op"}`,
	`{"sub":"u","iss":"https://op","email":"e","groups":["a","b","c"],"scope":"read write admin","aud":["api"],
	  "eduperson_entitlement":["urn:geant:h-df.de:group:a:role=member#x","urn:geant:h-df.de:group:b:role=member"],
	  "realm_access":{"roles":["a"]},"roles":"r1, r2"}`,
	`{"sub":"u","iss":"https://op","groups":["a"],"scp":["read"]}`,
	`{"sub":"","iss":7,"groups":"a","scope":"","aud":"x","email":null}`,
	`{"sub":"v","iss":"https://op2","groups":["b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q","r","a"],
	  "scope":"a b c d e f g h i j k l m n o p q r s t read"}`,
	// more than smallHeld values: kept in a Memo as sorted sets and parsed entitlements,
	// with duplicates, values that are not entitlements, case and escape variants.
	`{"sub":"u","iss":"https://op","groups":["z","y","x","w","v","u","t","s","r","q","p","o","n","m","l","k","b","b","c"],
	  "scope":"x1 x2 x3 x4 x5 x6 x7 x8 x9 x10 x11 x12 x13 x14 x15 x16 x17 write admin write",
	  "eduperson_entitlement":["plain","urn:geant:h-df.de:group:z","urn:geant:h-df.de:group:y","urn:geant:h-df.de:group:x",
	    "URN:GEANT:H-DF.DE:group:w","urn:geant:h-df.de:group:v","urn:geant:h-df.de:group:u","urn:geant:h-df.de:group:t",
	    "urn:geant:h-df.de:group:s","urn:geant:h-df.de:group:r","urn:geant:h-df.de:group:q","urn:geant:h-df.de:group:p",
	    "urn:geant:h-df.de:group:o","urn:geant:h-df.de:group:n","urn:geant:h-df.de:group:m","urn:geant:other.de:group:a",
	    "urn:geant:h-df.de:group:b:sub:role=member","urn:geant:H-DF.de:group:b:role=member#auth","not an entitlement",
	    "urn:geant:h-df.de:group:a:sub"]}`,
}

var preparedPaths = []string{"/", "/h", "/admin/x", "/d", "/m/1"}

// unprepared compiles cfg without the prepare step: every text is built on evaluation.
func unprepared(t testing.TB, js string) *Engine {
	t.Helper()
	c := newCompiler(decodeConfig(t, js))
	e := c.compile()
	if len(c.problems) > 0 {
		t.Fatalf("compile %s: %v", js, c.problems)
	}
	return e
}

// comparePrepared checks that a prepared engine selects and evaluates exactly like an
// unprepared one: same descriptions, verdicts, reasons, details and scopes; and that
// evaluating with a Memo (one for the claims document, shared by every selection, as a
// cached identity's) gives the same results every time.
func comparePrepared(t *testing.T, pol string, claims map[string]any) {
	t.Helper()
	prep, slow := mustEngine(t, pol), unprepared(t, pol)
	var memo Memo
	for _, p := range preparedPaths {
		r := Request{Method: "GET", Path: p}
		s1, err1 := prep.Select(r)
		s2, err2 := slow.Select(r)
		if (err1 == nil) != (err2 == nil) || s1.Description != s2.Description || s1.Name != s2.Name {
			t.Fatalf("%s %s: Select differs: %+v %v / %+v %v", pol, p, s1, err1, s2, err2)
		}
		for range 2 { // a second evaluation sees the same (shared) texts and Memo
			got, want := s1.Evaluate(claims), s2.Evaluate(claims)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s %s %v:\nprepared   %#v\nunprepared %#v", pol, p, claims, got, want)
			}
			if got := s1.EvaluateMemo(compactOf(claims), &memo); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s %s %v:\nwith memo  %#v\nunprepared %#v", pol, p, claims, got, want)
			}
		}
	}
	for _, name := range prep.AccessLevels() {
		s1, _ := prep.Level(name)
		s2, _ := slow.Level(name)
		want := s2.Evaluate(claims)
		if s1.Description != s2.Description || !reflect.DeepEqual(s1.Evaluate(claims), want) || !reflect.DeepEqual(s1.EvaluateMemo(MapClaims(claims), &memo), want) {
			t.Fatalf("%s level %s differs", pol, name)
		}
	}
}

func TestPreparedTextsEqualBuiltTexts(t *testing.T) {
	allowed := 0
	for _, pol := range preparedPolicies {
		for _, c := range preparedClaims {
			claims := claimsOf(t, c)
			comparePrepared(t, pol, claims)
			sel, _ := mustEngine(t, pol).Select(Request{Path: "/admin"})
			if sel.Evaluate(claims).Allowed {
				allowed++
			}
		}
	}
	if allowed == 0 { // the comparison must cover allows, where prepared texts are used
		t.Fatal("no case allowed")
	}
}

// TestPreparedDetailsAreNotShared: appending to a Result's Details (as the dev switch
// does) never changes what later evaluations return.
func TestPreparedDetailsAreNotShared(t *testing.T) {
	e := mustEngine(t, preparedPolicies[len(preparedPolicies)-1])
	claims := claimsOf(t, preparedClaims[2])
	for _, p := range []string{"/admin", "/h"} {
		sel, _ := e.Select(Request{Path: p})
		first := sel.Evaluate(claims)
		want := append([]string(nil), first.Details...)
		_ = append(first.Details, "extra")
		if got := sel.Evaluate(claims).Details; !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: details changed after an append: %q", p, got)
		}
	}
}

// TestAllowFormatsNothing: an allowing evaluation of a prepared requirement allocates
// only what reading the claims costs (no text is built).
func TestAllowFormatsNothing(t *testing.T) {
	e := mustEngine(t, preparedPolicies[len(preparedPolicies)-1])
	claims := claimsOf(t, preparedClaims[2])
	sel, err := e.Select(Request{Method: "GET", Path: "/admin"})
	if err != nil {
		t.Fatal(err)
	}
	if !sel.Evaluate(claims).Allowed {
		t.Fatal("not allowed")
	}
	if n := testing.AllocsPerRun(20, func() { _, _ = e.Select(Request{Method: "GET", Path: "/admin"}) }); n != 0 {
		t.Errorf("Select allocates %v times", n)
	}
	// Parsing held entitlements allocates; descriptions, reasons and details must not.
	withTexts := testing.AllocsPerRun(20, func() { unpreparedEval(t, claims) })
	prepared := testing.AllocsPerRun(20, func() { sel.Evaluate(claims) })
	if prepared >= withTexts {
		t.Errorf("prepared allow: %v allocations, unprepared: %v", prepared, withTexts)
	}
}

// TestEvaluateAllowAllocatesNothing: an allow by groups, scope, a plain claim and a
// claim value list (the warm path's policy evaluation) reads the claims without
// allocating, also with separators; more than 16 held values may allocate.
func TestEvaluateAllowAllocatesNothing(t *testing.T) {
	e := mustEngine(t, `{"default":{"all_of":[
		{"groups":{"values":["admins","staff"],"match":"one"}},
		{"groups":{"claim":"roles","separator":",","values":["b"]}},
		{"scope":["write"]},
		{"claim":"email"}]}}`)
	claims := claimsOf(t, `{"sub":"u","iss":"i","groups":["x","y","admins","z","w"],"roles":"a, b,c","scope":"openid write","email":"u@example.org"}`)
	sel, err := e.Select(Request{Method: "GET", Path: "/"})
	if err != nil {
		t.Fatal(err)
	}
	if !sel.Evaluate(claims).Allowed {
		t.Fatal("not allowed")
	}
	if n := testing.AllocsPerRun(50, func() { sel.Evaluate(claims) }); n != 0 {
		t.Errorf("Evaluate allocates %v times", n)
	}
}

var unpreparedSel Selection

func unpreparedEval(t testing.TB, claims map[string]any) {
	if unpreparedSel.node == nil {
		unpreparedSel, _ = unprepared(t, preparedPolicies[len(preparedPolicies)-1]).Select(Request{Method: "GET", Path: "/admin"})
	}
	unpreparedSel.Evaluate(claims)
}

// FuzzPreparedEqualsUnprepared: for any claims document, prepared and unprepared
// engines agree on every policy above.
func FuzzPreparedEqualsUnprepared(f *testing.F) {
	for _, c := range preparedClaims {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		var claims map[string]any
		if json.NewDecoder(strings.NewReader(doc)).Decode(&claims) != nil {
			return
		}
		for _, pol := range preparedPolicies {
			comparePrepared(t, pol, claims)
		}
	})
}
