package authz

import (
	"fmt"
	"hash/maphash"
	"reflect"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

// same reports whether a and b are the very same value (not just equal): the same
// string data or the same list backing array.
func same(a, b any) bool {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && unsafe.StringData(x) == unsafe.StringData(y)
	case []any:
		y, ok := b.([]any)
		return ok && len(x) > 0 && len(y) > 0 && &x[0] == &y[0]
	}
	return false
}

func TestInterner(t *testing.T) {
	long := strings.Repeat("x", internMaxKey)
	cases := []struct {
		name   string
		a, b   any // equal values from two decodings
		shared bool
	}{
		{"string", strings.Clone("https://op.example.org"), strings.Clone("https://op.example.org"), true},
		{"list of strings", []any{"a", "bb"}, []any{"a", "bb"}, true},
		{"empty list", []any{}, []any{}, false}, // nothing to share; must stay an empty list
		{"list with a number", []any{"a", 1.0}, []any{"a", 1.0}, false},
		{"list with an object", []any{map[string]any{"a": "b"}}, []any{map[string]any{"a": "b"}}, false},
		{"too long string", strings.Clone(long), strings.Clone(long), false},
		{"too long list", []any{long[:300], long[:300]}, []any{long[:300], long[:300]}, false},
		{"number", 1.5, 1.5, false},
		{"bool", true, true, false},
		{"object", map[string]any{"a": "b"}, map[string]any{"a": "b"}, false},
		{"nil", nil, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := newInterner()
			first, second := in.value(c.a), in.value(c.b)
			if !reflect.DeepEqual(first, c.a) || !reflect.DeepEqual(second, c.b) {
				t.Fatalf("values changed: %#v, %#v", first, second)
			}
			if got := same(first, second); got != c.shared {
				t.Fatalf("shared %v, want %v", got, c.shared)
			}
		})
	}
}

// TestInternerKinds: a string and a list, and lists that concatenate alike, never share.
func TestInternerKinds(t *testing.T) {
	in := newInterner()
	vals := []any{"ab", []any{"ab"}, []any{"a", "b"}, []any{"ab", ""}, []any{""}, "", []any{"a\x01b"}}
	for _, v := range vals {
		in.value(v)
	}
	for i, v := range vals {
		if got := in.value(copyValue(v)); !reflect.DeepEqual(got, v) {
			t.Errorf("value %d: got %#v, want %#v", i, got, v)
		}
	}
}

func copyValue(v any) any {
	if l, ok := v.([]any); ok {
		return append([]any(nil), l...)
	}
	return strings.Clone(v.(string))
}

// TestInternerBounded: the interner never holds more than internMaxEntries values and
// still shares after starting over.
func TestInternerBounded(t *testing.T) {
	in := newInterner()
	for i := range 3 * internMaxEntries {
		in.value(fmt.Sprintf("group-%d", i))
		in.value(fmt.Sprintf("group-%d", i)) // seen twice: shared
		if len(in.m) > internMaxEntries {
			t.Fatalf("%d entries", len(in.m))
		}
	}
	if len(in.m) == 0 || len(in.m) == 3*internMaxEntries {
		t.Fatalf("%d entries: the map did not take values or did not start over", len(in.m))
	}
	a := in.value(strings.Clone("shared"))
	if b := in.value(strings.Clone("shared")); !same(a, b) {
		t.Fatal("not shared after starting over")
	}
}

func TestInternerConcurrent(t *testing.T) {
	in := newInterner()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				v := in.value([]any{fmt.Sprint(i % 50), fmt.Sprint(g)})
				if l := v.([]any); l[0] != fmt.Sprint(i%50) || l[1] != fmt.Sprint(g) {
					t.Errorf("got %v", l)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestInternerAdmitsRepeatedValuesOnly: values seen once (one user's e-mail address)
// never enter the shared map, however many there are; a value seen again is shared from
// then on, between unique ones too.
func TestInternerAdmitsRepeatedValuesOnly(t *testing.T) {
	in := newInterner()
	first := in.value(strings.Clone("https://op.example.org"))
	for i := range 3 * internMaxEntries {
		in.value(fmt.Sprintf("user-%d@example.org", i))
		if i == 10 {
			if again := in.value(strings.Clone("https://op.example.org")); !same(first, again) {
				t.Fatal("a value seen twice is not shared")
			}
		}
	}
	if len(in.m) != 1 {
		t.Fatalf("%d entries in the shared map, want 1 (only the repeated value)", len(in.m))
	}
	if v := in.value(strings.Clone("https://op.example.org")); !same(first, v) {
		t.Fatal("the shared value was forgotten")
	}
}

// TestInternerCandidateHashCollision: a candidate whose hash equals the value's but
// whose value differs is never returned for it (the keys are compared).
func TestInternerCandidateHashCollision(t *testing.T) {
	in := newInterner()
	key, _ := appendKey(nil, "bob@example.org")
	h := maphash.Bytes(in.seed, key)
	in.cands[h%internCandidates] = candidate{h: h, v: "alice@example.org"} // forged: same hash, other value
	if got := in.value(strings.Clone("bob@example.org")); got != "bob@example.org" {
		t.Fatalf("got %v for bob", got)
	}
	if len(in.m) != 0 {
		t.Fatalf("a collision entered the map: %v", in.m)
	}
	if got := in.value(strings.Clone("bob@example.org")); got != "bob@example.org" || len(in.m) != 1 {
		t.Fatalf("bob seen twice: got %v, map %v", got, in.m)
	}
}
