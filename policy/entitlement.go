package policy

import (
	"fmt"
	"strings"
)

// Entitlement is a parsed AARC-G002 / AARC-G069 group entitlement:
//
//	urn:<nid>:<delegated-ns>[:<subns>…][?+<r>][?=<q>][#<f>]:group:<group>[:<subgroup>…][:role=<role>][#<authority>]
//
// Parsing normalises as AARC-G069 prescribes, so that comparing two parsed
// entitlements is comparing their fields:
//   - the keywords "urn", "group" and "role=" and the namespace parts (NID, delegated
//     namespace, sub-namespaces) are case-insensitive and stored lower-case;
//   - group, subgroup and role names are case-sensitive, but their percent-escapes are
//     not: "%c3%a4" is stored as "%C3%A4" (RFC 3986 §6.2.2.1);
//   - the URN r-, q- and f-components ("?+…", "?=…", "#…") after the namespace parts
//     are dropped: G069 says to ignore them when comparing;
//   - nothing is percent-decoded ("%3A" stays three characters; G002's decoding of the
//     whole string is not applied, as in AARC-G069 and flaat 1.x).
//
// Parse once (ParseEntitlement), compare many times (Satisfies): an Entitlement is a
// plain value that can be prepared ahead, e.g. once per identity.
type Entitlement struct {
	// NID is the URN namespace identifier, e.g. "geant" (lower-case).
	NID string
	// Namespace is the delegated namespace, e.g. "h-df.de" (lower-case).
	Namespace string
	// SubNamespaces are the parts between Namespace and "group" (lower-case).
	SubNamespaces []string
	// Group is the group name (percent-escapes upper-case).
	Group string
	// SubGroups are the parts after Group, outermost first (percent-escapes upper-case).
	SubGroups []string
	// Role is the value of a final "role=" part; "" when none (percent-escapes upper-case).
	Role string
	// Authority is the part after the "#" that follows the group part; it is ignored
	// when comparing (deprecated by G069).
	Authority string
}

// ParseEntitlement parses and normalises s. Strings that are not entitlements (wrong
// prefix, no "group" part, empty parts, "role=" not last, "?" or "#" in a namespace
// part other than as r/q/f-components, an empty authority, white space or control
// characters) return an error wrapping ErrBadEntitlement, and so does a string that can
// be read in two ways (a "group" keyword in more than one place that each gives a valid
// entitlement, e.g. "urn:a:b:group:g:group:h"): it is never guessed. It never panics.
func ParseEntitlement(s string) (Entitlement, error) {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return Entitlement{}, fmt.Errorf("%w: white space or control character", ErrBadEntitlement)
		}
	}
	if len(s) < 4 || !strings.EqualFold(s[:4], "urn:") {
		return Entitlement{}, fmt.Errorf("%w: must look like urn:<nid>:<namespace>:group:<group>", ErrBadEntitlement)
	}
	// Every ":group:" (any case) after "urn:<nid>:<ns>" is a candidate keyword.
	var found Entitlement
	var firstErr error
	n := 0
	for k := 4; k+len(":group:") <= len(s); k++ {
		if s[k] != ':' || !strings.EqualFold(s[k:k+len(":group:")], ":group:") {
			continue
		}
		e, err := parseEntitlementAt(s, k)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if n++; n > 1 {
			return Entitlement{}, fmt.Errorf("%w: ambiguous: \"group\" can be read as the keyword in more than one place", ErrBadEntitlement)
		}
		found = e
	}
	switch {
	case n == 1:
		return found, nil
	case firstErr != nil:
		return Entitlement{}, firstErr
	default:
		return Entitlement{}, fmt.Errorf("%w: no group part (must look like urn:<nid>:<namespace>:group:<group>)", ErrBadEntitlement)
	}
}

// parseEntitlementAt parses s with the ":group:" keyword at s[k:].
func parseEntitlementAt(s string, k int) (Entitlement, error) {
	var e Entitlement
	// Namespace parts: <nid>:<delegated-ns>[:<subns>…], optional components after the last.
	ns := s[len("urn:"):k]
	i := strings.LastIndexByte(ns, ':')
	if i < 0 {
		return e, fmt.Errorf("%w: must look like urn:<nid>:<namespace>:group:<group>", ErrBadEntitlement)
	}
	head, last := ns[:i], ns[i+1:]
	if j := strings.IndexAny(last, "?#"); j >= 0 {
		if !urnComponents(last[j:]) {
			return e, fmt.Errorf("%w: \"?\" or \"#\" after a namespace part must start ?+r, ?=q or #f components", ErrBadEntitlement)
		}
		last = last[:j]
	}
	if strings.ContainsAny(head, "?#") {
		return e, fmt.Errorf("%w: \"?\" or \"#\" in a namespace part is only allowed as ?+r, ?=q and #f components after the last one", ErrBadEntitlement)
	}
	if n := strings.Count(head, ":"); n > 0 {
		e.SubNamespaces = make([]string, 0, n)
	}
	idx := 0
	for {
		p, rest, more := strings.Cut(head, ":")
		if err := e.setNamespacePart(idx, p); err != nil {
			return Entitlement{}, err
		}
		idx++
		if !more {
			break
		}
		head = rest
	}
	if err := e.setNamespacePart(idx, last); err != nil {
		return Entitlement{}, err
	}
	// Group part: <group>[:<subgroup>…][:role=<role>][#<authority>].
	body, auth, hasAuth := strings.Cut(s[k+len(":group:"):], "#")
	if hasAuth {
		if auth == "" {
			return Entitlement{}, fmt.Errorf("%w: empty authority after \"#\"", ErrBadEntitlement)
		}
		e.Authority = upperEscapes(auth)
	}
	parts := strings.Split(body, ":")
	for _, p := range parts {
		if p == "" {
			return Entitlement{}, fmt.Errorf("%w: empty part", ErrBadEntitlement)
		}
	}
	if hasRolePrefix(parts[0]) {
		return Entitlement{}, fmt.Errorf("%w: role without group", ErrBadEntitlement)
	}
	e.Group = upperEscapes(parts[0])
	rest := parts[1:]
	for i, p := range rest {
		if !hasRolePrefix(p) {
			continue
		}
		if i != len(rest)-1 {
			return Entitlement{}, fmt.Errorf("%w: role must be the last part", ErrBadEntitlement)
		}
		e.Role = upperEscapes(p[len("role="):])
		if e.Role == "" {
			return Entitlement{}, fmt.Errorf("%w: empty role", ErrBadEntitlement)
		}
		rest = rest[:i]
	}
	if len(rest) > 0 {
		for i := range rest {
			rest[i] = upperEscapes(rest[i])
		}
		e.SubGroups = rest[:len(rest):len(rest)]
	}
	return e, nil
}

// setNamespacePart sets the idx-th namespace part (0 NID, 1 delegated namespace, then
// sub-namespaces), lower-case.
func (e *Entitlement) setNamespacePart(idx int, p string) error {
	if p == "" {
		return fmt.Errorf("%w: empty part", ErrBadEntitlement)
	}
	p = strings.ToLower(p)
	switch idx {
	case 0:
		e.NID = p
	case 1:
		e.Namespace = p
	default:
		e.SubNamespaces = append(e.SubNamespaces, p)
	}
	return nil
}

// urnComponents reports whether c is empty or a valid sequence of the optional URN
// components that G069 ignores: [?+r][?=q][#f], each non-empty ("r" without "?" or "#",
// "q" without "#"; no part contains ":" here already).
func urnComponents(c string) bool {
	c, ok := cutURNComponent(c, "?+", "?#")
	if !ok {
		return false
	}
	if c, ok = cutURNComponent(c, "?=", "#"); !ok {
		return false
	}
	if rest, ok := strings.CutPrefix(c, "#"); ok {
		return rest != ""
	}
	return c == ""
}

// cutURNComponent removes from c a leading component that starts with prefix and runs
// up to the first byte of stops (or the end); ok is false when that component is empty.
// A c without prefix is returned as it is.
func cutURNComponent(c, prefix, stops string) (after string, ok bool) {
	rest, found := strings.CutPrefix(c, prefix)
	if !found {
		return c, true
	}
	i := strings.IndexAny(rest, stops)
	if i < 0 {
		i = len(rest)
	}
	return rest[i:], i > 0
}

// upperEscapes returns s with the hex digits of every valid percent-escape upper-case
// ("%c3" → "%C3"); anything else is unchanged.
func upperEscapes(s string) string {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s
	}
	var b []byte
	for ; i+2 < len(s); i++ {
		if s[i] != '%' || !isHex(s[i+1]) || !isHex(s[i+2]) {
			continue
		}
		for j := i + 1; j <= i+2; j++ {
			if c := s[j]; c >= 'a' && c <= 'f' {
				if b == nil {
					b = []byte(s)
				}
				b[j] = c - ('a' - 'A')
			}
		}
		i += 2
	}
	if b == nil {
		return s
	}
	return string(b)
}

func hasRolePrefix(p string) bool {
	return len(p) >= len("role=") && strings.EqualFold(p[:len("role=")], "role=")
}

// Satisfies reports whether holding e meets the required entitlement: same NID and
// delegated namespace, the required sub-namespaces are a prefix of e's, the same group,
// and either (no role required) the required subgroups are a prefix of e's — so
// membership in a subgroup or holding any role implies membership in the group — or
// (a role required) an equal role in exactly the same subgroup. The authority is ignored.
// Both must come from ParseEntitlement (which normalises); Satisfies compares fields.
func (e Entitlement) Satisfies(required Entitlement) bool {
	if e.NID != required.NID || e.Namespace != required.Namespace || e.Group != required.Group {
		return false
	}
	if !isPrefix(required.SubNamespaces, e.SubNamespaces) {
		return false
	}
	if required.Role != "" {
		return e.Role == required.Role && len(e.SubGroups) == len(required.SubGroups) && isPrefix(required.SubGroups, e.SubGroups)
	}
	return isPrefix(required.SubGroups, e.SubGroups)
}

// String returns the canonical form: lower-case namespace parts, upper-case
// percent-escapes, no r/q/f-components, with the authority.
func (e Entitlement) String() string {
	var b strings.Builder
	b.WriteString("urn:")
	b.WriteString(e.NID)
	b.WriteString(":")
	b.WriteString(e.Namespace)
	for _, s := range e.SubNamespaces {
		b.WriteString(":" + s)
	}
	b.WriteString(":group:")
	b.WriteString(e.Group)
	for _, s := range e.SubGroups {
		b.WriteString(":" + s)
	}
	if e.Role != "" {
		b.WriteString(":role=" + e.Role)
	}
	if e.Authority != "" {
		b.WriteString("#" + e.Authority)
	}
	return b.String()
}

// isPrefix reports whether p is a prefix of l.
func isPrefix(p, l []string) bool {
	if len(p) > len(l) {
		return false
	}
	for i := range p {
		if p[i] != l[i] {
			return false
		}
	}
	return true
}
