package load

import (
	"encoding/binary"
	"errors"
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// CheckPath is the HTTP/2 path of the ext_authz Check method.
const CheckPath = "/envoy.service.auth.v3.Authorization/Check"

// ErrShortFrame is returned by SplitFrames for a truncated gRPC frame.
var ErrShortFrame = errors.New("load: truncated grpc frame")

// GRPCFrame prefixes msg with the 5-byte gRPC length-prefixed-message header
// (compressed flag 0, big-endian uint32 length), as sent in an HTTP/2 DATA frame.
func GRPCFrame(msg []byte) []byte {
	out := make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(out[1:5], uint32(len(msg)))
	copy(out[5:], msg)
	return out
}

// SplitFrames splits a concatenation of gRPC frames into their messages.
func SplitFrames(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 5 {
			return nil, ErrShortFrame
		}
		if b[0] != 0 {
			return nil, fmt.Errorf("load: compressed grpc frame (flag %d) not supported", b[0])
		}
		n := int(binary.BigEndian.Uint32(b[1:5]))
		if len(b)-5 < n {
			return nil, ErrShortFrame
		}
		out = append(out, b[5:5+n])
		b = b[5+n:]
	}
	return out, nil
}

// Req is the HTTP request a CheckRequest describes.
type Req struct {
	Method, Host, Path string
	// Token is sent as "authorization: Bearer <Token>" when not empty.
	Token string
}

// CheckRequest builds the CheckRequest Envoy would send for r, with a few of the headers
// a real request carries.
func CheckRequest(r Req) *authv3.CheckRequest {
	h := map[string]string{
		":method":         r.Method,
		":path":           r.Path,
		":authority":      r.Host,
		":scheme":         "https",
		"user-agent":      "loadbench/1.0",
		"accept":          "application/json",
		"x-request-id":    "7f1c1f2e-4b0f-4bd6-9a51-3f3c5d3b2a10",
		"x-forwarded-for": "203.0.113.7",
	}
	if r.Token != "" {
		h["authorization"] = "Bearer " + r.Token
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "203.0.113.7", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51234}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id:       "1234567890",
			Method:   r.Method,
			Path:     r.Path,
			Host:     r.Host,
			Scheme:   "https",
			Protocol: "HTTP/1.1",
			Headers:  h,
		}},
	}}
}

// CheckBody returns the gRPC-framed, marshalled CheckRequest for r: the body of one
// Check call.
func CheckBody(r Req) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(CheckRequest(r))
	if err != nil {
		panic(err) // a CheckRequest built above always marshals
	}
	return GRPCFrame(b)
}

// CheckStatus extracts status.code (field 1 of google.rpc.Status, itself field 1 of
// CheckResponse) from a marshalled CheckResponse without a full decode: 0 is OK, 7
// PERMISSION_DENIED, 16 UNAUTHENTICATED, 14 UNAVAILABLE. A response without a status is
// code 0, as in proto3.
func CheckStatus(msg []byte) (int, error) {
	st, err := field(msg, 1)
	if err != nil || st == nil {
		return 0, err
	}
	for b := st; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, fmt.Errorf("load: bad status tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num == 1 && typ == protowire.VarintType {
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return 0, fmt.Errorf("load: bad status code: %w", protowire.ParseError(m))
			}
			return int(int32(v)), nil
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return 0, fmt.Errorf("load: bad status field: %w", protowire.ParseError(m))
		}
		b = b[m:]
	}
	return 0, nil
}

// field returns the bytes of the last length-delimited field num of msg, or nil.
func field(msg []byte, want protowire.Number) ([]byte, error) {
	var out []byte
	for b := msg; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("load: bad tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num == want && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return nil, fmt.Errorf("load: bad field: %w", protowire.ParseError(m))
			}
			out = v
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return nil, fmt.Errorf("load: bad field: %w", protowire.ParseError(m))
		}
		b = b[m:]
	}
	return out, nil
}
