package authz

import (
	"errors"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// The one JSON decoder of JWT headers and claims. It decodes a JSON object into a
// map[string]any exactly as json.Unmarshal does (float64 numbers, []any arrays,
// map[string]any objects, strings unescaped with invalid UTF-8 and lone surrogates
// replaced by U+FFFD, nesting up to 10 000 levels) and, in the same pass, finds member
// names that appear twice in one object at any depth, compared after unescaping
// ("exp" and "\u0065xp" are one name). RFC 7519 7.2 lets a parser reject duplicate claim
// names; we do, so that no other component can read a different exp, iss or sub from
// the same token.
//
// It is hand-written because the cold path needs it: json.Unmarshal plus a separate
// duplicate scan costs two passes and (with reflection) several times the allocations,
// and json.Decoder.Token, the standard library's only way to see duplicates, triples
// the cost of a cold verification (docs/performance.md has the figures).
// FuzzDecodeObject compares it with json.Unmarshal and a json.Decoder.Token duplicate
// check on every input. It trusts nothing it reads and never panics.

var (
	// errJSONSyntax: not a JSON object (syntax error, trailing data, a number out of
	// float64 range, nesting deeper than maxJSONDepth).
	errJSONSyntax = errors.New("authz: malformed JSON object")
	// errJSONDuplicate: valid JSON, but an object names a member twice.
	errJSONDuplicate = errors.New("authz: JSON object with a duplicate member name")
)

// maxJSONDepth is encoding/json's nesting limit, kept so that both accept the same
// documents.
const maxJSONDepth = 10000

// decodeObject decodes b, which must hold one JSON object (white space around it
// allowed). A syntax error wins over a duplicate: errJSONDuplicate means the document
// is otherwise valid.
func decodeObject(b []byte) (map[string]any, error) {
	d := decoders.Get().(*jsonDecoder)
	defer func() {
		d.b = nil // the stacks were cleared as their containers ended
		decoders.Put(d)
	}()
	*d = jsonDecoder{b: b, vals: d.vals[:0], members: d.members[:0], buf: d.buf[:0]}
	return d.decode()
}

// decoders recycles decoders with their stacks (which only ever hold values while a
// document is decoded).
var decoders = sync.Pool{New: func() any { return &jsonDecoder{vals: make([]any, 0, 32), members: make([]member, 0, 32)} }}

func (d *jsonDecoder) decode() (map[string]any, error) {
	b := d.b
	d.ws()
	if d.i >= len(b) || b[d.i] != '{' {
		return nil, errJSONSyntax
	}
	m, ok := d.object(1)
	if ok {
		d.ws()
		ok = d.i == len(b)
	}
	switch {
	case !ok:
		return nil, errJSONSyntax
	case d.dup:
		return nil, errJSONDuplicate
	}
	return m, nil
}

// validObject reports whether b is one JSON object without a duplicate member name at
// any depth: what decodeObject accepts (for documents decoded into structs, such as DPoP
// proofs, whose duplicate names encoding/json would silently resolve).
func validObject(b []byte) bool {
	_, err := decodeObject(b)
	return err == nil
}

type jsonDecoder struct {
	b   []byte
	i   int
	dup bool   // a duplicate member name was seen
	buf []byte // unescaping scratch
	// vals and members are stacks shared by the nested arrays and objects being
	// decoded: a container collects its elements on top, then takes them into a slice
	// or map of the exact size (one allocation instead of one per growth).
	vals    []any
	members []member
}

type member struct {
	name string
	v    any
}

// ws skips JSON white space.
func (d *jsonDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// value decodes the value at the cursor (after white space); depth is its container's.
func (d *jsonDecoder) value(depth int) (any, bool) {
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

func (d *jsonDecoder) literal(lit string) bool {
	if len(d.b)-d.i < len(lit) || string(d.b[d.i:d.i+len(lit)]) != lit {
		return false
	}
	d.i += len(lit)
	return true
}

// object decodes the object at the cursor ('{'). A duplicate name sets d.dup and
// decoding goes on, so that a syntax error later still wins.
func (d *jsonDecoder) object(depth int) (map[string]any, bool) {
	if depth > maxJSONDepth {
		return nil, false
	}
	d.i++
	base := len(d.members)
	defer func() { clear(d.members[base:]); d.members = d.members[:base] }()
	ok := d.elements('}', func() bool {
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return false
		}
		k, ok := d.name()
		if !ok {
			return false
		}
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return false
		}
		d.i++
		v, ok := d.value(depth)
		d.members = append(d.members, member{k, v})
		return ok
	})
	if !ok {
		return nil, false
	}
	ms := d.members[base:]
	m := make(map[string]any, len(ms))
	for _, e := range ms {
		m[e.name] = e.v
	}
	if len(m) < len(ms) {
		d.dup = true
	}
	return m, true
}

// array decodes the array at the cursor ('[').
func (d *jsonDecoder) array(depth int) ([]any, bool) {
	if depth > maxJSONDepth {
		return nil, false
	}
	d.i++
	base := len(d.vals)
	defer func() { clear(d.vals[base:]); d.vals = d.vals[:base] }()
	ok := d.elements(']', func() bool {
		v, ok := d.value(depth)
		d.vals = append(d.vals, v)
		return ok
	})
	if !ok {
		return nil, false
	}
	return append([]any{}, d.vals[base:]...), true
}

// elements decodes the comma-separated elements of the container whose opening byte
// the cursor has just passed, up to and including end, with elem for each; false on a
// syntax error.
func (d *jsonDecoder) elements(end byte, elem func() bool) bool {
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == end {
		d.i++
		return true
	}
	for {
		if !elem() {
			return false
		}
		d.ws()
		if d.i >= len(d.b) {
			return false
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case end:
			d.i++
			return true
		default:
			return false
		}
	}
}

// knownNames are the member names of JWT headers and access-token claims that most
// tokens carry (RFC 7515, 7519, 9068, 9449, 7662, OIDC Core and back-channel logout,
// and the claims of research-infrastructure OPs). name returns these strings instead of
// a copy of each, so a typical claims set decodes its names without allocating.
var knownNames = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{
		// JOSE header (RFC 7515, 7516, 7797, 9449)
		"alg", "kid", "typ", "cty", "crit", "jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256", "b64", "zip", "enc",
		// registered claims (RFC 7519), JWT access tokens (RFC 9068), confirmation (RFC 7800, 8705, 9449)
		"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "scope", "scp", "auth_time", "acr", "amr",
		"azp", "sid", "nonce", "at_hash", "c_hash", "cnf", "jkt", "act", "may_act", "roles", "groups", "entitlements",
		// OIDC Core standard claims
		"name", "given_name", "family_name", "middle_name", "nickname", "preferred_username", "profile", "picture",
		"website", "email", "email_verified", "gender", "birthdate", "zoneinfo", "locale", "phone_number",
		"phone_number_verified", "address", "updated_at",
		// introspection (RFC 7662), DPoP proofs (RFC 9449), logout tokens (OIDC back-channel logout)
		"active", "token_type", "username", "ext", "htm", "htu", "ath", "events",
		// Keycloak, INDIGO IAM, eduGAIN/AARC OPs
		"realm_access", "resource_access", "session_state", "allowed-origins", "organisation_name",
		"eduperson_entitlement", "eduperson_assurance", "eduperson_scoped_affiliation", "eduperson_principal_name",
		"voperson_id", "voperson_external_affiliation", "ssh_public_key", "wlcg.ver", "wlcg.groups",
	} {
		m[n] = n
	}
	return m
}()

// name decodes the member name at the cursor ('"'): a known name without escapes is
// the shared string of knownNames (looking it up does not allocate), any other name is
// decoded by str.
func (d *jsonDecoder) name() (string, bool) {
	start := d.i + 1
	for j := start; j < len(d.b) && j-start <= 32; j++ {
		if c := d.b[j]; c == '"' {
			if n, ok := knownNames[string(d.b[start:j])]; ok {
				d.i = j + 1
				return n, true
			}
			break
		} else if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
	}
	return d.str()
}

// str decodes the string at the cursor ('"'). A string without escapes that is valid
// UTF-8 (the usual case) is one scan and one copy; anything else goes through unquote.
func (d *jsonDecoder) str() (string, bool) {
	start := d.i + 1
	ascii := true
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			raw := d.b[start:j]
			if !ascii && !utf8.Valid(raw) {
				return d.unquote(start)
			}
			d.i = j + 1
			return string(raw), true
		case c == '\\':
			return d.unquote(start)
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", false
}

// unquote decodes the string whose content starts at d.b[start], as encoding/json
// does: the escapes \" \\ \/ \b \f \n \r \t \uXXXX (a valid surrogate pair is one
// character, any other surrogate U+FFFD); each byte of invalid UTF-8 becomes U+FFFD;
// control characters and any other escape are syntax errors.
func (d *jsonDecoder) unquote(start int) (string, bool) {
	out := d.buf[:0]
	b := d.b
	for j := start; j < len(b); {
		c := b[j]
		switch {
		case c == '"':
			d.i = j + 1
			d.buf = out
			return string(out), true
		case c < 0x20:
			return "", false
		case c == '\\':
			if j+1 >= len(b) {
				return "", false
			}
			switch e := b[j+1]; e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r := hex4(b[j+2:])
				if r < 0 {
					return "", false
				}
				j += 6
				if utf16.IsSurrogate(r) {
					if r2 := u4Escape(b[j:]); r2 >= 0 {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							out = utf8.AppendRune(out, dec)
							j += 6
							continue
						}
					}
					r = utf8.RuneError
				}
				out = utf8.AppendRune(out, r)
				continue
			default:
				return "", false
			}
			j += 2
		case c < utf8.RuneSelf:
			out = append(out, c)
			j++
		default:
			r, n := utf8.DecodeRune(b[j:])
			out = utf8.AppendRune(out, r) // RuneError (U+FFFD) for an invalid byte
			j += n
		}
	}
	return "", false
}

// u4Escape returns the value of a \uXXXX escape at the start of b, or -1.
func u4Escape(b []byte) rune {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return -1
	}
	return hex4(b[2:])
}

// hex4 returns the value of four hex digits at the start of b, or -1.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// number decodes the number at the cursor with the JSON grammar and, as json.Unmarshal
// does, strconv.ParseFloat (out of range is an error).
func (d *jsonDecoder) number() (any, bool) {
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
