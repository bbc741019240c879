package policy

import (
	"fmt"
	"strings"
)

// Entitlement is a parsed AARC-G002 / AARC-G069 group entitlement:
//
//	urn:<nid>:<delegated-ns>[:<subns>…]:group:<group>[:<subgroup>…][:role=<role>][#<authority>]
//
// The keywords "urn", "group" and "role=" and the namespace parts (NID, delegated
// namespace, sub-namespaces) are case-insensitive and stored lower-case; group,
// subgroup and role names are case-sensitive.
type Entitlement struct {
	// NID is the URN namespace identifier, e.g. "geant" (lower-case).
	NID string
	// Namespace is the delegated namespace, e.g. "h-df.de" (lower-case).
	Namespace string
	// SubNamespaces are the parts between Namespace and "group" (lower-case).
	SubNamespaces []string
	// Group is the group name.
	Group string
	// SubGroups are the parts after Group, outermost first.
	SubGroups []string
	// Role is the value of a final "role=" part; "" when none.
	Role string
	// Authority is the part after "#"; it is ignored when comparing.
	Authority string
}

// ParseEntitlement parses s. Strings that are not entitlements (wrong prefix, no
// "group" part, empty parts, "role=" not last, white space or control characters)
// return an error wrapping ErrBadEntitlement. It never panics.
func ParseEntitlement(s string) (Entitlement, error) {
	var e Entitlement
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return e, fmt.Errorf("%w: white space or control character", ErrBadEntitlement)
		}
	}
	body, auth, _ := strings.Cut(s, "#")
	e.Authority = auth
	parts := strings.Split(body, ":")
	if len(parts) < 5 || !strings.EqualFold(parts[0], "urn") {
		return Entitlement{}, fmt.Errorf("%w: must look like urn:<nid>:<namespace>:group:<group>", ErrBadEntitlement)
	}
	for _, p := range parts {
		if p == "" {
			return Entitlement{}, fmt.Errorf("%w: empty part", ErrBadEntitlement)
		}
	}
	gi := -1
	for i := 3; i < len(parts)-1; i++ {
		if strings.EqualFold(parts[i], "group") {
			gi = i
			break
		}
	}
	if gi < 0 {
		return Entitlement{}, fmt.Errorf("%w: no group part", ErrBadEntitlement)
	}
	e.NID = strings.ToLower(parts[1])
	e.Namespace = strings.ToLower(parts[2])
	for _, p := range parts[3:gi] {
		e.SubNamespaces = append(e.SubNamespaces, strings.ToLower(p))
	}
	e.Group = parts[gi+1]
	if hasRolePrefix(e.Group) {
		return Entitlement{}, fmt.Errorf("%w: role without group", ErrBadEntitlement)
	}
	rest := parts[gi+2:]
	for i, p := range rest {
		if !hasRolePrefix(p) {
			continue
		}
		if i != len(rest)-1 {
			return Entitlement{}, fmt.Errorf("%w: role must be the last part", ErrBadEntitlement)
		}
		e.Role = p[len("role="):]
		if e.Role == "" {
			return Entitlement{}, fmt.Errorf("%w: empty role", ErrBadEntitlement)
		}
		rest = rest[:i]
	}
	if len(rest) > 0 {
		e.SubGroups = append([]string(nil), rest...)
	}
	return e, nil
}

func hasRolePrefix(p string) bool {
	return len(p) >= len("role=") && strings.EqualFold(p[:len("role=")], "role=")
}

// Satisfies reports whether holding e meets the required entitlement: same NID and
// delegated namespace, the required sub-namespaces are a prefix of e's, the same group,
// and either (no role required) the required subgroups are a prefix of e's — so
// membership in a subgroup or holding any role implies membership in the group — or
// (a role required) an equal role in exactly the same subgroup. The authority is ignored.
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

// String returns the canonical form (lower-case namespace parts, with the authority).
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
