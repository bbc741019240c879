package policy

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func configProblems(t *testing.T, js string) []string {
	t.Helper()
	_, err := New(decodeConfig(t, js))
	if err == nil {
		t.Fatalf("New(%s) succeeded, want an error", js)
	}
	var ce *ConfigError
	if !errors.As(err, &ce) || !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("error %v is not a *ConfigError wrapping ErrInvalidConfig", err)
	}
	if !strings.HasPrefix(err.Error(), "policy: invalid configuration: ") {
		t.Fatalf("message %q", err.Error())
	}
	var out []string
	for _, p := range ce.Problems {
		out = append(out, p.String())
	}
	return out
}

func TestConfigErrorsSingle(t *testing.T) {
	for _, tc := range []struct {
		name, cfg, want string
	}{
		{"match zero", `{"routes":[{"path":{"prefix":"/"},"require":{"groups":{"values":["a"],"match":0}}}]}`, "routes[0].require.groups.match: must be all, one or a positive integer"},
		{"match word", `{"default":{"entitlements":{"values":["a"],"match":"most"}}}`, "default.entitlements.match: must be all, one or a positive integer"},
		{"match bool", `{"default":{"groups":{"values":["a"],"match":true}}}`, "default.groups.match: must be all, one or a positive integer"},
		{"no values", `{"default":{"groups":{"claim":"g"}}}`, "default.groups.values: must list at least one value"},
		{"empty value", `{"default":{"groups":{"values":["a",""]}}}`, "default.groups.values[1]: must not be empty"},
		{"blank claim", `{"default":{"groups":{"claim":" ","values":["a"]}}}`, "default.groups.claim: must name a claim"},
		{"unknown form", `{"default":{"grups":{"values":["a"]}}}`, "default.grups: unknown requirement form (known: authenticated, claim, groups, entitlements, issuer, subject, scope, audience, all_of, any_of, n_of, level)"},
		{"unknown field in groups", `{"default":{"groups":{"value":["a"]}}}`, "default.groups.value: unknown field"},
		{"type error", `{"default":{"n_of":{"n":"two","of":[]}}}`, "default.n_of.n: must be an integer, not a JSON string"},
		{"no form", `{"default":{}}`, "default: must set one requirement form"},
		{"two forms", `{"default":{"authenticated":true,"groups":{"values":["a"]}}}`, "default: sets several requirement forms (authenticated, groups); combine them with all_of or any_of"},
		{"authenticated false", `{"default":{"authenticated":false}}`, "default.authenticated: must be true"},
		{"null form", `{"default":{"groups":null}}`, "default.groups: must not be empty (null)"},
		{"not a mapping", `{"default":7}`, "default: must be a mapping with one requirement form or the name of an access level"},
		{"claim no name", `{"default":{"claim":{"separator":","}}}`, "default.claim.name: must name a claim"},
		{"issuer empty", `{"default":{"issuer":[]}}`, "default.issuer: must list at least one value"},
		{"issuer type", `{"default":{"issuer":{"a":1}}}`, "default.issuer: must be a string or a list of strings"},
		{"scope space", `{"default":{"scope":["read write"]}}`, "default.scope[0]: a scope value must not contain white space"},
		{"n_of zero", `{"default":{"n_of":{"min":0,"of":[{"authenticated":true}]}}}`, "default.n_of.min: must be a positive integer"},
		{"n_of zero, old key", `{"default":{"n_of":{"n":0,"of":[{"authenticated":true}]}}}`, "default.n_of.n: must be a positive integer"},
		{"n_of both keys", `{"default":{"n_of":{"n":1,"min":1,"of":[{"authenticated":true}]}}}`, `default.n_of.n: give the count once: "min" (its old name "n" is the same key)`},
		{"n_of bare YAML n", `{"default":{"n_of":{"false":2,"of":[{"authenticated":true}]}}}`, `default.n_of.false: YAML 1.1 reads the bare key n as the boolean false: write min: (or quote "n")`},
		{"n_of unknown key", `{"default":{"n_of":{"count":2,"of":[]}}}`, "default.n_of.count: unknown field (known: min, of)"},
		{"n_of not a mapping", `{"default":{"n_of":[1]}}`, "default.n_of: must be a mapping {min: N, of: [...]}"},
		{"YAML 1.1 boolean group", `{"default":{"groups":{"values":["a","b",true]}}}`, "default.groups.values[2]: got boolean true — YAML 1.1 reads on/off/yes/no/y/n as booleans; quote the group name"},
		{"YAML 1.1 boolean group, scalar", `{"default":{"groups":{"values":false}}}`, "default.groups.values: got boolean false — YAML 1.1 reads on/off/yes/no/y/n as booleans; quote the group name"},
		{"YAML 1.1 boolean entitlement", `{"default":{"entitlements":{"values":[true]}}}`, "default.entitlements.values[0]: got boolean true — YAML 1.1 reads on/off/yes/no/y/n as booleans; quote the value"},
		{"YAML 1.1 boolean subject", `{"default":{"subject":["x",false]}}`, "default.subject[1]: got boolean false — YAML 1.1 reads on/off/yes/no/y/n as booleans; quote the value"},
		{"YAML 1.1 boolean claim", `{"default":{"claim":true}}`, "default.claim: got boolean true — YAML 1.1 reads on/off/yes/no/y/n as booleans; quote the value"},
		{"YAML 1.1 boolean level", `{"default":{"all_of":[{"authenticated":true},false]}}`, "default.all_of[1]: got boolean false — YAML 1.1 reads on/off/yes/no/y/n as booleans; quote the access level name"},
		{"values element not a string", `{"default":{"groups":{"values":["a",7]}}}`, "default.groups: must be a string or a list of strings"},
		{"n_of no of", `{"default":{"n_of":{"n":1}}}`, "default.n_of.of: must list requirements"},
		{"unknown level", `{"access_levels":{"user":{"authenticated":true}},"routes":[{"path":{"prefix":"/"},"require":"admin"}]}`, `routes[0].require.level: unknown access level "admin" (known: user)`},
		{"unknown level none", `{"default":{"level":"admin"}}`, `default.level: unknown access level "admin" (none are defined)`},
		{"nested location", `{"access_levels":{"a":{"all_of":[{"authenticated":true},{"any_of":[{"n_of":{"n":1,"of":[{"groups":{"values":["x"],"match":-2}}]}}]}]}}}`, "access_levels.a.all_of[1].any_of[0].n_of.of[0].groups.match: must be all, one or a positive integer"},
		{"odd level name", `{"access_levels":{"a b":{"claim":""}}}`, `access_levels["a b"].claim.name: must name a claim`},
		{"route without requirement", `{"routes":[{"path":{"prefix":"/"}}]}`, "routes[0]: must have a requirement (require) or be marked public: true"},
		{"public with require", `{"routes":[{"public":true,"require":{"authenticated":true}}]}`, "routes[0].require: a public route needs no token"},
		{"two path forms", `{"routes":[{"path":{"prefix":"/a","exact":"/a"},"public":true}]}`, "routes[0].path: must set exactly one of exact, prefix, regex"},
		{"no path form", `{"routes":[{"path":{},"public":true}]}`, "routes[0].path: must set exactly one of exact, prefix, regex"},
		{"bad regex", `{"routes":[{"path":{"regex":"/a("},"public":true}]}`, "routes[0].path.regex: invalid regular expression"},
		{"relative prefix", `{"routes":[{"path":{"prefix":"api"},"public":true}]}`, "routes[0].path.prefix: must be a path starting with \"/\""},
		{"bad exact", `{"routes":[{"path":{"exact":"/a%zz"},"public":true}]}`, "routes[0].path.exact: must be a path"},
		{"host port", `{"routes":[{"host":"api.example.org:443","public":true}]}`, "routes[0].host[0]: must be a host name or *.suffix, without port"},
		{"host inner wildcard", `{"routes":[{"host":["a.*.org"],"public":true}]}`, "routes[0].host[0]: must be a host name"},
		{"host empty", `{"routes":[{"host":[""],"public":true}]}`, "routes[0].host[0]: must not be empty"},
		{"host empty list", `{"routes":[{"host":[],"public":true}]}`, "routes[0].host: must list at least one host"},
		{"bad method", `{"routes":[{"methods":["GET POST"],"public":true}]}`, "routes[0].methods[0]: must be an HTTP method"},
		{"duplicate route name", `{"routes":[{"name":"a","public":true},{"name":"a","public":true}]}`, `routes[1].name: "a" is already the name of routes[0]`},
		{"context key", `{"context_extension_key":" k"}`, "context_extension_key: must not start or end with white space"},
		{"cycle self", `{"access_levels":{"a":{"all_of":["a"]}}}`, "access_levels.a: cyclic access-level reference: a → a"},
		{"cycle two", `{"access_levels":{"a":"b","b":{"any_of":[{"authenticated":true},"a"]}}}`, "access_levels.a: cyclic access-level reference: a → b → a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := configProblems(t, tc.cfg)
			if len(got) != 1 || !strings.HasPrefix(got[0], tc.want) {
				t.Fatalf("problems %q, want exactly one starting with %q", got, tc.want)
			}
		})
	}
}

// Every problem is reported at once, in a stable order, with its location.
func TestConfigErrorsAllAtOnce(t *testing.T) {
	cfg := `{
	  "access_levels": {
	    "loop1": {"all_of": ["loop2"]},
	    "loop2": {"all_of": ["loop1", {"groups": {"values": []}}]},
	    "ok": {"authenticated": true}
	  },
	  "routes": [
	    {"name": "a", "path": {"prefix": "/a"}, "require": "ok"},
	    {"name": "b", "path": {"regex": "("}, "require": "missing"},
	    {"name": "c", "require": {"groups": {"values": ["x"], "match": 0}}},
	    {"name": "d", "host": "h:1", "public": true}
	  ],
	  "default": {"authenticated": false}
	}`
	got := configProblems(t, cfg)
	want := []string{
		"access_levels.loop2.all_of[1].groups.values: must list at least one value",
		"access_levels.loop1: cyclic access-level reference: loop1 → loop2 → loop1",
		"routes[1].path.regex: invalid regular expression: error parsing regexp: missing closing ): `^(?:()$`",
		`routes[1].require.level: unknown access level "missing" (known: loop1, loop2, ok)`,
		"routes[2].require.groups.match: must be all, one or a positive integer",
		"routes[3].host[0]: must be a host name or *.suffix, without port (the request's port is ignored)",
		"default.authenticated: must be true (for requests that need no token, mark the route public)",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestWarnings(t *testing.T) {
	e := mustEngine(t, `{
	  "access_levels": {"e": {"any_of": []}},
	  "routes": [
	    {"name": "health", "path": {"exact": "/healthz"}, "public": true},
	    {"path": {"prefix": "/"}, "require": {"groups": {"values": ["a", "a", "b"], "match": 3}}}
	  ],
	  "default": {"entitlements": {"values": ["plain"]}}
	}`)
	want := []string{
		"access_levels.e.any_of: empty list: never met",
		`routes[0]: route "health" is public: matching requests are allowed without a token`,
		"routes[1].require.groups.values: duplicate values count once",
		"routes[1].require.groups.match: 3 exceeds the 2 distinct values: never met",
		`default.entitlements.values[0]: "plain" is not an AARC entitlement (not an AARC entitlement: must look like urn:<nid>:<namespace>:group:<group>): compared as a plain string`,
	}
	if got := e.Warnings(); !reflect.DeepEqual(got, want) {
		t.Fatalf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestZeroConfigDenies(t *testing.T) {
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	sel, err := e.Select(Request{Method: "GET", Host: "x", Path: "/anything"})
	if err != nil {
		t.Fatal(err)
	}
	res := sel.Evaluate(map[string]any{"sub": "u", "iss": "i"})
	if res.Allowed || sel.Public || sel.Source != SourceDefault || !strings.Contains(res.Reason, "no route matches this request and no default policy is configured") {
		t.Fatalf("%+v %+v", sel, res)
	}
}

// Decoding errors that encoding/json would stop at are deferred to New so that they
// are reported with every other problem (configuration files are written by people).
func TestUnknownKeysInRoutesStillRejectedByDecoder(t *testing.T) {
	var cfg Config
	err := decodeStrict([]byte(`{"routes":[{"pathh":{"prefix":"/"}}]}`), &cfg)
	if err == nil || !strings.Contains(err.Error(), "pathh") {
		t.Fatalf("want unknown field error, got %v", err)
	}
}
