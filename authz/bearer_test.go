package authz

import (
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
	for o := OutcomeAllow; o <= OutcomeUnavailable+1; o++ {
		if o.String() == "" {
			t.Errorf("outcome %d has no name", o)
		}
	}
	if TokenHash("x") == TokenHash("y") || len(TokenHash("x")) != 16 {
		t.Error("TokenHash")
	}
}
