package authz

import (
	"encoding/base64"
	"strings"
	"testing"
)

// TestSplitJWSReleaseClears: release leaves no decoded token in the recycled buffer,
// and splitJWS reads the parts it returns from the token (a large token too, whose
// buffer is not recycled).
func TestSplitJWSReleaseClears(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	for _, c := range []struct {
		name    string
		payload string
		pooled  bool
	}{
		{"typical", `{"sub":"alice","iss":"https://op"}`, true},
		{"larger than the recycled buffers", `{"x":"` + strings.Repeat("y", maxPooledPart) + `"}`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok := enc([]byte(`{"alg":"RS256","kid":"k1"}`)) + "." + enc([]byte(c.payload)) + "." + enc([]byte("signature-bytes"))
			parts, ok := splitJWS(tok)
			if !ok {
				t.Fatal("not recognised")
			}
			if string(parts.payload) != c.payload || string(parts.signature) != "signature-bytes" || parts.alg != "RS256" || parts.kid != "k1" {
				t.Fatalf("parts %q %q %q %q", parts.payload, parts.signature, parts.alg, parts.kid)
			}
			if (parts.buf != nil) != c.pooled {
				t.Fatalf("recycled buffer: %v, want %v", parts.buf != nil, c.pooled)
			}
			var used []byte
			if parts.buf != nil {
				used = *parts.buf
			}
			parts.release()
			if c.pooled && (parts.payload != nil || parts.signature != nil) {
				t.Fatal("parts still readable after release")
			}
			for i, b := range used {
				if b != 0 {
					t.Fatalf("byte %d of the released buffer is %q", i, b)
				}
			}
		})
	}
}
