// Package devop is a development OpenID Connect provider (OP): the one behind the
// `demo` command and, through the public package oidctest, behind every test.
//
// It serves, on a loopback HTTP server, what flaat-extauthz talks to: OIDC discovery,
// a JWKS with RSA, EC P-256 and Ed25519 keys (rotated on demand), a userinfo endpoint and an
// RFC 7662 introspection endpoint that checks HTTP Basic client authentication. Tokens are
// minted in-process (MintJWT, MintOpaque) with any claims; every endpoint has fault switches
// (status codes, delays, hangs, malformed JSON, HTML, wrong sub, huge bodies, closed
// connections) and a request counter, so tests can assert exactly how many calls were made.
//
// Tests use it through oidctest.New (the server is closed by t.Cleanup); the `demo`
// command calls Start. It is a DEVELOPMENT OP: it signs whatever it is asked to, has no
// login, keeps every key in memory and MUST NOT be exposed to anyone but the developer.
// It imports neither testing nor net/http/httptest, so production code may link it.
package devop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
)

// Endpoint names one endpoint of the fake OP, for fault switches and counters.
type Endpoint string

// The endpoints of the fake OP. Other is every request to an unknown path.
const (
	Discovery     Endpoint = "discovery"
	JWKS          Endpoint = "jwks"
	Userinfo      Endpoint = "userinfo"
	Introspection Endpoint = "introspection"
	Other         Endpoint = "other"
)

// Endpoints lists the endpoints that have fault switches, in a fixed order.
var Endpoints = []Endpoint{Discovery, JWKS, Userinfo, Introspection}

// Paths of the endpoints below the issuer URL.
const (
	DiscoveryPath     = "/.well-known/openid-configuration"
	JWKSPath          = "/jwks"
	UserinfoPath      = "/userinfo"
	IntrospectionPath = "/introspect"
)

// DefaultSubject is the sub of minted tokens whose claims do not set one.
const DefaultSubject = "test-user"

// Fault changes how one endpoint answers. The zero Fault answers normally. Several fields
// may be combined; they apply in this order: Close, Hang/Delay, Status, HTML,
// MalformedJSON, then WrongSub and HugeBody modify the normal reply.
type Fault struct {
	// Close drops the connection without an answer (the OP looks down).
	Close bool
	// Hang waits until the client gives up (its request context ends): a timeout.
	Hang bool
	// Delay waits this long (or until the client gives up) before answering.
	Delay time.Duration
	// Status answers with this HTTP status and a small JSON error body.
	Status int
	// HTML answers 200 with an HTML page, as a misconfigured proxy would.
	HTML bool
	// MalformedJSON answers 200 with truncated JSON.
	MalformedJSON bool
	// WrongSub makes userinfo and introspection answer with sub "someone-else".
	WrongSub bool
	// HugeBody pads the JSON reply with a string field of this many bytes.
	HugeBody int
}

// Option configures an OP.
type Option func(*config)

type config struct {
	now          func() time.Time
	clientID     string
	clientSecret string
	issuerPath   string
	addr         string
	rsaBits      int
	algs         []string
}

// WithClock makes the OP use now for iat/exp of minted tokens and for expiry checks at
// userinfo and introspection. Pass the same clock as to authz.WithClock. Default time.Now.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithClient sets the client credentials the introspection endpoint accepts.
// Default "flaat-extauthz" / "test-secret".
func WithClient(id, secret string) Option {
	return func(c *config) { c.clientID, c.clientSecret = id, secret }
}

// WithIssuerPath puts the issuer below a path, e.g. "/realms/test" (Keycloak style).
func WithIssuerPath(p string) Option {
	return func(c *config) { c.issuerPath = "/" + strings.Trim(p, "/") }
}

// WithSigningAlgs sets what discovery advertises in id_token_signing_alg_values_supported.
// Default: every alg the OP can sign with (RS256/384/512, PS256/384/512, ES256, EdDSA).
func WithSigningAlgs(algs ...string) Option { return func(c *config) { c.algs = algs } }

// WithAddr makes Start listen on addr (e.g. "127.0.0.1:8081") instead of a random
// loopback port. Not for tests: they must not use fixed ports.
func WithAddr(addr string) Option { return func(c *config) { c.addr = addr } }

// OP is a running fake OpenID Connect provider. All methods are safe for concurrent use.
type OP struct {
	cfg    config
	srv    *http.Server
	ln     net.Listener
	issuer string

	mu       sync.Mutex
	keys     []*signingKey          // published in the JWKS, newest first
	signers  map[string]*signingKey // current signing key per key family ("RSA", "EC", "OKP")
	tokens   map[string]*tokenInfo  // minted tokens
	revoked  map[string]bool
	faults   map[Endpoint]Fault
	counts   map[Endpoint]int
	jwksJSON []byte
	kidSeq   int
}

type signingKey struct {
	kid    string
	family string // RSA, EC, OKP
	priv   crypto.Signer
}

type tokenInfo struct {
	subject       string
	expiry        time.Time // zero: never
	userinfo      map[string]any
	introspection map[string]any
}

// Start starts an OP on a random loopback port (or WithAddr's). Call Close when done.
// It is a development OP: see the package documentation.
func Start(opts ...Option) (*OP, error) {
	cfg := config{
		now:          time.Now,
		clientID:     "flaat-extauthz",
		clientSecret: "test-secret",
		rsaBits:      2048,
		algs:         []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "EdDSA"},
	}
	for _, o := range opts {
		o(&cfg)
	}
	op := &OP{
		cfg:     cfg,
		signers: map[string]*signingKey{},
		tokens:  map[string]*tokenInfo{},
		revoked: map[string]bool{},
		faults:  map[Endpoint]Fault{},
		counts:  map[Endpoint]int{},
	}
	if err := op.addKeys(); err != nil {
		return nil, err
	}
	addr := cfg.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("devop: listen: %w", err)
	}
	op.ln = l
	op.srv = &http.Server{Handler: http.HandlerFunc(op.serveHTTP), ReadHeaderTimeout: 10 * time.Second}
	op.issuer = "http://" + l.Addr().String() + cfg.issuerPath
	go func() { _ = op.srv.Serve(l) }()
	return op, nil
}

// Close shuts the server down: the listener and every connection are closed, so
// afterwards every connection to it is refused. Idempotent.
func (op *OP) Close() { _ = op.srv.Close() }

// Issuer returns the issuer URL (no trailing slash).
func (op *OP) Issuer() string { return op.issuer }

// URL returns the full URL of an endpoint.
func (op *OP) URL(e Endpoint) string {
	switch e {
	case Discovery:
		return op.issuer + DiscoveryPath
	case JWKS:
		return op.issuer + JWKSPath
	case Userinfo:
		return op.issuer + UserinfoPath
	case Introspection:
		return op.issuer + IntrospectionPath
	}
	return op.issuer
}

// ClientID returns the client id the introspection endpoint accepts.
func (op *OP) ClientID() string { return op.cfg.clientID }

// ClientSecret returns the client secret the introspection endpoint accepts.
func (op *OP) ClientSecret() string { return op.cfg.clientSecret }

// IssuerConfig returns an authz.IssuerConfig that trusts this OP, with its introspection
// client credentials (so introspection defaults to "opaque").
func (op *OP) IssuerConfig() authz.IssuerConfig {
	return authz.IssuerConfig{
		Issuer:       op.issuer,
		ClientID:     op.cfg.clientID,
		ClientSecret: op.cfg.clientSecret,
	}
}

// SetFault sets the fault of one endpoint, replacing the previous one.
func (op *OP) SetFault(e Endpoint, f Fault) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.faults[e] = f
}

// ClearFaults makes every endpoint answer normally again.
func (op *OP) ClearFaults() {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.faults = map[Endpoint]Fault{}
}

// Down makes every endpoint drop connections without answering (Fault.Close) until
// ClearFaults. Unlike Close, the issuer URL keeps accepting TCP connections.
func (op *OP) Down() {
	for _, e := range Endpoints {
		op.SetFault(e, Fault{Close: true})
	}
}

// Count returns how many requests reached endpoint e.
func (op *OP) Count(e Endpoint) int {
	op.mu.Lock()
	defer op.mu.Unlock()
	return op.counts[e]
}

// Total returns how many requests reached the OP on any path.
func (op *OP) Total() int {
	op.mu.Lock()
	defer op.mu.Unlock()
	n := 0
	for _, c := range op.counts {
		n += c
	}
	return n
}

// Counts returns a copy of all counters, e.g. for failure messages.
func (op *OP) Counts() map[Endpoint]int {
	op.mu.Lock()
	defer op.mu.Unlock()
	m := make(map[Endpoint]int, len(op.counts))
	for k, v := range op.counts {
		m[k] = v
	}
	return m
}

// ResetCounts sets every counter to zero.
func (op *OP) ResetCounts() {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.counts = map[Endpoint]int{}
}

// Revoke makes userinfo reject the token (401) and introspection answer active:false.
func (op *OP) Revoke(token string) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.revoked[token] = true
}

// --- keys ---

// RotateOption configures Rotate.
type RotateOption func(*rotateConfig)

type rotateConfig struct{ keepOld bool }

// KeepOld keeps the previous keys in the JWKS (a rollover), so tokens signed with them
// still verify.
func KeepOld() RotateOption { return func(c *rotateConfig) { c.keepOld = true } }

// Rotate creates new RSA, EC P-256 and Ed25519 keys with new key ids and signs new tokens
// with them. By default the previous keys are removed from the JWKS.
func (op *OP) Rotate(opts ...RotateOption) {
	var rc rotateConfig
	for _, o := range opts {
		o(&rc)
	}
	if !rc.keepOld {
		op.mu.Lock()
		op.keys = nil
		op.mu.Unlock()
	}
	if err := op.addKeys(); err != nil {
		panic(err) // key generation from crypto/rand does not fail in practice
	}
}

// KeyID returns the kid of the current signing key for alg (e.g. "RS256", "ES256", "EdDSA").
func (op *OP) KeyID(alg string) string {
	op.mu.Lock()
	defer op.mu.Unlock()
	if k := op.signers[familyOf(alg)]; k != nil {
		return k.kid
	}
	return ""
}

// RSAPublicKeyPEM returns the current RSA public key as PEM (PKIX), e.g. to forge an
// HS256 token "signed" with it in a key-confusion test.
func (op *OP) RSAPublicKeyPEM() []byte {
	op.mu.Lock()
	k := op.signers["RSA"]
	op.mu.Unlock()
	der, err := x509.MarshalPKIXPublicKey(k.priv.Public())
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// JWKSJSON returns the JWKS document as currently served.
func (op *OP) JWKSJSON() []byte {
	op.mu.Lock()
	defer op.mu.Unlock()
	return append([]byte(nil), op.jwksJSON...)
}

func (op *OP) addKeys() error {
	rk, err := rsa.GenerateKey(rand.Reader, op.cfg.rsaBits)
	if err != nil {
		return fmt.Errorf("devop: rsa key: %w", err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("devop: ec key: %w", err)
	}
	_, ok, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("devop: ed25519 key: %w", err)
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	var fresh []*signingKey
	for _, k := range []struct {
		family string
		priv   crypto.Signer
	}{{"RSA", rk}, {"EC", ek}, {"OKP", ok}} {
		op.kidSeq++
		sk := &signingKey{kid: fmt.Sprintf("%s-%d-%s", strings.ToLower(k.family), op.kidSeq, randomString(4)), family: k.family, priv: k.priv}
		op.signers[k.family] = sk
		fresh = append(fresh, sk)
	}
	op.keys = append(fresh, op.keys...)
	return op.buildJWKSLocked()
}

func (op *OP) buildJWKSLocked() error {
	set := jwk.NewSet()
	for _, k := range op.keys {
		pk, err := jwk.FromRaw(k.priv.Public())
		if err != nil {
			return fmt.Errorf("devop: jwk: %w", err)
		}
		_ = pk.Set(jwk.KeyIDKey, k.kid)
		_ = pk.Set(jwk.KeyUsageKey, "sig")
		if err := set.AddKey(pk); err != nil {
			return fmt.Errorf("devop: jwk set: %w", err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		return fmt.Errorf("devop: jwks: %w", err)
	}
	op.jwksJSON = b
	return nil
}

func familyOf(alg string) string {
	switch {
	case strings.HasPrefix(alg, "RS"), strings.HasPrefix(alg, "PS"):
		return "RSA"
	case strings.HasPrefix(alg, "ES"):
		return "EC"
	case alg == "EdDSA":
		return "OKP"
	}
	return ""
}

// --- minting ---

// MintOption changes how a token is minted.
type MintOption func(*mintConfig)

type mintConfig struct {
	alg           string
	kid           *string
	header        map[string]any
	hmacSecret    []byte
	expiresIn     *time.Duration
	notBefore     *time.Duration
	userinfo      map[string]any
	introspection map[string]any
	ext           map[string]any
	signer        crypto.Signer
}

// WithAlg sets the JWS alg (default RS256). RS*/PS* sign with the RSA key, ES256 with the
// EC P-256 key, EdDSA with the Ed25519 key, HS* with WithHMACSecret, and "none" produces an
// unsigned token.
func WithAlg(alg string) MintOption { return func(c *mintConfig) { c.alg = alg } }

// WithKid overrides the kid header (default: the signing key's kid); the token is still
// signed with the key the alg selects.
func WithKid(kid string) MintOption { return func(c *mintConfig) { c.kid = &kid } }

// WithoutKid omits the kid header.
func WithoutKid() MintOption { return func(c *mintConfig) { empty := ""; c.kid = &empty } }

// WithHeader sets (or, with a nil value, removes) a JOSE header field, e.g. "jku" or "typ".
func WithHeader(name string, value any) MintOption {
	return func(c *mintConfig) {
		if c.header == nil {
			c.header = map[string]any{}
		}
		c.header[name] = value
	}
}

// WithHMACSecret is the secret for HS256/384/512.
func WithHMACSecret(secret []byte) MintOption {
	return func(c *mintConfig) { c.hmacSecret = secret }
}

// WithSigner signs with the given key instead of the OP's (e.g. a key the OP never
// published). The alg must fit the key.
func WithSigner(key crypto.Signer) MintOption { return func(c *mintConfig) { c.signer = key } }

// ExpiresIn sets exp to now+d (negative: already expired). Default one hour.
func ExpiresIn(d time.Duration) MintOption { return func(c *mintConfig) { c.expiresIn = &d } }

// NotBefore sets nbf to now+d.
func NotBefore(d time.Duration) MintOption { return func(c *mintConfig) { c.notBefore = &d } }

// WithUserinfo sets what userinfo answers for the token (default: the token's non-JWT
// claims plus sub).
func WithUserinfo(claims map[string]any) MintOption {
	return func(c *mintConfig) { c.userinfo = claims }
}

// WithIntrospection adds top-level members to the introspection reply.
func WithIntrospection(claims map[string]any) MintOption {
	return func(c *mintConfig) { c.introspection = claims }
}

// WithIntrospectionExt nests extra claims under "ext" in the introspection reply, as some
// OPs do.
func WithIntrospectionExt(claims map[string]any) MintOption {
	return func(c *mintConfig) { c.ext = claims }
}

// registered JWT claims that userinfo does not echo.
var jwtOnly = map[string]bool{"iss": true, "aud": true, "exp": true, "nbf": true, "iat": true, "jti": true}

// MintJWT signs a JWT access token. Defaults: iss = Issuer(), sub = DefaultSubject,
// iat = now, exp = now+1h, a random jti; claims override them, and a nil value removes a
// claim (e.g. "exp": nil). userinfo and introspection know the token. MintJWT panics on
// impossible options (e.g. HS256 without WithHMACSecret): it is a test helper.
func (op *OP) MintJWT(claims map[string]any, opts ...MintOption) string {
	mc := mintConfig{alg: "RS256"}
	for _, o := range opts {
		o(&mc)
	}
	now := op.cfg.now()
	exp := time.Hour
	if mc.expiresIn != nil {
		exp = *mc.expiresIn
	}
	body := map[string]any{
		"iss": op.issuer,
		"sub": DefaultSubject,
		"iat": now.Unix(),
		"exp": now.Add(exp).Unix(),
		"jti": randomString(12),
	}
	if mc.notBefore != nil {
		body["nbf"] = now.Add(*mc.notBefore).Unix()
	}
	for k, v := range claims {
		if v == nil {
			delete(body, k)
			continue
		}
		body[k] = v
	}

	header := map[string]any{"alg": mc.alg, "typ": "at+jwt"}
	var signer crypto.Signer
	switch {
	case mc.signer != nil:
		signer = mc.signer
	case familyOf(mc.alg) != "":
		op.mu.Lock()
		k := op.signers[familyOf(mc.alg)]
		op.mu.Unlock()
		signer = k.priv
		header["kid"] = k.kid
	}
	if mc.kid != nil {
		if *mc.kid == "" {
			delete(header, "kid")
		} else {
			header["kid"] = *mc.kid
		}
	}
	for k, v := range mc.header {
		if v == nil {
			delete(header, k)
			continue
		}
		header[k] = v
	}
	hb, err := json.Marshal(header)
	if err != nil {
		panic(fmt.Sprintf("devop: header: %v", err))
	}
	pb, err := json.Marshal(body)
	if err != nil {
		panic(fmt.Sprintf("devop: claims: %v", err))
	}
	input := b64(hb) + "." + b64(pb)
	var sig []byte
	switch {
	case strings.EqualFold(mc.alg, "none"):
	case strings.HasPrefix(mc.alg, "HS"):
		if mc.hmacSecret == nil {
			panic("devop: " + mc.alg + " needs WithHMACSecret")
		}
		s, err := jws.NewSigner(jwa.SignatureAlgorithm(mc.alg))
		if err == nil {
			sig, err = s.Sign([]byte(input), mc.hmacSecret)
		}
		if err != nil {
			panic(fmt.Sprintf("devop: sign %s: %v", mc.alg, err))
		}
	default:
		if signer == nil {
			panic("devop: no key for alg " + mc.alg)
		}
		s, err := jws.NewSigner(jwa.SignatureAlgorithm(mc.alg))
		if err == nil {
			sig, err = s.Sign([]byte(input), signer)
		}
		if err != nil {
			panic(fmt.Sprintf("devop: sign %s: %v", mc.alg, err))
		}
	}
	token := input + "." + b64(sig)

	sub, _ := body["sub"].(string)
	ui := mc.userinfo
	if ui == nil {
		ui = map[string]any{}
		for k, v := range body {
			if !jwtOnly[k] {
				ui[k] = v
			}
		}
	}
	op.remember(token, sub, now.Add(exp), ui, mc)
	return token
}

// MintOpaque returns a random opaque access token that userinfo answers with claims
// (plus sub = DefaultSubject unless set) and introspection reports as active until
// now+1h (ExpiresIn changes it). WithIntrospection and WithIntrospectionExt add to the
// introspection reply.
func (op *OP) MintOpaque(claims map[string]any, opts ...MintOption) string {
	mc := mintConfig{}
	for _, o := range opts {
		o(&mc)
	}
	exp := time.Hour
	if mc.expiresIn != nil {
		exp = *mc.expiresIn
	}
	ui := map[string]any{"sub": DefaultSubject}
	for k, v := range claims {
		if v == nil {
			delete(ui, k)
			continue
		}
		ui[k] = v
	}
	if mc.userinfo != nil {
		ui = mc.userinfo
	}
	sub, _ := ui["sub"].(string)
	token := randomString(32)
	op.remember(token, sub, op.cfg.now().Add(exp), ui, mc)
	return token
}

func (op *OP) remember(token, sub string, exp time.Time, ui map[string]any, mc mintConfig) {
	now := op.cfg.now()
	in := map[string]any{
		"active":     true,
		"sub":        sub,
		"iss":        op.issuer,
		"client_id":  op.cfg.clientID,
		"token_type": "Bearer",
		"iat":        now.Unix(),
		"exp":        exp.Unix(),
	}
	if s, ok := ui["scope"]; ok {
		in["scope"] = s
	}
	for k, v := range mc.introspection {
		if v == nil {
			delete(in, k)
			continue
		}
		in[k] = v
	}
	if mc.ext != nil {
		in["ext"] = mc.ext
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	op.tokens[token] = &tokenInfo{subject: sub, expiry: exp, userinfo: ui, introspection: in}
}

// --- HTTP ---

func (op *OP) endpointOf(path string) Endpoint {
	p, ok := strings.CutPrefix(path, op.cfg.issuerPath)
	if !ok {
		return Other
	}
	switch p {
	case DiscoveryPath:
		return Discovery
	case JWKSPath:
		return JWKS
	case UserinfoPath:
		return Userinfo
	case IntrospectionPath:
		return Introspection
	}
	return Other
}

func (op *OP) serveHTTP(w http.ResponseWriter, r *http.Request) {
	e := op.endpointOf(r.URL.Path)
	op.mu.Lock()
	op.counts[e]++
	f := op.faults[e]
	op.mu.Unlock()

	if f.Close {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	if f.Hang {
		<-r.Context().Done()
		return
	}
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-r.Context().Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	if f.Status != 0 {
		writeJSON(w, f.Status, map[string]any{"error": "fault", "error_description": "devop fault switch"}, 0)
		return
	}
	if f.HTML {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, "<!doctype html><html><body><h1>Bad Gateway</h1></body></html>")
		return
	}
	if f.MalformedJSON {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, `{"sub": "trunc`)
		return
	}

	switch e {
	case Discovery:
		op.serveDiscovery(w, f)
	case JWKS:
		op.serveJWKS(w, f)
	case Userinfo:
		op.serveUserinfo(w, r, f)
	case Introspection:
		op.serveIntrospection(w, r, f)
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "not_found"}, 0)
	}
}

func (op *OP) serveDiscovery(w http.ResponseWriter, f Fault) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                op.issuer,
		"jwks_uri":                              op.URL(JWKS),
		"userinfo_endpoint":                     op.URL(Userinfo),
		"introspection_endpoint":                op.URL(Introspection),
		"authorization_endpoint":                op.issuer + "/authorize",
		"token_endpoint":                        op.issuer + "/token",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": op.cfg.algs,
	}, f.HugeBody)
}

func (op *OP) serveJWKS(w http.ResponseWriter, f Fault) {
	op.mu.Lock()
	b := op.jwksJSON
	op.mu.Unlock()
	if f.HugeBody > 0 {
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		writeJSON(w, http.StatusOK, m, f.HugeBody)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func bearerOf(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// lookup returns the token's info if it is known, not revoked and not expired.
func (op *OP) lookup(token string) *tokenInfo {
	op.mu.Lock()
	defer op.mu.Unlock()
	ti := op.tokens[token]
	if ti == nil || op.revoked[token] {
		return nil
	}
	if !ti.expiry.IsZero() && !op.cfg.now().Before(ti.expiry) {
		return nil
	}
	return ti
}

func (op *OP) serveUserinfo(w http.ResponseWriter, r *http.Request, f Fault) {
	ti := op.lookup(bearerOf(r))
	if ti == nil {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_token"}, 0)
		return
	}
	reply := copyMap(ti.userinfo)
	if f.WrongSub {
		reply["sub"] = "someone-else"
	}
	writeJSON(w, http.StatusOK, reply, f.HugeBody)
}

func (op *OP) serveIntrospection(w http.ResponseWriter, r *http.Request, f Fault) {
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"error": "invalid_request"}, 0)
		return
	}
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	}
	if !ok || subtle.ConstantTimeCompare([]byte(id), []byte(op.cfg.clientID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(secret), []byte(op.cfg.clientSecret)) != 1 {
		w.Header().Set("WWW-Authenticate", `Basic realm="devop"`)
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client"}, 0)
		return
	}
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request"}, 0)
		return
	}
	ti := op.lookup(r.PostForm.Get("token"))
	if ti == nil {
		writeJSON(w, http.StatusOK, map[string]any{"active": false}, f.HugeBody)
		return
	}
	reply := copyMap(ti.introspection)
	if f.WrongSub {
		reply["sub"] = "someone-else"
	}
	writeJSON(w, http.StatusOK, reply, f.HugeBody)
}

func writeJSON(w http.ResponseWriter, status int, v map[string]any, pad int) {
	if pad > 0 {
		v = copyMap(v)
		v["padding"] = strings.Repeat("x", pad)
	}
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func copyMap(m map[string]any) map[string]any {
	c := make(map[string]any, len(m)+1)
	for k, v := range m {
		c[k] = v
	}
	return c
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b64(b)
}

// SortedCounts renders the counters as "discovery=1 jwks=2 …" for test failure messages.
func (op *OP) SortedCounts() string {
	m := op.Counts()
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	var sb strings.Builder
	for i, k := range keys {
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%s=%d", k, m[Endpoint(k)])
	}
	return sb.String()
}
