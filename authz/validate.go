package authz

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// Defaults applied to zero-valued Config fields.
const (
	DefaultLeeway              = 60 * time.Second
	DefaultHTTPTimeout         = 2 * time.Second
	DefaultJWKSRefreshInterval = 30 * time.Second
	// MaxResponseSize bounds every OP response body that is read (1 MiB); a larger
	// reply is treated as a broken OP (unavailable).
	MaxResponseSize = 1 << 20
)

// Userinfo modes (IssuerConfig.Userinfo).
const (
	UserinfoRequired = "required" // anything but a 200 with a JSON object denies
	UserinfoOptional = "optional" // a 200 is merged; failures are logged, token claims alone used
	UserinfoNever    = "never"    // userinfo is not called
)

// Introspection modes (IssuerConfig.Introspect).
const (
	IntrospectNever  = "never"  // never introspect
	IntrospectOpaque = "opaque" // introspect opaque tokens only
	IntrospectAlways = "always" // introspect JWTs as well
)

// DPoP modes (IssuerConfig.DPoP).
const (
	DPoPDisabled = "disabled"
	DPoPAllowed  = "allowed"
	DPoPRequired = "required"
)

// Certificate-binding modes (IssuerConfig.MTLSBound).
const (
	MTLSAllowed  = "allowed"
	MTLSRequired = "required"
)

// Defaults of DPoPConfig and LogoutConfig.
const (
	DefaultDPoPMaxAge            = 60 * time.Second
	DefaultDPoPClockSkew         = 5 * time.Second
	DefaultDPoPReplayCacheSize   = 100000
	DefaultLogoutMaxAge          = 2 * time.Minute
	DefaultLogoutReplayCacheSize = 10000
)

// DefaultDPoPAlgorithms is the default DPoPConfig.Algorithms.
var DefaultDPoPAlgorithms = []string{"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}

// supportedAlgs are the JWS algorithms a JWT may use: asymmetric only. "none" and HS*
// are never accepted (there is no shared-secret configuration).
var supportedAlgs = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"EdDSA": true,
}

// ConfigError lists every problem Validate found, each with its location in the
// configuration file (e.g. `issuers[1].userinfo: must be required, optional or never`).
type ConfigError struct {
	Problems []string
}

// Error lists the problems, one per line.
func (e *ConfigError) Error() string {
	return "authz: invalid configuration:\n  " + strings.Join(e.Problems, "\n  ")
}

// normalizeIssuer strips one trailing '/', the form in which issuers are compared.
func normalizeIssuer(s string) string { return strings.TrimSuffix(s, "/") }

// Validate checks c and reports every problem at once as a *ConfigError. It has no side
// effects and makes no network request; it reads CAFile to check that it holds PEM
// certificates. Locations name the configuration file keys: `issuers[i].…` for issuers
// and `verification.…` for everything else.
func (c Config) Validate() error {
	var p []string
	bad := func(loc, format string, a ...any) {
		p = append(p, loc+": "+fmt.Sprintf(format, a...))
	}
	seen := map[string]int{}
	for i, is := range c.Issuers {
		loc := fmt.Sprintf("issuers[%d]", i)
		if is.Issuer == "" {
			bad(loc+".issuer", "is required")
		} else if err := checkURL(is.Issuer); err != nil {
			bad(loc+".issuer", "%v", err)
		} else {
			n := normalizeIssuer(is.Issuer)
			if j, dup := seen[n]; dup {
				bad(loc+".issuer", "duplicates issuers[%d]", j)
			} else {
				seen[n] = i
			}
		}
		if is.DiscoveryURL != "" {
			if err := checkURL(is.DiscoveryURL); err != nil {
				bad(loc+".discovery_url", "%v", err)
			}
		}
		for j, aud := range is.Audiences {
			if strings.TrimSpace(aud) == "" {
				bad(fmt.Sprintf("%s.audiences[%d]", loc, j), "must not be empty")
			}
		}
		for j, alg := range is.Algorithms {
			l := fmt.Sprintf("%s.algorithms[%d]", loc, j)
			switch {
			case strings.EqualFold(alg, "none"):
				bad(l, `"none" is never allowed`)
			case strings.HasPrefix(strings.ToUpper(alg), "HS"):
				bad(l, "%q needs a shared secret, which is not supported: use an asymmetric algorithm", alg)
			case !supportedAlgs[alg]:
				bad(l, "unknown algorithm %q (supported: RS256/384/512, PS256/384/512, ES256/384/512, EdDSA)", alg)
			}
		}
		switch is.Userinfo {
		case "", UserinfoRequired, UserinfoOptional, UserinfoNever:
		default:
			bad(loc+".userinfo", "must be required, optional or never (got %q)", is.Userinfo)
		}
		switch is.Introspect {
		case "", IntrospectNever:
		case IntrospectOpaque, IntrospectAlways:
			if is.ClientID == "" || (is.ClientSecret == "" && is.ClientSecretFile == "") {
				bad(loc+".introspect", "%q needs client_id and client_secret (or client_secret_file)", is.Introspect)
			}
		default:
			bad(loc+".introspect", "must be never, opaque or always (got %q)", is.Introspect)
		}
		for j, aud := range is.LogoutAudiences {
			if strings.TrimSpace(aud) == "" {
				bad(fmt.Sprintf("%s.logout_audiences[%d]", loc, j), "must not be empty")
			}
		}
		switch is.DPoP {
		case "", DPoPDisabled, DPoPAllowed, DPoPRequired:
		default:
			bad(loc+".dpop", "must be disabled, allowed or required (got %q)", is.DPoP)
		}
		switch is.MTLSBound {
		case "", MTLSAllowed, MTLSRequired:
		default:
			bad(loc+".mtls_bound", "must be allowed or required (got %q)", is.MTLSBound)
		}
		if is.ClientSecret != "" && is.ClientID == "" {
			bad(loc+".client_secret", "is set without client_id")
		}
		if is.ClientSecretFile != "" && is.ClientID == "" {
			bad(loc+".client_secret_file", "is set without client_id")
		}
	}
	if c.OPHint != "" {
		if _, err := regexp.Compile(c.OPHint); err != nil {
			bad("verification.op_hint", "not a regular expression: %v", err)
		}
	}
	if c.Leeway < 0 || c.Leeway.D() > time.Hour {
		bad("verification.leeway", "must be between 0 and 1h (got %s)", c.Leeway.D())
	}
	if c.HTTPTimeout < 0 || c.HTTPTimeout.D() > 5*time.Minute {
		bad("verification.http_timeout", "must be between 0 and 5m (got %s)", c.HTTPTimeout.D())
	}
	if c.JWKSRefreshInterval < 0 {
		bad("verification.jwks_refresh_interval", "must not be negative (got %s)", c.JWKSRefreshInterval.D())
	}
	if b := c.Breaker; b.FailureThreshold < 0 || b.FailureThreshold > 1000 {
		bad("verification.breaker.failure_threshold", "must be between 0 and 1000 (got %d)", b.FailureThreshold)
	}
	if b := c.Breaker; b.OpenDuration < 0 || b.OpenDuration.D() > time.Hour {
		bad("verification.breaker.open_duration", "must be between 0 and 1h (got %s)", b.OpenDuration.D())
	}
	if b := c.Breaker; b.MaxConcurrent < 0 || b.MaxConcurrent > 10000 {
		bad("verification.breaker.max_concurrent", "must be between 0 and 10000 (got %d)", b.MaxConcurrent)
	}
	if b := c.Breaker; b.MaxRetryAfter < 0 || b.MaxRetryAfter.D() > 24*time.Hour {
		bad("verification.breaker.max_retry_after", "must be between 0 and 24h (got %s)", b.MaxRetryAfter.D())
	}
	if c.MaxTokenSize < 0 || c.MaxTokenSize > 1<<20 {
		bad("verification.max_token_size", "must be between 0 and 1048576 (got %d)", c.MaxTokenSize)
	}
	if c.CAFile != "" {
		if b, err := os.ReadFile(c.CAFile); err != nil {
			bad("verification.ca_file", "%v", err)
		} else if !x509.NewCertPool().AppendCertsFromPEM(b) {
			bad("verification.ca_file", "%s holds no PEM certificate", c.CAFile)
		}
	}
	for j, alg := range c.DPoP.Algorithms {
		if !supportedAlgs[alg] {
			bad(fmt.Sprintf("verification.dpop.algorithms[%d]", j), "unsupported algorithm %q (asymmetric only: RS256/384/512, PS256/384/512, ES256/384/512, EdDSA)", alg)
		}
	}
	if c.DPoP.MaxAge < 0 || c.DPoP.MaxAge.D() > time.Hour {
		bad("verification.dpop.max_age", "must be between 0 and 1h (got %s)", c.DPoP.MaxAge.D())
	}
	if c.DPoP.ClockSkew < 0 || c.DPoP.ClockSkew.D() > 5*time.Minute {
		bad("verification.dpop.clock_skew", "must be between 0 and 5m (got %s)", c.DPoP.ClockSkew.D())
	}
	if c.DPoP.ReplayCacheSize < 0 {
		bad("verification.dpop.replay_cache_size", "must not be negative (got %d)", c.DPoP.ReplayCacheSize)
	}
	if c.Logout.MaxAge < 0 || c.Logout.MaxAge.D() > time.Hour {
		bad("verification.logout.max_age", "must be between 0 and 1h (got %s)", c.Logout.MaxAge.D())
	}
	if c.Logout.ReplayCacheSize < 0 {
		bad("verification.logout.replay_cache_size", "must not be negative (got %d)", c.Logout.ReplayCacheSize)
	}
	if c.Cache.Size < 0 {
		bad("verification.cache.size", "must not be negative (got %d)", c.Cache.Size)
	}
	if c.Cache.MaxTTL < 0 {
		bad("verification.cache.max_ttl", "must not be negative (got %s)", c.Cache.MaxTTL.D())
	}
	if c.Cache.StaleIfError < 0 {
		bad("verification.cache.stale_if_error", "must not be negative (got %s)", c.Cache.StaleIfError.D())
	}
	if len(p) > 0 {
		return &ConfigError{Problems: p}
	}
	return nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL: %v", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("must be an http(s) URL (got %q)", s)
	}
	if u.Host == "" {
		return fmt.Errorf("has no host (got %q)", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("must not carry user info, a query or a fragment (got %q)", s)
	}
	return nil
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Leeway == 0 {
		c.Leeway = Duration(DefaultLeeway)
	}
	if c.HTTPTimeout == 0 {
		c.HTTPTimeout = Duration(DefaultHTTPTimeout)
	}
	if c.JWKSRefreshInterval == 0 {
		c.JWKSRefreshInterval = Duration(DefaultJWKSRefreshInterval)
	}
	if c.MaxTokenSize == 0 {
		c.MaxTokenSize = DefaultMaxTokenSize
	}
	if len(c.DPoP.Algorithms) == 0 {
		c.DPoP.Algorithms = DefaultDPoPAlgorithms
	}
	if c.DPoP.MaxAge == 0 {
		c.DPoP.MaxAge = Duration(DefaultDPoPMaxAge)
	}
	if c.DPoP.ClockSkew == 0 {
		c.DPoP.ClockSkew = Duration(DefaultDPoPClockSkew)
	}
	if c.DPoP.ReplayCacheSize == 0 {
		c.DPoP.ReplayCacheSize = DefaultDPoPReplayCacheSize
	}
	if c.Logout.MaxAge == 0 {
		c.Logout.MaxAge = Duration(DefaultLogoutMaxAge)
	}
	if c.Logout.ReplayCacheSize == 0 {
		c.Logout.ReplayCacheSize = DefaultLogoutReplayCacheSize
	}
	return c
}
