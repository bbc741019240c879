package authz

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"math/big"
)

// verifySignature reports whether sig is a valid JWS signature (RFC 7518 3) with alg
// over input under the public key pub (a *rsa.PublicKey, *ecdsa.PublicKey or
// ed25519.PublicKey, as jwk.PublicRawKeyOf and jwk.Key.Raw return them). It is the one
// signature check of JWTs, logout tokens and DPoP proofs, and what jwx's jws verifiers
// do for these algorithms, calling the standard library directly: the digest stays on
// the stack, and no verifier object, hash object or key copy is made per call. The
// cryptography is crypto/rsa's, crypto/ecdsa's and crypto/ed25519's. Any other alg or
// key type, and an alg that does not fit the key type, is false: the callers check
// beforehand that alg is accepted and (for JWKS keys) fits the key.
func verifySignature(alg string, pub any, input, sig []byte) bool {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		k, ok := pub.(*rsa.PublicKey)
		if !ok || k == nil {
			return false
		}
		h, d := jwsDigest(alg[2:], input)
		if alg[0] == 'P' {
			// nil options: the salt length is read from the signature (PSSSaltLengthAuto),
			// as jwx verifies PS* signatures.
			return rsa.VerifyPSS(k, h, d[:h.Size()], sig, nil) == nil
		}
		return rsa.VerifyPKCS1v15(k, h, d[:h.Size()], sig) == nil
	case "ES256", "ES384", "ES512":
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok || k == nil || k.Curve == nil {
			return false
		}
		// RFC 7518 3.4: R and S as fixed-size big-endian integers of the key's curve size,
		// concatenated (jwx sizes them by the key's curve; fits makes that alg's curve).
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return false
		}
		h, d := jwsDigest(alg[2:], input)
		var r, s big.Int
		r.SetBytes(sig[:size])
		s.SetBytes(sig[size:])
		return ecdsa.Verify(k, d[:h.Size()], &r, &s)
	case "EdDSA":
		k, ok := pub.(ed25519.PublicKey)
		if !ok || len(k) != ed25519.PublicKeySize { // ed25519.Verify panics on another length
			return false
		}
		return ed25519.Verify(k, input, sig)
	}
	return false
}

// jwsDigest hashes input with the SHA-2 function that an alg suffix ("256", "384",
// "512") names; the digest is the first h.Size() bytes of d.
func jwsDigest(bits string, input []byte) (h crypto.Hash, d [sha512.Size]byte) {
	switch bits {
	case "384":
		s := sha512.Sum384(input)
		copy(d[:], s[:])
		return crypto.SHA384, d
	case "512":
		return crypto.SHA512, sha512.Sum512(input)
	}
	s := sha256.Sum256(input)
	copy(d[:], s[:])
	return crypto.SHA256, d
}
