package authz

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"sort"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// sigKey is a key pair for the signature tests.
type sigKey struct {
	name string
	priv crypto.Signer
}

func sigKeys(t testing.TB) []sigKey {
	t.Helper()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keys := []sigKey{{"RSA-2048", rsaKey}}
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, sigKey{c.Params().Name, k})
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return append(keys, sigKey{"Ed25519", ed})
}

// jwxVerify is the reference: jwx's jws verifier for alg.
func jwxVerify(t testing.TB, alg string, pub any, input, sig []byte) bool {
	t.Helper()
	v, err := jws.NewVerifier(jwa.SignatureAlgorithm(alg))
	if err != nil {
		t.Fatal(err)
	}
	return v.Verify(input, sig, pub) == nil
}

// TestVerifySignatureAgreesWithJWX: for every accepted algorithm and every key type,
// verifySignature (one shared jwx verifier per algorithm, behind the key guards)
// accepts exactly what a fresh jwx verifier of that algorithm accepts: the genuine
// signature (when the key fits the algorithm) and none of its variants (another key,
// another input, a flipped bit, a truncated or extended or empty signature, a key of
// another type or curve).
func TestVerifySignatureAgreesWithJWX(t *testing.T) {
	keys := sigKeys(t)
	input := []byte("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1LTEiLCJpc3MiOiJodHRwczovL29wIn0")
	var algs []string
	for alg := range supportedAlgs {
		algs = append(algs, alg)
	}
	sort.Strings(algs)
	genuine := map[string]int{} // alg → genuine signatures accepted
	for _, alg := range algs {
		signer, err := jws.NewSigner(jwa.SignatureAlgorithm(alg))
		if err != nil {
			t.Fatal(err)
		}
		for _, signing := range keys {
			sig, err := signer.Sign(input, signing.priv)
			if err != nil {
				continue // this key type cannot make alg signatures
			}
			for _, verifying := range keys {
				pub := verifying.priv.Public()
				flipped := append([]byte(nil), sig...)
				flipped[len(flipped)/2] ^= 0x01
				otherInput := append(append([]byte(nil), input...), 'x')
				for _, c := range []struct {
					name       string
					input, sig []byte
				}{
					{"signature", input, sig},
					{"flipped bit", input, flipped},
					{"other input", otherInput, sig},
					{"truncated", input, sig[:len(sig)-1]},
					{"extended", input, append(append([]byte(nil), sig...), 0)},
					{"empty", input, nil},
				} {
					name := alg + "/" + signing.name + "/" + verifying.name + "/" + c.name
					got := verifySignature(alg, pub, c.input, c.sig)
					if want := jwxVerify(t, alg, pub, c.input, c.sig); got != want {
						t.Errorf("%s: verifySignature %v, jwx %v", name, got, want)
					}
					if got && (c.name != "signature" || verifying.name != signing.name) {
						t.Errorf("%s: accepted", name)
					}
					if got {
						genuine[alg]++
					}
				}
			}
		}
	}
	// RS* and PS* with the RSA key, EdDSA with the Ed25519 key; ES* with each of the
	// three curves' keys (the signature is sized by the key's curve, as in jwx; fits
	// keeps a JWKS key of another curve than alg's from being tried at all).
	for _, alg := range algs {
		want := 1
		if alg[:2] == "ES" {
			want = 3
		}
		if genuine[alg] != want {
			t.Errorf("%s: %d genuine signatures accepted, want %d", alg, genuine[alg], want)
		}
	}
}

// TestVerifySignatureRejectsOddKeys: keys verifySignature cannot use are a rejection,
// never a panic.
func TestVerifySignatureRejectsOddKeys(t *testing.T) {
	for _, c := range []struct {
		name, alg string
		pub       any
	}{
		{"nil key", "RS256", nil},
		{"nil RSA key", "RS256", (*rsa.PublicKey)(nil)},
		{"nil EC key", "ES256", (*ecdsa.PublicKey)(nil)},
		{"EC key without curve", "ES256", &ecdsa.PublicKey{}},
		{"short Ed25519 key", "EdDSA", ed25519.PublicKey{1, 2, 3}},
		{"private key value", "RS256", rsa.PrivateKey{}},
		{"unknown alg", "HS256", []byte("secret")},
		{"none", "none", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if verifySignature(c.alg, c.pub, []byte("a.b"), make([]byte, 64)) {
				t.Fatal("accepted")
			}
		})
	}
}

// FuzzVerifySignature: on any signature bytes, verifySignature (the shared verifiers)
// agrees with a fresh jwx verifier for every key type (the signature is untrusted input).
func FuzzVerifySignature(f *testing.F) {
	keys := sigKeys(f)
	f.Add("ES256", []byte("a.b"), make([]byte, 64))
	f.Add("RS256", []byte("a.b"), make([]byte, 256))
	f.Add("EdDSA", []byte(""), make([]byte, 64))
	f.Add("PS384", []byte("x"), []byte{0})
	f.Fuzz(func(t *testing.T, alg string, input, sig []byte) {
		if !supportedAlgs[alg] {
			return
		}
		for _, k := range keys {
			pub := k.priv.Public()
			if got, want := verifySignature(alg, pub, input, sig), jwxVerify(t, alg, pub, input, sig); got != want {
				t.Fatalf("%s with %s: verifySignature %v, jwx %v", alg, k.name, got, want)
			}
		}
	})
}
