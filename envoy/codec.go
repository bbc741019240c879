package envoy

import (
	"hash/maphash"
	"math/rand/v2"
	"sync/atomic"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// wireSlots bounds the table of pre-encoded answers (a power of two): four times the
// allow memo, so that every allow and deny memo entry and the public answer fit, and few
// of them (about one new entry in ten when all memos are full) find both their slots
// taken and push out another's encoding. The table is 64 KiB of pointers per snapshot.
const wireSlots = 4 * allowMemoSlots

// wireEntry is the encoding of one shared answer. resp is the key; holding it keeps
// the message alive, so its address cannot be reused by another message while the
// entry exists. Neither resp nor buf is ever modified.
type wireEntry struct {
	resp *authv3.CheckResponse
	buf  mem.Buffer // proto.Marshal(resp)
}

// wireTable maps shared, never-modified answers (memoised allows and denials, the
// public answer) by pointer to their encoding, so that the gRPC codec sends those bytes
// instead of marshalling the same message again on every call. It belongs to one
// snapshot, like the memos it mirrors: a reload starts with an empty table. It is a
// lock-free two-way table like allowMemo; an entry leaves it when its memo entry is
// replaced (drop) or when another answer takes its slot. A message not in it is
// marshalled as usual, so a lost or dropped entry only costs time. An answer is encoded
// when it is memoised (one proto.Marshal per memo fill, also when an HTTP check fills
// the memo).
type wireTable struct {
	seed  maphash.Seed
	slots [wireSlots]atomic.Pointer[wireEntry]
}

func newWireTable() *wireTable { return &wireTable{seed: maphash.MakeSeed()} }

func (t *wireTable) candidates(resp *authv3.CheckResponse) (*atomic.Pointer[wireEntry], *atomic.Pointer[wireEntry]) {
	h := maphash.Comparable(t.seed, resp)
	return &t.slots[h&(wireSlots-1)], &t.slots[(h>>32)&(wireSlots-1)]
}

// put encodes resp and keeps the encoding. resp must never be modified afterwards.
func (t *wireTable) put(resp *authv3.CheckResponse) {
	if resp == nil {
		return
	}
	b, err := proto.Marshal(resp)
	if err != nil {
		return // marshalled (and failing) per call, as without the table
	}
	e := &wireEntry{resp: resp, buf: mem.SliceBuffer(b)}
	s1, s2 := t.candidates(resp)
	switch {
	case s1.Load() == nil:
		s1.Store(e)
	case s2.Load() == nil || rand.N(2) == 0:
		s2.Store(e)
	default:
		s1.Store(e)
	}
}

// get returns resp's encoding, nil when it has none.
func (t *wireTable) get(resp *authv3.CheckResponse) mem.Buffer {
	s1, s2 := t.candidates(resp)
	if e := s1.Load(); e != nil && e.resp == resp {
		return e.buf
	}
	if e := s2.Load(); e != nil && e.resp == resp {
		return e.buf
	}
	return nil
}

// drop forgets resp's encoding (its memo entry was replaced).
func (t *wireTable) drop(resp *authv3.CheckResponse) {
	if resp == nil {
		return
	}
	s1, s2 := t.candidates(resp)
	for _, s := range [2]*atomic.Pointer[wireEntry]{s1, s2} {
		if e := s.Load(); e != nil && e.resp == resp {
			s.CompareAndSwap(e, nil)
		}
	}
}

// wireCodec is the gRPC server codec of NewGRPCServer: the standard proto codec, except
// that an answer of s that is in the current snapshot's wireTable is sent as its stored
// encoding. Everything else — every request (Unmarshal), health, reflection, answers
// built per request, answers of an older snapshot — goes through the proto codec
// unchanged. Its Name is "proto", so clients see the usual content-subtype.
type wireCodec struct {
	s     *Server
	proto encoding.CodecV2
}

// Compile-time guard: wireCodec is a gRPC codec.
var _ encoding.CodecV2 = wireCodec{}

func newWireCodec(s *Server) wireCodec {
	return wireCodec{s: s, proto: encoding.GetCodecV2(protocodec.Name)}
}

// Marshal returns the stored encoding of a shared answer, else the proto encoding.
func (c wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*authv3.CheckResponse); ok && r != nil {
		if b := c.s.snap.Load().wire.get(r); b != nil {
			return mem.BufferSlice{b}, nil // SliceBuffer: Ref and Free do nothing
		}
	}
	return c.proto.Marshal(v)
}

// Unmarshal is the proto codec's.
func (c wireCodec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }

// Name is "proto".
func (c wireCodec) Name() string { return c.proto.Name() }
