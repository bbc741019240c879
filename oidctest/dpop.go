package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// DPoPKey is a client's DPoP key pair (RFC 9449) for tests: it signs proofs and names
// its RFC 7638 thumbprint, which a DPoP-bound token carries as cnf.jkt.
type DPoPKey struct {
	alg  string
	priv crypto.Signer
	pub  jwk.Key
	jkt  string
	now  func() time.Time
	n    atomic.Uint64
}

// NewDPoPKey creates a fresh key for alg: "ES256" (P-256), "ES384" (P-384), "RS256" or
// "PS256" (RSA 2048). now is the clock of the proofs' iat (nil: time.Now).
func NewDPoPKey(alg string, now func() time.Time) (*DPoPKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "RS256", "PS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		return nil, fmt.Errorf("oidctest: no DPoP key for alg %q", alg)
	}
	if err != nil {
		return nil, err
	}
	pub, err := jwk.FromRaw(priv.Public())
	if err != nil {
		return nil, err
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &DPoPKey{alg: alg, priv: priv, pub: pub, jkt: base64.RawURLEncoding.EncodeToString(tp), now: now}, nil
}

// JKT returns the key's RFC 7638 SHA-256 thumbprint (base64url): the cnf.jkt of tokens
// bound to it.
func (k *DPoPKey) JKT() string { return k.jkt }

// Cnf returns {"jkt": JKT()} for a token's cnf claim.
func (k *DPoPKey) Cnf() map[string]any { return map[string]any{"jkt": k.jkt} }

// ProofOption changes a proof, to build wrong ones.
type ProofOption func(hdr, claims map[string]any)

// ProofClaim sets (or, with nil, removes) a claim of the proof.
func ProofClaim(name string, v any) ProofOption {
	return func(_, c map[string]any) {
		if v == nil {
			delete(c, name)
		} else {
			c[name] = v
		}
	}
}

// ProofHeader sets (or, with nil, removes) a header of the proof.
func ProofHeader(name string, v any) ProofOption {
	return func(h, _ map[string]any) {
		if v == nil {
			delete(h, name)
		} else {
			h[name] = v
		}
	}
}

// ProofAge makes the proof's iat d in the past (negative: in the future).
func ProofAge(k *DPoPKey, d time.Duration) ProofOption {
	return func(_, c map[string]any) { c["iat"] = k.now().Add(-d).Unix() }
}

// Proof returns a DPoP proof for a request: typ dpop+jwt, the key's alg and public jwk,
// a fresh jti, htm, htu, iat now and ath = base64url(SHA-256(token)) ("" token: no ath).
func (k *DPoPKey) Proof(method, htu, token string, opts ...ProofOption) string {
	hdr := map[string]any{"typ": "dpop+jwt", "alg": k.alg, "jwk": k.pub}
	claims := map[string]any{
		"jti": "p-" + strconv.FormatUint(k.n.Add(1), 10) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		"htm": method,
		"htu": htu,
		"iat": k.now().Unix(),
	}
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		claims["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	for _, o := range opts {
		o(hdr, claims)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	h := jws.NewHeaders()
	for name, v := range hdr {
		if err := h.Set(name, v); err != nil {
			panic(fmt.Sprintf("oidctest: proof header %s: %v", name, err))
		}
	}
	out, err := jws.Sign(payload, jws.WithKey(jwa.SignatureAlgorithm(k.alg), k.priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		panic(fmt.Sprintf("oidctest: sign proof: %v", err))
	}
	return string(out)
}
