package envoy

import (
	"math"
	"slices"
	"unicode/utf8"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// An allow answer built for one check (a freshly verified identity: every check with
// the identity cache off, every cache miss) is marshalled per call, and protobuf-go
// encodes map fields by reflection: the dynamic metadata Struct cost about as much as
// the rest of the answer together, with six allocations. marshalCheckResponse encodes
// the Struct (google.protobuf.Struct, a frozen well-known type) itself and the rest of
// the answer with proto. The bytes are exactly those of proto's deterministic encoding
// (map keys in order), which TestMarshalCheckResponseIsProtos and FuzzStructWire check;
// anything it does not encode itself the same way is left to proto.

// structWireDepth bounds the nesting marshalCheckResponse encodes itself (the sizes of
// nested messages are recomputed at every level); deeper metadata goes to proto.
const structWireDepth = 16

// checkResponseFields is the number of fields of CheckResponse that
// marshalCheckResponse knows (status, dynamic_metadata and the http_response oneof's
// denied_response, ok_response, error_response): TestCheckResponseFieldsKnown fails
// when an update of go-control-plane adds one.
const checkResponseFields = 5

// marshalCheckResponse returns the encoding of r, or false when r has no dynamic
// metadata or holds something the Struct encoder leaves to proto (unknown fields,
// invalid UTF-8, nil list elements or kinds, deep nesting).
func marshalCheckResponse(r *authv3.CheckResponse) ([]byte, bool) {
	md := r.DynamicMetadata
	if md == nil || len(r.ProtoReflect().GetUnknown()) > 0 {
		return nil, false
	}
	mdSize, ok := structSize(md, 0)
	if !ok {
		return nil, false
	}
	// Everything but the metadata by proto; the metadata field goes where proto writes
	// it, after status and before the http_response oneof: the same bytes as proto's.
	rest := &authv3.CheckResponse{Status: r.Status, HttpResponse: r.HttpResponse}
	opts := proto.MarshalOptions{UseCachedSize: true}
	restSize := opts.Size(rest)
	mdField := protowire.SizeTag(4) + protowire.SizeBytes(mdSize)
	b := make([]byte, 0, restSize+mdField)
	b, err := opts.MarshalAppend(b, rest)
	if err != nil || len(b) != restSize {
		return nil, false
	}
	at := 0 // the end of the status field
	if num, _, n := protowire.ConsumeField(b); num == 1 && n > 0 {
		at = n
	}
	b = b[:restSize+mdField]
	copy(b[at+mdField:], b[at:restSize])
	gap := protowire.AppendTag(b[:at], 4, protowire.BytesType)
	gap = protowire.AppendVarint(gap, uint64(mdSize))
	if gap = appendStruct(gap, md); len(gap) != at+mdField {
		return nil, false // a size and an encoding disagree: a bug here, proto encodes it
	}
	return b, true
}

// sortedKeys returns the keys of fields in order, in buf when they fit.
func sortedKeys(fields map[string]*structpb.Value, buf []string) []string {
	keys := buf[:0]
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// structSize returns the size of s's encoding, false when s is not encoded here.
func structSize(s *structpb.Struct, depth int) (int, bool) {
	if depth > structWireDepth || len(s.ProtoReflect().GetUnknown()) > 0 {
		return 0, false
	}
	n := 0
	for k, v := range s.Fields {
		if !utf8.ValidString(k) {
			return 0, false
		}
		vs, ok := valueSize(v, depth)
		if !ok {
			return 0, false
		}
		entry := protowire.SizeTag(1) + protowire.SizeBytes(len(k)) + protowire.SizeTag(2) + protowire.SizeBytes(vs)
		n += protowire.SizeTag(1) + protowire.SizeBytes(entry)
	}
	return n, true
}

// valueSize returns the size of v's encoding (0 for nil, as proto encodes a nil map
// value), false when v is not encoded here.
func valueSize(v *structpb.Value, depth int) (int, bool) {
	if v == nil {
		return 0, true
	}
	if len(v.ProtoReflect().GetUnknown()) > 0 {
		return 0, false
	}
	switch k := v.Kind.(type) {
	case *structpb.Value_NullValue:
		return protowire.SizeTag(1) + protowire.SizeVarint(uint64(int64(k.NullValue))), true
	case *structpb.Value_NumberValue:
		return protowire.SizeTag(2) + protowire.SizeFixed64(), true
	case *structpb.Value_StringValue:
		if !utf8.ValidString(k.StringValue) {
			return 0, false // proto's error, from proto
		}
		return protowire.SizeTag(3) + protowire.SizeBytes(len(k.StringValue)), true
	case *structpb.Value_BoolValue:
		return protowire.SizeTag(4) + 1, true
	case *structpb.Value_StructValue:
		if k.StructValue == nil {
			return 0, false
		}
		n, ok := structSize(k.StructValue, depth+1)
		return protowire.SizeTag(5) + protowire.SizeBytes(n), ok
	case *structpb.Value_ListValue:
		if k.ListValue == nil {
			return 0, false
		}
		n, ok := listSize(k.ListValue, depth+1)
		return protowire.SizeTag(6) + protowire.SizeBytes(n), ok
	}
	return 0, false // no kind, or one this encoder does not know
}

// listSize returns the size of l's encoding, false when l is not encoded here.
func listSize(l *structpb.ListValue, depth int) (int, bool) {
	if depth > structWireDepth || len(l.ProtoReflect().GetUnknown()) > 0 {
		return 0, false
	}
	n := 0
	for _, v := range l.Values {
		if v == nil {
			return 0, false
		}
		vs, ok := valueSize(v, depth)
		if !ok {
			return 0, false
		}
		n += protowire.SizeTag(1) + protowire.SizeBytes(vs)
	}
	return n, true
}

// appendStruct appends the fields of s (whose structSize succeeded) in key order.
func appendStruct(b []byte, s *structpb.Struct) []byte {
	var buf [8]string
	for _, k := range sortedKeys(s.Fields, buf[:]) {
		v := s.Fields[k]
		vs, _ := valueSize(v, 0)
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(protowire.SizeTag(1)+protowire.SizeBytes(len(k))+protowire.SizeTag(2)+protowire.SizeBytes(vs)))
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, k)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(vs))
		b = appendValue(b, v)
	}
	return b
}

// appendValue appends the field of v (nil: nothing).
func appendValue(b []byte, v *structpb.Value) []byte {
	if v == nil {
		return b
	}
	switch k := v.Kind.(type) {
	case *structpb.Value_NullValue:
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(int64(k.NullValue)))
	case *structpb.Value_NumberValue:
		b = protowire.AppendTag(b, 2, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(k.NumberValue))
	case *structpb.Value_StringValue:
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendString(b, k.StringValue)
	case *structpb.Value_BoolValue:
		b = protowire.AppendTag(b, 4, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeBool(k.BoolValue))
	case *structpb.Value_StructValue:
		n, _ := structSize(k.StructValue, 0)
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(n))
		b = appendStruct(b, k.StructValue)
	case *structpb.Value_ListValue:
		n, _ := listSize(k.ListValue, 0)
		b = protowire.AppendTag(b, 6, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(n))
		for _, e := range k.ListValue.Values {
			es, _ := valueSize(e, 0)
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(es))
			b = appendValue(b, e)
		}
	}
	return b
}
