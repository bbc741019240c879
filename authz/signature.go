package authz

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// verifiers are jwx's jws verifiers of every algorithm flaat-extauthz accepts, made
// once: they keep no state between calls, so one per algorithm serves every check.
var verifiers = func() map[string]jws.Verifier {
	m := map[string]jws.Verifier{}
	for _, alg := range []jwa.SignatureAlgorithm{jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384,
		jwa.PS512, jwa.ES256, jwa.ES384, jwa.ES512, jwa.EdDSA} {
		v, err := jws.NewVerifier(alg)
		if err != nil {
			panic("authz: jwx has no verifier for " + alg.String())
		}
		m[alg.String()] = v
	}
	return m
}()

// verifySignature reports whether sig is a valid JWS signature (RFC 7518 3) with alg
// over input under the public key pub (a *rsa.PublicKey, *ecdsa.PublicKey or
// ed25519.PublicKey, as jwk.PublicRawKeyOf and jwk.Key.Raw return them), checked by
// jwx's verifier of alg. It is the one signature check of JWTs, logout tokens and DPoP
// proofs. Any other alg, and a key that does not fit alg, is false: the callers check
// beforehand that alg is accepted and (for JWKS keys) fits the key.
func verifySignature(alg string, pub any, input, sig []byte) bool {
	v, ok := verifiers[alg]
	if !ok {
		return false
	}
	switch k := pub.(type) { // keys jwx's verifiers would panic on
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return false
		}
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return false
		}
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return false
		}
	}
	return v.Verify(input, sig, pub) == nil
}
