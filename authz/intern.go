package authz

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"sync"

	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// Bounds of an interner: entries before it starts over, the largest value (its key
// length in bytes) it takes, and how many values seen once it remembers.
const (
	internMaxEntries = 8192
	internMaxKey     = 512
	internCandidates = 4096
)

// interner shares equal claim values between the identities an Authorizer caches. The
// issuer, audiences, scopes and group lists of one OP's users are mostly equal, and
// every decoded string costs a 16-byte boxed header plus its data per identity; a shared
// value costs one pointer. It takes strings and lists of strings only (other values are
// returned as they are), never more than internMaxKey bytes each. Shared values are
// read-only, as every cached identity is. Safe for concurrent use; used on the
// cache-miss path only.
//
// A value is shared from the second time it is seen: the first time it only goes into
// a fixed table of candidates (a slot chosen by a seeded hash of the value, holding the
// last value hashed there), and the second time, found there equal, it moves into the
// shared map. Values each user has alone (e-mail addresses, names) then cost nothing
// but a hash: they never enter the map, which would copy each one's key and start over
// every internMaxEntries of them. The map forgets everything when it holds
// internMaxEntries values, so that it stays bounded whatever clients send.
type interner struct {
	mu     sync.Mutex
	m      map[string]any
	cands  []candidate // internCandidates slots: values seen once
	seed   maphash.Seed
	key    []byte                   // scratch: the key of the value at hand
	ckey   []byte                   // scratch: the key of a candidate
	shapes map[uint64]*policy.Shape // shape: bit set of the projection's names → Shape
}

// candidate is a value seen once, and the hash of its key.
type candidate struct {
	h uint64
	v any
}

func newInterner() *interner {
	return &interner{m: map[string]any{}, cands: make([]candidate, internCandidates), seed: maphash.MakeSeed(),
		shapes: map[uint64]*policy.Shape{}}
}

// shape returns the Shape of the names of all (sorted and distinct) that claims holds,
// shared by every call with the same set (present: bit i for all[i]) when all has at
// most 64 names (a larger projection gets a Shape of its own each time). The number of
// shapes kept is bounded by internMaxEntries.
func (in *interner) shape(all []string, present uint64, claims policy.Claims) *policy.Shape {
	if len(all) <= 64 {
		in.mu.Lock()
		defer in.mu.Unlock()
		if shared, ok := in.shapes[present]; ok {
			return shared
		}
	}
	var names []string
	for _, k := range all {
		if _, ok := claims.Lookup(k); ok {
			names = append(names, k)
		}
	}
	s := policy.NewShape(names)
	if len(all) <= 64 {
		if len(in.shapes) >= internMaxEntries {
			in.shapes = map[uint64]*policy.Shape{}
		}
		in.shapes[present] = s
	}
	return s
}

// value returns the shared value equal to v: v itself the first time it is seen (and
// for values it does not take), the value it saw first from the second time on.
func (in *interner) value(v any) any {
	in.mu.Lock()
	defer in.mu.Unlock()
	key, ok := appendKey(in.key[:0], v)
	in.key = key[:0]
	if !ok {
		return v
	}
	if shared, ok := in.m[string(key)]; ok {
		return shared
	}
	h := maphash.Bytes(in.seed, key)
	c := &in.cands[h%internCandidates]
	if c.v == nil || c.h != h {
		*c = candidate{h: h, v: v}
		return v
	}
	ckey, _ := appendKey(in.ckey[:0], c.v)
	in.ckey = ckey[:0]
	if !bytes.Equal(ckey, key) { // another value with the same hash: it takes the slot
		*c = candidate{h: h, v: v}
		return v
	}
	shared := c.v
	*c = candidate{}
	if len(in.m) >= internMaxEntries {
		in.m = make(map[string]any, len(in.m))
	}
	in.m[string(key)] = shared
	return shared
}

// appendKey appends the interner's key of v to key: a kind byte, then a string's bytes
// or each list element's length and bytes. ok is false for values the interner does not
// take (not a string or a list of strings, or a key longer than internMaxKey).
func appendKey(key []byte, v any) (_ []byte, ok bool) {
	switch t := v.(type) {
	case string:
		key = append(append(key, 's'), t...)
	case []any:
		key = append(key, 'l')
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return key, false
			}
			key = binary.AppendUvarint(key, uint64(len(s)))
			key = append(key, s...)
			if len(key) > internMaxKey {
				return key, false
			}
		}
	default:
		return key, false
	}
	return key, len(key) <= internMaxKey
}
