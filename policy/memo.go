package policy

import (
	"slices"
	"strings"
	"sync/atomic"
)

// Memo holds what evaluating requirements derives from one claims document and can
// reuse: the values of a large list claim as a sorted set, and held entitlements
// parsed. An identity that is evaluated many times (a cached one) keeps a Memo next to
// its claims and passes both to Selection.EvaluateMemo, so that the cost of a request
// does not grow with how many groups or entitlements the identity holds.
//
// A Memo belongs to exactly one claims document, which must not change: passing it with
// another document gives that document's answers computed from the first one's values.
// The zero Memo is empty and ready to use; a Memo is safe for concurrent use. It is
// filled on first use, per claim, separator and kind of matching, only for claims that
// hold more than a few values or hold entitlements (smaller lists cost less to search
// directly than to keep), and it holds at most maxMemo entries (more come only from
// reloads that change claim names; those are then computed per request).
type Memo struct {
	held atomic.Pointer[[]*heldSet]
}

// maxMemo bounds the entries of one Memo.
const maxMemo = 16

// heldKey names what a heldSet was derived from.
type heldKey struct {
	claim, sep string
	ents       bool // entitlements parsed too
}

// heldSet is a claim's held values prepared for matching. It never changes once stored.
type heldSet struct {
	key heldKey
	// values are the held values (split on sep, without empty strings), sorted and
	// distinct.
	values []string
	// ents are the held values that parse as entitlements, sorted by compareEntKey
	// (only when key.ents).
	ents []Entitlement
	// unsorted marks a heldSet built for one evaluation without a Memo (values as held,
	// not sorted).
	unsorted bool
}

// doc is what a node evaluates: the claims document and, when the caller has one, its
// Memo.
type doc struct {
	claims Claims
	memo   *Memo
}

// lookup returns the stored heldSet for k, or nil.
func (m *Memo) lookup(k heldKey) *heldSet {
	p := m.held.Load()
	if p == nil {
		return nil
	}
	for _, h := range *p {
		if h.key == k {
			return h
		}
	}
	return nil
}

// store adds h unless the Memo is full or another evaluation stored an entry for the
// same key meanwhile (both are equal: either is right).
func (m *Memo) store(h *heldSet) {
	for {
		old := m.held.Load()
		var cur []*heldSet
		if old != nil {
			cur = *old
		}
		if len(cur) >= maxMemo || slices.ContainsFunc(cur, func(e *heldSet) bool { return e.key == h.key }) {
			return
		}
		next := make([]*heldSet, len(cur), len(cur)+1)
		copy(next, cur)
		next = append(next, h)
		if m.held.CompareAndSwap(old, &next) {
			return
		}
	}
}

// newHeldSet prepares held (the claim's values) for matching.
func newHeldSet(k heldKey, held []string) *heldSet {
	h := &heldSet{key: k, values: slices.Clone(held)}
	slices.Sort(h.values)
	h.values = slices.Clip(slices.Compact(h.values))
	if k.ents {
		h.ents = parseHeld(h.values)
		slices.SortFunc(h.ents, compareEntKey)
	}
	return h
}

// parseHeld parses the held values that are entitlements (the others cannot satisfy a
// required entitlement and are left out).
func parseHeld(held []string) []Entitlement {
	out := make([]Entitlement, 0, len(held))
	for _, s := range held {
		if e, err := ParseEntitlement(s); err == nil {
			out = append(out, e)
		}
	}
	return out
}

// compareEntKey orders entitlements by the fields Satisfies needs equal: NID,
// namespace, group.
func compareEntKey(a, b Entitlement) int {
	if c := strings.Compare(a.NID, b.NID); c != 0 {
		return c
	}
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.Group, b.Group)
}

// has reports whether v is held.
func (h *heldSet) has(v string) bool {
	if h.unsorted {
		return slices.Contains(h.values, v)
	}
	_, ok := slices.BinarySearch(h.values, v)
	return ok
}

// satisfies reports whether a held entitlement satisfies req.
func (h *heldSet) satisfies(req *Entitlement) bool {
	if h.unsorted {
		return slices.ContainsFunc(h.ents, func(e Entitlement) bool { return e.Satisfies(*req) })
	}
	i, _ := slices.BinarySearchFunc(h.ents, *req, compareEntKey)
	for ; i < len(h.ents) && compareEntKey(h.ents[i], *req) == 0; i++ {
		if h.ents[i].Satisfies(*req) {
			return true
		}
	}
	return false
}

// memoHeld returns the prepared values of the claim for c's Memo when they are (or
// are now) kept there; nil when there is no Memo or the claim holds too few values to
// be worth keeping, and then held (the values, in dst) and present are as heldValues
// returns them.
func (c doc) memoHeld(dst []string, k heldKey) (hs *heldSet, held []string, present bool) {
	if c.memo != nil {
		if hs := c.memo.lookup(k); hs != nil {
			return hs, nil, len(hs.values) > 0
		}
	}
	held, present = heldValues(dst, c.claims, k.claim, k.sep)
	if c.memo == nil || len(held) == 0 || (len(held) <= smallHeld && !k.ents) {
		return nil, held, present
	}
	hs = newHeldSet(k, held)
	c.memo.store(hs)
	return hs, nil, true
}
