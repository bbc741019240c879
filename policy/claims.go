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

// heldValues returns the claim's values, split on sep when set, without empty strings.
func heldValues(claims map[string]any, name, sep string) ([]string, bool) {
	vals, ok := ClaimValues(claims, name)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		switch {
		case sep == "":
			if v != "" {
				out = append(out, v)
			}
		case strings.TrimSpace(sep) == "":
			out = append(out, strings.Fields(v)...)
		default:
			for part := range strings.SplitSeq(v, sep) {
				if part = strings.TrimSpace(part); part != "" {
					out = append(out, part)
				}
			}
		}
	}
	return out, true
}
