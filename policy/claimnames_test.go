package policy

import (
	"reflect"
	"strings"
	"testing"
)

// claimNamesCases are policies of every requirement form, with the names ClaimNames
// must return.
var claimNamesCases = []struct {
	name, cfg string
	want      []string
}{
	{"zero config", `{}`, []string{}},
	{"public only", `{"routes":[{"path":{"prefix":"/"},"public":true}]}`, []string{}},
	{"authenticated", `{"default":{"authenticated":true}}`, []string{"iss", "sub"}},
	{"claim", `{"default":{"claim":"email"}}`, []string{"email"}},
	{"claim dotted and URL", `{"default":{"all_of":[{"claim":"realm_access.roles"},{"claim":{"name":"https://example.org/claims/x","separator":","}}]}}`,
		[]string{"https://example.org/claims/x", "realm_access.roles"}},
	{"groups default claim", `{"default":{"groups":{"values":["a"]}}}`, []string{"groups"}},
	{"groups own claim", `{"default":{"groups":{"claim":"wlcg.groups","values":["/a"],"match":"one"}}}`, []string{"wlcg.groups"}},
	{"entitlements default claim", `{"default":{"entitlements":{"values":["urn:x"]}}}`, []string{"eduperson_entitlement"}},
	{"entitlements own claim", `{"default":{"entitlements":{"claim":"ent","values":["urn:x"]}}}`, []string{"ent"}},
	{"issuer", `{"default":{"issuer":"https://op"}}`, []string{"iss"}},
	{"subject", `{"default":{"subject":["a"]}}`, []string{"sub"}},
	{"audience", `{"default":{"audience":"api"}}`, []string{"aud"}},
	{"scope", `{"default":{"scope":"read"}}`, []string{"scope", "scp"}},
	{"combinators", `{"default":{"any_of":[{"n_of":{"min":1,"of":[{"claim":"a"},{"claim":"b"}]}},{"all_of":[{"claim":"c"}]},{"all_of":[]}]}}`,
		[]string{"a", "b", "c"}},
	{"levels, routes, default, unused level",
		`{"access_levels":{"user":{"authenticated":true},"member":{"groups":{"values":["m"]}},"admin":{"all_of":["member",{"claim":"admin_flag"}]},"unused":{"claim":"only_here"}},
		  "routes":[{"path":{"prefix":"/admin"},"require":"admin"},{"path":{"exact":"/h"},"public":true},{"path":{"prefix":"/s"},"require":{"scope":"x"}}],
		  "default":"user"}`,
		[]string{"admin_flag", "groups", "iss", "only_here", "scope", "scp", "sub"}},
}

func TestClaimNames(t *testing.T) {
	for _, c := range claimNamesCases {
		t.Run(c.name, func(t *testing.T) {
			got := mustEngine(t, c.cfg).ClaimNames()
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("ClaimNames() = %q, want %q", got, c.want)
			}
		})
	}
}

// TestClaimNamesSuffice: a claims document cut down to ClaimNames (a dotted name keeps
// its literal name and its first segment) gets the same verdict and reason from every
// requirement of every policy above as the full document.
func TestClaimNamesSuffice(t *testing.T) {
	docs := []map[string]any{
		nil,
		{},
		{"sub": "a", "iss": "https://op", "aud": []any{"api", "x"}, "scope": "read write", "groups": []any{"a", "m"},
			"email": "a@b", "realm_access": map[string]any{"roles": []any{"r"}}, "wlcg.groups": []any{"/a"},
			"eduperson_entitlement": []any{"urn:x"}, "ent": "urn:x", "admin_flag": true, "only_here": "y",
			"https://example.org/claims/x": "p,q", "a": "1", "b": "", "c": 3.0, "noise": "n", "name": "N"},
		{"sub": "", "iss": 7.0, "scp": []any{"read", "x"}, "groups": "m", "realm_access.roles": "lit", "realm_access": "not an object",
			"wlcg": map[string]any{"groups": []any{"/a"}}, "ent": []any{"urn:y"}, "b": []any{"", nil}, "other": map[string]any{}},
	}
	for _, c := range claimNamesCases {
		e := mustEngine(t, c.cfg)
		keep := map[string]bool{}
		for _, n := range e.ClaimNames() {
			keep[n] = true
			if first, _, dotted := strings.Cut(n, "."); dotted {
				keep[first] = true
			}
		}
		var sels []Selection
		for _, l := range e.AccessLevels() {
			s, _ := e.Level(l)
			sels = append(sels, s)
		}
		for _, p := range []string{"/admin/x", "/h", "/s", "/other"} {
			s, err := e.Select(Request{Method: "GET", Host: "h", Path: p})
			if err != nil {
				t.Fatal(err)
			}
			sels = append(sels, s)
		}
		for i, doc := range docs {
			cut := map[string]any{}
			for k, v := range doc {
				if keep[k] {
					cut[k] = v
				}
			}
			for _, s := range sels {
				full, part := s.Evaluate(doc), s.Evaluate(cut)
				if full.Allowed != part.Allowed || full.Reason != part.Reason {
					t.Errorf("%s, doc %d, %s: full %v %q, cut %v %q", c.name, i, s.Name, full.Allowed, full.Reason, part.Allowed, part.Reason)
				}
			}
		}
	}
}
