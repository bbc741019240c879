package envoy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
)

// ErrInvalidConfig is wrapped by every problem Config.Validate reports.
var ErrInvalidConfig = errors.New("envoy: invalid config")

// Default values of Config. A zero field in a Config means "the default"; DefaultConfig
// returns a Config with every default filled in.
const (
	DefaultGRPCListen        = ":9001"
	DefaultHTTPListen        = ":9002"
	DefaultAdminListen       = ":9090"
	DefaultRealm             = "flaat-extauthz"
	DefaultAccessTokenHeader = "x-auth-request-access-token"
	DefaultGroupsClaim       = "groups"
	DefaultShutdownGrace     = 10 * time.Second
	DefaultKeepaliveMinTime  = 10 * time.Second
	// DefaultDenyLogInterval is how long identical denials of one token are only counted
	// after one was logged (Config.DenyLogInterval).
	DefaultDenyLogInterval = 10 * time.Second
	// DefaultStreamWorkers is the number of gRPC stream workers (GRPCConfig.StreamWorkers).
	DefaultStreamWorkers = 64
	// ReadinessEager: not ready until every configured issuer's discovery succeeded once.
	ReadinessEager = "eager"
	// ReadinessLazy: ready as soon as the listeners are up; OPs are contacted on first use.
	ReadinessLazy = "lazy"
)

// Config is the `server:` section of the configuration file (JSON tags; the YAML file is
// converted to JSON and decoded with DisallowUnknownFields). The zero value of every
// field means the documented default, so both Config{} and DefaultConfig() are usable;
// Validate reports every problem at once and NewServer calls it.
//
// Listener, TLS file name, keepalive, shutdown and readiness settings are read once when
// the listeners start; a reload (Server.Reload) does not change them. The TLS files
// themselves are re-read when they change (Server.ListenerTLS).
type Config struct {
	// GRPCListen is the address of the ext_authz gRPC listener. Default ":9001".
	GRPCListen string `json:"grpc_listen,omitempty"`
	// HTTPListen is the address of the HTTP auth-request listener (Envoy http_service,
	// nginx auth_request, Traefik forwardAuth). Default ":9002".
	HTTPListen string `json:"http_listen,omitempty"`
	// AdminListen is the address of the admin listener (/metrics, /healthz, /readyz).
	// Default ":9090". Do not expose it to clients.
	AdminListen string `json:"admin_listen,omitempty"`

	// TokenHeader names an alternative request header that carries the token (for
	// example "x-forwarded-access-token"). When set and present in a request it is used
	// instead of Authorization; a value without a scheme is taken as a bare bearer token.
	// Default: none (only Authorization).
	TokenHeader string `json:"token_header,omitempty"`
	// Realm is the realm of WWW-Authenticate challenges. Default "flaat-extauthz".
	Realm string `json:"realm,omitempty"`

	// Headers are the identity headers set on allowed requests (name ← claim). nil means
	// the defaults: x-auth-request-user ← sub, x-auth-request-email ← email,
	// x-auth-request-groups ← groups, x-auth-request-issuer ← iss. An explicit empty list
	// sets none. Every configured header that the identity lacks is removed from the
	// request, so a client cannot send its own copy to the upstream.
	Headers []HeaderConfig `json:"headers,omitempty"`
	// ForwardAccessToken sends the verified bearer token to the upstream in
	// AccessTokenHeader. Default false: the header is removed from every allowed request.
	// Turn it on only for upstreams that call other services on the user's behalf.
	ForwardAccessToken bool `json:"forward_access_token,omitempty"`
	// AccessTokenHeader is the header for ForwardAccessToken. Default
	// "x-auth-request-access-token".
	AccessTokenHeader string `json:"access_token_header,omitempty"`
	// StripAuthorization removes the Authorization header (and TokenHeader) from allowed
	// requests before they reach the upstream. Default false.
	StripAuthorization bool `json:"strip_authorization,omitempty"`

	// GroupsClaim is the claim copied to the dynamic metadata key "groups". Default "groups".
	GroupsClaim string `json:"groups_claim,omitempty"`
	// MetadataClaims are further claims copied into the ext_authz dynamic metadata (gRPC
	// only), beside "sub", "iss" and "groups". Envoy stores the metadata under the ext_authz
	// filter's own namespace, envoy.filters.http.ext_authz, for RBAC, rate limits and
	// access logs. Default none.
	MetadataClaims []string `json:"metadata_claims,omitempty"`

	// PathPrefix is the HTTP check path prefix: for Envoy http_service it must equal the
	// filter's path_prefix, and the original path is the rest of the request path.
	// Requests outside it get 404. Default "" (every path is a check).
	PathPrefix string `json:"path_prefix,omitempty"`
	// IgnoreForwardedHeaders is the older spelling of HTTP.Forwarded "envoy": only the
	// request line is read. Kept for existing configuration files; true together with
	// another HTTP.Forwarded mode is a configuration error. Default false.
	IgnoreForwardedHeaders bool `json:"ignore_forwarded_headers,omitempty"`
	// HTTP tunes the HTTP auth-request handler: where the original request's method,
	// URI and host come from (http.forwarded). Default: "auto".
	HTTP HTTPConfig `json:"http,omitzero"`

	// ClientCert names the trusted proxy header from which the HTTP handler reads the
	// client certificate of the original connection (certificate-bound tokens, RFC
	// 8705). Default none. See ClientCertConfig for the danger.
	ClientCert ClientCertConfig `json:"client_cert,omitzero"`
	// BackchannelListen is the address of the OIDC Back-Channel Logout receiver (POST
	// /backchannel-logout). Default "" (off). It must be reachable by the OPs, not by
	// clients: bind it to an internal address or protect it with a network policy.
	BackchannelListen string `json:"backchannel_listen,omitempty"`

	// GRPC tunes the gRPC server.
	GRPC GRPCConfig `json:"grpc,omitzero"`
	// TLS enables TLS (and mTLS) on the gRPC and HTTP check listeners. Default off.
	TLS TLSConfig `json:"tls,omitzero"`

	// ShutdownGrace bounds how long in-flight checks may finish after SIGTERM.
	// Default 10s.
	ShutdownGrace authz.Duration `json:"shutdown_grace,omitempty"`
	// Readiness is "eager" (ready only once every configured issuer's discovery has
	// succeeded) or "lazy" (ready when the listeners are up). Default "eager".
	Readiness string `json:"readiness,omitempty"`
	// DenyLogLevel is the slog level of the one log line per denial: "debug", "info" or
	// "warn". Default "info". Allows are logged at debug; OP outages at warn.
	DenyLogLevel string `json:"deny_log_level,omitempty"`
	// DenyLogInterval samples the denial lines of repeated bad tokens (log-flood
	// protection): the first denial of a token with one outcome, route and reason is
	// logged; the identical ones within the interval after it are only counted, and the
	// next line of that token reports them as "suppressed" (how many identical denials
	// were left out since its last line). A denial of another token, or of the same
	// token with another reason or route, is logged at once. Denials without a token,
	// allows and OP outages are never sampled, and the decision metrics count every
	// denial. nil (absent): 10s (DefaultDenyLogInterval); 0: one line per denial. A
	// reload starts the count afresh.
	DenyLogInterval *authz.Duration `json:"deny_log_interval,omitempty"`
}

// HeaderConfig is one identity header: the claim's values, joined by ",", set on the
// upstream request. Inside each value '%', ',', control bytes, invalid UTF-8 and
// leading or trailing spaces are percent-encoded, so the list is unambiguous: split on
// "," and percent-decode each part to read the exact values.
type HeaderConfig struct {
	// Name is the header name; it is sent lower-case.
	Name string `json:"name"`
	// Claim is the claim name: a literal name first, then a dotted path into nested
	// objects ("realm_access.roles").
	Claim string `json:"claim"`
}

// GRPCConfig tunes the gRPC listener.
type GRPCConfig struct {
	// MaxConcurrentStreams limits concurrent Check calls per connection. Default 0: the
	// gRPC default (no practical limit); Envoy multiplexes many checks on few connections.
	MaxConcurrentStreams uint32 `json:"max_concurrent_streams,omitempty"`
	// StreamWorkers is the number of goroutines kept to run Check calls. A call that
	// finds no idle worker runs on a goroutine of its own, as it would without workers,
	// so this bounds nothing; it only spares most calls a fresh goroutine, whose small
	// stack the call would first grow by copying it, several times (about a fifth of the
	// server's CPU under load without workers). Idle workers cost their stacks (a few
	// KiB each). Default 0: 64 (DefaultStreamWorkers); negative: none, a new goroutine
	// per call.
	StreamWorkers int `json:"stream_workers,omitempty"`
	// KeepaliveTime: the server pings an idle connection after this long. Default 0:
	// gRPC's 2h.
	KeepaliveTime authz.Duration `json:"keepalive_time,omitempty"`
	// KeepaliveTimeout: a ping unanswered for this long closes the connection. Default
	// 0: gRPC's 20s.
	KeepaliveTimeout authz.Duration `json:"keepalive_timeout,omitempty"`
	// KeepaliveMinTime is the shortest client ping interval tolerated; clients that
	// ping more often are disconnected. Default 10s. Pings without active streams are
	// permitted (Envoy keeps idle connections warm).
	KeepaliveMinTime authz.Duration `json:"keepalive_min_time,omitempty"`
	// MaxConnectionAge closes connections after this long so that clients re-resolve
	// and spread over replicas. Default 0: never.
	MaxConnectionAge authz.Duration `json:"max_connection_age,omitempty"`
	// MaxConnectionAgeGrace is how long in-flight calls may finish after
	// MaxConnectionAge. Default 0: gRPC's infinity.
	MaxConnectionAgeGrace authz.Duration `json:"max_connection_age_grace,omitempty"`
}

// TLSConfig is the listener certificate and, for mTLS, the CA that client certificates
// must chain to. Files are read when the listeners start and again when they change
// (CertReloader); the file names themselves need a restart.
type TLSConfig struct {
	// CertFile and KeyFile are PEM files; both or neither. Neither: plaintext (fine on
	// loopback or inside a mesh that encrypts for you).
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
	// ClientCAFile, when set, requires every client (Envoy) to present a certificate
	// that chains to one of these PEM CAs (mTLS). Needs CertFile.
	ClientCAFile string `json:"client_ca_file,omitempty"`
}

// Enabled reports whether a certificate is configured.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// Load reads the files into a server *tls.Config (TLS 1.2 or newer; client
// certificates required and verified when ClientCAFile is set). It returns nil, nil
// when TLS is not enabled.
func (t TLSConfig) Load() (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("envoy: load tls certificate: %w", err)
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if t.ClientCAFile != "" {
		pem, err := os.ReadFile(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("envoy: load tls client ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("envoy: load tls client ca: no PEM certificate in %s", t.ClientCAFile)
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// DefaultHeaders returns the default identity headers.
func DefaultHeaders() []HeaderConfig {
	return []HeaderConfig{
		{Name: "x-auth-request-user", Claim: "sub"},
		{Name: "x-auth-request-email", Claim: "email"},
		{Name: "x-auth-request-groups", Claim: "groups"},
		{Name: "x-auth-request-issuer", Claim: "iss"},
	}
}

// DefaultConfig returns the configuration with every default filled in. Decoding the
// config file's `server:` section into it overrides only the fields the file sets
// (a `headers:` list replaces the default list).
func DefaultConfig() Config {
	return Config{}.withDefaults()
}

// withDefaults fills zero fields with their defaults and normalises names.
func (c Config) withDefaults() Config {
	if c.GRPCListen == "" {
		c.GRPCListen = DefaultGRPCListen
	}
	if c.HTTPListen == "" {
		c.HTTPListen = DefaultHTTPListen
	}
	if c.AdminListen == "" {
		c.AdminListen = DefaultAdminListen
	}
	if c.Realm == "" {
		c.Realm = DefaultRealm
	}
	if c.Headers == nil {
		c.Headers = DefaultHeaders()
	} else {
		hs := make([]HeaderConfig, len(c.Headers))
		for i, h := range c.Headers {
			hs[i] = HeaderConfig{Name: strings.ToLower(h.Name), Claim: h.Claim}
		}
		c.Headers = hs
	}
	c.TokenHeader = strings.ToLower(c.TokenHeader)
	c.ClientCert.Header = strings.ToLower(c.ClientCert.Header)
	if c.AccessTokenHeader == "" {
		c.AccessTokenHeader = DefaultAccessTokenHeader
	}
	c.AccessTokenHeader = strings.ToLower(c.AccessTokenHeader)
	if c.GroupsClaim == "" {
		c.GroupsClaim = DefaultGroupsClaim
	}
	c.PathPrefix = strings.TrimRight(c.PathPrefix, "/")
	if c.HTTP.Forwarded.Mode == "" {
		c.HTTP.Forwarded.Mode = ForwardedAuto
		if c.IgnoreForwardedHeaders {
			c.HTTP.Forwarded.Mode = ForwardedEnvoy
		}
	}
	if c.GRPC.KeepaliveMinTime == 0 {
		c.GRPC.KeepaliveMinTime = authz.Duration(DefaultKeepaliveMinTime)
	}
	if c.GRPC.StreamWorkers == 0 {
		c.GRPC.StreamWorkers = DefaultStreamWorkers
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = authz.Duration(DefaultShutdownGrace)
	}
	if c.Readiness == "" {
		c.Readiness = ReadinessEager
	}
	if c.DenyLogLevel == "" {
		c.DenyLogLevel = "info"
	}
	if c.DenyLogInterval == nil {
		d := authz.Duration(DefaultDenyLogInterval)
		c.DenyLogInterval = &d
	}
	return c
}

// Validate checks c (after applying defaults) and reports every problem in one error;
// each wraps ErrInvalidConfig. It reads no files and has no side effects.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: server.%s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, a...)))
	}

	ports := map[string]string{}
	for _, l := range []struct{ field, addr string }{
		{"grpc_listen", c.GRPCListen}, {"http_listen", c.HTTPListen}, {"admin_listen", c.AdminListen},
		{"backchannel_listen", c.BackchannelListen},
	} {
		if l.addr == "" && l.field == "backchannel_listen" {
			continue // off
		}
		_, port, err := net.SplitHostPort(l.addr)
		if err != nil {
			bad(l.field, "%q is not host:port: %v", l.addr, err)
			continue
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			bad(l.field, "%q: port %q is not a number in 0..65535", l.addr, port)
			continue
		}
		if port == "0" {
			continue
		}
		if other, dup := ports[l.addr]; dup {
			bad(l.field, "%q is also %s", l.addr, other)
		}
		ports[l.addr] = l.field
	}

	if c.TokenHeader != "" {
		if !validHeaderName(c.TokenHeader) {
			bad("token_header", "%q is not a valid header name", c.TokenHeader)
		} else if c.TokenHeader == "authorization" {
			bad("token_header", "Authorization is always read; name another header or leave it empty")
		}
	}
	switch {
	case c.ClientCert.Header == "" && c.ClientCert.Format != "":
		bad("client_cert.header", "is required with client_cert.format")
	case c.ClientCert.Header != "" && !validHeaderName(c.ClientCert.Header):
		bad("client_cert.header", "%q is not a valid header name", c.ClientCert.Header)
	case c.ClientCert.Header != "" && (c.ClientCert.Header == "authorization" || c.ClientCert.Header == c.TokenHeader || c.ClientCert.Header == "dpop"):
		bad("client_cert.header", "%q carries a credential, not a certificate", c.ClientCert.Header)
	}
	if c.ClientCert.Header != "" && c.ClientCert.Format != CertFormatXFCC && c.ClientCert.Format != CertFormatEscapedPEM {
		bad("client_cert.format", "must be %q or %q (got %q)", CertFormatXFCC, CertFormatEscapedPEM, c.ClientCert.Format)
	}
	if !validRealm(c.Realm) {
		bad("realm", "%q: only printable ASCII without '\"' and '\\' is allowed", c.Realm)
	}

	seen := map[string]bool{}
	for i, h := range c.Headers {
		field := fmt.Sprintf("headers[%d]", i)
		switch {
		case !validHeaderName(h.Name):
			bad(field+".name", "%q is not a valid header name", h.Name)
		case reservedHeader(h.Name):
			bad(field+".name", "%q cannot be an identity header", h.Name)
		case h.Name == c.TokenHeader || h.Name == c.AccessTokenHeader:
			bad(field+".name", "%q is the token header", h.Name)
		case seen[h.Name]:
			bad(field+".name", "%q is listed twice", h.Name)
		}
		seen[h.Name] = true
		if h.Claim == "" {
			bad(field+".claim", "must not be empty")
		}
	}
	if !validHeaderName(c.AccessTokenHeader) || reservedHeader(c.AccessTokenHeader) {
		bad("access_token_header", "%q is not a usable header name", c.AccessTokenHeader)
	} else if c.AccessTokenHeader == c.TokenHeader {
		bad("access_token_header", "%q is also token_header", c.AccessTokenHeader)
	}
	for i, m := range c.MetadataClaims {
		if m == "" {
			bad(fmt.Sprintf("metadata_claims[%d]", i), "must not be empty")
		}
	}
	if c.PathPrefix != "" && (!strings.HasPrefix(c.PathPrefix, "/") || strings.ContainsAny(c.PathPrefix, "?# \t\r\n")) {
		bad("path_prefix", "%q must start with '/' and hold no query, fragment or spaces", c.PathPrefix)
	}
	for _, d := range []struct {
		field string
		v     authz.Duration
	}{
		{"grpc.keepalive_time", c.GRPC.KeepaliveTime}, {"grpc.keepalive_timeout", c.GRPC.KeepaliveTimeout},
		{"grpc.keepalive_min_time", c.GRPC.KeepaliveMinTime}, {"grpc.max_connection_age", c.GRPC.MaxConnectionAge},
		{"grpc.max_connection_age_grace", c.GRPC.MaxConnectionAgeGrace}, {"shutdown_grace", c.ShutdownGrace},
		{"deny_log_interval", *c.DenyLogInterval},
	} {
		if d.v < 0 {
			bad(d.field, "must not be negative")
		}
	}
	c.HTTP.Forwarded.validate("http.forwarded", bad)
	if c.IgnoreForwardedHeaders && c.HTTP.Forwarded.Mode != ForwardedEnvoy {
		bad("ignore_forwarded_headers", "true means http.forwarded: envoy, but http.forwarded is %q; drop ignore_forwarded_headers", c.HTTP.Forwarded.Mode)
	}
	if c.GRPC.StreamWorkers > maxStreamWorkers {
		bad("grpc.stream_workers", "%d is more than %d", c.GRPC.StreamWorkers, maxStreamWorkers)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls", "cert_file and key_file must be set together")
	}
	if c.TLS.ClientCAFile != "" && c.TLS.CertFile == "" {
		bad("tls.client_ca_file", "mTLS needs cert_file and key_file")
	}
	if c.Readiness != ReadinessEager && c.Readiness != ReadinessLazy {
		bad("readiness", "%q: want %q or %q", c.Readiness, ReadinessEager, ReadinessLazy)
	}
	if _, ok := parseLevel(c.DenyLogLevel); !ok {
		bad("deny_log_level", "%q: want debug, info or warn", c.DenyLogLevel)
	}
	return errors.Join(errs...)
}

// maxStreamWorkers bounds GRPCConfig.StreamWorkers: each idle worker holds a stack.
const maxStreamWorkers = 1 << 16

// validHeaderName reports whether s is a non-empty RFC 9110 token (tchar*).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return false
		}
	}
	return true
}

func isTchar(b byte) bool {
	switch {
	case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
}

// reservedHeader: headers that must never be set or removed as identity headers.
func reservedHeader(name string) bool {
	switch strings.ToLower(name) {
	case "authorization", "host", "connection", "content-length", "content-type", "transfer-encoding",
		"te", "upgrade", "keep-alive", "proxy-connection", "cookie", "x-request-id",
		"x-envoy-auth-headers-to-remove":
		return true
	}
	return false
}

func validRealm(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 || b > 0x7e || b == '"' || b == '\\' {
			return false
		}
	}
	return true
}
