package envoy

import (
	"strings"
	"unicode/utf8"

	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// Identity header values are lists: a claim's values (a scalar is a list of one),
// each percent-encoded where it must be, joined by ",". Encoded are, in every value:
//
//   - '%' and ',' (so a value can neither split itself nor fake an escape: the group
//     "admins,x" is sent as "admins%2Cx", never as the two groups "admins" and "x");
//   - control bytes 0x00–0x1F (tab included) and 0x7F (CR, LF and NUL would break or
//     be refused by Envoy, nginx and HTTP/1 parsers);
//   - bytes that are not valid UTF-8 (header values go into protobuf strings);
//   - spaces at the start or end of a value (proxies and splitting upstreams trim
//     them, so " admins" would otherwise read as "admins").
//
// Everything else — letters, digits, inner spaces, '/', ':', '@', non-ASCII UTF-8 —
// is sent as it is, so ordinary values are unchanged (oauth2-proxy compatible). An
// upstream recovers the exact values by splitting on "," and percent-decoding each
// part (Go url.PathUnescape, Python urllib.parse.unquote).

// claimHeaderValue is the header value of a claim: its values encoded as above and
// joined by ",". "" when the claim is absent or empty. A plain string claim that needs
// no encoding costs no allocation.
func claimHeaderValue(claims policy.Claims, name string) string {
	if v, ok := claims.Lookup(name); ok {
		if s, ok := v.(string); ok {
			return escapeHeaderElement(s)
		}
	}
	vs, ok := claims.Values(name)
	if !ok {
		return ""
	}
	switch len(vs) {
	case 0:
		return ""
	case 1:
		return escapeHeaderElement(vs[0])
	}
	for i, v := range vs {
		vs[i] = escapeHeaderElement(v) // vs is ClaimValues' own copy
	}
	return strings.Join(vs, ",")
}

// escapeHeaderElement percent-encodes one list element (see claimHeaderValue). It
// returns v itself when nothing needs encoding.
func escapeHeaderElement(v string) string {
	// Spaces before lo or from hi on are leading or trailing.
	lo, hi := len(v)-len(strings.TrimLeft(v, " ")), len(strings.TrimRight(v, " "))
	i := 0
	for i < len(v) && !mustEscape(v, i, lo, hi) {
		if v[i] < utf8.RuneSelf {
			i++
			continue
		}
		_, n := utf8.DecodeRuneInString(v[i:])
		i += n
	}
	if i == len(v) {
		return v
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(v)+8)
	b = append(b, v[:i]...)
	for i < len(v) {
		c := v[i]
		if mustEscape(v, i, lo, hi) {
			b = append(b, '%', hex[c>>4], hex[c&0xf])
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, c)
			i++
			continue
		}
		_, n := utf8.DecodeRuneInString(v[i:])
		b = append(b, v[i:i+n]...)
		i += n
	}
	return string(b)
}

// mustEscape reports whether the byte at v[i], which starts a character (or is a
// stray byte), is encoded; spaces before lo or from hi on are.
func mustEscape(v string, i, lo, hi int) bool {
	switch c := v[i]; {
	case c == '%' || c == ',' || c < 0x20 || c == 0x7f:
		return true
	case c == ' ':
		return i < lo || i >= hi
	case c >= utf8.RuneSelf:
		r, n := utf8.DecodeRuneInString(v[i:])
		return r == utf8.RuneError && n == 1
	}
	return false
}
