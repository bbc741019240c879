// Package authz turns a transport-neutral request carrying a bearer token into a
// decision: it verifies the token against the configured trusted OPs (JWT signature,
// userinfo, RFC 7662 introspection), caches the verified identity by the token's hash,
// and asks package policy whether the identity may make the request.
//
// authz knows nothing about Envoy, gRPC or HTTP wire formats; package envoy maps a
// Decision to a response in one table.
package authz

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
	"unsafe"

	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// Request is what a protocol adapter (gRPC Check, HTTP auth-request, the check CLI)
// knows about one request. It carries no wire-format types.
type Request struct {
	// Authorization is the value of the Authorization header (or of the configured
	// alternative header) exactly as sent, e.g. "Bearer eyJ…". Empty when none was sent.
	Authorization string
	// Method is the HTTP method of the original request, e.g. "GET".
	Method string
	// Host is the original request's host (":authority"), without changes.
	Host string
	// Path is the original request's path as sent: it may carry a query and
	// percent-encoding; package policy normalises it.
	Path string
	// Scheme is the original request's scheme ("https" or "http"), "" when unknown. A
	// DPoP proof (whose htu names the scheme) is refused when it is unknown.
	Scheme string
	// DPoP is the value of the original request's DPoP header (RFC 9449), "" when none
	// was sent; several headers are joined with "," (and then refused: exactly one
	// proof is allowed).
	DPoP string
	// ClientCertThumbprint is the base64url (unpadded) SHA-256 of the DER client
	// certificate of the original connection (RFC 8705 x5t#S256), as established by the
	// protocol adapter from Envoy's source.certificate or a configured trusted proxy
	// header; "" when there is none. A certificate-bound token needs it to match.
	ClientCertThumbprint string
	// ContextExtensions are Envoy's per-route context_extensions (gRPC only).
	ContextExtensions map[string]string
	// RequestID is the x-request-id, for logs only.
	RequestID string
}

// Outcome is the kind of a decision. Package envoy maps each Outcome to exactly one
// gRPC status and HTTP status (DESIGN.md, "Responses").
type Outcome int

const (
	// OutcomeAllow: the request may pass; Decision.Identity is set (nil for public routes).
	OutcomeAllow Outcome = iota
	// OutcomeNoToken: no token, or an Authorization header that is not a well-formed
	// bearer credential (401, WWW-Authenticate without error= when nothing was sent).
	OutcomeNoToken
	// OutcomeInvalidToken: the token is invalid, expired, untrusted or inactive (401).
	OutcomeInvalidToken
	// OutcomeForbidden: the token is valid but the policy is not met (403).
	OutcomeForbidden
	// OutcomeUnavailable: an OP could not be reached or answered wrongly, or an internal
	// error happened; the request is denied (503), never allowed. A deadline that expires
	// inside our own OP call (http_timeout) is this outcome.
	OutcomeUnavailable
	// OutcomeBadRequest: the request itself cannot be judged, whatever the token: its
	// path cannot be normalised or reads as different routes (ambiguous), or its
	// forwarded headers disagree (400). No token is parsed; another token would not help.
	OutcomeBadRequest
	// OutcomeInvalidDPoPProof: the token was sent with the DPoP scheme (or is DPoP-bound)
	// and the DPoP proof is missing, malformed, replayed, stale, not for this request or
	// signed by another key than the one the token is bound to (401, RFC 9449 7.1:
	// WWW-Authenticate: DPoP error="invalid_dpop_proof").
	OutcomeInvalidDPoPProof
	// OutcomeCancelled: the caller stopped waiting before the decision was made (the
	// request's context ended: Envoy's ext_authz timeout, a closed downstream, an HTTP
	// client that hung up). The request is denied (the same 503 answer as
	// OutcomeUnavailable, which nobody reads), never allowed; it is not an outage and is
	// logged at debug.
	OutcomeCancelled
)

// NumOutcomes is the number of Outcome values: every valid Outcome is below it.
const NumOutcomes = int(OutcomeCancelled) + 1

// Valid reports whether o is one of the Outcome constants.
func (o Outcome) Valid() bool { return o >= OutcomeAllow && int(o) < NumOutcomes }

// Reason codes (Decision.ReasonCode): a bounded set of machine-readable causes for the
// decision metrics' reason label. Most decisions have none ("").
const (
	// ReasonAmbiguousPath: the readings of the request path select different routes.
	ReasonAmbiguousPath = "ambiguous_path"
	// ReasonBadPath: the request path cannot be normalised, or a path switch rejects it.
	ReasonBadPath = "bad_path"
	// ReasonForwardedHeaders: forwarded headers disagree or repeat (HTTP mode).
	ReasonForwardedHeaders = "forwarded_headers"
)

// String returns a short lower-case name for logs and metrics labels.
func (o Outcome) String() string {
	switch o {
	case OutcomeAllow:
		return "allow"
	case OutcomeNoToken:
		return "no_token"
	case OutcomeInvalidToken:
		return "invalid_token"
	case OutcomeForbidden:
		return "forbidden"
	case OutcomeUnavailable:
		return "unavailable"
	case OutcomeBadRequest:
		return "bad_request"
	case OutcomeInvalidDPoPProof:
		return "invalid_dpop_proof"
	case OutcomeCancelled:
		return "cancelled"
	default:
		return "unknown"
	}
}

// Decision is the answer to one Request. It is always returned, also on OP outage
// (Outcome OutcomeUnavailable): denial and breakage are both decisions for the caller,
// and Err carries the cause for logs.
type Decision struct {
	Outcome Outcome
	// Reason is a human-readable explanation that is safe to send to the client
	// (error_description). It never contains token contents.
	Reason string
	// Err is the underlying error for denials and outages (nil on allow); for logs,
	// never for clients.
	Err error
	// Identity is the verified identity; nil when no token was verified.
	Identity *Identity
	// Route is the name of the route or policy that applied ("" if none was selected).
	Route string
	// Public is true when the selected route needs no token.
	Public bool
	// Policy is the evaluation result of the route's requirement (zero if not evaluated).
	Policy policy.Result
	// TokenHash is TokenHash(token) for log correlation; "" when no token was sent.
	TokenHash string
	// Cached reports whether the identity came from the cache.
	Cached bool
	// DPoP is true when the request used the DPoP authorization scheme (RFC 9449): the
	// challenge of a denial is then a DPoP challenge.
	DPoP bool
	// RetryAfter is, for OutcomeUnavailable, when the client may usefully retry (sent
	// as Retry-After); zero when unknown.
	RetryAfter time.Duration
	// ReasonCode is one of the Reason* constants for denials of a request that cannot
	// be judged (the reason label of the decision metrics); "" otherwise.
	ReasonCode string
}

// Source says how an identity was established; several may be set.
type Source uint8

const (
	// SourceJWT: the token is a JWT whose signature was verified with the issuer's JWKS.
	SourceJWT Source = 1 << iota
	// SourceUserinfo: the OP's userinfo endpoint answered 200 for the token.
	SourceUserinfo
	// SourceIntrospection: the OP's introspection endpoint answered active:true.
	SourceIntrospection
	// SourceInsecureDevSwitch: a DISABLE_AUTHENTICATION_* switch made it up. Never in production.
	SourceInsecureDevSwitch
)

// Identity is a verified token: who, from which OP, until when, with which claims.
// It holds no token.
//
// An identity from the cache (every identity an Authorizer with the cache on returns,
// the first one for a token included) is slim, to keep memory per cached token small:
// it holds Issuer, Subject, Claims, Expiry, Sources, Confirmation and SessionID only;
// Parts is nil. With WithClaimProjection, Claims keeps only the
// claims a policy or the server can read.
type Identity struct {
	// Issuer is the configured issuer URL (without trailing slash) that vouched for the token.
	Issuer string
	// Subject is the sub claim.
	Subject string
	// Claims is the merged claims document: userinfo > introspection > token claims.
	// With WithClaimProjection it is in policy's compact form (policy.CompactClaims:
	// names shared between identities, 16 bytes per kept claim instead of a map's 336
	// bytes or more); otherwise it is the merged map (policy.MapClaims). Claims.Map
	// returns it as a map either way.
	Claims policy.Claims
	// Expiry is when the identity stops being valid: the earliest of the token's exp and
	// the introspection exp; zero if neither is known (opaque token without introspection).
	Expiry time.Time
	// Sources records how the identity was verified.
	Sources Source
	// Parts are the documents Claims was merged from, and the JWT header: nil in cached
	// identities (a cached identity is small: 144 bytes instead of 176), set in every
	// identity the cache did not keep (Verify and Authorize with the cache disabled: the
	// userinfo and check commands).
	Parts *Parts
	// Confirmation is the token's binding to a key (the cnf claim of the JWT or of the
	// introspection reply, RFC 7800); nil for a bearer token. Kept in cached identities
	// (a DPoP proof itself is verified on every request, never cached).
	Confirmation *Confirmation
	// SessionID is the token's sid claim (JWT or introspection), "" when absent; with
	// Issuer and Subject it is what an OIDC back-channel logout event names.
	SessionID string

	// memo is the policy.Memo of Claims in cached identities (nil otherwise): what
	// evaluating a policy derives from Claims (sorted sets of large lists, parsed
	// entitlements) is derived once per cached identity, not once per request.
	memo *policy.Memo
}

// Parts are what an identity was verified from, before merging into Identity.Claims.
type Parts struct {
	// TokenClaims, Userinfo and Introspection are the parts before merging (nil when
	// not obtained).
	TokenClaims   map[string]any
	Userinfo      map[string]any
	Introspection map[string]any
	// Header is the decoded JWT header (nil for opaque tokens).
	Header map[string]any
}

// withParts returns a new Identity with empty Parts, both in one allocation.
func withParts() *Identity {
	v := new(struct {
		id    Identity
		parts Parts
	})
	v.id.Parts = &v.parts
	return &v.id
}

// Confirmation is what a sender-constrained token is bound to.
type Confirmation struct {
	// JKT is the DPoP binding (cnf.jkt, RFC 9449): the RFC 7638 SHA-256 thumbprint
	// (base64url) of the key every proof must be signed with; "" when not DPoP-bound.
	JKT string
	// CertThumbprint is the certificate binding (cnf["x5t#S256"], RFC 8705): the
	// base64url SHA-256 of the DER client certificate; "" when not certificate-bound.
	CertThumbprint string
}

// jkt returns the DPoP binding, "" for none.
func (id *Identity) jkt() string {
	if id.Confirmation == nil {
		return ""
	}
	return id.Confirmation.JKT
}

// x5t returns the certificate binding, "" for none.
func (id *Identity) x5t() string {
	if id.Confirmation == nil {
		return ""
	}
	return id.Confirmation.CertThumbprint
}

// slim returns the part of id that the cache keeps (see Identity), with a Memo for its
// claims.
func (id *Identity) slim() *Identity {
	return &Identity{Issuer: id.Issuer, Subject: id.Subject, Claims: id.Claims, Expiry: id.Expiry, Sources: id.Sources,
		Confirmation: id.Confirmation, SessionID: id.SessionID, memo: new(policy.Memo)}
}

// TokenHash returns the first 8 bytes of SHA-256(token) as 16 hex digits: the only form
// in which a token may appear in logs.
func TokenHash(token string) string {
	sum := tokenSum(token)
	return sumHex(&sum)
}

// tokenSum returns SHA-256(token): the identity cache's key, and (its first 8 bytes)
// TokenHash. Authorize computes it once per request for both.
//
// It hashes the string's bytes in place: []byte(token) would copy (and allocate) every
// token, and a copy on the stack makes each request goroutine grow its stack (a few
// KiB frame: runtime.copystack was 8 % of a loaded server's CPU). sha256.Sum256 only
// reads its argument and keeps no reference to it, which is what makes the read-only
// view safe.
func tokenSum(token string) [sha256.Size]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

// sumHex formats the first 8 bytes of a tokenSum as TokenHash does (one 16-byte
// allocation for the string).
func sumHex(sum *[sha256.Size]byte) string {
	var b [16]byte
	hex.Encode(b[:], sum[:8])
	return string(b[:])
}
