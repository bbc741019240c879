package resilience

import (
	"crypto/tls"
	"errors"
	"net/http"
	"strings"
)

// Defaults of NewClient.
const (
	// DefaultMaxIdleConnsPerHost keeps this many idle connections per OP.
	DefaultMaxIdleConnsPerHost = 64
	// DefaultMaxBodyBytes bounds every response body (1 MiB, as authz.MaxResponseSize).
	DefaultMaxBodyBytes = 1 << 20
	// MaxRedirects is the most redirects NewClient's clients follow (same host only).
	MaxRedirects = 5
)

// ClientConfig configures NewClient. The zero value means the documented defaults.
type ClientConfig struct {
	// TLS is the TLS client configuration (CA pool, minimum version). nil: TLS 1.2+
	// with the system roots.
	TLS *tls.Config
	// Base, when set, is used as the innermost RoundTripper instead of a clone of
	// http.DefaultTransport with TLS (tests use it to count or fake requests; TLS then
	// does not apply).
	Base http.RoundTripper
	// Wrap, when set, wraps the innermost RoundTripper (Base or the default), inside the
	// breaker: it sees every request that is really sent (e.g. for tracing).
	Wrap func(http.RoundTripper) http.RoundTripper
}

// NewClient returns the *http.Client for talking to OPs. It is the only constructor of
// one: authz.New calls it for every Authorizer, so production and every test harness
// run the same client.
//
//   - its Transport is a resilience Transport (per-host concurrency limit and circuit
//     breaker, configured by opts; WithMaxBodyBytes(DefaultMaxBodyBytes) unless opts set
//     it) wrapping cfg.Base or a clone of http.DefaultTransport (proxy from the
//     environment, its dial and TLS-handshake timeouts) with cfg.TLS and
//     DefaultMaxIdleConnsPerHost;
//   - its CheckRedirect is sameHostRedirect: a redirect to another host (or from https to
//     http) is never followed — the 3xx itself is returned, which OP code treats as a
//     broken reply;
//   - it has no overall Timeout: callers put a deadline on each request's context
//     (authz: verification.http_timeout).
//
// The *Transport is returned as well, for Stats and CloseIdleConnections.
func NewClient(cfg ClientConfig, opts ...Option) (*http.Client, *Transport) {
	base := cfg.Base
	if base == nil {
		tc := cfg.TLS
		if tc == nil {
			tc = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tc
		tr.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
		base = tr
	}
	if cfg.Wrap != nil {
		base = cfg.Wrap(base)
	}
	tr := New(base, append([]Option{WithMaxBodyBytes(DefaultMaxBodyBytes)}, opts...)...)
	return &http.Client{Transport: tr, CheckRedirect: sameHostRedirect}, tr
}

// errTooManyRedirects is returned by sameHostRedirect after MaxRedirects redirects.
var errTooManyRedirects = errors.New("resilience: too many redirects")

// sameHostRedirect is an http.Client CheckRedirect policy: it follows a redirect only to
// the same host (host[:port], case-insensitive) as the original request and never from
// https to http, at most MaxRedirects times. Any other redirect is not followed: the
// client returns the 3xx response itself (http.ErrUseLastResponse), so nothing is ever
// sent to a host the configuration did not name.
func sameHostRedirect(req *http.Request, via []*http.Request) error {
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
