// Package policy decides whether a claims document meets a requirement, and which
// requirement applies to a request (route table, Envoy context_extensions). It is pure:
// standard library only, no I/O, no knowledge of Envoy or of token verification.
//
// It expresses what flaat expresses with login_required, group_required(group=[…],
// claim=…, match=…), aarc_entitlement_required, access levels and its requirements
// module, as declarative configuration:
//
//	cfg := policy.Config{ /* decoded from the `policy:` section */ }
//	eng, err := policy.New(cfg)          // validates everything, once
//	sel, err := eng.Select(req)          // route table / context_extensions / default
//	res := sel.Evaluate(claims)          // verdict with a reason a human can act on
//
// Claims documents are map[string]any as produced by encoding/json (float64 numbers,
// []any lists, map[string]any objects), or a Claims (such a map, or the compact form a
// cached identity keeps) passed to Selection.EvaluateMemo.
package policy

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// DefaultContextExtensionKey is the Envoy context_extensions key that selects an access
// level when Config.ContextExtensionKey is empty.
const DefaultContextExtensionKey = "flaat_policy"

// Config is the `policy:` section of the configuration file (JSON tags; YAML is
// converted to JSON first and decoded with DisallowUnknownFields).
//
// The zero Config is valid and denies every request (no routes, no default).
type Config struct {
	// AccessLevels are named requirements that routes, the default, other access levels
	// and Envoy context_extensions refer to by name. Cycles are a configuration error.
	AccessLevels map[string]Requirement `json:"access_levels,omitempty"`
	// Routes is the route table; the first matching route wins.
	Routes []Route `json:"routes,omitempty"`
	// Default applies when no route matches. nil: deny every request that no route
	// matches (with a reason saying so).
	Default *Requirement `json:"default,omitempty"`
	// ContextExtensionKey names the Envoy context_extensions key whose value selects an
	// access level by name, overriding the route table. Default "flaat_policy". A value
	// naming an unknown access level makes Select fail (deny).
	ContextExtensionKey string `json:"context_extension_key,omitempty"`
	// Paths says how request paths that can be read in more than one way are treated.
	// The zero value is the safe default: every plausible reading is evaluated and a
	// request whose readings select different routes is denied (see PathConfig).
	Paths PathConfig `json:"paths,omitzero"`
}

// Values of PathConfig.EscapedSlashes and PathConfig.Params.
const (
	// PathCompare (the default, also spelled ""): evaluate both readings; deny when they
	// select different routes.
	PathCompare = "compare"
	// PathReject: deny every path that has the feature (400).
	PathReject = "reject"
	// PathKeep: the feature is data: "%2F" does not separate segments, ";x" is part of
	// the segment's name.
	PathKeep = "keep"
	// PathUnescape (EscapedSlashes only): "%2F" and "%5C" separate segments like "/".
	PathUnescape = "unescape"
	// PathStrip (Params only): ";parameters" are removed from every segment (Tomcat,
	// Jetty, Spring).
	PathStrip = "strip"
)

// PathConfig is the `policy.paths` section: how the upstream (and the proxy in front of
// it) reads request paths. Unless an operator knows the upstream's rules, leave it
// empty: a path whose readings disagree about the route is denied, which never lets a
// request through under a more permissive route than the upstream serves it under.
// Paths without escapes, ";", "\", "#", "//" or dot-segments have one reading and are
// not affected.
type PathConfig struct {
	// EscapedSlashes: what "%2F" (and "%5C") in a path means to the upstream: "keep"
	// (data inside a segment; Go's ServeMux, Envoy without unescaping), "unescape" (a
	// separator; nginx), "reject" (deny such paths with 400; Tomcat's default) or
	// "compare" (both readings, deny when they differ). Default "compare".
	EscapedSlashes string `json:"escaped_slashes,omitempty"`
	// Params: what ";parameters" in a path segment mean: "keep" (part of the segment:
	// nginx, Go, Envoy), "strip" (removed: Tomcat, Jetty, Spring), "reject" (deny such
	// paths with 400) or "compare" (all readings, deny when they differ). Default
	// "compare".
	Params string `json:"params,omitempty"`
	// CaseSensitive: route paths match case-sensitively (like Envoy's prefix). false
	// says that every proxy and upstream ignores ASCII case (they serve "/ADMIN" as
	// "/admin"): every route is case-insensitive and the case-folded reading is the
	// only one (no case-sensitive reading is compared). DANGER: wrong for any component
	// that routes case-sensitively (Go's ServeMux, Envoy's default route match); use
	// Route.CaseInsensitive, which compares both readings, when unsure. Default true.
	CaseSensitive *bool `json:"case_sensitive,omitempty"`
}

// Route is one entry of the route table. Every condition that is set must match; an
// unset condition matches everything.
type Route struct {
	// Name appears in logs, metrics and the check command. Default "routes[<index>]".
	// Names must be unique.
	Name string `json:"name,omitempty"`
	// Host lists host patterns: exact ("api.example.org") or "*.suffix"
	// ("*.example.org" matches "a.example.org" and "a.b.example.org", not
	// "example.org"). Case-insensitive; the request's port and a trailing dot are
	// ignored; patterns must not carry a port. Empty: any host.
	Host StringList `json:"host,omitempty"`
	// Path matches the normalised request path (see NormalizePath). nil: any path.
	Path *PathMatch `json:"path,omitempty"`
	// CaseInsensitive says that some component on the way (the proxy's route, the
	// upstream) may serve this route's paths in any ASCII case ("/Admin" as "/admin").
	// Default false: route matching is case-sensitive, like Envoy's prefix.
	//
	// It does not make differently-cased paths select this route unconditionally: as
	// soon as one route is case-insensitive, a path whose case can matter is read three
	// ways — as configured (this route ignores case, case-sensitive routes do not),
	// case-sensitive (every route compares case, this one too) and case-folded (every
	// route ignores case) — and the request is denied as ambiguous when these select
	// routes with different requirements. So "/Docs/x" on a public case-insensitive
	// "/docs" route is allowed only when a case-sensitive component would also pick a
	// route with the same requirement; otherwise it is a 400. To let every case through
	// as this route, say that every component ignores case (Paths.CaseSensitive false).
	CaseInsensitive bool `json:"case_insensitive,omitempty"`
	// Methods lists HTTP methods (case-insensitive, "GET" does not imply "HEAD").
	// Empty: any method.
	Methods StringList `json:"methods,omitempty"`
	// Public routes need no token at all: every request they match is allowed.
	// DANGER: a public route with a broad path opens the upstream to anyone; New lists
	// every public route in Engine.Warnings so that it is logged at start-up.
	// A public route must not have Require.
	Public bool `json:"public,omitempty"`
	// Require is the requirement (or, as a bare string, the access level) for requests
	// this route matches. Required unless Public.
	Require *Requirement `json:"require,omitempty"`
}

// PathMatch matches the normalised request path. Exactly one field must be set.
// Patterns for Exact and Prefix are normalised like request paths, so "/admin/" and
// "/admin" are the same pattern.
type PathMatch struct {
	// Exact matches one path.
	Exact string `json:"exact,omitempty"`
	// Prefix matches the path itself and everything below it, segment-wise: "/admin"
	// matches "/admin" and "/admin/users", not "/administrator". "/" matches every path.
	Prefix string `json:"prefix,omitempty"`
	// Regex (RE2 syntax) must match the whole normalised path, like Envoy's safe_regex:
	// it is anchored at both ends.
	Regex string `json:"regex,omitempty"`
}

// Request is what route selection looks at.
type Request struct {
	// Method is the HTTP method.
	Method string
	// Host is the request's host (":authority"), possibly with a port.
	Host string
	// Path is the path as sent: it may carry a query and percent-encoding.
	Path string
	// ContextExtensions are Envoy's per-route context_extensions (gRPC only).
	ContextExtensions map[string]string
}

// Engine is a compiled, validated Config. It is safe for concurrent use and never
// changes after New.
type Engine struct {
	routes     []compiledRoute
	levels     map[string]*levelNode
	levelNames []string
	def        node
	key        string
	warnings   []string
	paths      pathRules
	anyCI      bool // some route is case-insensitive (the reading as configured folds it)
	// caseReads are the case readings compared with the one as configured: none, or
	// case-sensitive and case-folded when some route is case-insensitive and
	// paths.case_sensitive is not false. caseAlways: compare them for every path, not
	// only for paths with an upper-case letter (a pattern has one, or a route is a regex).
	caseReads  []caseReading
	caseAlways bool
	index      *routeIndex // finds the first matching route of routes
}

// Source says where a Selection came from.
type Source string

const (
	// SourceRoute: a route of the route table matched.
	SourceRoute Source = "route"
	// SourceContextExtension: Envoy context_extensions named an access level.
	SourceContextExtension Source = "context_extensions"
	// SourceDefault: no route matched; the default requirement (or the built-in deny)
	// applies.
	SourceDefault Source = "default"
	// SourceAccessLevel: the caller asked for an access level by name (Engine.Level).
	SourceAccessLevel Source = "access_level"
)

// Selection is the route or policy chosen for a request. The zero Selection denies.
type Selection struct {
	// Name is the route name, the access level named by context_extensions, or
	// "default".
	Name string
	// Public routes need no token; Evaluate allows without looking at claims.
	Public bool
	// Source says whether a route, context_extensions or the default was selected.
	Source Source
	// Path is the normalised request path that routes were matched against.
	Path string
	// Description describes the requirement in one line, for the check command and
	// logs, e.g. `all_of(authenticated, groups(claim "groups", 2 of "a", "b", "c"))`.
	Description string

	node node
}

// New validates cfg, reporting every problem at once in a *ConfigError (which wraps
// ErrInvalidConfig), and compiles it: regular expressions are compiled and access
// levels resolved here, once. New has no side effects.
func New(cfg Config) (*Engine, error) {
	c := newCompiler(cfg)
	e := c.compile()
	if len(c.problems) > 0 {
		return nil, &ConfigError{Problems: c.problems}
	}
	e.prepare()
	return e, nil
}

// prepare computes, once, every description and every reason and detail text of met
// requirements, so that Select and an allowing Evaluate format no strings. It needs a
// valid configuration (access levels without cycles).
func (e *Engine) prepare() {
	p := &preparer{}
	for _, name := range e.levelNames {
		if l := e.levels[name]; l != nil {
			p.prepare(l)
		}
	}
	for i := range e.routes {
		e.routes[i].node = p.prepare(e.routes[i].node)
	}
	e.def = p.prepare(e.def)
}

// Warnings lists things in the configuration that are valid but deserve a line in the
// start-up log: every public route, empty combinators (never met), match counts that
// can never be met, required entitlements that do not parse as AARC entitlements.
func (e *Engine) Warnings() []string { return append([]string(nil), e.warnings...) }

// AccessLevels returns the names of the configured access levels, sorted.
func (e *Engine) AccessLevels() []string { return append([]string(nil), e.levelNames...) }

// SelectionNames returns every name a Selection of e can carry, each once: the route
// names (in table order, defaults "routes[<index>]" included), the access levels
// (sorted) and "default". Metrics use it to show a series per route from the start.
func (e *Engine) SelectionNames() []string {
	names := make([]string, 0, len(e.routes)+len(e.levelNames)+1)
	seen := make(map[string]bool, cap(names))
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	for _, rt := range e.routes {
		add(rt.name)
	}
	for _, n := range e.levelNames {
		add(n)
	}
	add("default")
	return names
}

// Level selects the named access level directly (as context_extensions would). The
// error wraps ErrUnknownAccessLevel for unknown names.
func (e *Engine) Level(name string) (Selection, error) {
	s, err := e.level(name)
	if err != nil {
		return Selection{}, err
	}
	s.Source = SourceAccessLevel
	return s, nil
}

func (e *Engine) level(name string) (Selection, error) {
	l, ok := e.levels[name]
	if !ok {
		return Selection{}, fmt.Errorf("%w %q", ErrUnknownAccessLevel, name)
	}
	return Selection{Name: name, node: l, Description: l.describe()}, nil
}

// Select picks the requirement for r:
//
//  1. the path is normalised (NormalizePath); failure returns an error wrapping
//     ErrBadPath and the request must be denied;
//  2. a non-empty context_extensions value under the configured key names an access
//     level, which wins over the route table (an unknown name is an error wrapping
//     ErrUnknownAccessLevel: deny);
//  3. the first matching route;
//  4. the default requirement; without one, a Selection whose Evaluate denies with a
//     reason saying that no route matched.
//
// A path that can be read in more than one way (escapes, ";parameters", "\", "#",
// "//", dot-segments, its case when a route is case-insensitive) is matched under
// every plausible reading (see PathConfig and docs/request-target.md); when the
// readings select different routes with different requirements, Select returns an
// *AmbiguousPathError (wrapping ErrAmbiguousPath) and the request must be denied. It
// never picks one of the readings. A policy.paths switch set to "reject" makes such a
// path an ErrBadPath error. Ordinary paths have one reading and take a fast path.
//
// Select does not evaluate claims and does not look at any token.
func (e *Engine) Select(r Request) (Selection, error) {
	raw := r.Path
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw = raw[:i]
	}
	// An ordinary path is its own single reading: NormalizePath would return
	// path.Clean(raw) after the same checks.
	ordinary := len(raw) <= maxPathLen && strings.HasPrefix(raw, "/") && ordinaryPath(raw)
	var p string
	if ordinary {
		p = path.Clean(raw)
	} else {
		var err error
		if p, err = NormalizePath(r.Path); err != nil {
			return Selection{}, err
		}
	}
	if v := r.ContextExtensions[e.key]; v != "" {
		s, err := e.level(v)
		if err != nil {
			return Selection{}, fmt.Errorf("policy: context_extensions %q: %w", e.key, err)
		}
		s.Source = SourceContextExtension
		s.Path = p
		return s, nil
	}
	host := normalizeHost(r.Host)
	method := strings.ToUpper(r.Method)
	if ordinary {
		pl := e.fold(p)
		i := e.route(host, p, pl, method, caseAsConfigured)
		if e.caseMatters(p) {
			for _, cr := range e.caseReads {
				if j := e.route(host, p, pl, method, cr); !e.sameRequirement(i, j) {
					return Selection{}, e.ambiguous(r.Path, []pathRead{{p, caseAsConfigured, i}, {p, cr, j}})
				}
			}
		}
		return e.selection(i, p), nil
	}
	if strings.IndexByte(raw, '#') >= 0 { // the readings that keep '#' see what follows it
		if _, err := NormalizePath(strings.ReplaceAll(raw, "#", "%23")); err != nil {
			return Selection{}, err
		}
	}
	reads, err := e.paths.readings(raw)
	if err != nil {
		return Selection{}, err
	}
	var first int // the route of the first reading as configured
	var seen []pathRead
	for k, rp := range reads {
		pl := e.fold(rp)
		crs := []caseReading{caseAsConfigured}
		if e.caseMatters(rp) {
			crs = append(crs, e.caseReads...)
		}
		for _, cr := range crs {
			i := e.route(host, rp, pl, method, cr)
			if k == 0 && cr == caseAsConfigured {
				first = i
			}
			seen = append(seen, pathRead{rp, cr, i})
			if !e.sameRequirement(first, i) {
				return Selection{}, e.ambiguous(r.Path, seen)
			}
		}
	}
	return e.selection(first, p), nil
}

// caseMatters reports whether the case readings of the read path p must be compared.
func (e *Engine) caseMatters(p string) bool {
	return len(e.caseReads) > 0 && (e.caseAlways || hasUpper(p))
}

// fold returns the ASCII lower-case form of the read path p that route needs: p itself
// when no route ignores case.
func (e *Engine) fold(p string) string {
	if e.anyCI {
		return asciiLower(p)
	}
	return p
}

// route returns the index of the first route matching the read path p (pl: e.fold(p))
// under the case reading cr, -1 for none. cr is caseAsConfigured or one of e.caseReads
// (the index folds case only when some route ignores it).
func (e *Engine) route(host, p, pl, method string, cr caseReading) int {
	return e.index.first(host, p, pl, method, cr)
}

// pathRead is one reading Select looked at: the path as read, the case reading and the
// route it selected (-1: the default).
type pathRead struct {
	path  string
	cr    caseReading
	route int
}

// node returns the requirement of route i (-1: the default).
func (e *Engine) node(i int) node {
	if i < 0 {
		return e.def
	}
	return e.routes[i].node
}

// sameRequirement reports whether routes i and j (-1: the default) demand the same:
// the same route, two public routes, or the same access level.
func (e *Engine) sameRequirement(i, j int) bool {
	if i == j {
		return true
	}
	if i >= 0 && j >= 0 && e.routes[i].public && e.routes[j].public {
		return true
	}
	a, aok := e.node(i).(*levelNode)
	b, bok := e.node(j).(*levelNode)
	return aok && bok && a == b
}

func (e *Engine) selection(i int, p string) Selection {
	if i < 0 {
		return Selection{Name: "default", Source: SourceDefault, Path: p, Description: e.def.describe(), node: e.def}
	}
	rt := &e.routes[i]
	return Selection{Name: rt.name, Public: rt.public, Source: SourceRoute, Path: p, Description: rt.node.describe(), node: rt.node}
}

func (e *Engine) ambiguous(raw string, seen []pathRead) error {
	a := &AmbiguousPathError{Path: raw}
	for _, s := range seen {
		pr := PathReading{Path: s.path, Route: "default"}
		if s.route >= 0 {
			pr.Route = e.routes[s.route].name
		}
		switch s.cr {
		case caseSensitive:
			pr.Case = CaseSensitive
		case caseFolded:
			pr.Path, pr.Case = asciiLower(s.path), CaseFolded
		}
		a.Readings = append(a.Readings, pr)
	}
	return a
}

// Evaluate checks claims against the selected requirement. It never panics and never
// allows on malformed claims: a claim of an unexpected type simply does not hold the
// required value. Public selections are allowed without looking at claims; the zero
// Selection denies.
func (s Selection) Evaluate(claims map[string]any) Result {
	return s.evaluate(doc{claims: MapClaims(claims)})
}

// EvaluateMemo is Evaluate with m, the Memo of claims: values derived from claims for
// matching (sorted sets of large lists, parsed entitlements) are kept there and reused
// by later evaluations with the same claims and m, so that evaluating an identity
// again costs the same however many values it holds. Every call for one claims
// document must pass the same Memo, and a Memo must never be passed with another
// document. A nil m is Evaluate.
func (s Selection) EvaluateMemo(claims Claims, m *Memo) Result {
	return s.evaluate(doc{claims: claims, memo: m})
}

func (s Selection) evaluate(c doc) Result {
	if s.Public {
		return Result{Allowed: true, Reason: "public route: no token required", Details: publicDetails}
	}
	if s.node == nil {
		return Result{Reason: "no requirement selected", Details: []string{"not met: no requirement selected"}}
	}
	o := s.node.eval(c)
	res := Result{Allowed: o.ok, Reason: o.reason, Details: o.details[:len(o.details):len(o.details)]}
	if !o.ok {
		res.Scopes = dedupe(o.scopes)
	}
	return res
}

// publicDetails are the Details of every public Selection's Result (shared).
var publicDetails = []string{"met: public route"}

// dedupe returns the distinct strings of l in their first order.
func dedupe(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	seen := make(map[string]bool, len(l))
	out := make([]string, 0, len(l))
	for _, s := range l {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
