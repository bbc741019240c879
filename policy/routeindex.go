package policy

// routeIndex finds the first route (in table order) that matches a read path without
// trying every route, so that route selection costs the same behind 5 routes or 1 000:
// exact and prefix routes are looked up by their pattern, every other route (regex, the
// "/" prefix, no path condition) is tried in order.
//
// The lookups only narrow the routes down to candidates: every route that can match is
// a candidate, and compiledRoute.matches decides, so the result is that of trying every
// route in order. A prefix pattern P (not "/") matches p only when p is P or starts with
// P+"/" (segment-wise), so the candidate prefixes of p are its leading segments: p[:j]
// where p[j] is "/", and p itself. When some route ignores case (fold), keys and
// looked-up paths are ASCII lower-case, so that one lookup finds a route under every
// case reading.
type routeIndex struct {
	routes    []compiledRoute
	fold      bool
	exact     map[string][]int // exact pattern → its routes, in table order
	prefix    map[string][]int // prefix pattern (not "/") → its routes, in table order
	maxPrefix int              // length of the longest prefix pattern
	rest      []int            // every other route, in table order
}

func newRouteIndex(routes []compiledRoute, fold bool) *routeIndex {
	ix := &routeIndex{routes: routes, fold: fold, exact: map[string][]int{}, prefix: map[string][]int{}}
	key := func(s string) string {
		if fold {
			return asciiLower(s)
		}
		return s
	}
	for i := range routes {
		switch rt := &routes[i]; {
		case rt.exact != "":
			k := key(rt.exact)
			ix.exact[k] = append(ix.exact[k], i)
		case rt.prefix != "" && rt.prefix != "/":
			k := key(rt.prefix)
			ix.prefix[k] = append(ix.prefix[k], i)
			ix.maxPrefix = max(ix.maxPrefix, len(k))
		default:
			ix.rest = append(ix.rest, i)
		}
	}
	return ix
}

// first returns the index of the first route matching (compiledRoute.matches with the
// same arguments), -1 for none. pl must be asciiLower(p) when ix.fold.
func (ix *routeIndex) first(host, p, pl, method string, cr caseReading) int {
	k := p
	if ix.fold {
		k = pl
	}
	best := -1
	// try lowers best to the first of cands (ascending) that matches, if it is earlier.
	try := func(cands []int) {
		for _, i := range cands {
			if best >= 0 && i >= best {
				return
			}
			if ix.routes[i].matches(host, p, pl, method, cr) {
				best = i
				return
			}
		}
	}
	try(ix.exact[k])
	for j := 1; j <= len(k) && j <= ix.maxPrefix; j++ {
		if j == len(k) || k[j] == '/' {
			try(ix.prefix[k[:j]])
		}
	}
	try(ix.rest)
	return best
}
