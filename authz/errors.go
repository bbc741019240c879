package authz

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors for fixed conditions. Every error returned by this package that is
// about the credential wraps one of these or is a *TokenError; every OP failure is an
// *UnavailableError. Callers branch with errors.Is / errors.As.
var (
	// ErrNoToken: no credential was sent.
	ErrNoToken = errors.New("authz: no bearer token")
	// ErrMalformed: the credential is not a well-formed bearer token (wrong scheme, bad
	// characters, over the size limit). Rejected before any parsing.
	ErrMalformed = errors.New("authz: malformed bearer token")
	// ErrUntrustedIssuer: the JWT's iss is not a configured issuer. No network call was made.
	ErrUntrustedIssuer = errors.New("authz: untrusted issuer")
	// ErrInvalidToken: signature, format, claims or OP said no.
	ErrInvalidToken = errors.New("authz: invalid token")
	// ErrExpired: exp (or introspection exp) is in the past, beyond the leeway.
	ErrExpired = errors.New("authz: token expired")
	// ErrInactive: introspection did not answer "active": true.
	ErrInactive = errors.New("authz: token not active")
	// ErrInvalidDPoPProof: the DPoP proof (RFC 9449) is missing, malformed, replayed,
	// stale, not for this request, or not signed by the key the token is bound to.
	ErrInvalidDPoPProof = errors.New("authz: invalid DPoP proof")
	// ErrUnavailable: an OP could not be reached, timed out, or answered with a 5xx or
	// a malformed reply. Never means "token invalid", never "valid".
	ErrUnavailable = errors.New("authz: identity provider unavailable")
)

// TokenError says the credential is bad (→ 401). Reason is safe for clients.
type TokenError struct {
	Reason string // e.g. "token expired 30s ago"; never token contents
	Err    error  // one of the sentinels above, possibly wrapping more
}

func (e *TokenError) Error() string { return "authz: " + e.Reason }
func (e *TokenError) Unwrap() error { return e.Err }

// UnavailableError says an OP is broken or out of reach (→ 503).
type UnavailableError struct {
	Issuer   string // configured issuer URL
	Endpoint string // "discovery", "jwks", "userinfo", "introspection"
	Err      error
	// RetryAfter, when positive, is when asking again can give another answer (an
	// unknown kid while JWKS refreshes are rate-limited); it becomes Retry-After.
	RetryAfter time.Duration
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("authz: %s %s unavailable: %v", e.Issuer, e.Endpoint, e.Err)
}

// Unwrap lets errors.Is(err, ErrUnavailable) hold, and exposes the cause.
func (e *UnavailableError) Unwrap() []error { return []error{ErrUnavailable, e.Err} }

// IsCredentialError reports whether err says the credential is bad (401), as opposed to
// an outage or internal failure (503).
func IsCredentialError(err error) bool {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return false
	}
	_, isTokenErr := errors.AsType[*TokenError](err) // no allocation, unlike errors.As
	return isTokenErr || errors.Is(err, ErrNoToken) || errors.Is(err, ErrMalformed) ||
		errors.Is(err, ErrUntrustedIssuer) || errors.Is(err, ErrInvalidToken) ||
		errors.Is(err, ErrExpired) || errors.Is(err, ErrInactive) || errors.Is(err, ErrInvalidDPoPProof)
}
