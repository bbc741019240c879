package authz

import (
	"encoding/binary"
	"sync"

	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// Bounds of an interner: entries before it starts over, and the largest value (its key
// length in bytes) it takes.
const (
	internMaxEntries = 8192
	internMaxKey     = 512
)

// interner shares equal claim values between the identities an Authorizer caches. The
// issuer, audiences, scopes and group lists of one OP's users are mostly equal, and
// every decoded string costs a 16-byte boxed header plus its data per identity; a shared
// value costs one pointer. It takes strings and lists of strings only (other values are
// returned as they are), never more than internMaxKey bytes each, and forgets everything
// when it holds internMaxEntries values, so that per-user values (e-mail addresses) cost
// a bounded amount and only slow the sharing down. Shared values are read-only, as every
// cached identity is. Safe for concurrent use; used on the cache-miss path only.
type interner struct {
	mu     sync.Mutex
	m      map[string]any
	key    []byte
	shapes map[uint64]*policy.Shape // shape: bit set of the projection's names → Shape
}

func newInterner() *interner {
	return &interner{m: map[string]any{}, shapes: map[uint64]*policy.Shape{}}
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

// value returns the shared value equal to v, storing v as that value if none is known.
func (in *interner) value(v any) any {
	in.mu.Lock()
	defer in.mu.Unlock()
	key := in.key[:0]
	switch t := v.(type) {
	case string:
		key = append(append(key, 's'), t...)
	case []any:
		key = append(key, 'l')
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return v
			}
			key = binary.AppendUvarint(key, uint64(len(s)))
			key = append(key, s...)
			if len(key) > internMaxKey {
				return v
			}
		}
	default:
		return v
	}
	in.key = key
	if len(key) > internMaxKey {
		return v
	}
	if shared, ok := in.m[string(key)]; ok {
		return shared
	}
	if len(in.m) >= internMaxEntries {
		in.m = make(map[string]any, len(in.m))
	}
	in.m[string(key)] = v
	return v
}
