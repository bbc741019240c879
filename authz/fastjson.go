package authz

import (
	"strconv"
	"unicode/utf8"
)

// fastMaxDepth is the deepest nesting decodeObjectFast decodes itself.
const fastMaxDepth = 32

// decodeObjectFast decodes a JSON object exactly as json.Unmarshal into a map[string]any
// does, in one pass and without reflection, for the shape JWT headers and claims have:
// strings without escapes or control characters (valid UTF-8), numbers (float64),
// true, false, null, arrays and objects nested at most fastMaxDepth deep. For anything
// else — an escape, invalid UTF-8, a number out of float64 range, deeper nesting, a
// duplicate member name at any depth, a syntax error, trailing data — it returns
// ok=false and the caller decodes with json.Unmarshal and checks hasDuplicateMembers as
// before, so every input gets exactly their outcome (FuzzDecodeObjectFast compares
// the two on every input it decodes). It trusts nothing it reads.
func decodeObjectFast(b []byte) (m map[string]any, ok bool) {
	d := fastDecoder{b: b}
	d.ws()
	if d.i >= len(b) || b[d.i] != '{' {
		return nil, false
	}
	if m, ok = d.object(1); !ok {
		return nil, false
	}
	d.ws()
	return m, d.i == len(b)
}

type fastDecoder struct {
	b []byte
	i int
}

func (d *fastDecoder) ws() { d.i = skipWS(d.b, d.i) }

// value decodes the value at the cursor (after white space); depth is its container's.
func (d *fastDecoder) value(depth int) (any, bool) {
	d.ws()
	if d.i >= len(d.b) {
		return nil, false
	}
	switch c := d.b[d.i]; {
	case c == '{':
		m, ok := d.object(depth + 1)
		if !ok {
			return nil, false
		}
		return m, true
	case c == '[':
		a, ok := d.array(depth + 1)
		if !ok {
			return nil, false
		}
		return a, true
	case c == '"':
		s, ok := d.str()
		if !ok {
			return nil, false
		}
		return s, true
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	}
	return nil, false
}

func (d *fastDecoder) literal(lit string) bool {
	if len(d.b)-d.i < len(lit) || string(d.b[d.i:d.i+len(lit)]) != lit {
		return false
	}
	d.i += len(lit)
	return true
}

// object decodes the object at the cursor ('{').
func (d *fastDecoder) object(depth int) (map[string]any, bool) {
	if depth > fastMaxDepth {
		return nil, false
	}
	d.i++
	m := map[string]any{}
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return m, true
	}
	for {
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return nil, false
		}
		k, ok := d.str()
		if !ok {
			return nil, false
		}
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return nil, false
		}
		d.i++
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		if _, dup := m[k]; dup {
			return nil, false // the slow path decides (malformed or duplicate)
		}
		m[k] = v
		d.ws()
		if d.i >= len(d.b) {
			return nil, false
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return m, true
		default:
			return nil, false
		}
	}
}

// array decodes the array at the cursor ('[').
func (d *fastDecoder) array(depth int) ([]any, bool) {
	if depth > fastMaxDepth {
		return nil, false
	}
	d.i++
	a := []any{}
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		return a, true
	}
	for {
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		a = append(a, v)
		d.ws()
		if d.i >= len(d.b) {
			return nil, false
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case ']':
			d.i++
			return a, true
		default:
			return nil, false
		}
	}
}

// str decodes the string at the cursor ('"'): no escapes, no control characters, valid
// UTF-8 (json.Unmarshal returns such a string unchanged).
func (d *fastDecoder) str() (string, bool) {
	start := d.i + 1
	ascii := true
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			raw := d.b[start:j]
			if !ascii && !utf8.Valid(raw) {
				return "", false
			}
			d.i = j + 1
			return string(raw), true
		case c == '\\' || c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", false
}

// number decodes the number at the cursor with the JSON grammar and, as json.Unmarshal
// does, strconv.ParseFloat.
func (d *fastDecoder) number() (any, bool) {
	b, j := d.b, d.i
	digits := func() bool {
		n := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		return j > n
	}
	if b[j] == '-' {
		j++
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case !digits():
		return nil, false
	}
	if j < len(b) && b[j] == '.' {
		j++
		if !digits() {
			return nil, false
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if !digits() {
			return nil, false
		}
	}
	f, err := strconv.ParseFloat(string(b[d.i:j]), 64)
	if err != nil {
		return nil, false
	}
	d.i = j
	return f, true
}
