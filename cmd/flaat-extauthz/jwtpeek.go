package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
)

// maxPeekSize bounds the tokens decodeUnverified looks at.
const maxPeekSize = 1 << 20

// decodeUnverified decodes a compact JWS's header and claims WITHOUT verifying anything,
// for display by the userinfo command (and to find the issuer for --trust-any). ok is
// false for anything that is not three base64url parts whose first two are JSON objects.
func decodeUnverified(token string) (header, claims map[string]any, ok bool) {
	if len(token) > maxPeekSize {
		return nil, nil, false
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, nil, false
	}
	header, ok = decodeSegment(parts[0])
	if !ok {
		return nil, nil, false
	}
	claims, ok = decodeSegment(parts[1])
	if !ok {
		return nil, nil, false
	}
	return header, claims, true
}

func decodeSegment(s string) (map[string]any, bool) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil || dec.More() {
		return nil, false
	}
	return m, true
}

// numericClaim returns a NumericDate claim (exp, iat, nbf) as seconds.
func numericClaim(claims map[string]any, name string) (int64, bool) {
	switch v := claims[name].(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i, true
		}
		if f, err := v.Float64(); err == nil {
			return int64(f), true
		}
	case float64:
		return int64(v), true
	case int64:
		return v, true
	}
	return 0, false
}
