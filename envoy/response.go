package envoy

import (
	"encoding/json"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"google.golang.org/grpc/codes"
)

// Response is how one outcome is answered: the single table of DESIGN.md "Responses",
// used by both the gRPC and the HTTP form.
type Response struct {
	// Code is the gRPC status of the CheckResponse (never a gRPC error of the call).
	Code codes.Code
	// HTTPStatus is the status Envoy (or the HTTP handler) sends to the client; 200 on allow.
	HTTPStatus int
	// Error is the OAuth error code of the JSON body ("" on allow).
	Error string
	// Challenge is the RFC 6750 (or RFC 9449) error code for WWW-Authenticate: ""
	// (plain challenge), "invalid_token", "insufficient_scope" or "invalid_dpop_proof".
	// Unused when NoChallenge.
	Challenge string
	// DPoP: the challenge always uses the DPoP scheme (RFC 9449 7.1) with the accepted
	// proof algorithms in algs. Other rows use it when the request used the DPoP scheme.
	DPoP bool
	// NoChallenge: send no WWW-Authenticate (allow, OP outage).
	NoChallenge bool
}

// responses is the table, indexed by authz.Outcome.
var responses = [...]Response{
	authz.OutcomeAllow:        {Code: codes.OK, HTTPStatus: http.StatusOK, NoChallenge: true},
	authz.OutcomeNoToken:      {Code: codes.Unauthenticated, HTTPStatus: http.StatusUnauthorized, Error: "unauthorized"},
	authz.OutcomeInvalidToken: {Code: codes.Unauthenticated, HTTPStatus: http.StatusUnauthorized, Error: "invalid_token", Challenge: "invalid_token"},
	authz.OutcomeForbidden:    {Code: codes.PermissionDenied, HTTPStatus: http.StatusForbidden, Error: "insufficient_scope", Challenge: "insufficient_scope"},
	authz.OutcomeUnavailable:  {Code: codes.Unavailable, HTTPStatus: http.StatusServiceUnavailable, Error: "temporarily_unavailable", NoChallenge: true},
	// An ambiguous or malformed request target, or forwarded headers that disagree: no
	// token would make it acceptable, so no challenge (docs/request-target.md).
	authz.OutcomeBadRequest: {Code: codes.InvalidArgument, HTTPStatus: http.StatusBadRequest, Error: "invalid_request", NoChallenge: true},
	authz.OutcomeInvalidDPoPProof: {Code: codes.Unauthenticated, HTTPStatus: http.StatusUnauthorized, Error: "invalid_dpop_proof",
		Challenge: "invalid_dpop_proof", DPoP: true},
	// Nobody reads this answer (the caller has gone); it is the outage's, never an allow.
	authz.OutcomeCancelled: {Code: codes.Unavailable, HTTPStatus: http.StatusServiceUnavailable, Error: "temporarily_unavailable", NoChallenge: true},
}

// ResponseFor returns the table row for o. An unknown outcome gets the OP-outage row
// (503): it is never an allow.
func ResponseFor(o authz.Outcome) Response {
	if o < 0 || int(o) >= len(responses) {
		return responses[authz.OutcomeUnavailable]
	}
	return responses[o]
}

// maxDescription bounds error_description in headers and bodies.
const maxDescription = 512

// challenge builds the WWW-Authenticate value for a denial, or "" when the row has none.
// tokenSent distinguishes "no credential" (plain challenge, RFC 6750 3.1) from a
// malformed one (error="invalid_token"). dpopAlgs, when not "", makes it a DPoP
// challenge (RFC 9449 7.1: the request used the DPoP scheme, or the row is a DPoP
// one) announcing those space-separated proof algorithms; server nonces
// (use_dpop_nonce) are not implemented, so no challenge asks for one.
func challenge(realm string, row Response, tokenSent bool, reason string, scopes []string, dpopAlgs string) string {
	if row.NoChallenge {
		return ""
	}
	code := row.Challenge
	if code == "" && tokenSent {
		code = "invalid_token"
	}
	var b strings.Builder
	b.Grow(len(`Bearer realm=""`) + len(realm) + 64 + len(reason) + len(dpopAlgs))
	if dpopAlgs != "" {
		b.WriteString(`DPoP realm="`)
	} else {
		b.WriteString(`Bearer realm="`)
	}
	b.WriteString(realm) // validated: no quotes, no controls
	b.WriteByte('"')
	if code == "" {
		if dpopAlgs != "" {
			b.WriteString(`, algs="`)
			writeQuoted(&b, dpopAlgs, maxDescription, false)
			b.WriteByte('"')
		}
		return b.String()
	}
	b.WriteString(`, error="`)
	b.WriteString(code)
	b.WriteByte('"')
	if reason != "" {
		b.WriteString(`, error_description="`)
		writeQuoted(&b, reason, maxDescription, false)
		b.WriteByte('"')
	}
	if code == "insufficient_scope" && len(scopes) > 0 {
		b.WriteString(`, scope="`)
		for i, s := range scopes {
			if i > 0 {
				b.WriteByte(' ')
			}
			writeQuoted(&b, s, maxDescription, true)
		}
		b.WriteByte('"')
	}
	if dpopAlgs != "" {
		b.WriteString(`, algs="`)
		writeQuoted(&b, dpopAlgs, maxDescription, false)
		b.WriteByte('"')
	}
	return b.String()
}

// dpopChallenge returns the algs of a DPoP challenge for a denial of d, "" when the
// challenge is a Bearer one.
func (v *snapshot) dpopChallenge(row Response, d *authz.Decision) string {
	if row.DPoP || d.DPoP {
		return v.dpopAlgs
	}
	return ""
}

// writeQuoted writes s as the inside of an RFC 6750 quoted value, where only %x20-21 /
// %x23-5B / %x5D-7E are allowed (in scope tokens no space either): a double quote
// becomes an apostrophe, a backslash becomes a slash, and every other byte outside the
// set (CR, LF, controls, non-ASCII) becomes '?'. At most max bytes are written. The
// result can never end the quoted string or the header line early.
func writeQuoted(b *strings.Builder, s string, max int, scopeToken bool) {
	if len(s) > max {
		s = s[:max]
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			c = '\''
		case c == '\\':
			c = '/'
		case c == ' ' && scopeToken:
			c = '?'
		case c < 0x20 || c > 0x7e:
			c = '?'
		}
		b.WriteByte(c)
	}
}

// denyBody is the JSON body of a denial, as flaat 1.x sends it.
type denyBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// jsonBody returns {"error":…,"error_description":…}, encoded by encoding/json: invalid
// UTF-8 becomes U+FFFD, and <, >, & and U+2028/2029 are escaped, so the body is safe in
// any context. The description is cut to maxDescription bytes on a rune boundary.
func jsonBody(code, description string) string {
	if len(description) > maxDescription {
		n := maxDescription
		for n > 0 && !utf8.RuneStart(description[n]) {
			n--
		}
		description = description[:n]
	}
	b, err := json.Marshal(denyBody{Error: code, Description: description})
	if err != nil { // two strings always encode
		return `{"error":"server_error"}`
	}
	return string(b)
}

// description is the client-facing reason of a denial: Decision.Reason, or the
// policy's reason, or a generic text. It never carries Err (which may hold internals).
func description(d *authz.Decision) string {
	if d.Reason != "" {
		return d.Reason
	}
	if d.Outcome == authz.OutcomeForbidden && d.Policy.Reason != "" {
		return d.Policy.Reason
	}
	switch d.Outcome {
	case authz.OutcomeNoToken:
		return "no bearer token"
	case authz.OutcomeInvalidToken:
		return "invalid token"
	case authz.OutcomeInvalidDPoPProof:
		return "invalid DPoP proof"
	case authz.OutcomeForbidden:
		return "access denied by policy"
	case authz.OutcomeAllow:
		return ""
	case authz.OutcomeBadRequest:
		return "bad request"
	default:
		return "identity provider unavailable"
	}
}
