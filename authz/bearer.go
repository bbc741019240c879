package authz

import (
	"fmt"
	"strings"
)

// DefaultMaxTokenSize is the default token size limit in bytes (Config.MaxTokenSize).
const DefaultMaxTokenSize = 8192

// ParseBearer extracts the token from an Authorization header value of the form
// "Bearer <token68>" (RFC 6750 section 2.1; the scheme is case-insensitive, one or more
// spaces separate it from the token, trailing spaces and tabs are ignored).
//
// It returns ErrNoToken for an empty (or blank) header and an error wrapping ErrMalformed
// for anything else that is wrong: another scheme, no token, two tokens, CR/LF or other
// characters outside token68, or a token longer than maxSize bytes (maxSize <= 0 means
// DefaultMaxTokenSize). It never decodes or parses the token itself.
func ParseBearer(header string, maxSize int) (string, error) {
	token, dpop, err := ParseCredential(header, maxSize)
	if err == nil && dpop {
		return "", malformed("authorization scheme is not Bearer")
	}
	return token, err
}

// ParseCredential is ParseBearer that also accepts the DPoP scheme of RFC 9449 ("DPoP
// <token68>", case-insensitive); dpop reports which scheme was used (also when the
// token after it is malformed, so that the challenge can name the scheme).
func ParseCredential(header string, maxSize int) (token string, dpop bool, err error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxTokenSize
	}
	token, dpop, err = credentialShape(header, maxSize)
	if err != nil {
		return "", dpop, err
	}
	if err := checkToken(token, maxSize); err != nil {
		return "", dpop, err
	}
	return token, dpop, nil
}

// credentialShape is ParseCredential without checkToken's look at every character
// (maxSize > 0): the token is no longer than maxSize, its characters are not checked yet.
func credentialShape(header string, maxSize int) (token string, dpop bool, err error) {
	if strings.Trim(header, " \t") == "" {
		return "", false, ErrNoToken
	}
	// Bound the work before looking at the content: scheme + spaces + token.
	if len(header) > maxSize+64 {
		return "", false, malformed(fmt.Sprintf("authorization header larger than %d bytes", maxSize))
	}
	scheme, rest, ok := strings.Cut(header, " ")
	switch {
	case ok && strings.EqualFold(scheme, "bearer"):
	case ok && strings.EqualFold(scheme, "dpop"):
		dpop = true
	default:
		return "", false, malformed("authorization scheme is not Bearer")
	}
	token = strings.TrimLeft(rest, " ")
	token = strings.TrimRight(token, " \t")
	if token == "" {
		return "", dpop, malformed("bearer token is empty")
	}
	if len(token) > maxSize {
		return "", dpop, malformed(fmt.Sprintf("token larger than %d bytes", maxSize))
	}
	return token, dpop, nil
}

// token68 marks the bytes a token may consist of before its "=" padding (RFC 7235
// token68, the RFC 6750 b64token): ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/".
var token68 = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-._~+/" {
		t[c] = true
	}
	return t
}()

// checkToken rejects, before any parsing, tokens that are empty, longer than maxSize or
// contain characters outside RFC 6750 token68: ALPHA / DIGIT / "-" / "." / "_" / "~" /
// "+" / "/", followed by any number of "=". It looks at every byte once (a table
// lookup): a non-ASCII byte, CR, LF, a space (two tokens) or anything after the padding
// is a rejection.
func checkToken(token string, maxSize int) error {
	if token == "" {
		return ErrNoToken
	}
	if len(token) > maxSize {
		return malformed(fmt.Sprintf("token larger than %d bytes", maxSize))
	}
	i := 0
	// Eight bytes per step while every one is a token68 byte (one branch per step), then
	// byte by byte to find where the token68 run ends.
	for ; i+8 <= len(token); i += 8 {
		b := token[i : i+8]
		if !(token68[b[0]] && token68[b[1]] && token68[b[2]] && token68[b[3]] &&
			token68[b[4]] && token68[b[5]] && token68[b[6]] && token68[b[7]]) {
			break
		}
	}
	for i < len(token) && token68[token[i]] {
		i++
	}
	if i == len(token) {
		return nil
	}
	if i == 0 || token[i] != '=' {
		return malformed("token contains characters outside token68")
	}
	for ; i < len(token); i++ {
		if token[i] != '=' { // anything after the padding, including a space: two tokens
			return malformed("token contains characters outside token68")
		}
	}
	return nil
}

func malformed(reason string) error {
	return &TokenError{Reason: "malformed bearer token: " + reason, Err: ErrMalformed}
}
