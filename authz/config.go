package authz

import (
	"encoding/json"
	"fmt"
	"time"
)

// Config configures token verification. It is a plain struct: the zero value of every
// field means "the documented default". The configuration file's `issuers:` and
// `verification:` sections decode into it (JSON tags; YAML is converted to JSON first).
// Validate reports every problem at once; New calls it.
type Config struct {
	// Issuers is the list of trusted OPs. A token from any other issuer is denied
	// without a network request. At least one is required unless every route is public.
	Issuers []IssuerConfig `json:"issuers"`
	// OPHint is a regular expression matched against issuer URLs: only matching issuers
	// are asked in the opaque-token search (flaat's op_hint). Empty: all.
	OPHint string `json:"op_hint,omitempty"`
	// Leeway is the clock skew allowed for exp, nbf and iat. Default 60s.
	Leeway Duration `json:"leeway,omitempty"`
	// HTTPTimeout bounds each call to an OP (discovery, JWKS, userinfo, introspection).
	// Default 2s.
	HTTPTimeout Duration `json:"http_timeout,omitempty"`
	// JWKSRefreshInterval is the minimum time between two JWKS refreshes of one issuer
	// that are triggered by an unknown kid. Default 30s.
	JWKSRefreshInterval Duration `json:"jwks_refresh_interval,omitempty"`
	// MaxTokenSize is the largest accepted token in bytes, checked before any parsing.
	// Default 8192.
	MaxTokenSize int `json:"max_token_size,omitempty"`
	// CAFile is a PEM bundle of extra CAs to trust for OP connections.
	CAFile string `json:"ca_file,omitempty"`
	// InsecureSkipTLSVerify disables TLS certificate checks for OP connections.
	// It MUST NOT be used in production: anyone on the path can then mint identities.
	InsecureSkipTLSVerify bool `json:"insecure_skip_tls_verify,omitempty"`
	// Cache configures the verified-identity cache.
	Cache CacheConfig `json:"cache"`
	// Breaker configures the per-OP-host circuit breaker and concurrency limit of the
	// OP client.
	Breaker BreakerConfig `json:"breaker"`
	// DPoP configures the checks of DPoP proofs (RFC 9449); whether an issuer's tokens
	// may or must be DPoP-bound is IssuerConfig.DPoP.
	DPoP DPoPConfig `json:"dpop"`
	// Logout configures the checks of OIDC back-channel logout tokens.
	Logout LogoutConfig `json:"logout"`
}

// BreakerConfig configures the circuit breaker and the concurrency limit that the OP
// client keeps per OP host (host[:port]). While a host's breaker is open, every request
// to it fails fast and checks that need it are answered 503 (never allowed); after the
// open period one probe request is let through (half-open) and its outcome closes or
// re-opens the breaker. The state is exported as flaat_extauthz_op_breaker_state{host}.
type BreakerConfig struct {
	// FailureThreshold is how many consecutive failures (transport errors, timeouts,
	// 5xx, 429, replies over 1 MiB, a 200 that is not JSON) open the breaker. Default 5.
	// Lower: fail fast sooner, but a short blip turns checks into 503s.
	FailureThreshold int `json:"failure_threshold,omitempty"`
	// OpenDuration is how long an open breaker fails fast before a probe. Default 10s.
	OpenDuration Duration `json:"open_duration,omitempty"`
	// MaxConcurrent bounds the requests in flight per OP host; excess requests wait
	// until their deadline (http_timeout), then fail. Default 16.
	MaxConcurrent int `json:"max_concurrent,omitempty"`
	// MaxRetryAfter caps how long an OP's 429 Retry-After keeps the breaker open.
	// Default 5m.
	MaxRetryAfter Duration `json:"max_retry_after,omitempty"`
}

// DPoPConfig configures DPoP proof verification (RFC 9449). Every proof is verified on
// every request (never cached).
type DPoPConfig struct {
	// Algorithms is the allow-list of proof JWS algorithms, also announced in the
	// WWW-Authenticate algs parameter. Default ES256, ES384, ES512, RS256, RS384, RS512,
	// PS256, PS384, PS512, EdDSA. Symmetric algorithms and "none" are never accepted.
	Algorithms []string `json:"algorithms,omitempty"`
	// MaxAge is how old a proof's iat may be. Default 60s. It is also how long a proof's
	// jti is remembered: a longer window needs a larger replay cache.
	MaxAge Duration `json:"max_age,omitempty"`
	// ClockSkew is how far in the future a proof's iat may be. Default 5s.
	ClockSkew Duration `json:"clock_skew,omitempty"`
	// ReplayCacheSize bounds the jti replay cache (entries; about 100 bytes each).
	// Default 100000. When it is full of unexpired entries, further proofs are refused
	// (503) rather than accepted unchecked. The cache is per replica: a proof replayed
	// to another replica is not detected unless the proxy routes one client to one
	// replica (Envoy consistent hashing on the DPoP key or the token).
	ReplayCacheSize int `json:"replay_cache_size,omitempty"`
}

// LogoutConfig configures the OIDC Back-Channel Logout 1.0 receiver (the listener is
// server.backchannel_listen). A logout token's aud must contain one of the issuer's
// logout_audiences (default: its client_id).
type LogoutConfig struct {
	// MaxAge is how old a logout token's iat may be. Default 2m. Its jti is remembered
	// for as long, so a replay within the window is refused.
	MaxAge Duration `json:"max_age,omitempty"`
	// ReplayCacheSize bounds the logout jti replay cache. Default 10000.
	ReplayCacheSize int `json:"replay_cache_size,omitempty"`
}

// IssuerConfig is one trusted OP.
type IssuerConfig struct {
	// Issuer is the issuer URL. A JWT's iss must equal it exactly, or exactly the
	// issuer of the OP's discovery document: a trailing-slash variant of either is
	// another issuer and is refused (OIDC Discovery 4.3, Core 3.1.3.7). One trailing '/'
	// on this setting itself is ignored when the issuer is looked up.
	Issuer string `json:"issuer"`
	// RequireSub: a JWT access token must carry a non-empty string sub (RFC 9068 2.2;
	// sub also keys the identity headers). Default true; false accepts tokens without
	// sub from an OP that omits it (the identity then has no Subject, and policies on
	// sub never match).
	RequireSub *bool `json:"require_sub,omitempty"`
	// DiscoveryURL overrides <issuer>/.well-known/openid-configuration.
	DiscoveryURL string `json:"discovery_url,omitempty"`
	// Audiences: if non-empty, a JWT's aud must contain at least one of them.
	Audiences []string `json:"audiences,omitempty"`
	// Algorithms is the JWS alg allow-list. Default: what discovery advertises
	// (id_token_signing_alg_values_supported), minus "none" and HS*. "none" is always refused.
	Algorithms []string `json:"algorithms,omitempty"`
	// Userinfo is required | optional | never. Default: optional for JWTs; opaque tokens
	// always need userinfo or introspection to succeed.
	Userinfo string `json:"userinfo,omitempty"`
	// Introspect is never | opaque | always. Default: opaque when client credentials are
	// configured, else never.
	Introspect string `json:"introspect,omitempty"`
	// ClientID and ClientSecret authenticate introspection requests (HTTP Basic).
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	// ClientSecretFile names a file holding the client secret (surrounding white space
	// is trimmed), e.g. a mounted Kubernetes Secret, so that the secret need not be
	// written into the configuration file. Set client_secret or client_secret_file, not
	// both. The file is read when the configuration is loaded (start-up and every
	// SIGHUP reload), by internal/config; authz itself only uses ClientSecret.
	ClientSecretFile string `json:"client_secret_file,omitempty"`
	// IssuesJWT marks an OP whose access tokens are always JWTs: it is skipped in the
	// opaque-token search.
	IssuesJWT bool `json:"issues_jwt,omitempty"`
	// DPoP is disabled | allowed | required (RFC 9449). Default allowed: a DPoP-bound
	// token (cnf.jkt) must come with the DPoP scheme and a valid proof, a bearer token is
	// accepted. required: every token must be DPoP-bound. disabled: the DPoP scheme and
	// DPoP-bound tokens are refused.
	DPoP string `json:"dpop,omitempty"`
	// LogoutAudiences are the client ids whose OIDC back-channel logout tokens this
	// server accepts from the issuer (a logout token's aud must contain one): the
	// relying parties whose sessions the protected APIs serve. Default [client_id]; an
	// issuer with neither accepts no logout token.
	LogoutAudiences []string `json:"logout_audiences,omitempty"`
	// MTLSBound is allowed | required (RFC 8705). Default allowed: a certificate-bound
	// token (cnf["x5t#S256"]) must come over a connection with that client certificate,
	// other tokens are accepted. required: every token must be certificate-bound.
	MTLSBound string `json:"mtls_bound,omitempty"`
}

// CacheConfig configures the identity cache (package cache).
type CacheConfig struct {
	// Disabled turns the cache off: every request verifies the token again.
	Disabled bool `json:"disabled,omitempty"`
	// Size is the maximum number of cached identities. Default 100000. An entry takes
	// about 160 bytes plus the identity: about 0.4 KiB of live heap in all for typical
	// claims with WithClaimProjection (serve; docs/identity-memory.md), 2–4 KiB with
	// every claim kept; the process's RSS is about twice the live heap (garbage
	// collector headroom).
	Size int `json:"size,omitempty"`
	// MaxTTL caps how long an identity is reused. Default 5m. A revoked token stays
	// accepted for up to this long.
	MaxTTL Duration `json:"max_ttl,omitempty"`
	// NegativeTTL is how long a rejected token is remembered. nil (absent): 10s; 0 or a
	// negative value disables negative caching. OP errors are never cached.
	NegativeTTL *Duration `json:"negative_ttl,omitempty"`
	// StaleIfError serves an expired entry for up to this long while the OP is down,
	// as long as the token itself has not expired. Default 0 (off).
	StaleIfError Duration `json:"stale_if_error,omitempty"`
}

// Duration is a time.Duration that decodes from JSON as a Go duration string ("60s",
// "1m30s") or a number of seconds.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON encodes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON accepts "60s" or 60 (seconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case float64:
		*d = Duration(time.Duration(x * float64(time.Second)))
		return nil
	case string:
		p, err := time.ParseDuration(x)
		if err != nil {
			return fmt.Errorf("invalid duration %q: %w", x, err)
		}
		*d = Duration(p)
		return nil
	default:
		return fmt.Errorf("invalid duration %s: want a string like \"30s\" or a number of seconds", b)
	}
}
