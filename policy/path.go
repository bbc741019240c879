package policy

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"unicode/utf8"
)

// maxPathLen bounds the work done on one path. Envoy's default header limits are far
// below it.
const maxPathLen = 64 << 10

// NormalizePath returns the canonical form of a request path, the form routes are
// matched against:
//
//   - the query ("?…") and fragment ("#…") are removed;
//   - percent-escapes are decoded exactly once ("/%61dmin" → "/admin",
//     "/admin%2F" → "/admin/"), "+" is kept;
//   - "\" is treated as "/" (some servers do);
//   - ";parameters" are removed from every segment ("/admin;jsessionid=1" → "/admin",
//     "/public/..;/admin" → "/admin"), as Tomcat, Jetty and Spring do;
//   - "//" is merged, "." and ".." segments are resolved (never above "/"), and a
//     trailing "/" is dropped, so "/admin/" and "/admin" select the same route.
//
// It fails, with an error wrapping ErrBadPath, on a path that does not start with "/",
// a malformed percent-escape, a NUL or other control character, invalid UTF-8, or a
// character that was percent-encoded twice although it never needs encoding: a
// separator, a dot, a percent sign or any unreserved character ("%252F", "%252E",
// "%255C", "%2561", "%2525"), which would mean something else to an upstream that
// decodes again ("/%2561dmin" is "/admin" after two decodings). The result is only for
// matching; the upstream still receives the original path.
func NormalizePath(p string) (string, error) { return normalizePath(p, true) }

// normalizePath is NormalizePath; fast allows the no-copy path for plain paths (tests
// compare both).
func normalizePath(p string, fast bool) (string, error) {
	if len(p) > maxPathLen {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrBadPath, maxPathLen)
	}
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%w: does not start with \"/\"", ErrBadPath)
	}
	if fast && plainPath(p) { // nothing to decode, replace or strip: no copy
		return path.Clean(p), nil
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' {
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return "", fmt.Errorf("%w: malformed percent-escape", ErrBadPath)
			}
			c = unhex(p[i+1])<<4 | unhex(p[i+2])
			i += 2
		}
		switch {
		case c < 0x20 || c == 0x7f:
			return "", fmt.Errorf("%w: control character", ErrBadPath)
		case c == '\\':
			c = '/'
		}
		b.WriteByte(c)
	}
	d := b.String()
	if !utf8.ValidString(d) {
		return "", fmt.Errorf("%w: invalid UTF-8", ErrBadPath)
	}
	for i := strings.IndexByte(d, '%'); i >= 0 && i+2 < len(d); {
		if isHex(d[i+1]) && isHex(d[i+2]) && encodedTwiceMatters(unhex(d[i+1])<<4|unhex(d[i+2])) {
			return "", fmt.Errorf("%w: %q percent-encoded twice", ErrBadPath, d[i:i+3])
		}
		j := strings.IndexByte(d[i+1:], '%')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	if strings.IndexByte(d, ';') >= 0 {
		d = stripParams(d)
	}
	// path.Clean merges "//", resolves "." and ".." lexically (never above the root)
	// and drops a trailing slash.
	return path.Clean(d), nil
}

// plainPath reports whether p (without query) is valid UTF-8 without percent-escapes,
// backslashes, ";" and control characters: then decoding would copy it unchanged.
func plainPath(p string) bool {
	ascii := true
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '%', c == '\\', c == ';', c < 0x20, c == 0x7f:
			return false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return ascii || utf8.ValidString(p)
}

// stripParams removes ";parameters" from every segment ("/a;x=1/..;/b" → "/a/../b"), as
// Tomcat, Jetty and Spring do before routing.
func stripParams(d string) string {
	var b strings.Builder
	b.Grow(len(d))
	skip := false
	for i := 0; i < len(d); i++ {
		switch c := d[i]; {
		case c == '/':
			skip = false
			b.WriteByte(c)
		case c == ';':
			skip = true
		case !skip:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// normalizeHost lower-cases a host, strips the port and a trailing dot.
func normalizeHost(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i >= 0 {
			return h[:i+1]
		}
		return h
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h, ':') == i {
		h = h[:i]
	}
	return strings.TrimSuffix(h, ".")
}

// hostPattern is one compiled Route.Host entry.
type hostPattern struct {
	exact  string // exact host, or
	suffix string // ".example.org" for "*.example.org"
	any    bool   // "*"
}

func (h hostPattern) matches(host string) bool {
	switch {
	case h.any:
		return true
	case h.suffix != "":
		return len(host) > len(h.suffix) && strings.HasSuffix(host, h.suffix)
	default:
		return host == h.exact
	}
}

// compiledRoute is a validated Route.
type compiledRoute struct {
	name    string
	public  bool
	hosts   []hostPattern
	exact   string
	prefix  string
	re      *regexp.Regexp
	methods map[string]bool
	node    node
}

// matches reports whether the route applies; host and method are normalised, p is the
// normalised path.
func (r *compiledRoute) matches(host, p, method string) bool {
	if len(r.hosts) > 0 {
		ok := false
		for _, h := range r.hosts {
			if h.matches(host) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(r.methods) > 0 && !r.methods[method] {
		return false
	}
	switch {
	case r.exact != "":
		return p == r.exact
	case r.prefix != "":
		return r.prefix == "/" || p == r.prefix || strings.HasPrefix(p, r.prefix) && p[len(r.prefix)] == '/'
	case r.re != nil:
		return r.re.MatchString(p)
	}
	return true
}

// encodedTwiceMatters reports whether a percent-escape still present after one decoding
// stands for a byte that RFC 3986 never requires to be encoded (unreserved characters),
// or for "/", "\\" or "%": such an escape is an attempt at double decoding, not data.
func encodedTwiceMatters(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', '/', '\\', '%':
		return true
	}
	return false
}
