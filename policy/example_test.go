package policy_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// The `policy:` section of the configuration file, as JSON (the YAML file is converted
// to JSON and decoded with DisallowUnknownFields).
const exampleConfig = `{
  "access_levels": {
    "user":  {"authenticated": true},
    "admin": {"all_of": ["user", {"entitlements": {"values": ["urn:geant:h-df.de:group:aai-admin"]}}]},
    "ops":   {"groups": {"claim": "groups", "values": ["ops", "sre", "oncall"], "match": 2}}
  },
  "routes": [
    {"name": "health", "path": {"exact": "/healthz"}, "methods": ["GET"], "public": true},
    {"name": "admin",  "path": {"prefix": "/admin"}, "require": "admin"},
    {"name": "ops",    "host": "*.ops.example.org", "require": "ops"}
  ],
  "default": "user"
}`

func exampleEngine() *policy.Engine {
	var cfg policy.Config
	dec := json.NewDecoder(strings.NewReader(exampleConfig))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		panic(err)
	}
	eng, err := policy.New(cfg)
	if err != nil {
		panic(err)
	}
	return eng
}

func ExampleNew() {
	eng := exampleEngine()
	for _, w := range eng.Warnings() {
		fmt.Println("warning:", w)
	}
	fmt.Println(eng.AccessLevels())
	// Output:
	// warning: routes[0]: route "health" is public: matching requests are allowed without a token
	// [admin ops user]
}

func ExampleNew_errors() {
	var cfg policy.Config
	_ = json.Unmarshal([]byte(`{
	  "access_levels": {"a": "b", "b": {"any_of": ["a"]}},
	  "routes": [{"path": {"prefix": "/"}, "require": {"groups": {"values": ["x"], "match": 0}}}]
	}`), &cfg)
	_, err := policy.New(cfg)
	fmt.Println(err)
	// Output:
	// policy: invalid configuration: access_levels.a: cyclic access-level reference: a → b → a; routes[0].require.groups.match: must be all, one or a positive integer
}

func ExampleEngine_Select() {
	eng := exampleEngine()
	for _, r := range []policy.Request{
		{Method: "GET", Host: "api.example.org", Path: "/healthz?probe=1"},
		{Method: "GET", Host: "api.example.org", Path: "/x/./y/../../admin/users"},
		{Method: "PUT", Host: "db.ops.example.org:8443", Path: "/x"},
		{Method: "GET", Host: "api.example.org", Path: "/x", ContextExtensions: map[string]string{"flaat_policy": "admin"}},
		{Method: "GET", Host: "api.example.org", Path: "/docs"},
	} {
		sel, err := eng.Select(r)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%s %s → %s (%s, public=%v)\n", r.Method, r.Path, sel.Name, sel.Source, sel.Public)
	}
	_, err := eng.Select(policy.Request{Method: "GET", Path: "/admin%00"})
	fmt.Println(err)
	_, err = eng.Select(policy.Request{Method: "GET", Path: "/healthz/..;/admin"})
	fmt.Println(errors.Is(err, policy.ErrAmbiguousPath))
	// Output:
	// GET /healthz?probe=1 → health (route, public=true)
	// GET /x/./y/../../admin/users → admin (route, public=false)
	// PUT /x → ops (route, public=false)
	// GET /x → admin (context_extensions, public=false)
	// GET /docs → default (default, public=false)
	// policy: path cannot be normalised: control character
	// true
}

func ExampleSelection_Evaluate() {
	eng := exampleEngine()
	sel, _ := eng.Select(policy.Request{Method: "GET", Host: "a.ops.example.org", Path: "/"})
	fmt.Println(sel.Description)

	claims := map[string]any{"sub": "u1", "iss": "https://op.example.org", "groups": []any{"ops", "dev"}}
	res := sel.Evaluate(claims)
	fmt.Println(res.Allowed, res.Reason)

	claims["groups"] = []any{"ops", "sre"}
	res = sel.Evaluate(claims)
	fmt.Println(res.Allowed, res.Reason)
	// Output:
	// access level "ops" = groups(claim "groups", 2 of "ops", "sre", "oncall")
	// false access level "ops": groups: 1 of 2 required values in claim "groups" (need 2 of "ops", "sre", "oncall"; missing: "sre", "oncall")
	// true access level "ops": groups: 2 of 2 required values in claim "groups"
}

func ExampleSelection_Evaluate_details() {
	eng := exampleEngine()
	sel, _ := eng.Select(policy.Request{Method: "GET", Path: "/admin"})
	res := sel.Evaluate(map[string]any{
		"sub": "u1", "iss": "https://op.example.org",
		"eduperson_entitlement": []any{"urn:geant:h-df.de:group:aai-admin:role=member#unity.helmholtz.de"},
	})
	fmt.Println(res.Allowed)
	fmt.Println(strings.Join(res.Details, "\n"))
	// Output:
	// true
	// met: access level "admin"
	//   met: all_of: 2 of 2 met
	//     met: access level "user"
	//       met: authenticated: claims "sub" and "iss" present
	//     met: entitlements: 1 of 1 required values in claim "eduperson_entitlement"
}

func ExampleClaimValues() {
	claims := map[string]any{
		"https://example.org/groups": []any{"a", "b"},
		"realm_access":               map[string]any{"roles": []any{"admin"}},
		"uid":                        1000.0,
		"scope":                      "openid profile",
	}
	for _, name := range []string{"https://example.org/groups", "realm_access.roles", "realm_access", "uid", "scope", "missing"} {
		v, ok := policy.ClaimValues(claims, name)
		fmt.Printf("%s: %q %v\n", name, v, ok)
	}
	// Output:
	// https://example.org/groups: ["a" "b"] true
	// realm_access.roles: ["admin"] true
	// realm_access: ["{\"roles\":[\"admin\"]}"] true
	// uid: ["1000"] true
	// scope: ["openid profile"] true
	// missing: [] false
}

func ExampleNormalizePath() {
	for _, p := range []string{"//admin", "/a/../admin", "/%61dmin", "/admin%2F", "/admin?x", "/admin%252F"} {
		n, err := policy.NormalizePath(p)
		fmt.Printf("%-12s %q %v\n", p, n, err)
	}
	// Output:
	// //admin      "/admin" <nil>
	// /a/../admin  "/admin" <nil>
	// /%61dmin     "/admin" <nil>
	// /admin%2F    "/admin" <nil>
	// /admin?x     "/admin" <nil>
	// /admin%252F  "" policy: path cannot be normalised: "%2F" percent-encoded twice
}

func ExampleEntitlement_Satisfies() {
	required, _ := policy.ParseEntitlement("urn:geant:h-df.de:group:aai-admin")
	for _, held := range []string{
		"urn:geant:h-df.de:group:aai-admin:special-admins#x",
		"URN:GEANT:H-DF.DE:group:aai-admin:role=member",
		"urn:geant:h-df.de:group:AAI-admin",
		"urn:geant:kit.edu:group:aai-admin",
	} {
		h, _ := policy.ParseEntitlement(held)
		fmt.Println(h.Satisfies(required), held)
	}
	// Output:
	// true urn:geant:h-df.de:group:aai-admin:special-admins#x
	// true URN:GEANT:H-DF.DE:group:aai-admin:role=member
	// false urn:geant:h-df.de:group:AAI-admin
	// false urn:geant:kit.edu:group:aai-admin
}

// Documents with the same members share one Shape; the values sit beside it. A
// compact document reads as the map it was made from.
func ExampleCompactClaims() {
	shape := policy.NewShape([]string{"sub", "groups", "iss"}) // sorted: groups, iss, sub
	alice := policy.CompactClaims(shape, []any{[]any{"ops", "dev"}, "https://op.example.org", "alice"})
	bob := policy.CompactClaims(shape, []any{[]any{"dev"}, "https://op.example.org", "bob"})
	for _, c := range []policy.Claims{alice, bob} {
		sub, _ := c.Lookup("sub")
		groups, _ := c.Values("groups")
		fmt.Println(sub, groups, c.Len())
	}
	// Output:
	// alice [ops dev] 3
	// bob [dev] 3
}
