package authz

import (
	"encoding/json"
	"reflect"
	"testing"
)

// fastJSONCases are decoded by decodeObjectFast (fast: true) or left to json.Unmarshal.
var fastJSONCases = []struct {
	name string
	in   string
	fast bool
}{
	{"typical claims", `{"sub":"u-1","iss":"https://op.example.org","exp":1700000000,"aud":["api","account"],"scope":"openid email","email_verified":true,"x":null,"n":{"a":[1,2.5,-3e2,0]}}`, true},
	{"white space everywhere", " \t\r\n{ \"a\" : [ 1 , { } , [ ] ] , \"b\" : \"\" }\n", true},
	{"non-ASCII UTF-8", `{"name":"Jürgen Groß 日本"}`, true},
	{"empty object", `{}`, true},
	{"negative zero and exponents", `{"a":-0,"b":1E+2,"c":1e-2,"d":0.5}`, true},
	{"escape", `{"a":"x\"y"}`, false},
	{"unicode escape in name", `{"\u0065xp":1}`, false},
	{"invalid UTF-8", "{\"a\":\"\xff\"}", false},
	{"control character", "{\"a\":\"x\ty\"}", false},
	{"duplicate member", `{"exp":1,"exp":2}`, false},
	{"nested duplicate", `{"a":{"b":1,"b":1}}`, false},
	{"number out of range", `{"a":1e999}`, false},
	{"leading zero", `{"a":01}`, false},
	{"bare minus", `{"a":-}`, false},
	{"dot without digits", `{"a":1.}`, false},
	{"trailing data", `{"a":1} x`, false},
	{"trailing comma", `{"a":1,}`, false},
	{"not an object", `[1]`, false},
	{"null", `null`, false},
	{"truncated", `{"a":[1,2`, false},
	{"bad literal", `{"a":tru}`, false},
	{"literal run-on", `{"a":truex}`, false},
	{"deep", `{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`, false},
}

// TestDecodeObjectFast: the fast decoder takes the common shapes and leaves everything
// else to json.Unmarshal; what it decodes equals json.Unmarshal's result.
func TestDecodeObjectFast(t *testing.T) {
	for _, tc := range fastJSONCases {
		t.Run(tc.name, func(t *testing.T) {
			m, ok := decodeObjectFast([]byte(tc.in))
			if ok != tc.fast {
				t.Fatalf("fast = %v, want %v", ok, tc.fast)
			}
			if ok {
				checkSameAsStdlib(t, []byte(tc.in), m)
			}
		})
	}
}

func checkSameAsStdlib(t *testing.T, in []byte, m map[string]any) {
	t.Helper()
	var want map[string]any
	if err := json.Unmarshal(in, &want); err != nil || want == nil {
		t.Fatalf("fast decoder accepted %q, json.Unmarshal: %v (map %v)", in, err, want)
	}
	if hasDuplicateMembers(in) {
		t.Fatalf("fast decoder accepted %q with duplicate members", in)
	}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("%q: fast %#v, json.Unmarshal %#v", in, m, want)
	}
}

// FuzzDecodeObjectFast: whenever the fast decoder decodes an input, json.Unmarshal
// decodes it to the same value and it has no duplicate members; it never panics.
func FuzzDecodeObjectFast(f *testing.F) {
	for _, tc := range fastJSONCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if m, ok := decodeObjectFast(in); ok {
			checkSameAsStdlib(t, in, m)
		}
	})
}
