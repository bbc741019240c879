package authz

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/cache"
)

// BackchannelLogoutEvent is the member of a logout token's events claim that makes it
// one (OIDC Back-Channel Logout 1.0, 2.4).
const BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// ErrInvalidLogoutToken is wrapped by every error Logout returns for a logout token
// that is not acceptable (the receiver answers 400 invalid_request).
var ErrInvalidLogoutToken = errors.New("authz: invalid logout token")

// ErrLogoutDisabled is returned by Logout of an Authorizer built without
// WithLogoutIndex (and with the identity cache on): it could not evict anything.
var ErrLogoutDisabled = errors.New("authz: back-channel logout is not enabled (no logout index)")

// LogoutResult is what an accepted logout token did.
type LogoutResult struct {
	// Issuer is the configured issuer that sent it.
	Issuer string
	// Subject and SessionID are the token's sub and sid ("" when absent).
	Subject, SessionID string
	// Evicted is the number of cached identities removed.
	Evicted int
}

// logoutState is the back-channel logout state of an Authorizer.
type logoutState struct {
	maxAge time.Duration
	replay *replayCache
	// gen counts logouts; a cache load that saw it change while running does not keep
	// its result (it may have verified a token of the session just logged out).
	gen atomic.Uint64
}

func newLogoutState(c LogoutConfig) *logoutState {
	return &logoutState{maxAge: c.MaxAge.D(), replay: newReplayCache(c.ReplayCacheSize, c.MaxAge.D()+time.Minute)}
}

func badLogout(reason string) error {
	return &TokenError{Reason: "invalid logout token: " + reason, Err: ErrInvalidLogoutToken}
}

// identityTags are the cache tags of an identity: digests of issuer+subject and of
// issuer+session, never the token.
func identityTags(id *Identity) []cache.Tag {
	tags := make([]cache.Tag, 0, 2)
	if sub := id.Subject(); sub != "" {
		tags = append(tags, cache.TagOf("sub", id.Issuer, sub))
	}
	if sid := id.sessionID(); sid != "" {
		tags = append(tags, cache.TagOf("sid", id.Issuer, sid))
	}
	return tags
}

// Logout verifies an OIDC Back-Channel Logout 1.0 logout token (section 2.6) and evicts
// every cached identity of its subject and of its session at once (both, when both are
// named: evicting more only costs a verification). The checks: a compact JWS whose typ,
// when present, is "logout+jwt" or "JWT"; iss a configured issuer (no network call
// otherwise); signature with the issuer's JWKS and alg allow-list, as for access tokens;
// aud containing one of the issuer's logout_audiences (default its client_id; an
// issuer with neither accepts none); iat
// present and within LogoutConfig.MaxAge (and the leeway); exp, when present, not past;
// a jti not seen before within the window; events holding BackchannelLogoutEvent as a
// JSON object; no nonce; sub or sid (strings). A refused token wraps
// ErrInvalidLogoutToken; an OP that cannot be reached is an *UnavailableError; without
// WithLogoutIndex (and with the cache on) it returns ErrLogoutDisabled.
//
// What an eviction does and does not revoke: the next request with an evicted token is
// verified again. An opaque token (or a JWT with introspect: always, or userinfo:
// required) is then asked about at the OP, which refuses it if the logout ended its
// grant; a JWT verified locally is accepted again until its exp. Only this process's
// cache is affected: every replica needs the event (see docs/backchannel-logout.md).
func (a *Authorizer) Logout(ctx context.Context, logoutToken string) (LogoutResult, error) {
	if a.cache != nil && !a.indexed {
		return LogoutResult{}, ErrLogoutDisabled
	}
	if err := checkToken(logoutToken, a.cfg.MaxTokenSize); err != nil {
		return LogoutResult{}, badLogout("malformed")
	}
	parts, ok := splitJWS(logoutToken)
	if !ok {
		return LogoutResult{}, badLogout("not a JWT")
	}
	defer parts.release()
	p := &parts
	if _, dup := p.header[dupMarker]; dup {
		return LogoutResult{}, badLogout("duplicate header member")
	}
	if typ, ok := p.header["typ"]; ok {
		s, _ := typ.(string)
		if !strings.EqualFold(s, "logout+jwt") && !strings.EqualFold(s, "JWT") {
			return LogoutResult{}, badLogout("typ is not logout+jwt")
		}
	}
	if !supportedAlgs[p.alg] {
		return LogoutResult{}, badLogout("algorithm not accepted")
	}
	for _, h := range []string{"crit", "b64", "zip"} {
		if _, ok := p.header[h]; ok {
			return LogoutResult{}, badLogout("unsupported header " + h)
		}
	}
	if p.payload == nil || p.signature == nil {
		return LogoutResult{}, badLogout("malformed")
	}
	claims, err := decodeObject(p.payload)
	if err != nil {
		return LogoutResult{}, badLogout("malformed claims")
	}
	issClaim, _ := claims["iss"].(string)
	is := a.byID[normalizeIssuer(issClaim)]
	if issClaim == "" || is == nil {
		return LogoutResult{}, badLogout("untrusted issuer")
	}
	if len(is.cfg.Algorithms) > 0 && !contains(is.cfg.Algorithms, p.alg) {
		return LogoutResult{}, badLogout("algorithm not accepted for this issuer")
	}
	d, err := is.discover(ctx)
	if err != nil {
		return LogoutResult{}, err
	}
	if !d.algs[p.alg] {
		return LogoutResult{}, badLogout("algorithm not accepted for this issuer")
	}
	if d.jwksURI == "" {
		return LogoutResult{}, is.unavailable("jwks", errors.New("discovery has no jwks_uri"))
	}
	iat, _, _ := numericDate(claims, "iat") // unverified yet; checked below
	if err := a.checkSignature(ctx, is, d, p, iat); err != nil {
		if te, ok := errors.AsType[*TokenError](err); ok {
			return LogoutResult{}, badLogout(te.Reason)
		}
		return LogoutResult{}, err
	}
	if issClaim != d.issuer && issClaim != is.cfg.Issuer {
		return LogoutResult{}, badLogout("untrusted issuer")
	}
	auds := is.cfg.LogoutAudiences
	if len(auds) == 0 && is.cfg.ClientID != "" {
		auds = []string{is.cfg.ClientID}
	}
	if len(auds) == 0 || !audienceOK(claims["aud"], auds) {
		return LogoutResult{}, badLogout("audience is not one of the issuer's logout_audiences")
	}
	now := a.now()
	leeway := a.cfg.Leeway.D()
	iat, ok, err = numericDate(claims, "iat")
	switch {
	case err != nil || !ok:
		return LogoutResult{}, badLogout("missing or malformed iat")
	case iat.After(now.Add(leeway)):
		return LogoutResult{}, badLogout("iat is in the future")
	case now.Sub(iat) > a.logout.maxAge+leeway:
		return LogoutResult{}, badLogout("too old")
	}
	if exp, ok, err := numericDate(claims, "exp"); err != nil || (ok && now.After(exp.Add(leeway))) {
		return LogoutResult{}, badLogout("expired")
	}
	events, _ := claims["events"].(map[string]any)
	if ev, ok := events[BackchannelLogoutEvent].(map[string]any); !ok || ev == nil {
		return LogoutResult{}, badLogout("events has no back-channel logout event")
	}
	if _, ok := claims["nonce"]; ok {
		return LogoutResult{}, badLogout("a logout token must not have a nonce")
	}
	sub, subOK := claims["sub"].(string)
	sid, sidOK := claims["sid"].(string)
	if _, present := claims["sub"]; present && (!subOK || sub == "") {
		return LogoutResult{}, badLogout("malformed sub")
	}
	if _, present := claims["sid"]; present && (!sidOK || sid == "") {
		return LogoutResult{}, badLogout("malformed sid")
	}
	if sub == "" && sid == "" {
		return LogoutResult{}, badLogout("neither sub nor sid")
	}
	jti, _ := claims["jti"].(string)
	if jti == "" {
		return LogoutResult{}, badLogout("no jti")
	}
	switch a.logout.replay.add(replayKey("logout", is.id, jti), now) {
	case replaySeen:
		return LogoutResult{}, badLogout("replayed (jti seen before)")
	case replayFull:
		return LogoutResult{}, &UnavailableError{Issuer: is.id, Endpoint: "logout replay cache", Err: errors.New("replay cache full")}
	}
	a.logout.gen.Add(1)
	res := LogoutResult{Issuer: is.id, Subject: sub, SessionID: sid}
	if a.cache != nil {
		if sub != "" {
			res.Evicted += a.cache.RemoveTagged(cache.TagOf("sub", is.id, sub))
		}
		if sid != "" {
			res.Evicted += a.cache.RemoveTagged(cache.TagOf("sid", is.id, sid))
		}
	}
	return res, nil
}
