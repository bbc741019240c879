package authz

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

var b64 = base64.RawURLEncoding.Strict()

func invalid(reason string) error {
	return &TokenError{Reason: reason, Err: ErrInvalidToken}
}

// dupMarker is a header key that JSON cannot produce from a valid header (it is not
// valid UTF-8), used to carry "this header had duplicate members" to verifyJWT.
const dupMarker = "\xff dup"

// jwsParts is a compact JWS split into its parts, with the header decoded. payload and
// signature are in a recycled buffer: they are valid until release, and nothing may
// keep them (decodeObject copies what it returns; the signature is only verified).
type jwsParts struct {
	header    map[string]any
	alg, kid  string
	payload   []byte
	input     string // signing input: header "." payload, as sent
	signature []byte
	buf       *[]byte // the decoded parts' buffer, from partBuffers; nil when not pooled
}

// maxPooledPart bounds the buffers partBuffers keeps (those of tokens up to about
// 21 KB; a larger one is allocated per token and left to the GC).
const maxPooledPart = 16 << 10

// partBuffers recycles the buffers splitJWS decodes a token's parts into: a cold
// verification then allocates nothing for them (about 1 KB for a typical RS256 token).
var partBuffers = sync.Pool{New: func() any { return new([]byte) }}

// release clears p's buffer (no decoded token waits in the pool) and returns it for
// reuse; p.payload and p.signature are invalid after it.
func (p *jwsParts) release() {
	if p.buf != nil {
		clear(*p.buf)
		partBuffers.Put(p.buf)
		p.buf, p.payload, p.signature = nil, nil, nil
	}
}

// splitJWS recognises a compact JWS: three base64url parts whose first decodes to a JSON
// object. Anything else is not a JWT (and is treated as an opaque token). It trusts
// nothing it decodes. The caller releases parts (when ok) once it no longer needs
// payload and signature.
func splitJWS(token string) (parts jwsParts, ok bool) {
	h, rest, ok := strings.Cut(token, ".")
	if !ok {
		return parts, false
	}
	p, s, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(s, ".") {
		return parts, false
	}
	// One buffer for the three decoded parts, recycled when it is not too large.
	n := b64.DecodedLen(len(h)) + b64.DecodedLen(len(p)) + b64.DecodedLen(len(s))
	var pooled *[]byte
	var buf []byte
	if n <= maxPooledPart {
		pooled = partBuffers.Get().(*[]byte)
		if cap(*pooled) < n {
			*pooled = make([]byte, n, max(n, 2048))
		}
		*pooled = (*pooled)[:n] // what release clears
		buf = *pooled
	} else {
		buf = make([]byte, n)
	}
	parts.buf = pooled
	hb, buf, err := decodePart(buf, h)
	if err != nil || len(hb) == 0 || hb[0] != '{' {
		parts.release()
		return jwsParts{}, false
	}
	header, err := decodeObject(hb)
	switch {
	case errors.Is(err, errJSONDuplicate):
		// Not a header we can read unambiguously; verifyJWT rejects it.
		header = map[string]any{"alg": "", dupMarker: true}
	case err != nil:
		parts.release()
		return jwsParts{}, false
	}
	parts.header, parts.input = header, token[:len(h)+1+len(p)]
	parts.alg, _ = header["alg"].(string)
	parts.kid, _ = header["kid"].(string)
	parts.payload, buf, err = decodePart(buf, p)
	if err != nil {
		parts.payload = nil
	}
	parts.signature, _, err = decodePart(buf, s)
	if err != nil {
		parts.signature = nil
	}
	return parts, true
}

// decodePart decodes the base64url part s into the front of buf and returns the decoded
// bytes (capacity clipped, so that appending copies) and the rest of buf. s is read in
// place: Decode only reads its source and keeps no reference to it (as in tokenSum).
func decodePart(buf []byte, s string) (part, rest []byte, err error) {
	n, err := b64.Decode(buf, unsafe.Slice(unsafe.StringData(s), len(s)))
	return buf[:n:n], buf[n:], err
}

// verifyToken verifies a token that passed checkToken. No caching here.
func (a *Authorizer) verifyToken(ctx context.Context, token string) (*Identity, error) {
	if parts, ok := splitJWS(token); ok {
		defer parts.release()
		return a.verifyJWT(ctx, token, &parts)
	}
	return a.verifyOpaque(ctx, token)
}

// verifyJWT: header checks, trust of iss (no network before this), signature with the
// issuer's JWKS, time and audience claims, then userinfo/introspection per issuer mode.
func (a *Authorizer) verifyJWT(ctx context.Context, token string, p *jwsParts) (*Identity, error) {
	if _, dup := p.header[dupMarker]; dup {
		return nil, invalid("malformed JWT header: duplicate member")
	}
	if _, ok := p.header["kid"]; ok && p.kid == "" {
		return nil, invalid("malformed JWT header")
	}
	switch {
	case p.alg == "":
		return nil, invalid("malformed JWT header: no alg")
	case strings.EqualFold(p.alg, "none"):
		return nil, invalid(`JWT algorithm "none" is not accepted`)
	case !supportedAlgs[p.alg]:
		return nil, invalid("JWT algorithm not accepted")
	}
	// RFC 7515 4.1.11: we understand no extension, so any crit header is fatal; b64
	// (RFC 7797) and zip change how the payload is read; a nested JWT (cty JWT) is not
	// an access token we can read.
	for _, h := range []string{"crit", "b64", "zip"} {
		if _, ok := p.header[h]; ok {
			return nil, invalid("unsupported JWT header " + h)
		}
	}
	if cty, _ := p.header["cty"].(string); strings.EqualFold(cty, "JWT") {
		return nil, invalid("nested JWTs are not accepted")
	}
	if p.payload == nil || p.signature == nil {
		return nil, invalid("malformed JWT")
	}
	claims, err := decodeObject(p.payload)
	switch {
	case errors.Is(err, errJSONDuplicate):
		// RFC 7519 7.2 lets a parser reject duplicate claim names; we do, so that no
		// other component can read a different exp, iss or sub from the same token.
		return nil, invalid("malformed JWT claims: duplicate member")
	case err != nil:
		return nil, invalid("malformed JWT claims")
	}
	issClaim, _ := claims["iss"].(string)
	is := a.byID[normalizeIssuer(issClaim)]
	if issClaim == "" || is == nil {
		return nil, &TokenError{Reason: "untrusted issuer", Err: ErrUntrustedIssuer}
	}
	if len(is.cfg.Algorithms) > 0 && !contains(is.cfg.Algorithms, p.alg) {
		return nil, invalid("JWT algorithm not accepted for this issuer")
	}

	d, err := is.discover(ctx)
	if err != nil {
		return nil, err
	}
	if !d.algs[p.alg] {
		return nil, invalid("JWT algorithm not accepted for this issuer")
	}
	if d.jwksURI == "" {
		return nil, is.unavailable("jwks", errors.New("discovery has no jwks_uri"))
	}
	iat, _, _ := numericDate(claims, "iat") // unverified yet; checkTimes checks it below
	if err := a.checkSignature(ctx, is, d, p, iat); err != nil {
		return nil, err
	}

	// The payload is now verified. iss must name the issuer exactly: as the OP's
	// discovery document spells it, or as configured. A trailing-slash variant of
	// either is a different issuer (OIDC Discovery 4.3, Core 3.1.3.7).
	if issClaim != d.issuer && issClaim != is.cfg.Issuer {
		return nil, &TokenError{Reason: "untrusted issuer", Err: ErrUntrustedIssuer}
	}
	exp, err := a.checkTimes(claims, true)
	if err != nil {
		return nil, err
	}
	if is.cfg.RequireSub == nil || *is.cfg.RequireSub {
		if sub, _ := claims["sub"].(string); sub == "" {
			return nil, invalid("JWT access token has no sub")
		}
	}
	if len(is.cfg.Audiences) > 0 && !audienceOK(claims["aud"], is.cfg.Audiences) {
		return nil, invalid("audience not accepted")
	}

	id := withParts()
	id.Issuer, id.Expiry, id.Sources = is.id, InstantOf(exp), SourceJWT
	id.Parts.TokenClaims, id.Parts.Header = claims, p.header
	if is.introspect == IntrospectAlways {
		in, inExp, err := a.introspect(ctx, is, d, token)
		if err != nil {
			return nil, err
		}
		id.Parts.Introspection, id.Sources = in, id.Sources|SourceIntrospection
		id.Expiry = InstantOf(earliest(id.Expiry.Time(), inExp))
	}
	switch is.userinfo {
	case UserinfoRequired:
		ui, err := a.userinfo(ctx, is, d, token)
		if err != nil {
			return nil, err
		}
		id.Parts.Userinfo, id.Sources = ui, id.Sources|SourceUserinfo
	case UserinfoOptional:
		ui, err := a.userinfo(ctx, is, d, token)
		if err != nil {
			if lvl := levelFor(err); a.log.Enabled(ctx, lvl) { // no hashing when the level is off
				a.log.LogAttrs(ctx, lvl, "authz: optional userinfo failed, using token claims",
					slog.String("issuer", is.id), slog.String("token_hash", TokenHash(token)), slog.Any("error", err))
			}
		} else {
			id.Parts.Userinfo, id.Sources = ui, id.Sources|SourceUserinfo
		}
	}
	if err := finish(id); err != nil {
		return nil, err
	}
	return id, nil
}

// checkSignature finds the key for the token's kid and alg and verifies the signature.
// An unknown kid triggers one JWKS refresh per JWKSRefreshInterval (shared by
// concurrent callers); a known kid with a bad signature triggers none.
func (a *Authorizer) checkSignature(ctx context.Context, is *issuer, d *discovery, p *jwsParts, iat time.Time) error {
	idx, err := is.keySet(ctx, d)
	if err != nil {
		return err
	}
	keys, known := idx.candidates(p.kid, p.alg)
	if !known {
		// An unknown kid may be a key the OP has just published: refresh the JWKS. While
		// refreshes are rate-limited, the kid is invalid (401) only when a refresh should
		// have found it: the last refresh was made for it, the OP has withdrawn it, or the
		// token was issued (iat, plus the leeway for clock skew) before the last set was
		// fetched (OPs publish a key before signing with it; an attacker who backdates iat
		// only gets the 401 sooner). Any other kid is 503 with Retry-After, never a 401
		// (that clients and the negative cache take as final) for a genuine new key.
		idx, _, err = is.fetchKeys(ctx, d, true)
		switch {
		case errors.Is(err, errRateLimited):
			if is.wasMissed(p.kid) || idx != nil && (idx.withdrawn[p.kid] ||
				!iat.IsZero() && iat.Add(a.cfg.Leeway.D()).Before(idx.fetchedAt)) {
				return invalid("unknown signing key")
			}
			return err
		case err != nil:
			return err
		}
		if keys, known = idx.candidates(p.kid, p.alg); !known {
			is.noteMissed(p.kid)
			return invalid("unknown signing key")
		}
	}
	if len(keys) == 0 {
		return invalid("signing key does not fit the JWT algorithm")
	}
	if !supportedAlgs[p.alg] {
		return invalid("JWT algorithm not accepted")
	}
	// The signing input is the token's own bytes, not a copy: verifySignature only
	// hashes them (and nothing else may write to them).
	input := unsafe.Slice(unsafe.StringData(p.input), len(p.input))
	for i, k := range keys {
		if i == 8 { // a kid-less token must not make us try a huge JWKS
			break
		}
		if verifySignature(p.alg, k.pub, input, p.signature) {
			return nil
		}
	}
	return invalid("signature verification failed")
}

// checkTimes checks exp (required when needExp), nbf and iat with the leeway and returns
// exp (zero if absent).
func (a *Authorizer) checkTimes(claims map[string]any, needExp bool) (time.Time, error) {
	now := a.now()
	leeway := a.cfg.Leeway.D()
	exp, ok, err := numericDate(claims, "exp")
	if err != nil {
		return time.Time{}, err
	}
	if !ok && needExp {
		return time.Time{}, invalid("token has no exp claim")
	}
	if ok && now.After(exp.Add(leeway)) {
		return time.Time{}, &TokenError{Reason: "token expired", Err: ErrExpired}
	}
	nbf, ok, err := numericDate(claims, "nbf")
	if err != nil {
		return time.Time{}, err
	}
	if ok && nbf.After(now.Add(leeway)) {
		return time.Time{}, invalid("token not yet valid (nbf)")
	}
	iat, ok, err := numericDate(claims, "iat")
	if err != nil {
		return time.Time{}, err
	}
	if ok && iat.After(now.Add(leeway)) {
		return time.Time{}, invalid("token issued in the future (iat)")
	}
	return exp, nil
}

// numericDate reads a NumericDate claim (RFC 7519 2): a JSON number of seconds.
func numericDate(claims map[string]any, name string) (time.Time, bool, error) {
	v, ok := claims[name]
	if !ok {
		return time.Time{}, false, nil
	}
	f, isNum := v.(float64)
	if !isNum || math.IsNaN(f) || f < 0 || f > 253402300799 { // year 9999
		return time.Time{}, false, invalid("malformed " + name + " claim")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

func audienceOK(aud any, accepted []string) bool {
	switch v := aud.(type) {
	case string:
		return contains(accepted, v)
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok && contains(accepted, s) {
				return true
			}
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero():
		return a
	case b.Before(a):
		return b
	}
	return a
}

// --- opaque tokens ---

type probe struct {
	is  *issuer
	d   *discovery
	ui  map[string]any // set when found via userinfo
	in  map[string]any // set when found via introspection
	exp time.Time
	err error
}

// verifyOpaque asks the candidate OPs (trusted, matching op_hint, not issues_jwt) in
// parallel; the first that vouches for the token wins and the others are cancelled.
// If none does: a credential error when every OP said no, an *UnavailableError when at
// least one could not answer (the token may be that OP's).
func (a *Authorizer) verifyOpaque(ctx context.Context, token string) (*Identity, error) {
	if len(a.candidates) == 0 {
		return nil, invalid("opaque tokens are not accepted (no OP to ask)")
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan probe, len(a.candidates))
	for _, is := range a.candidates {
		go func() { results <- a.probe(sctx, is, token) }()
	}
	var win *probe
	var unavailable error
	for range a.candidates {
		r := <-results
		if r.err == nil {
			win = &r
			break
		}
		if !IsCredentialError(r.err) && unavailable == nil {
			unavailable = r.err
		}
	}
	cancel()
	if win == nil {
		if unavailable != nil {
			return nil, unavailable
		}
		return nil, invalid("token not recognised by any trusted OP")
	}

	is := win.is
	id := withParts()
	id.Issuer, id.Parts.Userinfo, id.Parts.Introspection, id.Expiry = is.id, win.ui, win.in, InstantOf(win.exp)
	if win.ui != nil {
		id.Sources |= SourceUserinfo
		if is.introspect != IntrospectNever {
			in, exp, err := a.introspect(ctx, is, win.d, token)
			if err != nil {
				return nil, err
			}
			id.Parts.Introspection, id.Expiry = in, InstantOf(exp)
		}
	}
	if id.Parts.Introspection != nil {
		id.Sources |= SourceIntrospection
	}
	if err := finish(id); err != nil {
		return nil, err
	}
	return id, nil
}

// probe asks one OP about an opaque token: userinfo, or introspection when userinfo is
// "never".
func (a *Authorizer) probe(ctx context.Context, is *issuer, token string) probe {
	d, err := is.discover(ctx)
	if err != nil {
		return probe{is: is, err: err}
	}
	if is.userinfo != UserinfoNever {
		ui, err := a.userinfo(ctx, is, d, token)
		return probe{is: is, d: d, ui: ui, err: err}
	}
	in, exp, err := a.introspect(ctx, is, d, token)
	return probe{is: is, d: d, in: in, exp: exp, err: err}
}

// userinfo calls the OP's userinfo endpoint with the token. 200 with a JSON object that
// has a string sub: the claims. 401/403: a credential error. Anything else (other
// status, transport error, malformed or oversized body): *UnavailableError.
func (a *Authorizer) userinfo(ctx context.Context, is *issuer, d *discovery, token string) (map[string]any, error) {
	if d.userinfoURL == "" {
		return nil, is.unavailable("userinfo", errors.New("discovery has no userinfo_endpoint"))
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.HTTPTimeout.D())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.userinfoURL, nil)
	if err != nil {
		return nil, is.unavailable("userinfo", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	status, body, _, err := a.send(req, is.id, "userinfo")
	switch {
	case err != nil:
		return nil, is.unavailable("userinfo", err)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return nil, invalid("token rejected by the OP's userinfo endpoint")
	case status != http.StatusOK:
		return nil, is.unavailable("userinfo", fmt.Errorf("status %d", status))
	}
	ui, err := jsonObject(body)
	if err != nil {
		return nil, is.unavailable("userinfo", err)
	}
	if sub, ok := ui["sub"].(string); !ok || sub == "" {
		return nil, is.unavailable("userinfo", errors.New("reply has no sub"))
	}
	return ui, nil
}

// introspect calls RFC 7662 introspection with HTTP Basic client authentication.
// "active": true (the JSON boolean) is the only answer that passes; exp and nbf are
// checked with the leeway. Claims nested under "ext" are lifted to the top level (top
// level wins) in the returned map. Non-200 (including 401: our client credentials are
// wrong) and malformed replies are *UnavailableError.
func (a *Authorizer) introspect(ctx context.Context, is *issuer, d *discovery, token string) (map[string]any, time.Time, error) {
	if d.introspectionURL == "" {
		return nil, time.Time{}, is.unavailable("introspection", errors.New("discovery has no introspection_endpoint"))
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.HTTPTimeout.D())
	defer cancel()
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.introspectionURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, time.Time{}, is.unavailable("introspection", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 2.3.1: client id and secret are form-encoded before Basic encoding.
	req.SetBasicAuth(url.QueryEscape(is.cfg.ClientID), url.QueryEscape(is.cfg.ClientSecret))
	status, body, _, err := a.send(req, is.id, "introspection")
	if err != nil {
		return nil, time.Time{}, is.unavailable("introspection", err)
	}
	if status != http.StatusOK {
		return nil, time.Time{}, is.unavailable("introspection", fmt.Errorf("status %d", status))
	}
	in, err := jsonObject(body)
	if err != nil {
		return nil, time.Time{}, is.unavailable("introspection", err)
	}
	if active, _ := in["active"].(bool); !active {
		return nil, time.Time{}, &TokenError{Reason: "token is not active", Err: ErrInactive}
	}
	if ext, ok := in["ext"].(map[string]any); ok {
		flat := make(map[string]any, len(in)+len(ext))
		for k, v := range ext {
			flat[k] = v
		}
		for k, v := range in {
			if k != "ext" {
				flat[k] = v
			}
		}
		in = flat
	}
	exp, err := a.checkTimes(in, false)
	if err != nil {
		return nil, time.Time{}, err
	}
	return in, exp, nil
}

// jsonObject decodes an OP reply that must be one JSON object.
func jsonObject(body []byte) (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("malformed JSON reply: %w", err)
	}
	if m == nil {
		return nil, errors.New("reply is not a JSON object")
	}
	return m, nil
}

// finish checks that every sub present (token, introspection, userinfo) is the same
// (OIDC Core 5.3.2), so that the merged claims' sub (Identity.Subject) is the one all
// of them name, and merges the claims: userinfo > introspection > token claims. The
// merged claims always carry iss (the vouching issuer) so that policies can rely on it.
func finish(id *Identity) error {
	sub := ""
	for _, m := range []map[string]any{id.Parts.TokenClaims, id.Parts.Introspection, id.Parts.Userinfo} {
		v, ok := m["sub"]
		if !ok {
			continue
		}
		s, isStr := v.(string)
		if !isStr || s == "" {
			return invalid("malformed sub claim")
		}
		if sub != "" && s != sub {
			return invalid("subject mismatch between token, introspection and userinfo")
		}
		sub = s
	}
	// The bindings and the session come from the token or the OP's introspection, never
	// from userinfo (which describes the user, not the token).
	var cnf Confirmation
	var sid string
	for _, m := range []map[string]any{id.Parts.TokenClaims, id.Parts.Introspection} {
		jkt, x5t, err := confirmation(m)
		if err != nil {
			return err
		}
		if (jkt != "" && cnf.JKT != "" && jkt != cnf.JKT) || (x5t != "" && cnf.CertThumbprint != "" && x5t != cnf.CertThumbprint) {
			return invalid("token and introspection disagree about the token's binding (cnf)")
		}
		cnf.JKT, cnf.CertThumbprint = cmp.Or(cnf.JKT, jkt), cmp.Or(cnf.CertThumbprint, x5t)
		if v, ok := m["sid"]; ok {
			s, isStr := v.(string)
			if !isStr {
				return invalid("malformed sid claim")
			}
			sid = cmp.Or(sid, s)
		}
	}
	if cnf != (Confirmation{}) || sid != "" {
		id.Binding = &Binding{Confirmation: cnf, SessionID: sid}
	}
	id.Claims = policy.MapClaims(mergeClaims(id))
	return nil
}

// mergeClaims merges the parts of id: userinfo > introspection > token claims, and iss
// is the token's iss (verified to name the issuer) or else the configured issuer URL.
// When only one part exists and already carries that iss (a JWT without userinfo or
// introspection), that map is the result: no copy.
func mergeClaims(id *Identity) map[string]any {
	iss := id.Issuer
	if s, ok := id.Parts.TokenClaims["iss"].(string); ok {
		iss = s
	}
	var only map[string]any
	parts := 0
	for _, m := range []map[string]any{id.Parts.TokenClaims, id.Parts.Introspection, id.Parts.Userinfo} {
		if m != nil {
			only, parts = m, parts+1
		}
	}
	if parts == 1 {
		if s, ok := only["iss"].(string); ok && s == iss {
			return only
		}
	}
	merged := make(map[string]any, len(id.Parts.TokenClaims)+len(id.Parts.Introspection)+len(id.Parts.Userinfo)+1)
	for _, m := range []map[string]any{id.Parts.TokenClaims, id.Parts.Introspection, id.Parts.Userinfo} {
		for k, v := range m {
			merged[k] = v
		}
	}
	merged["iss"] = iss
	return merged
}

func levelFor(err error) slog.Level {
	if errors.Is(err, ErrUnavailable) {
		return slog.LevelWarn
	}
	return slog.LevelDebug
}
