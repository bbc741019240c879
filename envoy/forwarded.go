package envoy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
)

// Forwarded modes (HTTPConfig.Forwarded.Mode): where the HTTP handler reads the original
// request's method, URI and host from, and its scheme (X-Original-Proto in the
// X-Original family, X-Forwarded-Proto in the other; only DPoP needs it).
const (
	// ForwardedAuto (the default) reads every known candidate header for each of the three
	// (method: X-Original-Method, X-Forwarded-Method; URI: X-Original-URI,
	// X-Forwarded-Uri; host: X-Original-Host, X-Forwarded-Host) and denies with 400 when
	// two candidates for the same thing are present and differ, or when one header is
	// sent more than once. When none is present the request line is used.
	ForwardedAuto = "auto"
	// ForwardedEnvoy reads only the request line (method, Host, the path after
	// PathPrefix): Envoy's http_service sends the original request itself. Every
	// X-Original-* and X-Forwarded-* header is ignored.
	ForwardedEnvoy = "envoy"
	// ForwardedNginx reads X-Original-Method, X-Original-URI and X-Original-Host (the
	// project's nginx example sets them); X-Forwarded-* is ignored.
	ForwardedNginx = "nginx"
	// ForwardedTraefik reads X-Forwarded-Method, X-Forwarded-Uri and X-Forwarded-Host
	// (what Traefik forwardAuth sets); X-Original-* is ignored.
	ForwardedTraefik = "traefik"
	// ForwardedCaddy is ForwardedTraefik: Caddy forward_auth sets the same headers.
	ForwardedCaddy = "caddy"
	// ForwardedCustom reads the headers named by Forwarded.Method, .URI and .Host; it is
	// the mode of a mapping ({method: …, uri: …, host: …}) in the configuration file.
	ForwardedCustom = "custom"
)

// Forwarded says which headers carry the original request in HTTP mode. In the
// configuration file it is a mode name ("auto", "envoy", "nginx", "traefik", "caddy") or
// a mapping of header names for a custom proxy: {method: X-My-Method, uri: X-My-Uri,
// host: X-My-Host, proto: X-My-Proto} (an omitted one is taken from the request line;
// an omitted proto leaves the scheme unknown, which only DPoP needs).
//
// Whatever the mode, a header that is read and sent more than once denies the request
// (400): no proxy sets one twice, so the second copy came from the client.
type Forwarded struct {
	// Mode is one of the Forwarded* constants; "" means ForwardedAuto.
	Mode string `json:"-"`
	// Method, URI and Host name the headers of a custom mapping (Mode ForwardedCustom);
	// Proto the header of the original scheme (needed only for DPoP).
	Method string `json:"method,omitempty"`
	URI    string `json:"uri,omitempty"`
	Host   string `json:"host,omitempty"`
	Proto  string `json:"proto,omitempty"`
}

// UnmarshalJSON accepts a mode name or a custom mapping.
func (f *Forwarded) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = Forwarded{Mode: s}
		return nil
	}
	type plain Forwarded
	var p plain
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("forwarded: want a mode name (auto, envoy, nginx, traefik, caddy) or {method, uri, host, proto}: %w", err)
	}
	*f = Forwarded(p)
	f.Mode = ForwardedCustom
	return nil
}

// MarshalJSON writes the mode name, or the mapping for a custom mode.
func (f Forwarded) MarshalJSON() ([]byte, error) {
	if f.Mode != ForwardedCustom {
		return json.Marshal(f.Mode)
	}
	type plain Forwarded
	return json.Marshal(plain(f))
}

// HTTPConfig tunes the HTTP auth-request handler.
type HTTPConfig struct {
	// Forwarded says where the original method, URI and host come from. Default "auto":
	// known headers are read, and conflicting or repeated ones deny with 400. Name your
	// proxy ("nginx", "traefik", "caddy") so that only the headers it sets are read, or
	// "envoy" when only Envoy http_service calls the listener. DANGER: the proxy must
	// overwrite (or remove) the client's copies of the headers it is named for; see
	// docs/request-target.md.
	Forwarded Forwarded `json:"forwarded,omitzero"`
}

// forwardedNames are the header families of each mode: method, URI, host and scheme
// candidates. The scheme is read only for DPoP (a proof's htu names it); without a
// candidate it is unknown and DPoP requests are refused.
type forwardedNames struct {
	method, uri, host, proto []string
}

var (
	originalNames   = forwardedNames{[]string{"X-Original-Method"}, []string{"X-Original-Uri"}, []string{"X-Original-Host"}, []string{"X-Original-Proto"}}
	forwardedXNames = forwardedNames{[]string{"X-Forwarded-Method"}, []string{"X-Forwarded-Uri"}, []string{"X-Forwarded-Host"}, []string{"X-Forwarded-Proto"}}
	autoNames       = forwardedNames{
		[]string{"X-Original-Method", "X-Forwarded-Method"},
		[]string{"X-Original-Uri", "X-Forwarded-Uri"},
		[]string{"X-Original-Host", "X-Forwarded-Host"},
		[]string{"X-Original-Proto", "X-Forwarded-Proto"},
	}
)

// names returns the candidate headers of f (nil lists: the request line only).
func (f Forwarded) names() forwardedNames {
	switch f.Mode {
	case "", ForwardedAuto:
		return autoNames
	case ForwardedNginx:
		return originalNames
	case ForwardedTraefik, ForwardedCaddy:
		return forwardedXNames
	case ForwardedCustom:
		one := func(s string) []string {
			if s == "" {
				return nil
			}
			return []string{textproto.CanonicalMIMEHeaderKey(s)}
		}
		return forwardedNames{one(f.Method), one(f.URI), one(f.Host), one(f.Proto)}
	}
	return forwardedNames{} // envoy
}

// validate reports the problems of f at field.
func (f Forwarded) validate(field string, bad func(field, format string, a ...any)) {
	switch f.Mode {
	case "", ForwardedAuto, ForwardedEnvoy, ForwardedNginx, ForwardedTraefik, ForwardedCaddy:
	case ForwardedCustom:
		if f.Method == "" && f.URI == "" && f.Host == "" && f.Proto == "" {
			bad(field, "a custom mapping must name at least one of method, uri, host, proto")
		}
		for _, h := range []struct{ k, v string }{{"method", f.Method}, {"uri", f.URI}, {"host", f.Host}, {"proto", f.Proto}} {
			if h.v != "" && (!validHeaderName(h.v) || reservedHeader(h.v)) {
				bad(field+"."+h.k, "%q is not a usable header name", h.v)
			}
		}
	default:
		bad(field, "%q: want auto, envoy, nginx, traefik, caddy or a mapping {method, uri, host, proto}", f.Mode)
	}
}

// ForwardedError says the forwarded headers of an HTTP check do not name one request:
// two candidates disagree, or one header was sent twice. The request is denied with 400.
type ForwardedError struct {
	// What is "method", "uri" or "host".
	What string
	// Headers are the conflicting header names (one name: it was repeated).
	Headers []string
}

func (e *ForwardedError) Error() string {
	if len(e.Headers) == 1 {
		return fmt.Sprintf("envoy: forwarded header %s sent more than once", e.Headers[0])
	}
	return fmt.Sprintf("envoy: forwarded headers %s disagree about the original %s", strings.Join(e.Headers, " and "), e.What)
}

// pick returns the one value the candidate headers agree on ("" when none is present),
// or a *ForwardedError.
func pick(h http.Header, what string, names []string) (string, error) {
	val, from := "", ""
	for _, n := range names {
		vs := h[n] // names are canonical
		switch len(vs) {
		case 0:
			continue
		case 1:
		default:
			return "", &ForwardedError{What: what, Headers: []string{n}}
		}
		if vs[0] == "" { // proxy_set_header X "" removes; an empty value names nothing
			continue
		}
		if from != "" && vs[0] != val {
			return "", &ForwardedError{What: what, Headers: []string{from, n}}
		}
		if from == "" {
			val, from = vs[0], n
		}
	}
	return val, nil
}
