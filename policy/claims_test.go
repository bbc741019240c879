package policy

import (
	"encoding/json"
	"maps"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// compactOf is m in the compact form (CompactClaims), as a cached identity keeps it.
func compactOf(m map[string]any) Claims {
	s := NewShape(slices.Collect(maps.Keys(m)))
	vals := make([]any, len(s.Names()))
	for i, n := range s.Names() {
		vals[i] = m[n]
	}
	return CompactClaims(s, vals)
}

// TestClaimsForms: a map and its compact form read the same, member by member; the
// zero Claims is empty.
func TestClaimsForms(t *testing.T) {
	m := map[string]any{"sub": "u1", "null": nil, "groups": []any{"a"}, "n": 1.5}
	many := map[string]any{}
	for i := range 40 { // past the linear scan: binary search
		many[strings.Repeat("k", i+1)] = float64(i)
	}
	for _, tc := range []struct {
		name string
		m    map[string]any
	}{
		{"small", m},
		{"forty members", many},
		{"empty", map[string]any{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range []Claims{MapClaims(tc.m), compactOf(tc.m)} {
				if c.Len() != len(tc.m) {
					t.Fatalf("Len %d, want %d", c.Len(), len(tc.m))
				}
				for k, want := range tc.m {
					if got, ok := c.Lookup(k); !ok || !reflect.DeepEqual(got, want) {
						t.Fatalf("Lookup(%q) = %v, %v; want %v", k, got, ok, want)
					}
				}
				for _, absent := range []string{"", "absent", "sub.x", "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"} {
					if _, ok := c.Lookup(absent); ok {
						t.Fatalf("Lookup(%q) found a member", absent)
					}
				}
				if got := maps.Collect(c.All()); !reflect.DeepEqual(got, tc.m) {
					t.Fatalf("All: %v, want %v", got, tc.m)
				}
				if got := c.Map(); len(got) != len(tc.m) || len(got) > 0 && !reflect.DeepEqual(got, tc.m) {
					t.Fatalf("Map: %v, want %v", got, tc.m)
				}
			}
		})
	}
	var zero Claims
	if _, ok := zero.Lookup("sub"); ok || zero.Len() != 0 || zero.Map() != nil {
		t.Fatal("the zero Claims is not empty")
	}
	if _, ok := zero.Values("sub"); ok {
		t.Fatal("the zero Claims has values")
	}
}

func TestClaimValues(t *testing.T) {
	doc := `{
	  "sub": "u1",
	  "groups": ["a", "b", null, 3, true, {"x": 1}, ["n"]],
	  "one": "a,b",
	  "num": 42, "frac": 1.5, "big": 1e21, "neg": -0.25,
	  "yes": true,
	  "null": null,
	  "empty": [],
	  "https://example.org/groups": ["u"],
	  "realm_access": {"roles": ["admin"], "deep": {"x": "y"}},
	  "wlcg.groups": ["/literal"],
	  "wlcg": {"groups": ["/nested"]},
	  "obj": {"b": 1, "a": [1, "x"]},
	  "a.b": {"c": "literal-then-path"},
	  "": "empty-name"
	}`
	claims := claimsOf(t, doc)
	for _, tc := range []struct {
		name string
		want []string
		ok   bool
	}{
		{"sub", []string{"u1"}, true},
		{"groups", []string{"a", "b", "3", "true", `{"x":1}`, `["n"]`}, true},
		{"one", []string{"a,b"}, true},
		{"num", []string{"42"}, true},
		{"frac", []string{"1.5"}, true},
		{"big", []string{"1000000000000000000000"}, true},
		{"neg", []string{"-0.25"}, true},
		{"yes", []string{"true"}, true},
		{"null", nil, false},
		{"empty", []string{}, true},
		{"missing", nil, false},
		{"https://example.org/groups", []string{"u"}, true},
		{"realm_access.roles", []string{"admin"}, true},
		{"realm_access.deep.x", []string{"y"}, true},
		{"realm_access.deep", []string{`{"x":"y"}`}, true},
		{"realm_access.missing", nil, false},
		{"realm_access.roles.0", nil, false},
		{"wlcg.groups", []string{"/literal"}, true},
		{"obj", []string{`{"a":[1,"x"],"b":1}`}, true},
		{"a.b.c", nil, false}, // "a" does not exist; the literal "a.b" is not a path step
		{"sub.x", nil, false},
		{"", nil, false},
		{".", nil, false},
		{"realm_access.", nil, false},
	} {
		got, ok := ClaimValues(claims, tc.name)
		if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
		if got, ok := compactOf(claims).Values(tc.name); ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q compact: got %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
	if v, ok := ClaimValues(nil, "sub"); ok || v != nil {
		t.Fatal("nil claims")
	}
	// Claims built in Go (not decoded from JSON).
	goClaims := map[string]any{"s": []string{"x", "y"}, "i": 7, "n": json.Number("12.50")}
	for name, want := range map[string][]string{"s": {"x", "y"}, "i": {"7"}, "n": {"12.50"}} {
		if got, _ := ClaimValues(goClaims, name); !reflect.DeepEqual(got, want) {
			t.Errorf("%q: %q want %q", name, got, want)
		}
	}
	// The returned slice is the caller's.
	l, _ := ClaimValues(goClaims, "s")
	l[0] = "changed"
	if goClaims["s"].([]string)[0] != "x" {
		t.Fatal("ClaimValues returned the claims' own slice")
	}
}

func TestHeldValuesSeparator(t *testing.T) {
	claims := map[string]any{"g": []any{"a,b", " c ,, d", "e"}, "s": "x  y\tz"}
	for _, tc := range []struct {
		name, sep string
		want      []string
	}{
		{"g", ",", []string{"a", "b", "c", "d", "e"}},
		{"g", "", []string{"a,b", " c ,, d", "e"}},
		{"s", " ", []string{"x", "y", "z"}},
		{"s", "", []string{"x  y\tz"}},
	} {
		got, _ := heldValues(nil, MapClaims(claims), tc.name, tc.sep)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s sep %q: %q want %q", tc.name, tc.sep, got, tc.want)
		}
	}
}

func FuzzClaimValues(f *testing.F) {
	f.Add(`{"a":{"b":["x",1,true,null,{"c":2}]}}`, "a.b")
	f.Add(`{"a.b":"lit","a":{"b":"path"}}`, "a.b")
	f.Add(`{"https://x/y":["g"]}`, "https://x/y")
	f.Add(`{"a":[[[]]]}`, "a..")
	f.Add(`{"":{"":1}}`, ".")
	f.Fuzz(func(t *testing.T, doc, name string) {
		var claims map[string]any
		if json.Unmarshal([]byte(doc), &claims) != nil {
			return
		}
		vals, ok := ClaimValues(claims, name)
		if cv, cok := compactOf(claims).Values(name); cok != ok || !reflect.DeepEqual(cv, vals) {
			t.Fatalf("%q: compact form %q, %v; map %q, %v", name, cv, cok, vals, ok)
		}
		if !ok && vals != nil {
			t.Fatalf("absent claim with values %q", vals)
		}
		if name == "" && ok {
			t.Fatal("the empty claim name found a claim")
		}
		// The literal name wins over the dotted path.
		if v, lit := claims[name]; lit && v != nil && name != "" {
			if !ok {
				t.Fatalf("%q: literal claim present but not found", name)
			}
			if s, isStr := v.(string); isStr && (len(vals) != 1 || vals[0] != s) {
				t.Fatalf("%q: string claim %q gave %q", name, s, vals)
			}
		}
		// A claim found through a path is found through the same path one level down.
		if first, rest, dotted := strings.Cut(name, "."); dotted && ok {
			if _, lit := claims[name]; !lit {
				sub, isMap := claims[first].(map[string]any)
				if !isMap {
					t.Fatalf("%q found through a non-object", name)
				}
				again, ok2 := ClaimValues(sub, rest)
				if !strings.Contains(rest, ".") && (!ok2 || !reflect.DeepEqual(again, vals)) {
					t.Fatalf("%q: %q vs %q", name, vals, again)
				}
			}
		}
		// Splitting never yields empty values.
		held, _ := heldValues(nil, compactOf(claims), name, ",")
		for _, h := range held {
			if h == "" {
				t.Fatalf("%q: empty held value", name)
			}
		}
	})
}

// TestCompactClaimsKeepValues: a compact document is 24 bytes (it keeps the first of its
// values and takes their number from the Shape) and keeps every value alive by that
// pointer alone: after the caller's slice is gone and the heap collected, each member
// still reads back.
func TestCompactClaimsKeepValues(t *testing.T) {
	if got := unsafe.Sizeof(Claims{}); got != 24 {
		t.Errorf("Claims is %d bytes, want 24", got)
	}
	s := NewShape([]string{"a", "b", "c"})
	c := func() Claims { // the values slice is unreachable once this returns
		vals := make([]any, 3)
		for i := range vals {
			vals[i] = strings.Repeat(string(rune('x'+i)), 100)
		}
		return CompactClaims(s, vals)
	}()
	runtime.GC()
	runtime.GC()
	for i, name := range s.Names() {
		if v, ok := c.Lookup(name); !ok || v != strings.Repeat(string(rune('x'+i)), 100) {
			t.Errorf("Lookup(%q) = (%v, %v) after GC", name, v, ok)
		}
	}
	if c.Len() != 3 || len(c.Map()) != 3 {
		t.Errorf("Len %d, Map %v", c.Len(), c.Map())
	}
}
