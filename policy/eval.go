package policy

import (
	"slices"
	"strconv"
	"strings"
)

// node is a compiled requirement.
//
// Reason and detail texts of a requirement that is met are the same for every claims
// document, so prepare (run once by New, on a valid configuration) computes them, and
// the descriptions, ahead of time: evaluating an allow then formats nothing. Texts of
// unmet requirements name the missing values and are built when needed. A node that was
// not prepared builds every text itself and gives the same results.
type node interface {
	// eval never panics, whatever the claims document holds.
	eval(c doc) outcome
	// describe is a one-line description of the requirement (configuration only).
	describe() string
}

// outcome is the result of evaluating one node.
type outcome struct {
	ok bool
	// static marks the prepared outcome of a node whose every sub-requirement is met
	// (ok is true): it is shared by all evaluations and must not be modified.
	static bool
	reason string
	// details: one line per evaluated (sub-)requirement, this node's first,
	// children indented.
	details []string
	// scopes: required scopes of unmet scope requirements below this node.
	scopes []string
}

// leaf builds the outcome of a requirement without children.
func leaf(ok bool, reason string) outcome {
	return outcome{ok: ok, reason: reason, details: []string{detailLine(ok, reason)}}
}

// metLeaf is the prepared outcome of a requirement without children that is met.
func metLeaf(reason string) outcome {
	o := leaf(true, reason)
	o.static = true
	return o
}

func detailLine(ok bool, reason string) string {
	if ok {
		return "met: " + reason
	}
	return "not met: " + reason
}

// maxListed bounds how many values a reason lists.
const maxListed = 10

// quoteList formats values as `"a", "b"`, eliding after maxListed.
func quoteList(vals []string) string {
	var b strings.Builder
	for i, v := range vals {
		if i == maxListed {
			b.WriteString(", … " + strconv.Itoa(len(vals)-maxListed) + " more")
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(v))
	}
	return b.String()
}

// ---- authenticated --------------------------------------------------------------

type authNode struct{}

func (authNode) describe() string { return "authenticated" }

// authMet is authNode's outcome when met.
var authMet = metLeaf(`authenticated: claims "sub" and "iss" present`)

func (authNode) eval(c doc) outcome {
	sub, iss := hasValue(c, "sub", ""), hasValue(c, "iss", "")
	switch {
	case sub && iss:
		return authMet
	case sub:
		return leaf(false, `authenticated: claim "iss" missing or empty`)
	case iss:
		return leaf(false, `authenticated: claim "sub" missing or empty`)
	}
	return leaf(false, `authenticated: claim "sub", "iss" missing or empty`)
}

// hasValue reports whether the claim holds at least one non-empty value.
func hasValue(c doc, name, sep string) bool {
	var buf [smallHeld]string
	hs, vals, _ := c.memoHeld(buf[:0], heldKey{claim: name, sep: sep})
	return hs != nil || len(vals) > 0
}

// ---- claim ----------------------------------------------------------------------

type claimNode struct {
	name, sep string
	desc      string  // prepared describe()
	met       outcome // prepared outcome when met
}

func (n claimNode) prepare() claimNode {
	n.desc = n.describe()
	n.met = metLeaf("claim: " + strconv.Quote(n.name) + " has a value")
	return n
}

func (n claimNode) describe() string {
	if n.desc != "" {
		return n.desc
	}
	return "claim " + strconv.Quote(n.name)
}

func (n claimNode) eval(c doc) outcome {
	if hasValue(c, n.name, n.sep) {
		if n.met.static {
			return n.met
		}
		return leaf(true, "claim: "+strconv.Quote(n.name)+" has a value")
	}
	return leaf(false, "claim: "+strconv.Quote(n.name)+" missing or empty")
}

// ---- groups / entitlements --------------------------------------------------------

type valuesNode struct {
	kind   string // "groups" or "entitlements"
	claim  string
	sep    string
	values []string       // distinct required values
	ents   []*Entitlement // parsed required entitlements (nil entry: plain equality)
	need   int            // distinct values that must be held
	all    bool           // match: all

	desc string  // prepared describe()
	met  outcome // prepared outcome when met
}

func (n *valuesNode) prepare() {
	n.desc = n.describe()
	n.met = metLeaf(n.countText(n.need))
}

func (n *valuesNode) matchText() string {
	switch {
	case n.all:
		return "all of " + quoteList(n.values)
	case n.need == 1:
		return "one of " + quoteList(n.values)
	default:
		return strconv.Itoa(n.need) + " of " + quoteList(n.values)
	}
}

func (n *valuesNode) describe() string {
	if n.desc != "" {
		return n.desc
	}
	return n.kind + "(claim " + strconv.Quote(n.claim) + ", " + n.matchText() + ")"
}

// countText is the reason's first part: `groups: 1 of 2 required values in claim "g"`.
func (n *valuesNode) countText(count int) string {
	return n.kind + ": " + strconv.Itoa(min(count, n.need)) + " of " + strconv.Itoa(n.need) + " required values in claim " + strconv.Quote(n.claim)
}

// smallHeld: up to this many held values are searched directly instead of through a set.
const smallHeld = 16

func (n *valuesNode) eval(c doc) outcome {
	var buf [smallHeld]string
	hs, held, _ := c.memoHeld(buf[:0], heldKey{claim: n.claim, sep: n.sep, ents: n.ents != nil})
	if hs == nil && len(held) == 0 {
		return leaf(false, n.kind+": claim "+strconv.Quote(n.claim)+" missing or empty (required: "+n.matchText()+")")
	}
	if hs == nil && n.ents != nil { // no Memo: parse the held entitlements for this call
		hs = &heldSet{values: held, ents: parseHeld(held), unsorted: true}
	}
	count := 0
	for i, v := range n.values {
		if n.holds(i, v, held, hs) {
			count++
		}
	}
	ok := count >= n.need
	if ok && n.met.static {
		return n.met
	}
	var b strings.Builder
	b.WriteString(n.countText(count))
	if !ok {
		var missing []string
		for i, v := range n.values {
			if !n.holds(i, v, held, hs) {
				missing = append(missing, v)
			}
		}
		if n.need > len(n.values) {
			b.WriteString(" (can never be met: match " + strconv.Itoa(n.need) + " exceeds the " + strconv.Itoa(len(n.values)) + " listed values)")
		} else if n.all {
			b.WriteString(" (missing: " + quoteList(missing) + ")")
		} else {
			b.WriteString(" (need " + n.matchText() + "; missing: " + quoteList(missing) + ")")
		}
	}
	return leaf(ok, b.String())
}

// holds reports whether the i-th required value v is held: looked up in hs when the
// values are prepared (or parsed for this call), else searched in held, a short list.
func (n *valuesNode) holds(i int, v string, held []string, hs *heldSet) bool {
	if n.ents != nil && n.ents[i] != nil {
		return hs.satisfies(n.ents[i])
	}
	if hs != nil {
		return hs.has(v)
	}
	return slices.Contains(held, v)
}

// ---- issuer / subject / audience ---------------------------------------------------

// oneOfNode: claim holds at least one of the allowed values (exact).
type oneOfNode struct {
	kind    string // issuer, subject, audience
	claim   string // iss, sub, aud
	allowed []string
	set     map[string]bool

	desc string  // prepared describe()
	met  outcome // prepared outcome when met
}

func (n *oneOfNode) prepare() {
	n.desc = n.describe()
	n.met = metLeaf(n.kind + ": claim " + strconv.Quote(n.claim) + " is allowed")
}

func (n *oneOfNode) describe() string {
	if n.desc != "" {
		return n.desc
	}
	return n.kind + " one of " + quoteList(n.allowed)
}

func (n *oneOfNode) eval(c doc) outcome {
	var buf [smallHeld]string
	held, _ := heldValues(buf[:0], c.claims, n.claim, "")
	for _, h := range held {
		if n.set[h] {
			if n.met.static {
				return n.met
			}
			return leaf(true, n.kind+": claim "+strconv.Quote(n.claim)+" is allowed")
		}
	}
	if len(held) == 0 {
		return leaf(false, n.kind+": claim "+strconv.Quote(n.claim)+" missing or empty (allowed: "+quoteList(n.allowed)+")")
	}
	return leaf(false, n.kind+": claim "+strconv.Quote(n.claim)+" is not one of "+quoteList(n.allowed))
}

// ---- scope ------------------------------------------------------------------------

type scopeNode struct {
	required []string

	desc string  // prepared describe()
	met  outcome // prepared outcome when met
}

func (n *scopeNode) prepare() {
	n.desc = n.describe()
	n.met = metLeaf("scope: " + quoteList(n.required) + " granted")
}

func (n *scopeNode) describe() string {
	if n.desc != "" {
		return n.desc
	}
	return "scope " + quoteList(n.required)
}

func (n *scopeNode) eval(c doc) outcome {
	name := "scope"
	var buf [smallHeld]string
	hs, held, ok := c.memoHeld(buf[:0], heldKey{claim: "scope", sep: " "})
	if hs == nil && !ok {
		name = "scp"
		hs, held, _ = c.memoHeld(buf[:0], heldKey{claim: "scp", sep: " "})
	}
	has := func(r string) bool {
		if hs != nil {
			return hs.has(r)
		}
		return slices.Contains(held, r)
	}
	var missing []string
	for _, r := range n.required {
		if !has(r) {
			missing = append(missing, r)
		}
	}
	if len(missing) == 0 {
		if n.met.static {
			return n.met
		}
		return leaf(true, "scope: "+quoteList(n.required)+" granted")
	}
	o := leaf(false, "scope: claim "+strconv.Quote(name)+" lacks "+quoteList(missing))
	o.scopes = n.required
	return o
}

// ---- combinators ------------------------------------------------------------------

type combNode struct {
	kind     string // all_of, any_of, n_of
	need     int    // children that must be met; 0 with no children: never met
	children []node

	desc string  // prepared describe()
	met  outcome // prepared outcome when every child is met; zero when that is no allow
}

// prepare prepares the children and then the outcome of "every child met": the static
// outcomes of the children, combined exactly as eval combines them.
func (n *combNode) prepare(p *preparer) {
	for i := range n.children {
		n.children[i] = p.prepare(n.children[i])
	}
	n.desc = n.describe()
	if len(n.children) == 0 || n.need > len(n.children) {
		return // never met, whatever the children say
	}
	outs := make([]outcome, len(n.children))
	for i, ch := range n.children {
		outs[i] = metOf(ch)
		if !outs[i].static {
			return // a child that is never met
		}
	}
	n.met = n.combine(outs)
	n.met.static = true
}

// metOf is the prepared outcome of a prepared node when met (zero if it is never met).
func metOf(n node) outcome {
	switch t := n.(type) {
	case authNode:
		return authMet
	case claimNode:
		return t.met
	case *valuesNode:
		return t.met
	case *oneOfNode:
		return t.met
	case *scopeNode:
		return t.met
	case *combNode:
		return t.met
	case *levelNode:
		return t.met
	case publicNode:
		return publicMet
	}
	return outcome{}
}

func (n *combNode) describe() string {
	if n.desc != "" {
		return n.desc
	}
	var b strings.Builder
	b.WriteString(n.kind)
	if n.kind == "n_of" {
		b.WriteString(" " + strconv.Itoa(n.need))
	}
	b.WriteString("(")
	for i, ch := range n.children {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(ch.describe())
	}
	b.WriteString(")")
	return b.String()
}

func (n *combNode) eval(c doc) outcome {
	if len(n.children) == 0 {
		return leaf(false, n.kind+": empty list is never met")
	}
	var buf [4]outcome
	outs := buf[:0]
	static := true
	for _, ch := range n.children {
		o := ch.eval(c)
		static = static && o.static
		outs = append(outs, o)
	}
	if static && n.met.static {
		return n.met
	}
	return n.combine(outs)
}

// combine builds the outcome from the children's outcomes.
func (n *combNode) combine(outs []outcome) outcome {
	met := 0
	for _, o := range outs {
		if o.ok {
			met++
		}
	}
	ok := met >= n.need
	var reason string
	total := strconv.Itoa(len(n.children))
	var unmet []string
	var scopes []string
	for _, o := range outs {
		if !o.ok {
			unmet = append(unmet, o.reason)
			scopes = append(scopes, o.scopes...)
		}
	}
	switch {
	case ok:
		reason = n.kind + ": " + strconv.Itoa(met) + " of " + total + " met"
		if n.kind == "any_of" && met > 0 {
			for _, o := range outs {
				if o.ok {
					reason = n.kind + ": " + o.reason
					break
				}
			}
		}
	case n.kind == "all_of":
		reason = strings.Join(unmet, "; ")
	case n.kind == "any_of":
		reason = "any_of: none of " + total + " met (" + strings.Join(unmet, "; ") + ")"
	default:
		reason = "n_of: " + strconv.Itoa(met) + " of " + strconv.Itoa(n.need) + " required (out of " + total + ") met (" + strings.Join(unmet, "; ") + ")"
	}
	nd := 1
	for _, ch := range outs {
		nd += len(ch.details)
	}
	o := outcome{ok: ok, reason: reason, details: make([]string, 1, nd)}
	o.details[0] = detailLine(ok, n.kind+": "+strconv.Itoa(met)+" of "+total+" met")
	for _, ch := range outs {
		for _, d := range ch.details {
			o.details = append(o.details, "  "+d)
		}
	}
	if !ok {
		o.scopes = scopes
	}
	return o
}

// ---- access levels ------------------------------------------------------------------

type levelNode struct {
	name   string
	target node // set after compilation; nil only while compiling

	prepared bool
	desc     string  // prepared describe()
	met      outcome // prepared outcome when the target is met
}

func (n *levelNode) prepare(p *preparer) {
	if n.prepared {
		return // shared by every reference
	}
	n.prepared = true
	if n.target == nil {
		return
	}
	n.target = p.prepare(n.target)
	n.desc = n.describe()
	if in := metOf(n.target); in.static {
		n.met = n.wrap(in)
		n.met.static = true
	}
}

func (n *levelNode) describe() string {
	if n.desc != "" {
		return n.desc
	}
	if n.target == nil {
		return "access level " + strconv.Quote(n.name)
	}
	return "access level " + strconv.Quote(n.name) + " = " + n.target.describe()
}

func (n *levelNode) eval(c doc) outcome {
	if n.target == nil {
		return leaf(false, "access level "+strconv.Quote(n.name)+" is not defined")
	}
	in := n.target.eval(c)
	if in.static && n.met.static {
		return n.met
	}
	return n.wrap(in)
}

// wrap builds the level's outcome from its target's.
func (n *levelNode) wrap(in outcome) outcome {
	o := outcome{ok: in.ok, reason: "access level " + strconv.Quote(n.name) + ": " + in.reason,
		details: make([]string, 1, 1+len(in.details))}
	o.details[0] = detailLine(in.ok, "access level "+strconv.Quote(n.name))
	for _, d := range in.details {
		o.details = append(o.details, "  "+d)
	}
	if !in.ok {
		o.scopes = in.scopes
	}
	return o
}

// ---- deny -------------------------------------------------------------------------

type denyNode struct {
	reason string
	desc   string // prepared describe()
}

func (n denyNode) describe() string {
	if n.desc != "" {
		return n.desc
	}
	return "deny (" + n.reason + ")"
}

func (n denyNode) eval(doc) outcome { return leaf(false, n.reason) }

// ---- public -----------------------------------------------------------------------

// publicNode is the requirement of a public route: always met, no token needed.
type publicNode struct{}

var publicMet = metLeaf("public route: no token required")

func (publicNode) describe() string { return "public (no token required)" }

func (publicNode) eval(doc) outcome { return publicMet }

// ---- preparation --------------------------------------------------------------------

// preparer runs prepare over every node of a valid (acyclic) configuration once.
type preparer struct{}

// prepare prepares n and returns it (value-type nodes are returned as prepared copies).
func (p *preparer) prepare(n node) node {
	switch t := n.(type) {
	case claimNode:
		return t.prepare()
	case denyNode:
		t.desc = t.describe()
		return t
	case *valuesNode:
		t.prepare()
	case *oneOfNode:
		t.prepare()
	case *scopeNode:
		t.prepare()
	case *combNode:
		t.prepare(p)
	case *levelNode:
		t.prepare(p)
	}
	return n
}
