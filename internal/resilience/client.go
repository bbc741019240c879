package resilience

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"
)

// Defaults of ClientConfig.
const (
	DefaultDialTimeout           = 2 * time.Second
	DefaultTLSHandshakeTimeout   = 2 * time.Second
	DefaultResponseHeaderTimeout = 5 * time.Second
	DefaultRequestTimeout        = 10 * time.Second
	DefaultIdleConnTimeout       = 90 * time.Second
	DefaultMaxIdleConnsPerHost   = 64
	// DefaultMaxBodyBytes bounds every response body (1 MiB, as authz.MaxResponseSize).
	DefaultMaxBodyBytes = 1 << 20
	// MaxRedirects is the most redirects NewClient's clients follow (same host only).
	MaxRedirects = 5
)

// ClientConfig configures NewClient. The zero value means the documented defaults.
type ClientConfig struct {
	// DialTimeout bounds the TCP connect. Default 2s.
	DialTimeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake. Default 2s.
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for response headers after the request was
	// written. Default 5s.
	ResponseHeaderTimeout time.Duration
	// RequestTimeout is http.Client.Timeout: the whole exchange including reading the
	// body. Default 10s. Callers should still put a (shorter) deadline on each request
	// context; authz does (Config.HTTPTimeout).
	RequestTimeout time.Duration
	// IdleConnTimeout closes idle keep-alive connections. Default 90s.
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerHost keeps this many idle connections per OP. Default 64.
	MaxIdleConnsPerHost int
	// MaxBodyBytes bounds every response body; reading more fails with
	// ErrBodyTooLarge. Default 1 MiB; negative: no limit.
	MaxBodyBytes int64
	// TLS is the TLS client configuration (CA pool, minimum version). nil: TLS 1.2+
	// with the system roots.
	TLS *tls.Config
	// Base, when set, is used as the innermost RoundTripper instead of a new
	// *http.Transport built from the fields above (tests use it to count or fake
	// requests). The timeouts above other than RequestTimeout then do not apply.
	Base http.RoundTripper
}

// NewClient returns an *http.Client for talking to OPs:
//
//   - its Transport is a resilience Transport (per-host concurrency limit and circuit
//     breaker, configured by opts; WithMaxBodyBytes is set from cfg.MaxBodyBytes unless
//     opts set it) wrapping cfg.Base or a fresh *http.Transport with the timeouts of cfg;
//   - its CheckRedirect is SameHostRedirect: a redirect to another host (or from https to
//     http) is never followed — the 3xx itself is returned, which OP code treats as a
//     broken reply;
//   - its Timeout is cfg.RequestTimeout.
//
// The *Transport is returned as well, for Stats and CloseIdleConnections.
func NewClient(cfg ClientConfig, opts ...Option) (*http.Client, *Transport) {
	cfg = cfg.withDefaults()
	base := cfg.Base
	if base == nil {
		d := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
		tc := cfg.TLS
		if tc == nil {
			tc = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		base = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           d.DialContext,
			ForceAttemptHTTP2:     true,
			TLSClientConfig:       tc,
			TLSHandshakeTimeout:   cfg.TLSHandshakeTimeout,
			ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
			IdleConnTimeout:       cfg.IdleConnTimeout,
			MaxIdleConns:          4 * cfg.MaxIdleConnsPerHost,
			MaxIdleConnsPerHost:   cfg.MaxIdleConnsPerHost,
			ExpectContinueTimeout: time.Second,
		}
	}
	limit := cfg.MaxBodyBytes
	if limit < 0 {
		limit = 0
	}
	tr := New(base, append([]Option{WithMaxBodyBytes(limit)}, opts...)...)
	return &http.Client{
		Transport:     tr,
		CheckRedirect: SameHostRedirect,
		Timeout:       cfg.RequestTimeout,
	}, tr
}

func (c ClientConfig) withDefaults() ClientConfig {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	set(&c.DialTimeout, DefaultDialTimeout)
	set(&c.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout)
	set(&c.ResponseHeaderTimeout, DefaultResponseHeaderTimeout)
	set(&c.RequestTimeout, DefaultRequestTimeout)
	set(&c.IdleConnTimeout, DefaultIdleConnTimeout)
	if c.MaxIdleConnsPerHost <= 0 {
		c.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return c
}

// errTooManyRedirects is returned by SameHostRedirect after MaxRedirects redirects.
var errTooManyRedirects = errors.New("resilience: too many redirects")

// SameHostRedirect is an http.Client CheckRedirect policy: it follows a redirect only to
// the same host (host[:port], case-insensitive) as the original request and never from
// https to http, at most MaxRedirects times. Any other redirect is not followed: the
// client returns the 3xx response itself (http.ErrUseLastResponse), so nothing is ever
// sent to a host the configuration did not name.
func SameHostRedirect(req *http.Request, via []*http.Request) error {
	if len(via) == 0 {
		return nil
	}
	if len(via) >= MaxRedirects {
		return errTooManyRedirects
	}
	orig := via[0].URL
	if !strings.EqualFold(req.URL.Host, orig.Host) || (orig.Scheme == "https" && req.URL.Scheme != "https") {
		return http.ErrUseLastResponse
	}
	return nil
}
