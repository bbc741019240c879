package envoy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
)

// protoBytes is the reference: proto's deterministic encoding (map keys in order).
func protoBytes(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func withMetadata(fields map[string]*structpb.Value) *authv3.CheckResponse {
	return okResponse(nil, []string{"x-remove"}, &structpb.Struct{Fields: fields})
}

// nested returns a Struct value nested depth levels deep.
func nested(depth int) *structpb.Value {
	v := structpb.NewStringValue("leaf")
	for range depth {
		v = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"n": v}})
	}
	return v
}

// TestMarshalCheckResponseIsProtos: the encoding of an answer with dynamic metadata is
// byte for byte proto's deterministic encoding, for every kind of value; answers it
// does not encode itself are left to proto (false).
func TestMarshalCheckResponseIsProtos(t *testing.T) {
	s, _ := newTestServer(t, constAuthorizer{d: allowAlice()}, Config{})
	built, err := s.Check(context.Background(), checkRequest(map[string]string{"authorization": "Bearer abc.def.ghi"}))
	if err != nil {
		t.Fatal(err)
	}
	many := map[string]*structpb.Value{}
	for i := range 20 {
		many[fmt.Sprintf("k%02d", 19-i)] = structpb.NewNumberValue(float64(i))
	}
	list, _ := structpb.NewList([]any{"a", 1.5, true, nil, map[string]any{"x": "y"}, []any{"z", []any{}}})
	withUnknown := structpb.NewBoolValue(true)
	withUnknown.ProtoReflect().SetUnknown(protoreflect.RawFields(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1)))
	for _, c := range []struct {
		name string
		resp *authv3.CheckResponse
		ours bool // encoded by marshalCheckResponse (else left to proto)
	}{
		{"the server's allow answer", built, true},
		{"every kind", withMetadata(map[string]*structpb.Value{
			"s": structpb.NewStringValue("Jürgen 日本"), "empty": structpb.NewStringValue(""), "n": structpb.NewNumberValue(-1.25),
			"zero": structpb.NewNumberValue(0), "negzero": structpb.NewNumberValue(math.Copysign(0, -1)),
			"inf": structpb.NewNumberValue(math.Inf(1)), "nan": structpb.NewNumberValue(math.NaN()),
			"t": structpb.NewBoolValue(true), "f": structpb.NewBoolValue(false), "null": structpb.NewNullValue(),
			"list": structpb.NewListValue(list), "emptylist": structpb.NewListValue(&structpb.ListValue{}),
			"struct": structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"a": structpb.NewStringValue("b")}}),
			"":       structpb.NewStringValue("empty key"), "long": structpb.NewStringValue(strings.Repeat("x", 300)),
		}), true},
		{"more keys than the stack buffer", withMetadata(many), true},
		{"a nil map value", withMetadata(map[string]*structpb.Value{"a": nil, "b": structpb.NewBoolValue(true)}), true},
		{"empty metadata", withMetadata(map[string]*structpb.Value{}), true},
		{"nested as deep as encoded here", withMetadata(map[string]*structpb.Value{"d": nested(structWireDepth)}), true},
		{"nested deeper", withMetadata(map[string]*structpb.Value{"d": nested(structWireDepth + 1)}), false},
		{"no status", &authv3.CheckResponse{DynamicMetadata: &structpb.Struct{Fields: map[string]*structpb.Value{"a": structpb.NewBoolValue(true)}},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{HeadersToRemove: []string{"y"}}}}, true},
		{"a denial with metadata", &authv3.CheckResponse{Status: &rpcstatus.Status{Code: 16, Message: "no"},
			DynamicMetadata: &structpb.Struct{Fields: map[string]*structpb.Value{"reason": structpb.NewStringValue("expired")}},
			HttpResponse:    &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{Body: "{}"}}}, true},
		{"no metadata", okResponse(nil, []string{"x"}, nil), false},
		{"a value without kind", withMetadata(map[string]*structpb.Value{"a": {}}), false},
		{"a nil list element", withMetadata(map[string]*structpb.Value{"a": structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{nil}})}), false},
		{"a nil nested struct", withMetadata(map[string]*structpb.Value{"a": {Kind: &structpb.Value_StructValue{}}}), false},
		{"unknown fields in a value", withMetadata(map[string]*structpb.Value{"a": withUnknown}), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := marshalCheckResponse(c.resp)
			if ok != c.ours {
				t.Fatalf("encoded here: %v, want %v", ok, c.ours)
			}
			if !ok {
				return
			}
			if want := protoBytes(t, c.resp); !bytes.Equal(got, want) {
				t.Fatalf("encoding differs from proto's:\n got %x\nwant %x", got, want)
			}
			if len(got) != cap(got) {
				t.Errorf("buffer of %d bytes for %d", cap(got), len(got))
			}
		})
	}
	// Invalid UTF-8 is proto's error, from proto.
	bad := withMetadata(map[string]*structpb.Value{"a": structpb.NewStringValue("\xff")})
	if _, ok := marshalCheckResponse(bad); ok {
		t.Fatal("invalid UTF-8 encoded here")
	}
	if _, err := newWireCodec(s).Marshal(bad); err == nil {
		t.Fatal("the codec encoded invalid UTF-8")
	}
}

// TestCheckResponseFieldsKnown fails when go-control-plane or protobuf add a field to
// the messages marshalCheckResponse encodes or copies (it would drop it).
func TestCheckResponseFieldsKnown(t *testing.T) {
	for _, c := range []struct {
		m    proto.Message
		want int
	}{
		{&authv3.CheckResponse{}, checkResponseFields},
		{&structpb.Struct{}, 1},
		{&structpb.Value{}, 6},
		{&structpb.ListValue{}, 1},
	} {
		if got := c.m.ProtoReflect().Descriptor().Fields().Len(); got != c.want {
			t.Errorf("%s has %d fields, marshalCheckResponse knows %d", c.m.ProtoReflect().Descriptor().FullName(), got, c.want)
		}
	}
}

// FuzzStructWire: metadata made of any JSON document (as metadataValue makes it from a
// claim) is encoded byte for byte as proto encodes it, or left to proto.
func FuzzStructWire(f *testing.F) {
	f.Add(`{"sub":"u","groups":["a","b"],"n":1.5,"t":true,"x":null,"o":{"a":[{}]}}`)
	f.Add(`{"":"","\u00e9":[[[[1]]]]}`)
	f.Fuzz(func(t *testing.T, doc string) {
		var m map[string]any
		if json.Unmarshal([]byte(doc), &m) != nil || m == nil {
			return
		}
		st, err := structpb.NewStruct(m)
		if err != nil {
			return
		}
		r := withMetadata(st.Fields)
		got, ok := marshalCheckResponse(r)
		if !ok {
			return
		}
		if want := protoBytes(t, r); !bytes.Equal(got, want) {
			t.Fatalf("%q: encoding differs from proto's:\n got %x\nwant %x", doc, got, want)
		}
	})
}
