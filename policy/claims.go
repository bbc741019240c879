package policy

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

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
func lookupClaim(claims map[string]any, name string) (any, bool) {
	if claims == nil || name == "" {
		return nil, false
	}
	if v, ok := claims[name]; ok {
		return v, true
	}
	if !strings.Contains(name, ".") {
		return nil, false
	}
	var cur any = claims
	for part := range strings.SplitSeq(name, ".") {
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
func heldValues(dst []string, claims map[string]any, name, sep string) ([]string, bool) {
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
