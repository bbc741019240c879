package policy

import (
	"strconv"
	"strings"
)

// node is a compiled requirement.
type node interface {
	// eval never panics, whatever claims holds.
	eval(claims map[string]any) outcome
	// describe is a one-line description of the requirement (configuration only).
	describe() string
}

// outcome is the result of evaluating one node.
type outcome struct {
	ok     bool
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

func (authNode) eval(c map[string]any) outcome {
	var missing []string
	for _, name := range []string{"sub", "iss"} {
		if !hasValue(c, name, "") {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return leaf(false, "authenticated: claim "+quoteList(missing)+" missing or empty")
	}
	return leaf(true, `authenticated: claims "sub" and "iss" present`)
}

// hasValue reports whether the claim holds at least one non-empty value.
func hasValue(c map[string]any, name, sep string) bool {
	vals, _ := heldValues(c, name, sep)
	return len(vals) > 0
}

// ---- claim ----------------------------------------------------------------------

type claimNode struct{ name, sep string }

func (n claimNode) describe() string { return "claim " + strconv.Quote(n.name) }

func (n claimNode) eval(c map[string]any) outcome {
	if hasValue(c, n.name, n.sep) {
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
	return n.kind + "(claim " + strconv.Quote(n.claim) + ", " + n.matchText() + ")"
}

func (n *valuesNode) eval(c map[string]any) outcome {
	held, _ := heldValues(c, n.claim, n.sep)
	claim := "claim " + strconv.Quote(n.claim)
	if len(held) == 0 {
		return leaf(false, n.kind+": "+claim+" missing or empty (required: "+n.matchText()+")")
	}
	var heldEnts []Entitlement
	var heldSet map[string]bool
	if n.kind == "entitlements" {
		heldEnts = make([]Entitlement, 0, len(held))
		for _, h := range held {
			if e, err := ParseEntitlement(h); err == nil {
				heldEnts = append(heldEnts, e)
			}
		}
	}
	heldSet = make(map[string]bool, len(held))
	for _, h := range held {
		heldSet[h] = true
	}
	count := 0
	var missing []string
	for i, v := range n.values {
		if n.holds(i, v, heldSet, heldEnts) {
			count++
		} else {
			missing = append(missing, v)
		}
	}
	ok := count >= n.need
	var b strings.Builder
	b.WriteString(n.kind + ": " + strconv.Itoa(min(count, n.need)) + " of " + strconv.Itoa(n.need) + " required values in " + claim)
	if !ok {
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

// holds reports whether the i-th required value v is held.
func (n *valuesNode) holds(i int, v string, heldSet map[string]bool, heldEnts []Entitlement) bool {
	if n.ents == nil || n.ents[i] == nil {
		return heldSet[v]
	}
	for _, h := range heldEnts {
		if h.Satisfies(*n.ents[i]) {
			return true
		}
	}
	return false
}

// ---- issuer / subject / audience ---------------------------------------------------

// oneOfNode: claim holds at least one of the allowed values (exact).
type oneOfNode struct {
	kind    string // issuer, subject, audience
	claim   string // iss, sub, aud
	allowed []string
	set     map[string]bool
}

func (n *oneOfNode) describe() string { return n.kind + " one of " + quoteList(n.allowed) }

func (n *oneOfNode) eval(c map[string]any) outcome {
	held, _ := heldValues(c, n.claim, "")
	for _, h := range held {
		if n.set[h] {
			return leaf(true, n.kind+": claim "+strconv.Quote(n.claim)+" is allowed")
		}
	}
	if len(held) == 0 {
		return leaf(false, n.kind+": claim "+strconv.Quote(n.claim)+" missing or empty (allowed: "+quoteList(n.allowed)+")")
	}
	return leaf(false, n.kind+": claim "+strconv.Quote(n.claim)+" is not one of "+quoteList(n.allowed))
}

// ---- scope ------------------------------------------------------------------------

type scopeNode struct{ required []string }

func (n *scopeNode) describe() string { return "scope " + quoteList(n.required) }

func (n *scopeNode) eval(c map[string]any) outcome {
	name := "scope"
	held, ok := heldValues(c, "scope", " ")
	if !ok {
		name = "scp"
		held, _ = heldValues(c, "scp", " ")
	}
	set := make(map[string]bool, len(held))
	for _, h := range held {
		set[h] = true
	}
	var missing []string
	for _, r := range n.required {
		if !set[r] {
			missing = append(missing, r)
		}
	}
	if len(missing) == 0 {
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
}

func (n *combNode) describe() string {
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

func (n *combNode) eval(c map[string]any) outcome {
	if len(n.children) == 0 {
		return leaf(false, n.kind+": empty list is never met")
	}
	outs := make([]outcome, len(n.children))
	met := 0
	for i, ch := range n.children {
		outs[i] = ch.eval(c)
		if outs[i].ok {
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
	o := outcome{ok: ok, reason: reason, details: []string{detailLine(ok, n.kind+": "+strconv.Itoa(met)+" of "+total+" met")}}
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
}

func (n *levelNode) describe() string {
	if n.target == nil {
		return "access level " + strconv.Quote(n.name)
	}
	return "access level " + strconv.Quote(n.name) + " = " + n.target.describe()
}

func (n *levelNode) eval(c map[string]any) outcome {
	if n.target == nil {
		return leaf(false, "access level "+strconv.Quote(n.name)+" is not defined")
	}
	in := n.target.eval(c)
	o := outcome{ok: in.ok, reason: "access level " + strconv.Quote(n.name) + ": " + in.reason}
	o.details = append(o.details, detailLine(in.ok, "access level "+strconv.Quote(n.name)))
	for _, d := range in.details {
		o.details = append(o.details, "  "+d)
	}
	if !in.ok {
		o.scopes = in.scopes
	}
	return o
}

// ---- deny -------------------------------------------------------------------------

type denyNode struct{ reason string }

func (n denyNode) describe() string { return "deny (" + n.reason + ")" }

func (n denyNode) eval(map[string]any) outcome { return leaf(false, n.reason) }

// ---- public -----------------------------------------------------------------------

// publicNode is the requirement of a public route: always met, no token needed.
type publicNode struct{}

func (publicNode) describe() string { return "public (no token required)" }

func (publicNode) eval(map[string]any) outcome { return leaf(true, "public route: no token required") }
