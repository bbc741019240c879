package authz

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestHasDuplicateMembers(t *testing.T) {
	for _, tc := range []struct {
		json string
		want bool
	}{
		{`{}`, false},
		{`{"a":1,"b":2}`, false},
		{`{"exp":1,"exp":2}`, true},
		{`{"a":{"x":1},"b":{"x":1}}`, false},
		{`{"a":{"x":1,"x":2}}`, true},
		{`{"a":[{"x":1},{"x":2}],"b":[1,[2,{"y":3}]]}`, false},
		{`{"a":[{"x":1,"x":1}]}`, true},
		{`{"a":"a","b":"a"}`, false},         // equal values are not equal names
		{`{"a":{"b":1},"b":{"a":1}}`, false}, // same names at different depths
		{`{"a":[],"a":[]}`, true},
		{`[{"a":1},{"a":1}]`, false},
		{`{"iss":"https://evil","sub":"x","iss":"https://op"}`, true},
	} {
		if got := hasDuplicateMembers([]byte(tc.json)); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.json, got, tc.want)
		}
	}
}

func TestHasDuplicateMembersEscapesAndSize(t *testing.T) {
	for _, tc := range []struct {
		json string
		want bool
	}{
		{`{"exp":1,"\u0065xp":2}`, true}, // same name after unescaping
		{`{"a\"b":1,"a\"b":2}`, true},
		{"{\"exp\xff\":1,\"exp\xfe\":2}", true}, // both decode to "exp\ufffd"
		{`{"a\"b":1,"a\\b":2}`, false},
		{`{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17}`, false},
		{`{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k3":17}`, true},
		{`{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k16":17}`, true},
		{" {\n\t\"a\" : [ 1 , { \"b\" : null } ] , \"c\" : true \r\n} ", false},
		{`{"a":-1.5e+3,"b":"}","c":"]","d":","}`, false},
		// Not valid JSON (the caller never passes such input): reported, never a panic.
		{`{"a":1`, true},
		{`{"a"`, true},
		{`{"a":"x`, true},
		{`[1,2`, true},
		{``, true},
	} {
		if got := hasDuplicateMembers([]byte(tc.json)); got != tc.want {
			t.Errorf("%q: got %v, want %v", tc.json, got, tc.want)
		}
	}
}

func FuzzHasDuplicateMembers(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1,"a":2}`, `{"a":{"b":[1,{"c":2,"c":3}]}}`, `{"\u0061":1,"a":2}`, `[{"x":1}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v any
		if json.Unmarshal(b, &v) != nil {
			hasDuplicateMembers(b) // must not panic on anything
			return
		}
		got := hasDuplicateMembers(b)
		want := slowHasDuplicates(t, b)
		if got != want {
			t.Fatalf("%q: got %v, want %v", b, got, want)
		}
	})
}

// slowHasDuplicates is the reference: json.Decoder tokens with a set per object.
func slowHasDuplicates(t *testing.T, b []byte) bool {
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
