package policy

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// compiler validates a Config and builds an Engine, collecting every problem.
type compiler struct {
	cfg      Config
	problems []Problem
	warnings []string
	levels   map[string]*levelNode
	// refs[level] lists the access levels its requirement refers to (for cycle checks).
	refs map[string][]string
	// current is the access level being compiled ("" outside access levels).
	current string
}

func newCompiler(cfg Config) *compiler {
	return &compiler{cfg: cfg, levels: map[string]*levelNode{}, refs: map[string][]string{}}
}

func (c *compiler) problem(path, msg string) {
	c.problems = append(c.problems, Problem{Path: path, Message: msg})
}

func (c *compiler) warn(path, msg string) {
	c.warnings = append(c.warnings, path+": "+msg)
}

// levelPath locates an access level, quoting names that are not plain identifiers.
func levelPath(name string) string {
	plain := name != ""
	for _, r := range name {
		if !(r == '_' || r == '-' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
			plain = false
			break
		}
	}
	if plain {
		return "access_levels." + name
	}
	return "access_levels[" + strconv.Quote(name) + "]"
}

func (c *compiler) compile() *Engine {
	e := &Engine{key: c.cfg.ContextExtensionKey, levels: c.levels}
	if e.key == "" {
		e.key = DefaultContextExtensionKey
	} else if strings.TrimSpace(e.key) != e.key {
		c.problem("context_extension_key", "must not start or end with white space")
	}

	e.paths = c.paths()

	names := sortedKeys(c.cfg.AccessLevels)
	for _, name := range names {
		if strings.TrimSpace(name) == "" {
			c.problem("access_levels", "an access level name must not be empty")
			continue
		}
		c.levels[name] = &levelNode{name: name}
	}
	e.levelNames = names
	for _, name := range names {
		l := c.levels[name]
		if l == nil {
			continue
		}
		req := c.cfg.AccessLevels[name]
		c.current = name
		l.target = c.requirement(levelPath(name), &req)
		c.current = ""
	}
	c.checkCycles(names)

	seen := map[string]int{}
	for i, r := range c.cfg.Routes {
		rt, ok := c.route(i, r)
		if !ok {
			continue
		}
		if j, dup := seen[rt.name]; dup {
			c.problem(fmt.Sprintf("routes[%d].name", i), fmt.Sprintf("%q is already the name of routes[%d]", rt.name, j))
		}
		seen[rt.name] = i
		e.routes = append(e.routes, rt)
		e.anyCI = e.anyCI || rt.ci
	}
	if e.anyCI && !e.paths.foldAll {
		// Some route ignores case and some component may not: compare the case-sensitive
		// and the case-folded readings with the one as configured.
		e.caseReads = []caseReading{caseSensitive, caseFolded}
		for _, rt := range e.routes {
			// An upper-case letter in a pattern, or a regex (whose classes may name
			// upper-case letters, and whose folding is Unicode's), can make the readings
			// differ on a path without upper-case letters.
			if rt.re != nil || hasUpper(rt.exact) || hasUpper(rt.prefix) {
				e.caseAlways = true
			}
		}
	}

	e.index = newRouteIndex(e.routes, e.anyCI)

	if c.cfg.Default != nil {
		e.def = c.requirement("default", c.cfg.Default)
	} else {
		e.def = denyNode{reason: "no route matches this request and no default policy is configured"}
	}
	e.warnings = c.warnings
	return e
}

// paths validates the policy.paths section.
func (c *compiler) paths() pathRules {
	p := c.cfg.Paths
	var r pathRules
	r.slashes = c.pathMode("paths.escaped_slashes", p.EscapedSlashes, PathUnescape)
	r.params = c.pathMode("paths.params", p.Params, PathStrip)
	r.foldAll = p.CaseSensitive != nil && !*p.CaseSensitive
	return r
}

// pathMode compiles the value v of the path switch at key, whose own name for applying
// the feature is apply (unescape, strip); "" is compare.
func (c *compiler) pathMode(key, v, apply string) pathMode {
	switch strings.ToLower(v) {
	case "", PathCompare:
		return modeCompare
	case PathReject:
		return modeReject
	case PathKeep:
		return modeKeep
	case apply:
		return modeApply
	}
	c.problem(key, fmt.Sprintf("%q: want compare, reject, keep or %s", v, apply))
	return modeCompare
}

// checkCycles reports every access level that is part of a reference cycle, once per
// cycle, with the cycle spelled out.
func (c *compiler) checkCycles(names []string) {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var visit func(n string)
	visit = func(n string) {
		color[n] = grey
		stack = append(stack, n)
		for _, m := range c.refs[n] {
			if _, ok := c.levels[m]; !ok {
				continue // unknown reference: reported elsewhere
			}
			switch color[m] {
			case white:
				visit(m)
			case grey:
				i := len(stack) - 1
				for stack[i] != m {
					i--
				}
				cycle := append(append([]string(nil), stack[i:]...), m)
				c.problem(levelPath(m), "cyclic access-level reference: "+strings.Join(cycle, " → "))
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
	}
	for _, n := range names {
		if color[n] == white && c.levels[n] != nil {
			visit(n)
		}
	}
}

// route validates and compiles one route.
func (c *compiler) route(i int, r Route) (compiledRoute, bool) {
	at := fmt.Sprintf("routes[%d]", i)
	n := len(c.problems)
	rt := compiledRoute{name: r.Name, public: r.Public, ci: r.CaseInsensitive || c.cfg.Paths.CaseSensitive != nil && !*c.cfg.Paths.CaseSensitive}
	if rt.name == "" {
		rt.name = at
	}
	for j, h := range r.Host {
		hp, msg := parseHostPattern(h)
		if msg != "" {
			c.problem(fmt.Sprintf("%s.host[%d]", at, j), msg)
			continue
		}
		rt.hosts = append(rt.hosts, hp)
	}
	if r.Host != nil && len(r.Host) == 0 {
		c.problem(at+".host", "must list at least one host (omit it to match any host)")
	}
	for j, m := range r.Methods {
		m = strings.ToUpper(strings.TrimSpace(m))
		if !isToken(m) {
			c.problem(fmt.Sprintf("%s.methods[%d]", at, j), "must be an HTTP method such as GET")
			continue
		}
		if rt.methods == nil {
			rt.methods = map[string]bool{}
		}
		rt.methods[m] = true
	}
	if r.Methods != nil && len(r.Methods) == 0 {
		c.problem(at+".methods", "must list at least one method (omit it to match any method)")
	}
	if r.Path != nil {
		c.pathMatch(at+".path", r.Path, &rt)
	}
	switch {
	case r.Public && r.Require != nil:
		c.problem(at+".require", "a public route needs no token and must not have a requirement; remove public or require")
	case r.Public:
		rt.node = publicNode{}
		c.warn(at, fmt.Sprintf("route %q is public: matching requests are allowed without a token", rt.name))
	case r.Require == nil:
		c.problem(at, "must have a requirement (require) or be marked public: true")
	default:
		rt.node = c.requirement(at+".require", r.Require)
	}
	return rt, len(c.problems) == n
}

func (c *compiler) pathMatch(at string, p *PathMatch, rt *compiledRoute) {
	set := 0
	if p.Exact != "" {
		set++
		if n, err := NormalizePath(p.Exact); err != nil {
			c.problem(at+".exact", "must be a path starting with \"/\": "+strings.TrimPrefix(err.Error(), "policy: "))
		} else {
			rt.exact = n
		}
	}
	if p.Prefix != "" {
		set++
		if n, err := NormalizePath(p.Prefix); err != nil {
			c.problem(at+".prefix", "must be a path starting with \"/\": "+strings.TrimPrefix(err.Error(), "policy: "))
		} else {
			rt.prefix = n
		}
	}
	if p.Regex != "" {
		set++
		re, err := regexp.Compile(`^(?:` + p.Regex + `)$`)
		if err != nil {
			c.problem(at+".regex", "invalid regular expression: "+err.Error())
		} else {
			rt.re = re
		}
	}
	if set != 1 {
		c.problem(at, "must set exactly one of exact, prefix, regex")
	}
	rt.exactFold, rt.prefixFold = asciiLower(rt.exact), asciiLower(rt.prefix)
	if rt.re != nil {
		rt.reFold = regexp.MustCompile(`(?i)` + rt.re.String()) // the same syntax, valid
	}
}

// parseHostPattern compiles one host pattern or returns a message.
func parseHostPattern(h string) (hostPattern, string) {
	h = strings.ToLower(strings.TrimSpace(h))
	h = strings.TrimSuffix(h, ".")
	switch {
	case h == "":
		return hostPattern{}, "must not be empty"
	case h == "*":
		return hostPattern{any: true}, ""
	case strings.HasPrefix(h, "*."):
		rest := h[2:]
		if rest == "" || strings.ContainsAny(rest, "*:/") {
			return hostPattern{}, "must be a host name or *.suffix, without port"
		}
		return hostPattern{suffix: h[1:]}, ""
	case strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]"):
		return hostPattern{exact: h}, ""
	case strings.ContainsAny(h, "*:/ "):
		return hostPattern{}, "must be a host name or *.suffix, without port (the request's port is ignored)"
	}
	return hostPattern{exact: h}, ""
}

// isToken reports whether s is a non-empty HTTP token (RFC 9110).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !('A' <= ch && ch <= 'Z' || 'a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", ch) >= 0) {
			return false
		}
	}
	return true
}

// knownForms lists the requirement forms for messages.
var knownForms = strings.Join(requirementKeys, ", ")

// requirement validates and compiles one requirement at location at. It always returns
// a node (a deny node when invalid) so that compilation can continue.
func (c *compiler) requirement(at string, r *Requirement) node {
	invalid := denyNode{reason: "invalid requirement at " + at}
	for _, p := range r.problems {
		if p.Path == "" {
			c.problem(at, p.Message)
		} else {
			c.problem(at+"."+p.Path, p.Message)
		}
	}
	if len(r.problems) > 0 {
		return invalid
	}
	forms := r.forms()
	switch len(forms) {
	case 0:
		c.problem(at, "must set one requirement form ("+knownForms+") or name an access level")
		return invalid
	case 1:
	default:
		c.problem(at, "sets several requirement forms ("+strings.Join(forms, ", ")+"); combine them with all_of or any_of")
		return invalid
	}
	switch forms[0] {
	case "authenticated":
		if !r.Authenticated {
			c.problem(at+".authenticated", "must be true (for requests that need no token, mark the route public)")
			return invalid
		}
		return authNode{}
	case "claim":
		if strings.TrimSpace(r.Claim.Name) == "" {
			c.problem(at+".claim.name", "must name a claim")
			return invalid
		}
		return claimNode{name: r.Claim.Name, sep: r.Claim.Separator}
	case "groups":
		return c.values(at+".groups", "groups", "groups", r.Groups)
	case "entitlements":
		return c.values(at+".entitlements", "entitlements", "eduperson_entitlement", r.Entitlements)
	case "issuer":
		return c.oneOf(at+".issuer", "issuer", "iss", r.Issuer)
	case "subject":
		return c.oneOf(at+".subject", "subject", "sub", r.Subject)
	case "audience":
		return c.oneOf(at+".audience", "audience", "aud", r.Audience)
	case "scope":
		if !c.nonEmptyList(at+".scope", r.Scope) {
			return invalid
		}
		for i, s := range r.Scope {
			if strings.ContainsAny(s, " \t\r\n") {
				c.problem(fmt.Sprintf("%s.scope[%d]", at, i), "a scope value must not contain white space (list each scope separately)")
				return invalid
			}
		}
		return &scopeNode{required: dedupe(r.Scope)}
	case "all_of":
		return c.combinator(at+".all_of", "all_of", r.AllOf, -1)
	case "any_of":
		return c.combinator(at+".any_of", "any_of", r.AnyOf, 1)
	case "n_of":
		at := at + ".n_of"
		ok := true
		if r.NOf.Min < 1 {
			key := r.NOf.key
			if key == "" {
				key = "min"
			}
			c.problem(at+"."+key, "must be a positive integer")
			ok = false
		}
		if r.NOf.Of == nil {
			c.problem(at+".of", "must list requirements")
			ok = false
		}
		nd := c.combinator(at+".of", "n_of", r.NOf.Of, r.NOf.Min)
		if !ok {
			return invalid
		}
		if r.NOf.Min > len(r.NOf.Of) && len(r.NOf.Of) > 0 {
			c.warn(at, fmt.Sprintf("min %d exceeds the %d listed requirements: never met", r.NOf.Min, len(r.NOf.Of)))
		}
		return nd
	case "level":
		l, ok := c.levels[r.Level]
		if !ok {
			known := "none are defined"
			if len(c.levels) > 0 {
				known = "known: " + strings.Join(sortedKeys(c.levels), ", ")
			}
			c.problem(at+".level", fmt.Sprintf("unknown access level %q (%s)", r.Level, known))
			return invalid
		}
		if c.current != "" {
			c.refs[c.current] = append(c.refs[c.current], r.Level)
		}
		return l
	}
	return invalid
}

func (c *compiler) nonEmptyList(at string, l StringList) bool {
	if len(l) == 0 {
		c.problem(at, "must list at least one value")
		return false
	}
	ok := true
	for i, v := range l {
		if v == "" {
			c.problem(fmt.Sprintf("%s[%d]", at, i), "must not be empty")
			ok = false
		}
	}
	return ok
}

func (c *compiler) oneOf(at, kind, claim string, l StringList) node {
	if !c.nonEmptyList(at, l) {
		return denyNode{reason: "invalid requirement at " + at}
	}
	n := &oneOfNode{kind: kind, claim: claim, allowed: dedupe(l), set: map[string]bool{}}
	for _, v := range l {
		n.set[v] = true
	}
	return n
}

func (c *compiler) values(at, kind, defClaim string, v *ValuesRequirement) node {
	invalid := denyNode{reason: "invalid requirement at " + at}
	ok := c.nonEmptyList(at+".values", v.Values)
	claim := v.Claim
	if claim == "" {
		claim = defClaim
	} else if strings.TrimSpace(claim) == "" {
		c.problem(at+".claim", "must name a claim")
		ok = false
	}
	vals := dedupe(v.Values)
	need, msg := v.Match.count(len(vals))
	if msg != "" {
		c.problem(at+".match", msg)
		ok = false
	}
	if !ok {
		return invalid
	}
	if len(vals) < len(v.Values) {
		c.warn(at+".values", "duplicate values count once")
	}
	if need > len(vals) {
		c.warn(at+".match", fmt.Sprintf("%d exceeds the %d distinct values: never met", need, len(vals)))
	}
	m := strings.ToLower(strings.TrimSpace(string(v.Match)))
	n := &valuesNode{kind: kind, claim: claim, sep: v.Separator, values: vals, need: need, all: m == "" || m == "all"}
	if kind == "entitlements" {
		n.ents = make([]*Entitlement, len(vals))
		for i, s := range vals {
			e, err := ParseEntitlement(s)
			if err != nil {
				c.warn(fmt.Sprintf("%s.values[%d]", at, i), fmt.Sprintf("%q is not an AARC entitlement (%v): compared as a plain string", s, strings.TrimPrefix(err.Error(), "policy: ")))
				continue
			}
			n.ents[i] = &e
		}
	}
	return n
}

// combinator compiles all_of (need -1: all), any_of (need 1) and n_of (need N).
func (c *compiler) combinator(at, kind string, reqs []Requirement, need int) node {
	n := &combNode{kind: kind, need: need}
	if need < 0 {
		n.need = len(reqs)
	}
	if len(reqs) == 0 {
		c.warn(at, "empty list: never met")
	}
	for i := range reqs {
		n.children = append(n.children, c.requirement(fmt.Sprintf("%s[%d]", at, i), &reqs[i]))
	}
	return n
}
