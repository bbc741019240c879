package authz

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// jsonCases cover the shapes of JWT headers and claims, everything json.Unmarshal
// unescapes or replaces, syntax errors, and duplicate names at every depth. want is
// "ok", "dup" or "syntax".
var jsonCases = []struct {
	name, in, want string
}{
	{"typical claims", `{"sub":"u-1","iss":"https://op.example.org","exp":1700000000,"aud":["api","account"],"scope":"openid email","email_verified":true,"x":null,"n":{"a":[1,2.5,-3e2,0]}}`, "ok"},
	{"white space everywhere", " \t\r\n{ \"a\" : [ 1 , { } , [ ] ] , \"b\" : \"\" }\n", "ok"},
	{"non-ASCII UTF-8", `{"name":"Jürgen Groß 日本"}`, "ok"},
	{"empty object", `{}`, "ok"},
	{"negative zero and exponents", `{"a":-0,"b":1E+2,"c":1e-2,"d":0.5}`, "ok"},
	{"escapes", `{"a":"x\"y\\z\/\b\f\n\r\t","b":"\u00e4\u65E5"}`, "ok"},
	{"surrogate pair", `{"a":"\ud83d\ude00"}`, "ok"},
	{"lone surrogates become U+FFFD", `{"a":"\ud83d","b":"\ude00x","c":"\ud83d\u0041"}`, "ok"},
	{"invalid UTF-8 becomes U+FFFD", "{\"a\":\"\xff\xfe\",\"b\":\"\xed\xa0\x80\",\"c\":\"x\xc3\"}", "ok"},
	{"invalid UTF-8 with an escape", "{\"a\":\"\xff\\n\"}", "ok"},
	{"control character", "{\"a\":\"x\ty\"}", "syntax"},
	{"unknown escape", `{"a":"\x"}`, "syntax"},
	{"single-quote escape", `{"a":"\'"}`, "syntax"},
	{"short unicode escape", `{"a":"\u12"}`, "syntax"},
	{"bad hex", `{"a":"\u12g4"}`, "syntax"},
	{"escape at the end", `{"a":"\`, "syntax"},
	{"number out of range", `{"a":1e999}`, "syntax"},
	{"leading zero", `{"a":01}`, "syntax"},
	{"bare minus", `{"a":-}`, "syntax"},
	{"dot without digits", `{"a":1.}`, "syntax"},
	{"trailing data", `{"a":1} x`, "syntax"},
	{"trailing comma", `{"a":1,}`, "syntax"},
	{"not an object", `[1]`, "syntax"},
	{"null", `null`, "syntax"},
	{"empty", ``, "syntax"},
	{"truncated", `{"a":[1,2`, "syntax"},
	{"truncated name", `{"a"`, "syntax"},
	{"bad literal", `{"a":tru}`, "syntax"},
	{"literal run-on", `{"a":truex}`, "syntax"},
	{"unbalanced", `{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`, "syntax"},
	{"deep", `{"a":` + strings.Repeat("[", 40) + `{"b":1}` + strings.Repeat("]", 40) + `}`, "ok"},
	{"deepest encoding/json takes", `{"a":` + strings.Repeat("[", maxJSONDepth-1) + strings.Repeat("]", maxJSONDepth-1) + `}`, "ok"},
	{"one level deeper", `{"a":` + strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth) + `}`, "syntax"},
	{"duplicate member", `{"exp":1,"exp":2}`, "dup"},
	{"duplicate issuer", `{"iss":"https://evil","sub":"x","iss":"https://op"}`, "dup"},
	{"nested duplicate", `{"a":{"x":1,"x":2}}`, "dup"},
	{"duplicate in an array's object", `{"a":[{"x":1,"x":1}]}`, "dup"},
	{"duplicate empty arrays", `{"a":[],"a":[]}`, "dup"},
	{"same name after unescaping", `{"exp":1,"\u0065xp":2}`, "dup"},
	{"escaped quote names", `{"a\"b":1,"a\"b":2}`, "dup"},
	{"different escaped names", `{"a\"b":1,"a\\b":2}`, "ok"},
	{"invalid UTF-8 names that read alike", "{\"exp\xff\":1,\"exp\xfe\":2}", "dup"}, // both "exp\ufffd"
	{"equal values, different names", `{"a":"a","b":"a"}`, "ok"},
	{"same names at different depths", `{"a":{"b":1},"b":{"a":1}}`, "ok"},
	{"same names in sibling objects", `{"a":{"x":1},"b":{"x":1},"c":[{"y":1},{"y":1}]}`, "ok"},
	{"many members, last duplicate", `{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k16":17}`, "dup"},
	{"a duplicate before a syntax error", `{"a":1,"a":2,}`, "syntax"},
}

// TestDecodeObject: every case decodes as json.Unmarshal does, and duplicates are
// found as a json.Decoder.Token walk finds them.
func TestDecodeObject(t *testing.T) {
	for _, tc := range jsonCases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := decodeObject([]byte(tc.in))
			got := "ok"
			switch {
			case errors.Is(err, errJSONDuplicate):
				got = "dup"
			case err != nil:
				got = "syntax"
			}
			if got != tc.want {
				t.Fatalf("got %s (%v), want %s", got, err, tc.want)
			}
			checkSameAsStdlib(t, []byte(tc.in), m, err)
		})
	}
}

// checkSameAsStdlib compares decodeObject's result on in with the reference:
// json.Unmarshal into a map (a nil map, from "null", is not an object) and, for
// documents it accepts, the duplicate check of slowHasDuplicates.
func checkSameAsStdlib(t *testing.T, in []byte, m map[string]any, err error) {
	t.Helper()
	var want map[string]any
	if json.Unmarshal(in, &want) != nil || want == nil {
		if !errors.Is(err, errJSONSyntax) {
			t.Fatalf("%q: json.Unmarshal rejects it, decodeObject: %v", in, err)
		}
		return
	}
	if slowHasDuplicates(in) {
		if !errors.Is(err, errJSONDuplicate) {
			t.Fatalf("%q: has duplicate members, decodeObject: %v", in, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("%q: decodeObject: %v, json.Unmarshal accepts it", in, err)
	}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("%q: decodeObject %#v, json.Unmarshal %#v", in, m, want)
	}
}

// FuzzDecodeObject: on every input, decodeObject agrees with json.Unmarshal (accept or
// reject, and the decoded value) and with slowHasDuplicates; it never panics.
func FuzzDecodeObject(f *testing.F) {
	for _, tc := range jsonCases {
		if len(tc.in) < 1000 {
			f.Add([]byte(tc.in))
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := decodeObject(in)
		checkSameAsStdlib(t, in, m, err)
	})
}

// slowHasDuplicates is the reference: json.Decoder tokens with a set per object (the
// input must be valid JSON).
func slowHasDuplicates(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		obj  bool
		keys map[string]bool
		key  bool
	}
	var st []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if n := len(st); n > 0 && st[n-1].obj {
			top := st[n-1]
			if top.key {
				if d, ok := tok.(json.Delim); ok && d == '}' {
					st = st[:n-1]
					continue
				}
				name := tok.(string)
				if top.keys[name] {
					return true
				}
				top.keys[name], top.key = true, false
				continue
			}
			top.key = true
		}
		switch tok {
		case json.Delim('{'):
			st = append(st, &frame{obj: true, keys: map[string]bool{}, key: true})
		case json.Delim('['):
			st = append(st, &frame{})
		case json.Delim(']'), json.Delim('}'):
			st = st[:len(st)-1]
		}
	}
}

// BenchmarkDecodeClaims compares, on a realistic claims set (the load benchmark's, with
// an escape-free and an escaped variant), the one decoder with what the standard
// library offers: json.Unmarshal alone (no duplicate check: the lower bound of any
// encoding/json path), and json.Unmarshal plus a json.Decoder.Token duplicate walk (the
// standard library's only one-pass duplicate check needs Token).
func BenchmarkDecodeClaims(b *testing.B) {
	plain := []byte(`{"sub":"user-000001@bench","aud":["api.example.org","account"],"azp":"bench-client","scope":"openid profile email eduperson_entitlement","email":"user1@example.org","email_verified":true,"name":"Bench User 1","preferred_username":"user1","groups":["bench-users","staff","project-a","project-b","team-1"],"eduperson_entitlement":["urn:geant:example.org:group:bench-users#aai.example.org","urn:geant:example.org:group:project-a:role=member#aai.example.org","urn:geant:example.org:group:staff#aai.example.org"],"iss":"https://op.example.org","iat":1700000000,"exp":1700003600,"nbf":1700000000,"jti":"a6c3f1e2-93b4-4c1e-8f0a-1d2e3f4a5b6c"}`)
	escaped := bytes.Replace(plain, []byte(`Bench User 1`), []byte(`Bench \u00dcser \"1\"`), 1)
	for _, doc := range []struct {
		name string
		b    []byte
	}{{"plain", plain}, {"escaped", escaped}} {
		b.Run(doc.name+"/decodeObject", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decodeObject(doc.b); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(doc.name+"/json.Unmarshal", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var m map[string]any
				if err := json.Unmarshal(doc.b, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(doc.name+"/json.Unmarshal+Token", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var m map[string]any
				if err := json.Unmarshal(doc.b, &m); err != nil || slowHasDuplicates(doc.b) {
					b.Fatal(err)
				}
			}
		})
	}
}
