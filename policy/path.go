package policy

import (
	"fmt"
	"path"
	"regexp"
	"slices"
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
	// ci: the path matches ignoring ASCII case in the reading as configured
	// (Route.CaseInsensitive, or paths.case_sensitive: false); exactFold, prefixFold
	// and reFold are the folded patterns, used for ci routes and for the case-folded
	// reading.
	ci                    bool
	exactFold, prefixFold string
	reFold                *regexp.Regexp
}

// caseReading is one way the proxy and upstream may treat the case of a path. When
// some route is case-insensitive (and policy.paths.case_sensitive is not false), a path
// whose case can matter is read all three ways and must select the same requirement
// under each: flaat-extauthz cannot know which component on the way ignores case.
type caseReading uint8

const (
	// caseAsConfigured: case-insensitive routes ignore case, the others do not (an
	// Envoy route table that mirrors the policy).
	caseAsConfigured caseReading = iota
	// caseSensitive: every route compares case, case-insensitive ones too (a Go
	// ServeMux, Envoy's default prefix routes in front of the app).
	caseSensitive
	// caseFolded: every route ignores ASCII case (express, IIS).
	caseFolded
)

// matches reports whether the route applies; host and method are normalised, p is the
// path as read and pl its ASCII lower-case form (used when the route ignores case
// under cr).
func (r *compiledRoute) matches(host, p, pl, method string, cr caseReading) bool {
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
	exact, prefix, re := r.exact, r.prefix, r.re
	if cr == caseFolded || cr == caseAsConfigured && r.ci {
		p, exact, prefix, re = pl, r.exactFold, r.prefixFold, r.reFold
	}
	switch {
	case exact != "":
		return p == exact
	case prefix != "":
		return prefix == "/" || p == prefix || strings.HasPrefix(p, prefix) && p[len(prefix)] == '/'
	case re != nil:
		return re.MatchString(p)
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

// maxReadPathLen bounds paths that have several readings: each reading costs a pass
// over the path. nginx's default request-line buffer (8 KiB) is smaller.
const maxReadPathLen = 8 << 10

// pathMode is a compiled PathConfig switch.
type pathMode uint8

const (
	modeCompare pathMode = iota // both readings
	modeReject                  // deny paths that have the feature
	modeKeep                    // the feature is data
	modeApply                   // unescape (slashes) or strip (params)
)

// pathRules is the compiled policy.paths section.
type pathRules struct {
	slashes, params pathMode
	foldAll         bool // case_sensitive: false: every route is case-insensitive
}

// reading is one plausible way a proxy or an upstream reads a raw path (query removed).
// Every reading removes dot-segments (RFC 3986 5.2.4, never above the root) and drops
// a trailing "/"; they differ in what counts as a separator, a dot-segment and a
// parameter.
type reading struct {
	keepFrag  bool  // '#' is data, not the start of a fragment (Go's ParseRequestURI)
	backslash bool  // '\' separates segments (raw; decoded too when slashSep)
	decode    bool  // escapes are decoded once, so "%2e%2e" is a dot-segment
	slashSep  bool  // "%2F" ("%5C" with backslash) separates segments
	params    uint8 // 0 keep ";x"; 1 strip it from raw segments (Tomcat); 2 also after decoding
	keepEmpty bool  // "//" keeps its empty segment (Envoy without merge_slashes)
}

// interpret returns the path as r reads raw (a validated path without query), in the
// form routes are matched against: decoded segments joined by "/", a "/" inside a
// segment written "%2F", a non-dot segment that would look like one kept escaped.
func interpret(raw string, r reading) string {
	if !r.keepFrag {
		if i := strings.IndexByte(raw, '#'); i >= 0 {
			raw = raw[:i]
		}
	}
	segs := make([]string, 0, 8)
	push := func(s string, dot bool) {
		switch {
		case dot && s == ".":
		case dot && s == "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		case s == "" && !r.keepEmpty:
		default:
			segs = append(segs, s)
		}
	}
	for _, s := range splitSeps(raw[1:], r.backslash) {
		if r.params >= 1 {
			if i := strings.IndexByte(s, ';'); i >= 0 {
				s = s[:i]
			}
		}
		if !r.decode {
			parts := []string{s}
			if r.slashSep {
				parts = splitEscapedSeps(s, r.backslash)
			}
			for _, p := range parts {
				push(p, p == "." || p == "..")
			}
			continue
		}
		d := decodeOnce(s)
		parts := []string{d}
		if r.slashSep {
			parts = splitSeps(d, r.backslash)
		}
		for _, p := range parts {
			if r.params == 2 {
				if i := strings.IndexByte(p, ';'); i >= 0 {
					p = p[:i]
				}
			}
			push(p, p == "." || p == "..")
		}
	}
	for len(segs) > 0 && segs[len(segs)-1] == "" { // a trailing "/" never matters
		segs = segs[:len(segs)-1]
	}
	var b strings.Builder
	b.Grow(len(raw) + 8)
	for _, s := range segs {
		b.WriteByte('/')
		if s == "." || s == ".." { // data, not a dot-segment: keep it from looking like one
			b.WriteString(strings.Repeat("%2E", len(s)))
			continue
		}
		for i := 0; i < len(s); i++ {
			if s[i] == '/' {
				b.WriteString("%2F")
			} else {
				b.WriteByte(s[i])
			}
		}
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

// splitSeps splits s at "/" (and "\" when backslash).
func splitSeps(s string, backslash bool) []string {
	if !backslash {
		return strings.Split(s, "/")
	}
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '/' || s[i] == '\\' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// splitEscapedSeps splits a raw segment at "%2F" (and "%5C" when backslash), any case.
func splitEscapedSeps(s string, backslash bool) []string {
	var out []string
	start := 0
	for i := 0; i+2 < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		if e := s[i+1 : i+3]; strings.EqualFold(e, "2f") || backslash && strings.EqualFold(e, "5c") {
			out = append(out, s[start:i])
			start = i + 3
			i += 2
		}
	}
	return append(out, s[start:])
}

// decodeOnce decodes the percent-escapes of a validated segment.
func decodeOnce(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

// ordinaryPath reports whether p (without query) has exactly one reading: valid UTF-8
// without percent-escapes, "\\", ";", "#", control characters, "//" and dot-segments.
// Its reading is path.Clean(p). One pass, like plainPath.
func ordinaryPath(p string) bool {
	ascii := true
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c > '/' && c < 0x7f && c != ';' && c != '\\' { // letters, digits, most marks
			continue
		}
		switch {
		case c == '%', c == '\\', c == ';', c == '#', c < 0x20, c == 0x7f:
			return false
		case c >= utf8.RuneSelf:
			ascii = false
		case c == '/' && i+1 < len(p):
			switch p[i+1] {
			case '/':
				return false
			case '.': // "/." or "/.." followed by "/" or the end is a dot-segment
				j := i + 2
				if j < len(p) && p[j] == '.' {
					j++
				}
				if j == len(p) || p[j] == '/' {
					return false
				}
			}
		}
	}
	return ascii || utf8.ValidString(p)
}

// hasUpper reports whether p has an ASCII upper-case letter.
func hasUpper(p string) bool {
	for i := 0; i < len(p); i++ {
		if 'A' <= p[i] && p[i] <= 'Z' {
			return true
		}
	}
	return false
}

// asciiLower lower-cases ASCII letters only (route case-insensitivity is ASCII, like
// Envoy's ignore_case).
func asciiLower(s string) string {
	if !hasUpper(s) {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// containsEscape reports whether s contains any of the escapes (e.g. "%2f"), any case.
func containsEscape(s string, escapes ...string) bool {
	for i := strings.IndexByte(s, '%'); i >= 0 && i+2 < len(s); {
		for _, e := range escapes {
			if strings.EqualFold(s[i+1:i+3], e) {
				return true
			}
		}
		j := strings.IndexByte(s[i+1:], '%')
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

// readings returns the distinct interpretations of raw (a path without query that
// passed NormalizePath) under the rules, or an error wrapping ErrBadPath when a
// "reject" switch refuses the path.
func (pr pathRules) readings(raw string) ([]string, error) {
	if len(raw) > maxReadPathLen {
		return nil, fmt.Errorf("%w: longer than %d bytes and not an ordinary path (escapes, \";\", \"\\\", \"#\", \"//\" or dot-segments)", ErrBadPath, maxReadPathLen)
	}
	hasFrag := strings.IndexByte(raw, '#') >= 0
	hasBS := strings.IndexByte(raw, '\\') >= 0 || containsEscape(raw, "5c")
	hasPct := strings.IndexByte(raw, '%') >= 0
	encSlash := containsEscape(raw, "2f", "5c")
	semi := strings.IndexByte(raw, ';') >= 0
	encSemi := containsEscape(raw, "3b")
	if encSlash && pr.slashes == modeReject {
		return nil, fmt.Errorf("%w: escaped \"/\" or \"\\\" refused (policy.paths.escaped_slashes: reject)", ErrBadPath)
	}
	if (semi || encSemi) && pr.params == modeReject {
		return nil, fmt.Errorf("%w: \";\" refused (policy.paths.params: reject)", ErrBadPath)
	}
	two := []bool{false, true}
	one := func(b bool) []bool { return []bool{b} }
	frags, bss, decs, seps, empties := one(false), one(false), one(true), one(false), one(false)
	if hasFrag {
		frags = two
	}
	if hasBS {
		bss = two
	}
	if hasPct {
		decs = two
	}
	switch {
	case pr.slashes == modeApply:
		seps = one(true)
	case encSlash && pr.slashes == modeCompare:
		seps = two
	}
	if strings.Contains(raw, "//") || hasBS || encSlash {
		empties = two
	}
	var params []uint8
	switch pr.params {
	case modeKeep:
		params = []uint8{0}
	case modeApply:
		params = []uint8{1, 2}
	default:
		params = []uint8{0}
		if semi {
			params = append(params, 1)
		}
		if semi || encSemi {
			params = append(params, 2)
		}
	}
	var out []string
	for _, f := range frags {
		for _, b := range bss {
			for _, d := range decs {
				for _, s := range seps {
					for _, p := range params {
						for _, e := range empties {
							c := interpret(raw, reading{keepFrag: f, backslash: b, decode: d, slashSep: s, params: p, keepEmpty: e})
							if !slices.Contains(out, c) {
								out = append(out, c)
							}
						}
					}
				}
			}
		}
	}
	return out, nil
}
