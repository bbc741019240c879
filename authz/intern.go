package authz

import (
	"encoding/binary"
	"sync"
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
	mu  sync.Mutex
	m   map[string]any
	key []byte
}

func newInterner() *interner { return &interner{m: map[string]any{}} }

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
