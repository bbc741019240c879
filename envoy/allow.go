package envoy

import (
	"hash/maphash"
	"math/rand/v2"
	"net/textproto"
	"strings"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
)

// allowParts is everything of an allow answer that depends only on the identity and the
// snapshot's configuration: the identity headers, the names to remove, the dynamic
// metadata and, when no part of the answer depends on the request, the whole
// CheckResponse. It is built once per (snapshot, identity) and then shared by every
// answer for that identity, on every goroutine: nothing may modify an allowParts, or
// anything it points to, after it was built. gRPC only reads (marshals) responses; the
// protobuf size cache it writes while marshalling is updated atomically and, since the
// message never changes, always with the same value.
type allowParts struct {
	// id is the memo key. Holding it keeps the identity alive, so its address cannot be
	// reused by another identity while this entry exists.
	id *authz.Identity
	// headers are the identity headers the identity has, in configuration order; absent
	// the ones it lacks. Both have cap == len, so an append copies.
	headers []*corev3.HeaderValueOption
	absent  []string
	// metadata is the dynamic metadata (sub, iss, groups, metadata claims).
	metadata *structpb.Struct
	// resp is the complete gRPC answer; nil when it depends on the request
	// (ForwardAccessToken: the token itself is sent upstream) or when only the HTTP
	// parts were built.
	resp *authv3.CheckResponse
	// httpValues[i] is the value slice of the i-th configured header in HTTP mode, nil
	// when absent. Each has len == cap == 1.
	httpValues [][]string
	// httpRemove is the X-Envoy-Auth-Headers-To-Remove value as a header value slice
	// (len == cap == 1); nil when it depends on the request (ForwardAccessToken).
	httpRemove []string
}

// allowMemoSlots bounds the memo: a table of this many entries (a power of two). At
// about 2.4 KiB per entry for a typical identity (5 groups, default headers), plus about
// 0.5 KiB for its encoding in the wireTable, it holds at most about 6 MiB, and it keeps
// at most this many identities alive after the identity cache dropped them.
const allowMemoSlots = 2048

// allowMemo maps cached identities (by pointer) to their prebuilt allowParts. It is a
// lock-free two-way table: an identity may sit in one of two slots chosen by a hash of
// the pointer, so a lookup is one hash and at most two atomic loads, and two busy
// identities that share one slot do not evict each other on every request. A miss fills
// an empty candidate slot or replaces a random one. It belongs to one snapshot, so a
// reload (new headers, metadata claims, switches) starts with an empty memo and takes
// effect at once.
type allowMemo struct {
	seed  maphash.Seed
	slots [allowMemoSlots]atomic.Pointer[allowParts]
}

func newAllowMemo() *allowMemo { return &allowMemo{seed: maphash.MakeSeed()} }

// candidates returns the two slots id may occupy.
func (m *allowMemo) candidates(id *authz.Identity) (*atomic.Pointer[allowParts], *atomic.Pointer[allowParts]) {
	h := maphash.Comparable(m.seed, id)
	return &m.slots[h&(allowMemoSlots-1)], &m.slots[(h>>32)&(allowMemoSlots-1)]
}

// parts returns the allow parts for d's identity. Only identities that came from the
// cache are memoised: the authorizer shares those, unchanged, for as long as they are
// cached; a freshly verified identity is used once, so memoising it would only evict
// useful entries, and only the transport's own parts are built for it. A memoised
// answer's encoding goes into v.wire with it and leaves when the entry is replaced.
func (v *snapshot) parts(d *authz.Decision, transport string) *allowParts {
	if !d.Cached {
		return v.buildParts(d.Identity, transport != TransportHTTP, transport == TransportHTTP)
	}
	s1, s2 := v.memo.candidates(d.Identity)
	p1 := s1.Load()
	if p1 != nil && p1.id == d.Identity {
		return p1
	}
	p2 := s2.Load()
	if p2 != nil && p2.id == d.Identity {
		return p2
	}
	p := v.buildParts(d.Identity, true, true)
	v.wire.put(p.resp)
	var old *allowParts
	switch {
	case p1 == nil:
		old = s1.Swap(p) // nil unless another check filled it meanwhile
	case p2 == nil || rand.N(2) == 0:
		old = s2.Swap(p)
	default:
		old = s1.Swap(p)
	}
	if old != nil {
		v.wire.drop(old.resp)
	}
	return p
}

// allowBlock holds an allowParts together with the messages of its gRPC answer, so
// that they are one allocation instead of about a dozen: a freshly verified identity
// (every check with the cache off, every cache miss) builds them once and drops them
// after its answer; a memoised one keeps them all anyway (resp refers to each).
type allowBlock struct {
	parts  allowParts
	resp   authv3.CheckResponse
	ok     authv3.CheckResponse_OkResponse
	okHTTP authv3.OkHttpResponse
	md     structpb.Struct
	sub    stringValue
	iss    stringValue
	groups listValue
}

// stringValue is a structpb string Value with its kind, allocated together.
type stringValue struct {
	v structpb.Value
	k structpb.Value_StringValue
}

// set makes sv hold s and returns its Value.
func (sv *stringValue) set(s string) *structpb.Value {
	sv.k.StringValue = s
	sv.v.Kind = &sv.k
	return &sv.v
}

// listValue is a structpb list Value of strings with its kind and list, allocated
// together.
type listValue struct {
	v structpb.Value
	k structpb.Value_ListValue
	l structpb.ListValue
}

// set makes lv hold the strings vs (two allocations for the elements) and returns its
// Value.
func (lv *listValue) set(vs []string) *structpb.Value {
	elems := make([]stringValue, len(vs))
	lv.l.Values = make([]*structpb.Value, len(vs))
	for i, s := range vs {
		lv.l.Values[i] = elems[i].set(s)
	}
	lv.k.ListValue = &lv.l
	lv.v.Kind = &lv.k
	return &lv.v
}

// buildParts builds the allowParts of id under v's configuration: the gRPC parts
// (headers, metadata, resp), the HTTP parts (httpValues, httpRemove), or both.
func (v *snapshot) buildParts(id *authz.Identity, forGRPC, forHTTP bool) *allowParts {
	var blk *allowBlock
	var p *allowParts
	if forGRPC {
		blk = new(allowBlock)
		p = &blk.parts
		p.id = id
	} else {
		p = &allowParts{id: id}
	}
	if forHTTP {
		p.httpValues = make([][]string, len(v.cfg.Headers))
	}
	var values []string
	n := 0
	for i, h := range v.cfg.Headers {
		val := claimHeaderValue(id.Claims, h.Claim)
		if val == "" {
			p.absent = append(p.absent, h.Name)
			continue
		}
		if values == nil {
			values = make([]string, len(v.cfg.Headers))
		}
		values[i] = val
		if forHTTP {
			p.httpValues[i] = values[i : i+1 : i+1]
		}
		n++
	}
	p.absent = p.absent[:len(p.absent):len(p.absent)]
	var remove []string
	if !v.cfg.ForwardAccessToken {
		remove = make([]string, 0, len(p.absent)+1+len(v.strip))
		remove = append(append(append(remove, p.absent...), v.cfg.AccessTokenHeader), v.strip...)
		if forHTTP {
			p.httpRemove = []string{strings.Join(remove, ", ")}
		}
	}
	if !forGRPC {
		return p
	}
	if n > 0 {
		// One allocation for the options and their headers instead of two per header.
		type option struct {
			opt corev3.HeaderValueOption
			hv  corev3.HeaderValue
		}
		opts := make([]option, n)
		p.headers = make([]*corev3.HeaderValueOption, 0, n)
		for i, h := range v.cfg.Headers {
			if values[i] == "" {
				continue
			}
			o := &opts[len(p.headers)]
			o.hv.Key, o.hv.Value = h.Name, values[i]
			o.opt.Header = &o.hv
			o.opt.Append = appendFalse //nolint:staticcheck // deliberately set for Envoys before append_action
			o.opt.AppendAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
			p.headers = append(p.headers, &o.opt)
		}
	}
	p.metadata = v.metadata(id, blk)
	if remove != nil {
		p.resp = blk.okResponse(p.headers, remove, p.metadata)
	}
	return p
}

// okResponse assembles an allow CheckResponse from its parts in blk's messages, which
// must not have been used before.
func (blk *allowBlock) okResponse(headers []*corev3.HeaderValueOption, remove []string, md *structpb.Struct) *authv3.CheckResponse {
	blk.okHTTP.Headers, blk.okHTTP.HeadersToRemove = headers, remove
	blk.ok.OkResponse = &blk.okHTTP
	blk.resp.Status, blk.resp.HttpResponse, blk.resp.DynamicMetadata = okStatus, &blk.ok, md
	return &blk.resp
}

// okStatus is the status of every allow answer built in an allowBlock. Like everything
// of a shared answer it is never modified (marshalling only stores its size, 0,
// atomically).
var okStatus = &rpcstatus.Status{}

// okResponse assembles an allow CheckResponse from its parts.
func okResponse(headers []*corev3.HeaderValueOption, remove []string, md *structpb.Struct) *authv3.CheckResponse {
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers:         headers,
			HeadersToRemove: remove,
		}},
		DynamicMetadata: md,
	}
}

// allowResponse is the CheckResponse of an allow. With ForwardAccessToken off it is
// shared (see allowParts) and must not be modified.
func (v *snapshot) allowResponse(r *authz.Request, d *authz.Decision) *authv3.CheckResponse {
	if d.Public || d.Identity == nil {
		return v.anonResp
	}
	p := v.parts(d, TransportGRPC)
	if p.resp != nil {
		return p.resp
	}
	// ForwardAccessToken: the token is the one per-request part.
	tok := bearerToken(r.Authorization)
	hs := make([]*corev3.HeaderValueOption, len(p.headers), len(p.headers)+1)
	copy(hs, p.headers)
	remove := make([]string, len(p.absent), len(p.absent)+1+len(v.strip))
	copy(remove, p.absent)
	if tok != "" {
		hs = append(hs, headerOption(v.cfg.AccessTokenHeader, tok))
	} else {
		remove = append(remove, v.cfg.AccessTokenHeader)
	}
	return okResponse(hs, append(remove, v.strip...), p.metadata)
}

// canonicalNames returns the HTTP (canonical MIME) form of every configured identity
// header name, computed once per snapshot instead of in every Header.Set.
func canonicalNames(hs []HeaderConfig) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = textproto.CanonicalMIMEHeaderKey(h.Name)
	}
	return out
}
