package authz

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// hasDuplicateMembers reports whether any JSON object in b (at any depth) names the same
// member twice, comparing names after unescaping ("exp" and "\u0065xp" are the same).
// b must already have been accepted by json.Unmarshal; anything the scanner does not
// understand is reported as a duplicate, so that the caller rejects it (fail closed).
//
// It is a single pass over the bytes without allocations for objects of up to 16
// members with unescaped names: json.Decoder.Token would triple the cost of a cold
// verification.
func hasDuplicateMembers(b []byte) bool {
	s := dupScanner{b: b}
	dup := s.value()
	return dup || s.bad
}

type dupScanner struct {
	b   []byte
	i   int
	bad bool // malformed input: treated as a duplicate
}

func (s *dupScanner) ws() { s.i = skipWS(s.b, s.i) }

// skipWS returns the index of the first byte of b at or after i that is not JSON white
// space (len(b) if none).
func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// next returns the byte at the cursor (after white space), or 0 at the end.
func (s *dupScanner) next() byte {
	s.ws()
	if s.i >= len(s.b) {
		s.bad = true
		return 0
	}
	return s.b[s.i]
}

// value skips one JSON value and reports whether it holds a duplicate member name.
func (s *dupScanner) value() bool {
	switch s.next() {
	case '{':
		return s.object()
	case '[':
		s.i++
		if s.next() == ']' {
			s.i++
			return false
		}
		for !s.bad {
			if s.value() {
				return true
			}
			switch s.next() {
			case ',':
				s.i++
			case ']':
				s.i++
				return false
			default:
				s.bad = true
			}
		}
		return false
	case '"':
		s.str()
		return false
	case 0:
		return false
	default: // number, true, false, null
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', ']', '}', ' ', '\t', '\n', '\r':
				return false
			}
			s.i++
		}
		return false
	}
}

func (s *dupScanner) object() bool {
	s.i++ // '{'
	var small [16][]byte
	names := small[:0]
	var many map[string]struct{}
	if s.next() == '}' {
		s.i++
		return false
	}
	for !s.bad {
		if s.next() != '"' {
			s.bad = true
			return false
		}
		name := s.str()
		if many != nil {
			if _, ok := many[string(name)]; ok {
				return true
			}
			many[string(name)] = struct{}{}
		} else {
			for _, n := range names {
				if bytes.Equal(n, name) {
					return true
				}
			}
			if len(names) < len(small) {
				names = append(names, name)
			} else {
				many = make(map[string]struct{}, 2*len(small))
				for _, n := range names {
					many[string(n)] = struct{}{}
				}
				many[string(name)] = struct{}{}
			}
		}
		if s.next() != ':' {
			s.bad = true
			return false
		}
		s.i++
		if s.value() {
			return true
		}
		switch s.next() {
		case ',':
			s.i++
		case '}':
			s.i++
			return false
		default:
			s.bad = true
		}
	}
	return false
}

// str consumes a string at the cursor and returns its unescaped content (a sub-slice of
// the input when it has no escapes).
func (s *dupScanner) str() []byte {
	start := s.i
	s.i++ // opening quote
	escaped := false
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '\\':
			escaped = true
			s.i += 2
			continue
		case '"':
			s.i++
			if raw := s.b[start+1 : s.i-1]; !escaped && utf8.Valid(raw) {
				return raw
			}
			// Escapes, or invalid UTF-8 (which json.Unmarshal turns into U+FFFD, so two
			// different raw names can decode to one): compare what Unmarshal sees.
			var v string
			if err := json.Unmarshal(s.b[start:s.i], &v); err != nil {
				s.bad = true
				return nil
			}
			return []byte(v)
		}
		s.i++
	}
	s.bad = true
	return nil
}
