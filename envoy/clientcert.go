package envoy

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"net/url"
	"strings"
)

// Client-certificate header formats (ClientCertConfig.Format).
const (
	// CertFormatXFCC: Envoy's x-forwarded-client-cert, one element whose Hash= (hex
	// SHA-256 of the DER certificate) and/or Cert= (URL-encoded PEM) name the client
	// certificate of the original connection.
	CertFormatXFCC = "xfcc"
	// CertFormatEscapedPEM: a URL-encoded PEM certificate, as nginx's
	// $ssl_client_escaped_cert (and Envoy's source.certificate).
	CertFormatEscapedPEM = "escaped_pem"
)

// ClientCertConfig names the header from which the HTTP handler reads the client
// certificate of the original connection, for certificate-bound tokens (RFC 8705). The
// gRPC Check reads Envoy's attributes.source.certificate instead (Envoy's
// include_peer_certificate: true) and needs no configuration.
//
// Danger: the header must be one the proxy in front sets itself on every request,
// replacing any copy a client sent (Envoy forward_client_cert_details: SANITIZE_SET;
// nginx proxy_set_header in the auth_request location). A header a client can set lets
// that client claim any certificate. Default: none (no certificate in HTTP mode, so a
// certificate-bound token is refused there).
type ClientCertConfig struct {
	// Header is the header name, e.g. "x-forwarded-client-cert" or "x-ssl-client-cert".
	Header string `json:"header,omitempty"`
	// Format is "xfcc" or "escaped_pem". Required with Header.
	Format string `json:"format,omitempty"`
}

// maxCertHeader bounds a certificate header or source.certificate (bytes).
const maxCertHeader = 32 << 10

// CertThumbprint returns the RFC 8705 x5t#S256 of the first certificate in a
// URL-encoded PEM value (base64url SHA-256 of its DER), "" when value is empty,
// oversized or not a PEM certificate.
func CertThumbprint(escapedPEM string) string {
	if escapedPEM == "" || len(escapedPEM) > maxCertHeader {
		return ""
	}
	// Envoy and nginx percent-encode spaces ("%20") and keep or encode '+' (a base64
	// character); path unescaping keeps a literal '+'. A form-style encoder writes a
	// space as '+', which only query unescaping reads back: tried second.
	var b *pem.Block
	for _, unescape := range []func(string) (string, error){url.PathUnescape, url.QueryUnescape} {
		p, err := unescape(escapedPEM)
		if err != nil {
			continue
		}
		if b, _ = pem.Decode([]byte(p)); b != nil && b.Type == "CERTIFICATE" && len(b.Bytes) > 0 {
			break
		}
		b = nil
	}
	if b == nil {
		return ""
	}
	sum := sha256.Sum256(b.Bytes)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// XFCCThumbprint returns the x5t#S256 of the client certificate named by an
// x-forwarded-client-cert value: it must hold exactly one element (more than one means
// the header was appended to along a chain of proxies, and which element is the
// client's is then not ours to guess), with Hash= and/or Cert=; when both are there
// they must name the same certificate. Anything else gives "" (no certificate).
func XFCCThumbprint(value string) string {
	if value == "" || len(value) > maxCertHeader {
		return ""
	}
	elems, ok := splitXFCC(value)
	if !ok || len(elems) != 1 {
		return ""
	}
	var hash, cert string
	var nHash, nCert int
	for _, kv := range elems[0] {
		switch strings.ToLower(kv[0]) {
		case "hash":
			hash, nHash = kv[1], nHash+1
		case "cert":
			cert, nCert = kv[1], nCert+1
		}
	}
	if nHash > 1 || nCert > 1 {
		return ""
	}
	var fromHash, fromCert string
	if nHash == 1 {
		raw, err := hex.DecodeString(hash)
		if err != nil || len(raw) != sha256.Size {
			return ""
		}
		fromHash = base64.RawURLEncoding.EncodeToString(raw)
	}
	if nCert == 1 {
		if fromCert = CertThumbprint(cert); fromCert == "" {
			return ""
		}
	}
	switch {
	case fromHash != "" && fromCert != "" && fromHash != fromCert:
		return ""
	case fromHash != "":
		return fromHash
	}
	return fromCert
}

// splitXFCC splits an XFCC value into elements (",") of key=value pairs (";"); values
// may be double-quoted, with \" and \\ escapes, and then may hold ",", ";" and "=".
// ok is false for a malformed value (unterminated quote, a pair without "=").
func splitXFCC(s string) (elems [][][2]string, ok bool) {
	var cur [][2]string
	for i := 0; ; {
		// key
		j := i
		for j < len(s) && s[j] != '=' && s[j] != ',' && s[j] != ';' {
			j++
		}
		if j >= len(s) || s[j] != '=' {
			return nil, false
		}
		key := strings.TrimSpace(s[i:j])
		if key == "" {
			return nil, false
		}
		j++
		var val strings.Builder
		if j < len(s) && s[j] == '"' {
			j++
			closed := false
			for j < len(s) {
				c := s[j]
				if c == '\\' && j+1 < len(s) {
					val.WriteByte(s[j+1])
					j += 2
					continue
				}
				if c == '"' {
					closed = true
					j++
					break
				}
				val.WriteByte(c)
				j++
			}
			if !closed {
				return nil, false
			}
		} else {
			k := j
			for k < len(s) && s[k] != ',' && s[k] != ';' {
				k++
			}
			val.WriteString(s[j:k])
			j = k
		}
		cur = append(cur, [2]string{key, val.String()})
		if j >= len(s) {
			return append(elems, cur), true
		}
		switch s[j] {
		case ';':
		case ',':
			elems, cur = append(elems, cur), nil
		default:
			return nil, false
		}
		i = j + 1
	}
}
