package policy

import (
	"encoding/json"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unsafe"
)

// Claims is a read-only claims document: the top-level members of a JSON object, as
// the policy, the identity headers and the metadata read them. It is either a map
// (MapClaims: what a token, userinfo or introspection reply decodes to) or a compact
// form (CompactClaims: the member names in a Shape shared by many documents, the values
// beside them), which is how a cached identity keeps its projected claims: a Go map
// costs at least 336 bytes whatever it holds, the compact form 16 bytes per member.
// Both read the same. The zero Claims is empty. Claims never copies or changes what it
// is given, and nothing may change it afterwards.
type Claims struct {
	m     map[string]any
	shape *Shape // compact: the member names
	// first is the first of the compact values (values: the value of shape.names[i] is
	// values()[i]); nil when there are none. A pointer rather than a slice: the length
	// is the Shape's, and a Claims of 24 bytes instead of 40 keeps every cached identity
	// in a smaller size class.
	first *any
}

// values returns the compact values: the slice CompactClaims was given, rebuilt from
// its first element and the Shape's length (unsafe.Slice over the same array, which
// first keeps alive).
func (c Claims) values() []any {
	if c.first == nil {
		return nil
	}
	return unsafe.Slice(c.first, len(c.shape.names))
}

// Shape is the set of member names of compact claims documents (CompactClaims):
// documents with the same members share one Shape. It never changes.
type Shape struct {
	names []string // sorted, distinct
}

// NewShape returns the Shape of names (copied, sorted, duplicates removed).
func NewShape(names []string) *Shape {
	s := slices.Clone(names)
	slices.Sort(s)
	return &Shape{names: slices.Clip(slices.Compact(s))}
}

// Names returns the names of s, sorted (read-only).
func (s *Shape) Names() []string { return s.names }

// MapClaims returns m as Claims (not a copy: m must not change afterwards).
func MapClaims(m map[string]any) Claims { return Claims{m: m} }

// CompactClaims returns the document whose member s.Names()[i] has the value vals[i]
// (vals is kept, not copied, and must not change afterwards). It panics when vals and
// the names differ in length.
func CompactClaims(s *Shape, vals []any) Claims {
	if len(s.names) != len(vals) {
		panic("policy: CompactClaims: names and values of different lengths")
	}
	c := Claims{shape: s}
	if len(vals) > 0 {
		c.first = &vals[0]
	}
	return c
}

// Lookup returns the value of the top-level member name (a literal name, no dotted
// path) and whether the document has it. A member whose value is null is present with
// a nil value.
func (c Claims) Lookup(name string) (any, bool) {
	if c.m != nil {
		v, ok := c.m[name]
		return v, ok
	}
	if c.shape == nil {
		return nil, false
	}
	if names := c.shape.names; len(names) <= 16 {
		for i, n := range names {
			if n == name {
				return c.values()[i], true
			}
		}
		return nil, false
	}
	if i, ok := slices.BinarySearch(c.shape.names, name); ok {
		return c.values()[i], true
	}
	return nil, false
}

// Len returns the number of members.
func (c Claims) Len() int {
	if c.m != nil {
		return len(c.m)
	}
	if c.shape == nil {
		return 0
	}
	return len(c.shape.names)
}

// All iterates over the members (a map's in no particular order, a compact document's
// sorted by name).
func (c Claims) All() iter.Seq2[string, any] {
	if c.m != nil {
		return maps.All(c.m)
	}
	return func(yield func(string, any) bool) {
		for i, v := range c.values() {
			if !yield(c.shape.names[i], v) {
				return
			}
		}
	}
}

// Map returns the document as a map: the map of MapClaims itself (read-only, as the
// document), a new map for a compact document, nil for the zero Claims.
func (c Claims) Map() map[string]any {
	if c.m != nil || c.shape == nil {
		return c.m
	}
	return maps.Collect(c.All())
}

// Values is ClaimValues of the document.
func (c Claims) Values(name string) ([]string, bool) { return claimValues(c, name) }

// ClaimValues returns the values of the claim name as strings, and whether the claim is
// present (and not null).
//
// The name is looked up literally first (claim names may be URLs such as
// "https://example.org/groups" or contain dots), then as a dotted path through nested
// objects ("realm_access.roles", "ext.groups"); a path with an empty step ("a..b") finds
// nothing, and list elements cannot be addressed. A scalar counts as a one-element list; a
// string is never split. Numbers are formatted without exponent or trailing zeros
// (42, 1.5), booleans as "true"/"false"; nested objects and lists are JSON-encoded; null
// list elements are skipped. It never panics, whatever the document holds.
func ClaimValues(claims map[string]any, name string) ([]string, bool) {
	return claimValues(MapClaims(claims), name)
}

func claimValues(claims Claims, name string) ([]string, bool) {
	v, ok := lookupClaim(claims, name)
	if !ok || v == nil {
		return nil, false
	}
	switch t := v.(type) {
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			if e == nil {
				continue
			}
			out = append(out, scalarString(e))
		}
		return out, true
	case []string:
		return append([]string(nil), t...), true
	default:
		return []string{scalarString(v)}, true
	}
}

// lookupClaim finds name literally, then as a dotted path.
func lookupClaim(claims Claims, name string) (any, bool) {
	if name == "" {
		return nil, false
	}
	if v, ok := claims.Lookup(name); ok {
		return v, true
	}
	first, rest, dotted := strings.Cut(name, ".")
	if !dotted || first == "" {
		return nil, false
	}
	cur, ok := claims.Lookup(first)
	if !ok {
		return nil, false
	}
	for part := range strings.SplitSeq(rest, ".") {
		m, ok := cur.(map[string]any)
		if !ok || part == "" {
			return nil, false
		}
		cur, ok = m[part]
		if !ok {
			return nil, false
		}
	}
	return cur, true
}

// scalarString formats one claim value.
func scalarString(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(t), 'f', -1, 32)
	case json.Number:
		return t.String()
	case bool:
		return strconv.FormatBool(t)
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return fmt.Sprint(t)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return "" // not from a JSON document (e.g. NaN); holds no value
		}
		return string(b)
	}
}

// heldValues appends the claim's values, split on sep when set, without empty strings,
// to dst (callers pass a stack buffer, so that evaluating a requirement allocates
// nothing for a typical claim), and reports whether the claim is present (as
// ClaimValues).
func heldValues(dst []string, claims Claims, name, sep string) ([]string, bool) {
	v, ok := lookupClaim(claims, name)
	if !ok || v == nil {
		return dst, false
	}
	switch t := v.(type) {
	case []any:
		for _, e := range t {
			if e != nil {
				dst = appendHeld(dst, scalarString(e), sep)
			}
		}
	case []string:
		for _, e := range t {
			dst = appendHeld(dst, e, sep)
		}
	default:
		dst = appendHeld(dst, scalarString(v), sep)
	}
	return dst, true
}

// appendHeld appends the parts of one value v (split on sep when set) that are not empty.
func appendHeld(dst []string, v, sep string) []string {
	switch {
	case sep == "":
		if v != "" {
			dst = append(dst, v)
		}
	case strings.TrimSpace(sep) == "":
		for f := range strings.FieldsSeq(v) {
			dst = append(dst, f)
		}
	default:
		for part := range strings.SplitSeq(v, sep) {
			if part = strings.TrimSpace(part); part != "" {
				dst = append(dst, part)
			}
		}
	}
	return dst
}
