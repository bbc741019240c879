package policy

import "sort"

// ClaimNames returns every claim name that evaluating any of e's requirements (routes,
// access levels, the default) can read, sorted and without duplicates: claim names as
// written in the configuration ("groups", "realm_access.roles",
// "https://example.org/groups"; dotted names are not split), "sub" and "iss" for
// authenticated, subject and issuer, "aud" for audience, and both "scope" and "scp" for
// scope requirements. A policy of public routes only returns none.
//
// A caller may drop every other top-level claim of a claims document without changing
// any decision of e, keeping for a dotted name both the literal name and its first
// segment (lookups try the literal name first, then the path).
func (e *Engine) ClaimNames() []string {
	set := map[string]bool{}
	seen := map[*levelNode]bool{}
	var walk func(n node)
	walk = func(n node) {
		switch t := n.(type) {
		case authNode:
			set["sub"], set["iss"] = true, true
		case claimNode:
			set[t.name] = true
		case *valuesNode:
			set[t.claim] = true
		case *oneOfNode:
			set[t.claim] = true
		case *scopeNode:
			set["scope"], set["scp"] = true, true
		case *combNode:
			for _, ch := range t.children {
				walk(ch)
			}
		case *levelNode:
			if !seen[t] { // cycles are configuration errors, but never loop
				seen[t] = true
				walk(t.target)
			}
		}
	}
	for i := range e.routes {
		walk(e.routes[i].node)
	}
	for _, l := range e.levels {
		walk(l)
	}
	walk(e.def)
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
