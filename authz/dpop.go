package authz

import (
	"crypto"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"net/url"
	"strings"
	"time"
	"unsafe"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// MaxDPoPProofSize bounds a DPoP header value in bytes (checked before any decoding).
const MaxDPoPProofSize = 8192

// DPoPProof is a DPoP proof JWT (RFC 9449 4.2) whose form has been checked and whose
// signature has been verified with the public key in its own jwk header. It says
// nothing yet about the request, the token or replay: see Authorizer's request checks.
type DPoPProof struct {
	// JKT is the RFC 7638 SHA-256 thumbprint (base64url) of the proof's public key.
	JKT string
	// Alg is the proof's JWS algorithm.
	Alg string
	// JTI, HTM, HTU and ATH are the proof's claims of those names (ATH "" when absent).
	JTI, HTM, HTU, ATH string
	// IssuedAt is the proof's iat.
	IssuedAt time.Time
}

func badProof(reason string) error {
	return &TokenError{Reason: "invalid DPoP proof: " + reason, Err: ErrInvalidDPoPProof}
}

// stringMember returns m[name] when it is a non-empty JSON string.
func stringMember(m map[string]any, name string) (string, bool) {
	v, ok := m[name].(string)
	return v, ok && v != ""
}

// ParseDPoPProof checks the form of a DPoP header value and verifies its signature: one
// compact JWS of at most MaxDPoPProofSize bytes; typ "dpop+jwt"; alg in algs (asymmetric
// only; "none" and HS* are never accepted); a jwk header that is a public asymmetric key
// fitting alg (a private or symmetric key is refused); no crit, b64 or zip; no duplicate
// JSON members; a signature valid under that key; string jti, htm and htu, a numeric
// iat, and ath a string when present. Every failure wraps ErrInvalidDPoPProof. It
// makes no network call and keeps no state.
func ParseDPoPProof(value string, algs []string) (*DPoPProof, error) {
	switch {
	case value == "":
		return nil, badProof("no DPoP header")
	case len(value) > MaxDPoPProofSize:
		return nil, badProof("DPoP header too large")
	}
	for i := 0; i < len(value); i++ {
		c := value[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			if c == ',' {
				return nil, badProof("more than one DPoP header")
			}
			return nil, badProof("not a compact JWS")
		}
	}
	parts, ok := splitJWS(value)
	if !ok {
		return nil, badProof("not a compact JWS")
	}
	defer parts.release()
	h := parts.header
	switch {
	case h[dupMarker] != nil:
		return nil, badProof("malformed header")
	case len(parts.payload) == 0:
		return nil, badProof("malformed claims")
	case len(parts.signature) == 0:
		return nil, badProof("malformed signature")
	}
	if typ, _ := h["typ"].(string); typ != "dpop+jwt" {
		return nil, badProof(`typ is not "dpop+jwt"`)
	}
	alg, _ := h["alg"].(string)
	if !supportedAlgs[alg] || !contains(algs, alg) {
		return nil, badProof("algorithm not accepted")
	}
	for _, name := range []string{"crit", "b64", "zip"} {
		if _, ok := h[name]; ok {
			return nil, badProof("unsupported header")
		}
	}
	jwkMember, ok := h["jwk"].(map[string]any)
	if !ok {
		return nil, badProof("no jwk header")
	}
	jwkJSON, err := json.Marshal(jwkMember)
	if err != nil {
		return nil, badProof("malformed jwk header")
	}
	key, err := jwk.ParseKey(jwkJSON)
	if err != nil {
		return nil, badProof("malformed jwk header")
	}
	if private, err := jwk.IsPrivateKey(key); err != nil || private {
		return nil, badProof("jwk header is not a public asymmetric key")
	}
	var raw any
	if err := key.Raw(&raw); err != nil {
		return nil, badProof("malformed jwk header")
	}
	if !verifySignature(alg, raw, unsafe.Slice(unsafe.StringData(parts.input), len(parts.input)), parts.signature) {
		return nil, badProof("signature verification failed")
	}
	tp, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, badProof("malformed jwk header")
	}
	c, err := decodeObject(parts.payload)
	if err != nil {
		return nil, badProof("malformed claims")
	}
	p := &DPoPProof{JKT: b64.EncodeToString(tp), Alg: alg}
	for _, f := range []struct {
		dst      *string
		name     string
		optional bool
	}{{&p.JTI, "jti", false}, {&p.HTM, "htm", false}, {&p.HTU, "htu", false}, {&p.ATH, "ath", true}} {
		if _, present := c[f.name]; !present && f.optional {
			continue
		}
		v, ok := stringMember(c, f.name)
		if !ok {
			return nil, badProof("missing or malformed " + f.name + " claim")
		}
		*f.dst = v
	}
	if len(p.JTI) > 512 {
		return nil, badProof("jti too long")
	}
	iat, ok := c["iat"].(float64)
	if !ok || math.IsNaN(iat) || iat < 0 || iat > 253402300799 {
		return nil, badProof("missing or malformed iat claim")
	}
	sec, frac := math.Modf(iat)
	p.IssuedAt = time.Unix(int64(sec), int64(frac*1e9))
	return p, nil
}

// checkDPoP verifies the request's DPoP header for token (whose SHA-256 is sum) and
// the verified identity id bound to a key (Confirmation.JKT): a valid proof for this request's
// method and URI, fresh, with ath of this token, signed by the bound key, and not seen
// before. The jti is remembered only when every other check passed.
func (a *Authorizer) checkDPoP(r *Request, sum *[32]byte, id *Identity) error {
	p, err := ParseDPoPProof(r.DPoP, a.cfg.DPoP.Algorithms)
	if err != nil {
		return err
	}
	if p.HTM != r.Method {
		return badProof("htm does not match the request method")
	}
	if err := htuMatches(p.HTU, r.Scheme, r.Host, r.Path); err != nil {
		return err
	}
	now := a.now()
	if p.IssuedAt.After(now.Add(a.cfg.DPoP.ClockSkew.D())) {
		return badProof("iat is in the future")
	}
	if now.Sub(p.IssuedAt) > a.cfg.DPoP.MaxAge.D() {
		return badProof("proof is too old")
	}
	if p.ATH == "" {
		return badProof("no ath claim")
	}
	if p.ATH != b64.EncodeToString(sum[:]) {
		return badProof("ath does not match the access token")
	}
	if jkt := id.jkt(); jkt == "" || p.JKT != jkt {
		return badProof("proof key does not match the token's binding (cnf.jkt)")
	}
	switch a.dpopReplay.add(replayKey("dpop", p.JKT, p.JTI), now) {
	case replaySeen:
		return badProof("proof replayed (jti seen before)")
	case replayFull:
		return &UnavailableError{Endpoint: "dpop replay cache", Err: errors.New("replay cache full")}
	}
	return nil
}

// replayKey is the replay-cache key of a jti: SHA-256 over kind, scope and jti, each
// length-prefixed.
func replayKey(kind, scope, jti string) [32]byte {
	h := sha256.New()
	for _, s := range []string{kind, scope, jti} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// htuMatches compares a proof's htu with the original request (RFC 9449 4.3): scheme
// and host case-insensitively with default ports removed, the path after RFC 3986
// percent-encoding normalisation (hex digits in upper case, unreserved characters
// decoded; nothing else, in particular no dot-segment removal), query and fragment of
// both ignored. An unknown scheme or host is a refusal.
func htuMatches(htu, scheme, host, path string) error {
	if scheme == "" || host == "" {
		return badProof("the original request's scheme or host is unknown")
	}
	u, err := url.Parse(htu)
	if err != nil || u.Opaque != "" || u.User != nil || u.Host == "" {
		return badProof("htu is not an absolute http(s) URI")
	}
	us := strings.ToLower(u.Scheme)
	if us != "http" && us != "https" {
		return badProof("htu is not an absolute http(s) URI")
	}
	if us != strings.ToLower(scheme) {
		return badProof("htu does not match the request URI (scheme)")
	}
	if hostPort(us, u.Host) != hostPort(us, host) {
		return badProof("htu does not match the request URI (host)")
	}
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	hp := u.EscapedPath()
	if hp == "" {
		hp = "/"
	}
	if path == "" {
		path = "/"
	}
	if normPct(hp) != normPct(path) {
		return badProof("htu does not match the request URI (path)")
	}
	return nil
}

// hostPort lower-cases host and removes the scheme's default port.
func hostPort(scheme, host string) string {
	h := strings.ToLower(host)
	switch {
	case scheme == "https" && strings.HasSuffix(h, ":443"):
		return strings.TrimSuffix(h, ":443")
	case scheme == "http" && strings.HasSuffix(h, ":80"):
		return strings.TrimSuffix(h, ":80")
	}
	return h
}

// normPct applies RFC 3986 6.2.2.1 and 6.2.2.2 to a path: percent-encodings in upper
// case, and those of unreserved characters decoded. A malformed "%" is kept as is.
func normPct(p string) string {
	if !strings.Contains(p, "%") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) {
			c := unhex(p[i+1])<<4 | unhex(p[i+2])
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
				b.WriteByte(c)
			} else {
				b.WriteByte('%')
				b.WriteString(strings.ToUpper(p[i+1 : i+3]))
			}
			i += 2
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// confirmation reads the cnf claim of a token's claims or introspection reply (RFC 7800,
// RFC 9449 6, RFC 8705 3.1): jkt and x5t#S256. A cnf that is not an object, or whose
// members are not non-empty strings, is malformed.
func confirmation(m map[string]any) (jkt, x5t string, err error) {
	v, ok := m["cnf"]
	if !ok {
		return "", "", nil
	}
	cnf, ok := v.(map[string]any)
	if !ok {
		return "", "", invalid("malformed cnf claim")
	}
	if jkt, err = cnfMember(cnf, "jkt"); err != nil {
		return "", "", err
	}
	if x5t, err = cnfMember(cnf, "x5t#S256"); err != nil {
		return "", "", err
	}
	return jkt, x5t, nil
}

// cnfMember returns the cnf member name: "" when absent, an error when it is not a
// non-empty string. (Named lookups, not a map of result pointers: taking the results'
// addresses moved them to the heap, four allocations per verification.)
func cnfMember(cnf map[string]any, name string) (string, error) {
	raw, ok := cnf[name]
	if !ok {
		return "", nil
	}
	s, isStr := raw.(string)
	if !isStr || s == "" {
		return "", invalid("malformed cnf claim")
	}
	return s, nil
}

// checkBinding applies the issuer's dpop and mtls_bound modes to a verified identity
// (RFC 9449 7.1 and 7.2, RFC 8705 3): scheme DPoP needs a DPoP-bound token and a valid
// proof; a DPoP-bound token sent as Bearer is a downgrade and refused; a
// certificate-bound token needs the matching client certificate.
func (a *Authorizer) checkBinding(r *Request, sum *[32]byte, dpop bool, id *Identity) error {
	is := a.byID[id.Issuer]
	dpopMode, mtlsMode := DPoPAllowed, MTLSAllowed
	if is != nil {
		if is.cfg.DPoP != "" {
			dpopMode = is.cfg.DPoP
		}
		if is.cfg.MTLSBound != "" {
			mtlsMode = is.cfg.MTLSBound
		}
	}
	jkt, x5t := id.jkt(), id.x5t()
	switch {
	case dpopMode == DPoPDisabled && (dpop || jkt != ""):
		return invalid("DPoP-bound tokens are not accepted for this issuer")
	case dpop && jkt == "":
		return invalid("token is not DPoP-bound but was sent with the DPoP scheme")
	case !dpop && jkt != "":
		return invalid("DPoP-bound token sent as a bearer token")
	case !dpop && dpopMode == DPoPRequired:
		return invalid("this issuer's tokens must be DPoP-bound")
	}
	if x5t != "" {
		if r.ClientCertThumbprint == "" {
			return invalid("certificate-bound token without a client certificate")
		}
		if r.ClientCertThumbprint != x5t {
			return invalid("certificate-bound token presented with another client certificate")
		}
	} else if mtlsMode == MTLSRequired {
		return invalid("this issuer's tokens must be certificate-bound")
	}
	if dpop {
		return a.checkDPoP(r, sum, id)
	}
	return nil
}
