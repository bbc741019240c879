package authz

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func TestParseBearer(t *testing.T) {
	cases := []struct {
		name   string
		header string
		max    int
		want   string
		err    error
	}{
		{"plain", "Bearer abc.def-ghi_jkl~m+n/o==", 0, "abc.def-ghi_jkl~m+n/o==", nil},
		{"lower-case scheme", "bearer tok", 0, "tok", nil},
		{"mixed-case scheme", "BeArEr tok", 0, "tok", nil},
		{"several spaces", "Bearer    tok", 0, "tok", nil},
		{"trailing white space", "Bearer tok \t", 0, "tok", nil},
		{"exactly max", "Bearer " + strings.Repeat("a", 16), 16, strings.Repeat("a", 16), nil},
		{"empty", "", 0, "", ErrNoToken},
		{"blank", "  \t", 0, "", ErrNoToken},
		{"scheme only", "Bearer", 0, "", ErrMalformed},
		{"scheme and space", "Bearer ", 0, "", ErrMalformed},
		{"other scheme", "Basic dXNlcjpwYXNz", 0, "", ErrMalformed},
		{"no space", "Bearertok", 0, "", ErrMalformed},
		{"tab separator", "Bearer\ttok", 0, "", ErrMalformed},
		{"two tokens", "Bearer tok1 tok2", 0, "", ErrMalformed},
		{"two credentials", "Bearer tok1, Bearer tok2", 0, "", ErrMalformed},
		{"CRLF", "Bearer tok\r\nX-Injected: 1", 0, "", ErrMalformed},
		{"LF", "Bearer tok\n", 0, "", ErrMalformed},
		{"NUL", "Bearer to\x00k", 0, "", ErrMalformed},
		{"non-ASCII", "Bearer tök", 0, "", ErrMalformed},
		{"quote", `Bearer "tok"`, 0, "", ErrMalformed},
		{"comma", "Bearer a,b", 0, "", ErrMalformed},
		{"padding only", "Bearer ==", 0, "", ErrMalformed},
		{"char after padding", "Bearer ab=c", 0, "", ErrMalformed},
		{"over max", "Bearer " + strings.Repeat("a", 17), 16, "", ErrMalformed},
		{"huge header", "Bearer " + strings.Repeat("a", 1<<20), 0, "", ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseBearer(c.header, c.max)
			if c.err == nil {
				if err != nil || got != c.want {
					t.Fatalf("got %q, %v; want %q", got, err, c.want)
				}
				return
			}
			if !errors.Is(err, c.err) || got != "" {
				t.Fatalf("got %q, %v; want error %v", got, err, c.err)
			}
			if !IsCredentialError(err) {
				t.Fatalf("%v is not a credential error", err)
			}
			if c.err == ErrMalformed && len(c.header) > 14 && strings.Contains(err.Error(), c.header[7:]) {
				t.Fatalf("error echoes the token: %v", err)
			}
		})
	}
}

// FuzzParseBearer: ParseBearer never panics, and whatever it accepts is a non-empty
// token68 string within the size limit that appears verbatim in the header.
func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer a.b.c", "Bearer ", "", "Basic x", "Bearer a b",
		"Bearer tok\r\n", "Bearer ab==", "Bearer =", "BEARER   x\t", "Bearer t\xc3\xb6k"} {
		f.Add(s, 0)
	}
	f.Add("Bearer "+strings.Repeat("x", 20), 10)
	f.Fuzz(func(t *testing.T, header string, max int) {
		max = max % 10000
		tok, err := ParseBearer(header, max)
		if err != nil {
			if tok != "" {
				t.Fatal("token returned with an error")
			}
			if !errors.Is(err, ErrNoToken) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		limit := max
		if limit <= 0 {
			limit = DefaultMaxTokenSize
		}
		if tok == "" || len(tok) > limit || !strings.Contains(header, tok) {
			t.Fatalf("accepted %q from %q", tok, header)
		}
		if checkToken(tok, limit) != nil {
			t.Fatalf("accepted a token checkToken rejects: %q", tok)
		}
		for _, r := range tok {
			if r <= ' ' || r > '~' || r == ',' || r == '"' {
				t.Fatalf("accepted character %q", r)
			}
		}
	})
}

func TestDecisionFor(t *testing.T) {
	cases := []struct {
		err    error
		want   Outcome
		reason string
	}{
		{ErrNoToken, OutcomeNoToken, "no bearer token"},
		{ErrMalformed, OutcomeNoToken, "malformed bearer token"},
		{malformed("x"), OutcomeNoToken, "malformed bearer token: x"},
		{ErrExpired, OutcomeInvalidToken, "invalid token"},
		{&TokenError{Reason: "token expired", Err: ErrExpired}, OutcomeInvalidToken, "token expired"},
		{&UnavailableError{Issuer: "i", Endpoint: "jwks", Err: errors.New("x")}, OutcomeUnavailable, "identity provider unavailable"},
		{errors.New("boom"), OutcomeUnavailable, "internal error"},
	}
	for _, c := range cases {
		o, reason, err := decisionFor(c.err)
		if o != c.want || reason != c.reason || err != c.err {
			t.Errorf("%v: got %s %q, want %s %q", c.err, o, reason, c.want, c.reason)
		}
	}
	for o := OutcomeAllow; int(o) <= NumOutcomes; o++ {
		if o.String() == "" {
			t.Errorf("outcome %d has no name", o)
		}
	}
	if TokenHash("x") == TokenHash("y") || len(TokenHash("x")) != 16 {
		t.Error("TokenHash")
	}
}

// benchToken is a token of realistic size (about 1 KiB, JWT-like).
var benchToken = strings.Repeat("eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0", 8) + "." +
	strings.Repeat("eyJzdWIiOiJ1c2VyLTAwMDAwMUBiZW5jaCJ9", 18) + "." + strings.Repeat("Zm9vYmFy-_", 34)

// BenchmarkParseBearer measures header parsing with the token character check.
func BenchmarkParseBearer(b *testing.B) {
	h := "Bearer " + benchToken
	b.SetBytes(int64(len(benchToken)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseBearer(h, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// checkTokenReference is the original per-byte switch that checkToken's lookup table
// replaced; FuzzCheckToken holds the two to the same verdicts.
func checkTokenReference(token string, maxSize int) error {
	if token == "" {
		return ErrNoToken
	}
	if len(token) > maxSize {
		return malformed("too large")
	}
	pad := false
	for i := 0; i < len(token); i++ {
		c := token[i]
		switch {
		case c == '=':
			if i == 0 {
				return malformed("bad")
			}
			pad = true
		case pad:
			return malformed("bad")
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return malformed("bad")
		}
	}
	return nil
}

// FuzzCheckToken: the table-driven checkToken accepts and rejects exactly what the
// reference switch does, with the same error class.
func FuzzCheckToken(f *testing.F) {
	for _, s := range []string{"", "a", "abc.def-ghi_jkl~m+n/o==", "=", "==", "a=", "a==b", "a= ", "a b",
		"tok\r\n", "t\xc3\xb6k", "a\x00", "a,b", `"a"`, "\xff", "a.b.c=", benchToken} {
		f.Add(s, 0)
	}
	f.Add(strings.Repeat("x", 20), 10)
	f.Fuzz(func(t *testing.T, tok string, max int) {
		max %= 10000
		if max <= 0 {
			max = DefaultMaxTokenSize
		}
		got, want := checkToken(tok, max), checkTokenReference(tok, max)
		if (got == nil) != (want == nil) || (got != nil && errors.Is(got, ErrNoToken) != errors.Is(want, ErrNoToken)) {
			t.Fatalf("checkToken(%q) = %v, reference %v", tok, got, want)
		}
	})
}

// TestCheckTokenBytes compares checkToken with the reference for every byte value in
// every position that matters (first, after a token character, inside, after padding,
// and each position of a 17-byte token: in and after the 8-byte steps).
func TestCheckTokenBytes(t *testing.T) {
	for c := 0; c < 256; c++ {
		b := string([]byte{byte(c)})
		toks := []string{b, "a" + b, "a" + b + "b", "a=" + b}
		for pos := range 17 { // every position of the 8-byte steps and the tail
			toks = append(toks, strings.Repeat("a", pos)+b+strings.Repeat("a", 16-pos))
		}
		for _, tok := range toks {
			got, want := checkToken(tok, 100), checkTokenReference(tok, 100)
			if (got == nil) != (want == nil) {
				t.Fatalf("byte %#x in %q: checkToken %v, reference %v", c, tok, got, want)
			}
		}
	}
}

// TestTokenHashKnownAnswers pins TokenHash to sha256(token)[:8] in hex for empty, short
// and long (over any stack-buffer size) tokens.
func TestTokenHashKnownAnswers(t *testing.T) {
	long := strings.Repeat("a", 10000)
	for _, tok := range []string{"", "abc", benchToken, long} {
		sum := sha256.Sum256([]byte(tok))
		if got, want := TokenHash(tok), hex.EncodeToString(sum[:8]); got != want {
			t.Errorf("TokenHash(%d bytes) = %s, want %s", len(tok), got, want)
		}
	}
	if got := TokenHash("abc"); got != "ba7816bf8f01cfea" { // FIPS 180-2 test vector
		t.Errorf("TokenHash(abc) = %s", got)
	}
}

// TestParseCredential: the DPoP scheme next to Bearer; ParseBearer refuses it.
func TestParseCredential(t *testing.T) {
	for _, c := range []struct {
		name, header, tok string
		dpop              bool
		err               error
	}{
		{"DPoP", "DPoP abc.def", "abc.def", true, nil},
		{"dpop lower-case", "dpop abc", "abc", true, nil},
		{"Bearer", "Bearer abc", "abc", false, nil},
		{"DPoP without token", "DPoP ", "", true, ErrMalformed},
		{"DPoP with two tokens", "DPoP a b", "", true, ErrMalformed},
		{"DPoPx scheme", "DPoPx abc", "", false, ErrMalformed},
		{"empty", "", "", false, ErrNoToken},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok, dpop, err := ParseCredential(c.header, 0)
			if tok != c.tok || dpop != c.dpop || !errors.Is(err, c.err) {
				t.Fatalf("got %q dpop=%v err=%v", tok, dpop, err)
			}
		})
	}
	if _, err := ParseBearer("DPoP abc", 0); !errors.Is(err, ErrMalformed) {
		t.Fatalf("ParseBearer accepted the DPoP scheme: %v", err)
	}
}

// FuzzParseCredential: whatever it accepts under either scheme is what ParseBearer
// accepts after the scheme is replaced by Bearer.
func FuzzParseCredential(f *testing.F) {
	for _, s := range []string{"DPoP abc", "dpop a.b.c", "DPoP ", "Bearer x", "DPoP a b", "DPoPDPoP x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		tok, dpop, err := ParseCredential(header, 0)
		if err != nil {
			if tok != "" || (!errors.Is(err, ErrNoToken) && !errors.Is(err, ErrMalformed)) {
				t.Fatalf("%q: token %q, error %v", header, tok, err)
			}
			return
		}
		_, rest, _ := strings.Cut(header, " ")
		if dpop != strings.EqualFold(header[:4], "dpop") {
			t.Fatalf("%q: dpop=%v", header, dpop)
		}
		if bt, err := ParseBearer("Bearer "+rest, 0); err != nil || bt != tok {
			t.Fatalf("%q: ParseCredential %q, ParseBearer %q %v", header, tok, bt, err)
		}
	})
}
