package policy

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// decodeConfig decodes a `policy:` section the way the configuration loader does
// (YAML converted to JSON, encoding/json with DisallowUnknownFields).
func decodeConfig(t testing.TB, js string) Config {
	t.Helper()
	var cfg Config
	dec := json.NewDecoder(strings.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("decode %s: %v", js, err)
	}
	return cfg
}

func mustEngine(t testing.TB, js string) *Engine {
	t.Helper()
	e, err := New(decodeConfig(t, js))
	if err != nil {
		t.Fatalf("New(%s): %v", js, err)
	}
	return e
}

func claimsOf(t testing.TB, js string) map[string]any {
	t.Helper()
	var c map[string]any
	if err := json.Unmarshal([]byte(js), &c); err != nil {
		t.Fatalf("claims %s: %v", js, err)
	}
	return c
}

// evalReq evaluates one requirement (JSON) as the default policy on claims (JSON),
// with optional access levels.
func evalReq(t testing.TB, levels, req, claims string) Result {
	t.Helper()
	if levels == "" {
		levels = "{}"
	}
	e := mustEngine(t, `{"access_levels":`+levels+`,"default":`+req+`}`)
	sel, err := e.Select(Request{Method: "GET", Path: "/"})
	if err != nil {
		t.Fatalf("Select: %v", err)
	}
	c := claimsOf(t, claims)
	res := sel.Evaluate(c)
	for _, form := range []Claims{MapClaims(c), compactOf(c)} {
		var memo Memo
		for range 2 { // filling the Memo, then reading it
			if got := sel.EvaluateMemo(form, &memo); !reflect.DeepEqual(got, res) {
				t.Fatalf("EvaluateMemo %s on %s (%d members):\n%#v\nEvaluate:\n%#v", req, claims, form.Len(), got, res)
			}
		}
	}
	return res
}

type truthCase struct {
	name   string
	levels string
	req    string
	claims string
	want   bool
	reason string // substring of Reason, if set
}

func runTruth(t *testing.T, cases []truthCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := evalReq(t, tc.levels, tc.req, tc.claims)
			if res.Allowed != tc.want {
				t.Fatalf("Allowed = %v, want %v (reason %q, details %q)", res.Allowed, tc.want, res.Reason, res.Details)
			}
			if tc.reason != "" && !strings.Contains(res.Reason, tc.reason) {
				t.Fatalf("Reason = %q, want it to contain %q", res.Reason, tc.reason)
			}
			if res.Reason == "" || len(res.Details) == 0 {
				t.Fatalf("empty reason or details: %+v", res)
			}
		})
	}
}

func TestAuthenticated(t *testing.T) {
	req := `{"authenticated":true}`
	runTruth(t, []truthCase{
		{"sub and iss", "", req, `{"sub":"u","iss":"https://op"}`, true, `"sub" and "iss" present`},
		{"no sub", "", req, `{"iss":"https://op"}`, false, `claim "sub" missing or empty`},
		{"empty sub", "", req, `{"sub":"","iss":"https://op"}`, false, `"sub"`},
		{"null iss", "", req, `{"sub":"u","iss":null}`, false, `"iss"`},
		{"nothing", "", req, `{}`, false, `"sub", "iss"`},
		{"list sub counts", "", req, `{"sub":["u"],"iss":"i"}`, true, ""},
		{"empty list sub", "", req, `{"sub":[],"iss":"i"}`, false, ""},
	})
}

func TestClaim(t *testing.T) {
	runTruth(t, []truthCase{
		{"present string", "", `{"claim":"email"}`, `{"email":"a@b"}`, true, `"email" has a value`},
		{"object form", "", `{"claim":{"name":"email"}}`, `{"email":"a@b"}`, true, ""},
		{"missing", "", `{"claim":"email"}`, `{}`, false, `claim: "email" missing or empty`},
		{"empty string", "", `{"claim":"email"}`, `{"email":""}`, false, ""},
		{"null", "", `{"claim":"email"}`, `{"email":null}`, false, ""},
		{"empty list", "", `{"claim":"email"}`, `{"email":[]}`, false, ""},
		{"list of empty", "", `{"claim":"email"}`, `{"email":["",null]}`, false, ""},
		{"bool false is a value", "", `{"claim":"email_verified"}`, `{"email_verified":false}`, true, ""},
		{"number", "", `{"claim":"n"}`, `{"n":0}`, true, ""},
		{"dotted path", "", `{"claim":"ext.groups"}`, `{"ext":{"groups":["a"]}}`, true, ""},
		{"dotted path missing", "", `{"claim":"ext.groups"}`, `{"ext":{"other":["a"]}}`, false, ""},
		{"dotted through scalar", "", `{"claim":"ext.groups"}`, `{"ext":"x"}`, false, ""},
		{"literal url", "", `{"claim":"https://example.org/groups"}`, `{"https://example.org/groups":["a"]}`, true, ""},
		{"separator only separators", "", `{"claim":{"name":"g","separator":","}}`, `{"g":" , ,"}`, false, ""},
		{"separator value", "", `{"claim":{"name":"g","separator":","}}`, `{"g":",a,"}`, true, ""},
	})
}

func TestGroups(t *testing.T) {
	abc := `"values":["a","b","c"]`
	runTruth(t, []truthCase{
		// match all/one/2/3/5 against held [a,b] of required [a,b,c]: pass only for one and 2.
		{"all vs ab", "", `{"groups":{` + abc + `,"match":"all"}}`, `{"groups":["a","b"]}`, false, `groups: 2 of 3 required values in claim "groups" (missing: "c")`},
		{"default match is all", "", `{"groups":{` + abc + `}}`, `{"groups":["a","b"]}`, false, `(missing: "c")`},
		{"one vs ab", "", `{"groups":{` + abc + `,"match":"one"}}`, `{"groups":["a","b"]}`, true, ""},
		{"2 vs ab", "", `{"groups":{` + abc + `,"match":2}}`, `{"groups":["a","b"]}`, true, "2 of 2"},
		{"string 2 vs ab", "", `{"groups":{` + abc + `,"match":"2"}}`, `{"groups":["a","b"]}`, true, ""},
		{"3 vs ab", "", `{"groups":{` + abc + `,"match":3}}`, `{"groups":["a","b"]}`, false, `2 of 3 required values in claim "groups" (need 3 of "a", "b", "c"; missing: "c")`},
		{"5 vs ab", "", `{"groups":{` + abc + `,"match":5}}`, `{"groups":["a","b","c"]}`, false, "can never be met"},
		{"all vs abc", "", `{"groups":{` + abc + `}}`, `{"groups":["c","b","a","x"]}`, true, "3 of 3"},
		// duplicate held values count once.
		{"dup held match 2", "", `{"groups":{` + abc + `,"match":2}}`, `{"groups":["a","a"]}`, false, "1 of 2"},
		{"dup required", "", `{"groups":{"values":["a","a"],"match":"all"}}`, `{"groups":["a"]}`, true, "1 of 1"},
		// scalar vs list.
		{"scalar claim", "", `{"groups":{"values":["a"]}}`, `{"groups":"a"}`, true, ""},
		{"scalar not split", "", `{"groups":{"values":["a"]}}`, `{"groups":"a,b"}`, false, ""},
		{"separator comma", "", `{"groups":{"values":["a","b"],"separator":","}}`, `{"groups":"a, b"}`, true, ""},
		{"separator space", "", `{"groups":{"values":["a","b"],"separator":" "}}`, `{"groups":"a  b"}`, true, ""},
		{"separator in list", "", `{"groups":{"values":["a","b"],"separator":","}}`, `{"groups":["a,b"]}`, true, ""},
		{"missing claim", "", `{"groups":{"values":["ops"]}}`, `{}`, false, `groups: claim "groups" missing or empty (required: all of "ops")`},
		{"issue example", "", `{"groups":{"values":["dev","ops"]}}`, `{"groups":["dev"]}`, false, `groups: 1 of 2 required values in claim "groups" (missing: "ops")`},
		{"case sensitive", "", `{"groups":{"values":["Ops"]}}`, `{"groups":["ops"]}`, false, ""},
		{"other claim", "", `{"groups":{"claim":"eduperson_scoped_affiliation","values":["member@kit.edu"],"match":"one"}}`, `{"eduperson_scoped_affiliation":["member@kit.edu"]}`, true, ""},
		{"dotted claim", "", `{"groups":{"claim":"realm_access.roles","values":["admin"]}}`, `{"realm_access":{"roles":["admin"]}}`, true, ""},
		{"literal before dotted", "", `{"groups":{"claim":"wlcg.groups","values":["/atlas"]}}`, `{"wlcg.groups":["/atlas"],"wlcg":{"groups":["/cms"]}}`, true, ""},
		{"literal shadows dotted", "", `{"groups":{"claim":"wlcg.groups","values":["/cms"]}}`, `{"wlcg.groups":["/atlas"],"wlcg":{"groups":["/cms"]}}`, false, ""},
		{"url claim", "", `{"groups":{"claim":"https://example.org/claims/groups","values":["a"]}}`, `{"https://example.org/claims/groups":["a"]}`, true, ""},
		{"number claim value", "", `{"groups":{"claim":"gid","values":["1000"]}}`, `{"gid":1000}`, true, ""},
		{"bool claim value", "", `{"groups":{"claim":"email_verified","values":["true"]}}`, `{"email_verified":true}`, true, ""},
		{"object claim never matches", "", `{"groups":{"values":["a"]}}`, `{"groups":{"a":true}}`, false, ""},
		{"nested list element", "", `{"groups":{"values":["a"]}}`, `{"groups":[["a"]]}`, false, ""},
	})
}

func TestEntitlementsRequirement(t *testing.T) {
	const adm = "urn:geant:h-df.de:group:aai-admin"
	req := `{"entitlements":{"values":["` + adm + `"]}}`
	runTruth(t, []truthCase{
		{"subgroup", "", req, `{"eduperson_entitlement":["` + adm + `:special-admins#x"]}`, true, ""},
		{"role", "", req, `{"eduperson_entitlement":"` + adm + `:role=member#x"}`, true, ""},
		{"upper namespace", "", req, `{"eduperson_entitlement":["URN:GEANT:H-DF.DE:group:aai-admin"]}`, true, ""},
		{"group case", "", req, `{"eduperson_entitlement":["urn:geant:h-df.de:group:AAI-admin"]}`, false, `entitlements: 0 of 1 required values in claim "eduperson_entitlement"`},
		{"other namespace", "", req, `{"eduperson_entitlement":["urn:geant:kit.edu:group:aai-admin"]}`, false, ""},
		{"garbage held", "", req, `{"eduperson_entitlement":["urn:", "::::", "` + adm + `x", "group", 7, null, {"a":1}]}`, false, ""},
		{"plain fallback", "", `{"entitlements":{"values":["not-an-urn"]}}`, `{"eduperson_entitlement":["not-an-urn"]}`, true, ""},
		{"plain fallback no prefix", "", `{"entitlements":{"values":["not-an-urn"]}}`, `{"eduperson_entitlement":["not-an-urn:x"]}`, false, ""},
		{"match 2 distinct", "", `{"entitlements":{"values":["` + adm + `","` + adm + `:sub"],"match":2}}`, `{"eduperson_entitlement":["` + adm + `:sub"]}`, true, ""},
		{"match 2 one held", "", `{"entitlements":{"values":["` + adm + `","urn:geant:h-df.de:group:other"],"match":2}}`, `{"eduperson_entitlement":["` + adm + `"]}`, false, `(need 2 of`},
		{"custom claim", "", `{"entitlements":{"claim":"entitlements","values":["` + adm + `"]}}`, `{"entitlements":["` + adm + `"]}`, true, ""},
	})
}

func TestAllowLists(t *testing.T) {
	runTruth(t, []truthCase{
		{"issuer ok", "", `{"issuer":["https://a","https://b"]}`, `{"iss":"https://b"}`, true, ""},
		{"issuer string form", "", `{"issuer":"https://a"}`, `{"iss":"https://a"}`, true, ""},
		{"issuer other", "", `{"issuer":["https://a"]}`, `{"iss":"https://a/"}`, false, `issuer: claim "iss" is not one of "https://a"`},
		{"issuer missing", "", `{"issuer":["https://a"]}`, `{}`, false, "missing or empty"},
		{"subject ok", "", `{"subject":["u1"]}`, `{"sub":"u1"}`, true, ""},
		{"subject other", "", `{"subject":["u1"]}`, `{"sub":"u2"}`, false, ""},
		{"audience list", "", `{"audience":["api"]}`, `{"aud":["x","api"]}`, true, ""},
		{"audience string", "", `{"audience":["api","other"]}`, `{"aud":"other"}`, true, ""},
		{"audience none", "", `{"audience":["api"]}`, `{"aud":["x"]}`, false, ""},
		{"scope all present", "", `{"scope":["read","write"]}`, `{"scope":"openid write read"}`, true, ""},
		{"scope missing one", "", `{"scope":["read","write"]}`, `{"scope":"openid read"}`, false, `scope: claim "scope" lacks "write"`},
		{"scope list", "", `{"scope":["read"]}`, `{"scope":["read"]}`, true, ""},
		{"scp fallback", "", `{"scope":["read"]}`, `{"scp":["read","x"]}`, true, ""},
		{"scope wins over scp", "", `{"scope":["read"]}`, `{"scope":"x","scp":["read"]}`, false, ""},
		{"scope no substring", "", `{"scope":["read"]}`, `{"scope":"reader"}`, false, ""},
		{"scope absent", "", `{"scope":["read"]}`, `{}`, false, ""},
	})
}

func TestScopesInResult(t *testing.T) {
	res := evalReq(t, "", `{"all_of":[{"authenticated":true},{"scope":["read","write"]}]}`, `{"sub":"u","iss":"i","scope":"read"}`)
	if res.Allowed || !reflect.DeepEqual(res.Scopes, []string{"read", "write"}) {
		t.Fatalf("got %+v", res)
	}
	res = evalReq(t, "", `{"any_of":[{"authenticated":true},{"scope":["read"]}]}`, `{"sub":"u","iss":"i"}`)
	if !res.Allowed || res.Scopes != nil {
		t.Fatalf("allowed result must carry no scopes: %+v", res)
	}
}

func TestCombinators(t *testing.T) {
	auth := `{"authenticated":true}`
	ga := `{"groups":{"values":["a"]}}`
	gb := `{"groups":{"values":["b"]}}`
	gc := `{"groups":{"values":["c"]}}`
	u := `"sub":"u","iss":"i"`
	runTruth(t, []truthCase{
		{"all_of empty", "", `{"all_of":[]}`, `{` + u + `}`, false, "all_of: empty list is never met"},
		{"any_of empty", "", `{"any_of":[]}`, `{` + u + `}`, false, "any_of: empty list is never met"},
		{"n_of empty", "", `{"n_of":{"min":1,"of":[]}}`, `{` + u + `}`, false, "never met"},
		{"all_of both", "", `{"all_of":[` + auth + `,` + ga + `]}`, `{` + u + `,"groups":["a"]}`, true, "all_of: 2 of 2 met"},
		{"all_of one fails", "", `{"all_of":[` + auth + `,` + ga + `,` + gb + `]}`, `{` + u + `,"groups":["a"]}`, false, `groups: 0 of 1 required values in claim "groups" (missing: "b")`},
		{"all_of single", "", `{"all_of":[` + ga + `]}`, `{"groups":["a"]}`, true, ""},
		{"any_of first", "", `{"any_of":[` + ga + `,` + gb + `]}`, `{"groups":["a"]}`, true, ""},
		{"any_of second", "", `{"any_of":[` + ga + `,` + gb + `]}`, `{"groups":["b"]}`, true, ""},
		{"any_of none", "", `{"any_of":[` + ga + `,` + gb + `]}`, `{"groups":["c"]}`, false, "any_of: none of 2 met"},
		{"n_of 2 of 3 met 2", "", `{"n_of":{"min":2,"of":[` + ga + `,` + gb + `,` + gc + `]}}`, `{"groups":["a","c"]}`, true, ""},
		{"n_of 2 of 3 met 1", "", `{"n_of":{"min":2,"of":[` + ga + `,` + gb + `,` + gc + `]}}`, `{"groups":["b"]}`, false, "n_of: 1 of 2 required (out of 3) met"},
		{"n_of exceeds", "", `{"n_of":{"min":4,"of":[` + ga + `,` + gb + `,` + gc + `]}}`, `{"groups":["a","b","c"]}`, false, ""},
		{"nested", "", `{"any_of":[{"all_of":[` + ga + `,` + gb + `]},` + gc + `]}`, `{"groups":["a","b"]}`, true, ""},
		{"nested fail", "", `{"any_of":[{"all_of":[` + ga + `,` + gb + `]},` + gc + `]}`, `{"groups":["a"]}`, false, ""},
		{"level shorthand", `{"user":` + auth + `}`, `"user"`, `{` + u + `}`, true, `access level "user": authenticated`},
		{"level object", `{"user":` + auth + `}`, `{"level":"user"}`, `{}`, false, `access level "user": authenticated: claim "sub", "iss" missing or empty`},
		{"nested levels", `{"user":` + auth + `,"admin":{"all_of":["user",` + ga + `]},"super":{"all_of":["admin",` + gb + `]}}`, `"super"`, `{` + u + `,"groups":["a","b"]}`, true, ""},
		{"nested levels fail deep", `{"user":` + auth + `,"admin":{"all_of":["user",` + ga + `]},"super":{"all_of":["admin",` + gb + `]}}`, `"super"`, `{"groups":["a","b"]}`, false, `access level "super": access level "admin": access level "user": authenticated`},
		{"diamond", `{"user":` + auth + `,"x":{"all_of":["user"]},"y":{"all_of":["user","x"]}}`, `{"all_of":["x","y"]}`, `{` + u + `}`, true, ""},
	})
}

func TestDetails(t *testing.T) {
	res := evalReq(t, `{"user":{"authenticated":true}}`,
		`{"all_of":["user",{"any_of":[{"groups":{"values":["a"]}},{"scope":"read"}]}]}`,
		`{"sub":"u","iss":"i","groups":["x"]}`)
	want := []string{
		"not met: all_of: 1 of 2 met",
		`  met: access level "user"`,
		`    met: authenticated: claims "sub" and "iss" present`,
		"  not met: any_of: 0 of 2 met",
		`    not met: groups: 0 of 1 required values in claim "groups" (missing: "a")`,
		`    not met: scope: claim "scp" lacks "read"`,
	}
	if !reflect.DeepEqual(res.Details, want) {
		t.Fatalf("details:\n%s\nwant:\n%s", strings.Join(res.Details, "\n"), strings.Join(want, "\n"))
	}
	if res.Reason != `any_of: none of 2 met (groups: 0 of 1 required values in claim "groups" (missing: "a"); scope: claim "scp" lacks "read")` {
		t.Fatalf("reason %q", res.Reason)
	}
}

// Reasons name claims and required values only: the user's other values never leak.
func TestReasonsDoNotLeakClaims(t *testing.T) {
	secret := "SECRET-VALUE"
	reqs := []string{
		`{"authenticated":true}`,
		`{"claim":"email"}`,
		`{"groups":{"values":["a","b"],"match":2}}`,
		`{"entitlements":{"values":["urn:geant:x:group:y"]}}`,
		`{"issuer":"https://op"}`, `{"subject":"u"}`, `{"audience":"api"}`, `{"scope":"read"}`,
		`{"any_of":[{"groups":{"values":["a"]}},{"issuer":"https://op"}]}`,
	}
	claims := `{"sub":"` + secret + `","iss":"` + secret + `","aud":"` + secret + `","scope":"` + secret + `","groups":["` + secret + `","a"],"eduperson_entitlement":["urn:geant:x:group:` + secret + `"]}`
	for _, r := range reqs {
		res := evalReq(t, "", r, claims)
		if strings.Contains(res.Reason, secret) || strings.Contains(strings.Join(res.Details, "\n"), secret) {
			t.Errorf("%s: reason leaks claim contents: %q %q", r, res.Reason, res.Details)
		}
	}
}

// Malformed claims documents deny, never panic.
func TestEvaluateOddClaims(t *testing.T) {
	e := mustEngine(t, `{"default":{"all_of":[{"authenticated":true},{"groups":{"claim":"a.b.c","values":["x"]}},{"scope":"r"},{"audience":"x"},{"entitlements":{"values":["urn:a:b:group:c"]}}]}}`)
	sel, _ := e.Select(Request{Path: "/"})
	for _, c := range []map[string]any{
		nil, {}, {"sub": 1.0, "iss": true, "a": map[string]any{"b": []any{1.0}}},
		{"a": map[string]any{"b": map[string]any{"c": nil}}, "scope": []any{nil, 3.0, []any{}}, "aud": map[string]any{}},
		{"eduperson_entitlement": []any{"urn:a:b:group:c:role=", "urn:a:b:group"}},
		{"a.b.c": []string{"x"}, "scope": []string{"r"}, "aud": []string{"y"}},
	} {
		if res := sel.Evaluate(c); res.Allowed {
			t.Errorf("allowed on %v: %+v", c, res)
		}
	}
	if res := (Selection{}).Evaluate(map[string]any{"sub": "u", "iss": "i"}); res.Allowed {
		t.Fatal("zero Selection allowed")
	}
}

func TestMatchJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Match
		n    int
		ok   bool
	}{
		{`"all"`, "all", 3, true}, {`"ALL"`, "ALL", 3, true}, {`"one"`, "one", 1, true}, {`2`, "2", 2, true},
		{`"2"`, "2", 2, true}, {`null`, "", 3, true}, {`0`, "0", 0, false}, {`-1`, "-1", 0, false},
		{`2.5`, "2.5", 0, false}, {`true`, "true", 0, false}, {`"some"`, "some", 0, false},
		{`1e30`, "1e30", 0, false},
	} {
		var m Match
		if err := json.Unmarshal([]byte(tc.in), &m); err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if m != tc.want {
			t.Errorf("%s: got %q want %q", tc.in, m, tc.want)
		}
		n, msg := m.count(3)
		if (msg == "") != tc.ok || tc.ok && n != tc.n {
			t.Errorf("%s: count = %d, %q", tc.in, n, msg)
		}
	}
	b, _ := json.Marshal(struct{ A, B Match }{MatchAtLeast(2), MatchOne})
	if string(b) != `{"A":2,"B":"one"}` {
		t.Fatalf("marshal %s", b)
	}
}

// A configuration built in Go (not decoded) works the same.
func TestGoConfig(t *testing.T) {
	e, err := New(Config{
		AccessLevels: map[string]Requirement{"ops": {Groups: &ValuesRequirement{Values: StringList{"a", "b", "c"}, Match: MatchAtLeast(2)}}},
		Routes:       []Route{{Name: "ops", Path: &PathMatch{Prefix: "/ops"}, Require: &Requirement{Level: "ops"}}},
		Default:      &Requirement{Authenticated: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	sel, err := e.Select(Request{Method: "GET", Path: "/ops/x"})
	if err != nil || sel.Name != "ops" {
		t.Fatalf("%+v %v", sel, err)
	}
	if !sel.Evaluate(map[string]any{"groups": []any{"a", "c"}}).Allowed {
		t.Fatal("2 of 3 should be allowed")
	}
	if sel.Evaluate(map[string]any{"groups": []string{"a"}}).Allowed {
		t.Fatal("1 of 3 should be denied")
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(e.AccessLevels()); err != nil || buf.String() != "[\"ops\"]\n" {
		t.Fatalf("AccessLevels %s %v", buf.String(), err)
	}
}
