package envoy

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/propagation"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
)

// HTTPHandler returns the HTTP auth-request handler. It serves three callers:
//
//   - Envoy http_service: the original path is the request path after Config.PathPrefix
//     (query kept, not decoded); method, Host and Authorization are the original ones.
//   - nginx auth_request: the path comes from X-Original-URI, the method from
//     X-Original-Method, the host from X-Original-Host.
//   - Traefik forwardAuth, Caddy forward_auth: X-Forwarded-Uri, X-Forwarded-Method,
//     X-Forwarded-Host.
//
// Which headers are read is Config.HTTP.Forwarded; by default (auto) all of them, and a
// request whose candidate headers disagree, or that repeats one, is denied with 400.
//
// Allow is exactly 200 with the identity headers (absent ones listed in
// x-envoy-auth-headers-to-remove for Envoy); denials are 401/403 with WWW-Authenticate
// and a JSON body; OP outage is 503. Requests outside PathPrefix get 404.
func (s *Server) HTTPHandler() http.Handler { return httpHandler{s} }

type httpHandler struct{ s *Server }

func (h httpHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	v := h.s.snap.Load()
	committed := false // set just before WriteHeader
	defer func() {
		// net/http would turn a panic into a dropped connection, which Envoy counts as an
		// error (failure_mode_allow), and returning normally before WriteHeader would send
		// an implicit 200. Answer 503 instead, unless a status was already sent.
		if p := recover(); p != nil {
			if !committed {
				clear(w.Header()) // drop identity headers set before the panic
				d := authz.Decision{Outcome: authz.OutcomeUnavailable, Reason: "internal error"}
				v.writeHTTP(w, &authz.Request{}, &d, &committed)
			}
			defer func() { _ = recover() }() // the logger may be what panicked
			h.s.log.LogAttrs(req.Context(), slog.LevelError, "envoy: panic while answering a check", slog.String("panic", fmt.Sprint(p)))
		}
	}()
	r, ok, err := v.requestFromHTTP(req)
	if !ok {
		http.NotFound(w, req)
		return
	}
	ctx := req.Context()
	if h.s.tracer != nil {
		ctx = h.s.prop.Extract(ctx, propagation.HeaderCarrier(req.Header))
	}
	var d authz.Decision
	if err != nil {
		d = h.s.record(ctx, v, &r, TransportHTTP, authz.Decision{Outcome: authz.OutcomeBadRequest,
			Reason: "forwarded headers do not name one request", ReasonCode: authz.ReasonForwardedHeaders, Err: err})
	} else {
		d = h.s.decide(ctx, v, &r, TransportHTTP)
	}
	v.writeHTTP(w, &r, &d, &committed)
}

// noStore is the Cache-Control value of every answer, shared (len == cap == 1: an
// append copies; nothing modifies header values in place).
var noStore = []string{"no-store"}

// writeHTTP maps d to an HTTP response through the same table as Check. It sets
// *committed right before the status is written.
func (v *snapshot) writeHTTP(w http.ResponseWriter, r *authz.Request, d *authz.Decision, committed *bool) {
	hdr := w.Header()
	hdr["Cache-Control"] = noStore
	row := ResponseFor(d.Outcome)
	if d.Outcome != authz.OutcomeAllow {
		desc := description(d)
		if c := challenge(v.cfg.Realm, row, r.Authorization != "", desc, d.Policy.Scopes, v.dpopChallenge(row, d)); c != "" {
			hdr.Set("WWW-Authenticate", c)
		}
		if ra := retryAfter(d); ra != "" {
			hdr.Set("Retry-After", ra)
		}
		hdr.Set("Content-Type", "application/json")
		*committed = true
		w.WriteHeader(row.HTTPStatus)
		_, _ = io.WriteString(w, jsonBody(row.Error, desc))
		return
	}
	switch {
	case d.Public || d.Identity == nil:
		hdr["X-Envoy-Auth-Headers-To-Remove"] = v.anonHTTPRemove
	default:
		p := v.parts(d, TransportHTTP)
		for i, vals := range p.httpValues {
			if vals != nil {
				hdr[v.httpNames[i]] = vals // shared, len == cap == 1: never modified in place
			}
		}
		remove := p.httpRemove
		if v.cfg.ForwardAccessToken { // the token is the one per-request part
			names := p.absent
			if tok := bearerToken(r.Authorization); tok != "" {
				hdr.Set(v.cfg.AccessTokenHeader, tok)
			} else {
				names = append(names, v.cfg.AccessTokenHeader) // cap == len: copies
			}
			if s := strings.Join(append(names, v.strip...), ", "); s != "" {
				remove = []string{s}
			}
		}
		if remove != nil {
			hdr["X-Envoy-Auth-Headers-To-Remove"] = remove // shared, len == cap == 1
		}
	}
	*committed = true
	w.WriteHeader(http.StatusOK)
}

// requestFromHTTP extracts the original request; ok is false when the request path
// is outside the configured prefix. A non-nil error (a *ForwardedError) means the
// forwarded headers do not name one request: deny with 400.
func (v *snapshot) requestFromHTTP(req *http.Request) (authz.Request, bool, error) {
	raw := req.RequestURI
	if raw == "" || raw[0] != '/' { // absolute-form or a synthetic request
		raw = req.URL.RequestURI()
	}
	path, ok := stripPrefix(raw, v.cfg.PathPrefix)
	if !ok {
		return authz.Request{}, false, nil
	}
	// The header map's keys are canonical (net/http canonicalises what it reads), so
	// every name here is canonical already and read by indexing: Get and Values would
	// canonicalise the same name again on every check.
	r := authz.Request{
		Method:    req.Method,
		Host:      req.Host,
		Path:      path,
		RequestID: first(req.Header["X-Request-Id"]),
	}
	if v.tokenKey != "" {
		r.Authorization = asBearer(joinValues(req.Header[v.tokenKey]))
	}
	if r.Authorization == "" {
		r.Authorization = joinValues(req.Header["Authorization"])
	}
	v.senderConstraints(req, &r)
	if err := v.forwarded(req.Header, &r); err != nil {
		return r, true, err
	}
	return r, true, nil
}

// forwarded overwrites r's method, path and host with the values of the configured
// forwarded headers (server.http.forwarded).
func (v *snapshot) forwarded(h http.Header, r *authz.Request) error {
	names := &v.fwd
	if len(names.uri) > 0 {
		p, err := pick(h, "uri", names.uri)
		if err != nil {
			return err
		}
		if p != "" {
			r.Path = p
		}
	}
	if len(names.method) > 0 {
		m, err := pick(h, "method", names.method)
		if err != nil {
			return err
		}
		if m != "" {
			r.Method = m
		}
	}
	if len(names.host) > 0 {
		host, err := pick(h, "host", names.host)
		if err != nil {
			return err
		}
		if host != "" {
			r.Host = host
		}
	}
	if len(names.proto) > 0 {
		proto, err := pick(h, "scheme", names.proto)
		if err != nil {
			return err
		}
		r.Scheme = proto // "" when none: DPoP is then refused
	}
	return nil
}

// senderConstraints fills what DPoP and certificate-bound tokens need in HTTP mode
// beside the forwarded original request (whose scheme forwarded reads): the DPoP
// header(s), and the client certificate from the configured trusted header only
// (ClientCertConfig).
func (v *snapshot) senderConstraints(req *http.Request, r *authz.Request) {
	r.DPoP = joinValues(req.Header["Dpop"])
	if cc := v.cfg.ClientCert; cc.Header != "" {
		val := joinValues(req.Header[v.certKey])
		switch cc.Format {
		case CertFormatXFCC:
			r.ClientCertThumbprint = XFCCThumbprint(val)
		case CertFormatEscapedPEM:
			if !strings.Contains(val, ",") { // one certificate, one header
				r.ClientCertThumbprint = CertThumbprint(val)
			}
		}
	}
}

// stripPrefix returns the original path after prefix ("" prefix: raw itself). A path
// that only continues the prefix's last segment ("/checkout" for "/check") is outside.
func stripPrefix(raw, prefix string) (string, bool) {
	if prefix == "" {
		return raw, true
	}
	if !strings.HasPrefix(raw, prefix) {
		return "", false
	}
	rest := raw[len(prefix):]
	switch {
	case rest == "":
		return "/", true
	case rest[0] == '?':
		return "/" + rest, true
	case rest[0] == '/':
		return rest, true
	}
	return "", false
}

// first is the first of vs, "" when none (http.Header.Get for an indexed slice).
func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// joinValues joins repeated header values with "," (as Envoy does), so a request with
// two Authorization headers is never mistaken for one valid credential.
func joinValues(vs []string) string {
	switch len(vs) {
	case 0:
		return ""
	case 1:
		return vs[0]
	}
	return strings.Join(vs, ",")
}
