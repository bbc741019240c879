package envoy

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
)

// requestFromCheck extracts the transport-neutral request from a CheckRequest. Every
// part may be missing (nil request, no attributes, no headers): the result then has
// empty fields and the authorizer denies. It reads attributes.request.http.headers
// (lower-case keys, duplicates joined by Envoy) and, when that is empty, header_map
// (raw headers, sent when Envoy's encode_raw_headers is on; values may be in raw_value).
func (v *snapshot) requestFromCheck(req *authv3.CheckRequest) authz.Request {
	attrs := req.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	r := authz.Request{
		Method:            h.GetMethod(),
		Host:              h.GetHost(),
		Path:              h.GetPath(),
		Scheme:            h.GetScheme(),
		RequestID:         h.GetId(),
		ContextExtensions: attrs.GetContextExtensions(),
	}
	if pc := attrs.GetSource().GetCertificate(); pc != "" {
		// Envoy's include_peer_certificate: the URL-encoded PEM of the downstream
		// connection's client certificate, set by Envoy, never by the client.
		r.ClientCertThumbprint = CertThumbprint(pc)
	}
	var get func(name string) string
	if hs := h.GetHeaders(); len(hs) > 0 {
		get = func(name string) string { return hs[name] }
	} else {
		hm := h.GetHeaderMap()
		get = func(name string) string { return headerMapValue(hm, name) }
	}
	if v.cfg.TokenHeader != "" {
		r.Authorization = asBearer(get(v.cfg.TokenHeader))
	}
	if r.Authorization == "" {
		r.Authorization = get("authorization")
	}
	if r.Host == "" {
		if r.Host = get(":authority"); r.Host == "" {
			r.Host = get("host")
		}
	}
	if r.Method == "" {
		r.Method = get(":method")
	}
	if r.Path == "" {
		r.Path = get(":path")
	}
	if r.RequestID == "" {
		r.RequestID = get("x-request-id")
	}
	if r.Scheme == "" {
		r.Scheme = get(":scheme")
	}
	r.DPoP = get("dpop")
	return r
}

// headerMapValue returns the value of name in a raw header map (case-insensitive),
// several occurrences joined by ",", as Envoy does for the headers map.
func headerMapValue(hm *corev3.HeaderMap, name string) string {
	var out string
	n := 0
	for _, hv := range hm.GetHeaders() {
		if !strings.EqualFold(hv.GetKey(), name) {
			continue
		}
		v := hv.GetValue()
		if v == "" && len(hv.GetRawValue()) > 0 {
			v = string(hv.GetRawValue())
		}
		if n == 0 {
			out = v
		} else {
			out += "," + v
		}
		n++
	}
	return out
}

// asBearer normalises the value of the alternative token header: a value with a
// scheme ("Bearer x", "Basic y") is passed on unchanged for the authorizer to judge;
// a bare token becomes "Bearer <token>"; blank means none.
func asBearer(v string) string {
	v = strings.TrimSpace(v)
	if v == "" || strings.ContainsAny(v, " \t") {
		return v
	}
	return "Bearer " + v
}
