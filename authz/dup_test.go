package authz

import "testing"

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
