package securitytest

import (
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
)

// advEnv is what the adversarial cases build their requests from.
type advEnv struct {
	s                              *Stack
	clock                          *Clock
	evil                           *elsewhere
	trusted, enc, ops, attacker    *rsa.PrivateKey
	attackerJWK                    jwk.Key
	t                              *testing.T
	attackerCertDER                []byte
	userToken, adminToken, opaque_ string

	// sender-constrained tokens: the client's DPoP key, an attacker's, a client
	// certificate and an attacker's
	dpopKey, dpopOther   *oidctest.DPoPKey
	clientCertDER        []byte
	dpopToken, mtlsToken string
}

// htu is the DPoP htu of a check request to path.
func htu(path string) string { return Scheme + "://" + Host + path }

// dpop is a request with a DPoP-scheme token and a proof (path default /api).
func dpop(tok, proof string) Req { return Req{Authorization: "DPoP " + tok, DPoP: proof} }

// escapedCert is a DER certificate as Envoy's source.certificate carries it.
func escapedCert(der []byte) string {
	return url.PathEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
}

// rawProof is a proof with a header and claims of our own choosing, signed with key
// under alg (or unsigned when key is nil).
func (e *advEnv) rawProof(header map[string]any, claims map[string]any, alg jwa.SignatureAlgorithm, key any) string {
	c := map[string]any{"jti": fmt.Sprintf("raw-%d", time.Now().UnixNano()), "htm": "GET", "htu": htu("/api"),
		"iat": e.clock.Now().Unix(), "ath": athOf(e.dpopToken)}
	for k, v := range claims {
		c[k] = v
	}
	hb, _ := json.Marshal(header)
	pb, _ := json.Marshal(c)
	if key == nil {
		return b64.EncodeToString(hb) + "." + b64.EncodeToString(pb) + ".AAAA" // unsigned: a dummy signature
	}
	return signRaw(nil, string(hb), string(pb), alg, key)
}

func athOf(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return b64.EncodeToString(sum[:])
}

// mint signs a token with the OP's key: aud "api", groups ["users"] unless overridden.
func (e *advEnv) mint(claims map[string]any, opts ...oidctest.MintOption) string {
	c := map[string]any{"aud": "api", "groups": []string{"users"}}
	for k, v := range claims {
		c[k] = v
	}
	return e.s.OP.MintJWT(c, opts...)
}

// claims returns a payload with the usual claims; extra is spliced in raw (it may repeat
// members or carry odd types). exp is set unless extra says otherwise (noExp).
func (e *advEnv) payload(iss string, extra string, withExp bool) string {
	now := e.clock.Now().Unix()
	p := fmt.Sprintf(`{"iss":%q,"sub":"test-user","aud":"api","iat":%d`, iss, now)
	if !strings.HasPrefix(extra, `"groups":`) { // cases about groups bring their own
		p += `,"groups":["users"]`
	}
	if withExp {
		p += fmt.Sprintf(`,"exp":%d`, now+3600)
	}
	if extra != "" {
		p += "," + extra
	}
	return p + "}"
}

// trustedRaw signs payload with the extra trusted key (kid sec-sig-1, published as use sig).
func (e *advEnv) trustedRaw(payload string) string {
	return signRaw(nil, fmt.Sprintf(`{"alg":"RS256","typ":"at+jwt","kid":%q}`, kidTrusted), payload, jwa.RS256, e.trusted)
}

func (e *advEnv) withHeader(header string, key any, payload string) string {
	return signRaw(nil, header, payload, jwa.RS256, key)
}

// replacePart replaces part i (0 header, 1 payload, 2 signature) of a compact JWS.
func replacePart(tok string, i int, f func(string) string) string {
	p := strings.Split(tok, ".")
	p[i] = f(p[i])
	return strings.Join(p, ".")
}

// setChar replaces the character in the middle of s.
func setChar(c string) func(string) string {
	return func(s string) string { m := len(s) / 2; return s[:m] + c + s[m+1:] }
}

func nested(depth int) string {
	return strings.Repeat("[", depth) + `"admins"` + strings.Repeat("]", depth)
}

// attack is one case of the adversarial table.
type attack struct {
	name string
	// req builds the request (tokens are built here, after the OP is up).
	req func(e *advEnv) Req
	// want is the HTTP status that proves the attack failed (400/401/403; 200 only for the
	// header-spoofing case, where verify checks what reaches the upstream).
	want int
	// noOutbound: the server must not make a single outbound request for this check.
	noOutbound bool
	// before/after set and clear an OP fault around the check.
	before, after func(e *advEnv)
	// freshKid: the token names a kid the OP never published. The clock is first moved
	// past the JWKS refresh interval, so that the kid gets a refresh (which does not
	// find it: 401); without one, an unknown kid is 503, its key may be new.
	freshKid bool
	// verify returns a non-empty string when the attack got through in another way.
	verify func(e *advEnv, resp *authv3.CheckResponse) string
}

// adversarialCases is THE table: one named case per attack.
func adversarialCases() []attack {
	bearer := func(f func(e *advEnv) string) func(e *advEnv) Req {
		return func(e *advEnv) Req { return Req{Authorization: Bearer(f(e))} }
	}
	userOn := func(path string) func(e *advEnv) Req {
		return func(e *advEnv) Req { return Req{Authorization: Bearer(e.userToken), Path: path} }
	}
	proofReq := func(f func(e *advEnv) string) func(e *advEnv) Req {
		return func(e *advEnv) Req { return dpop(e.dpopToken, f(e)) }
	}
	anonOn := func(path string) func(e *advEnv) Req {
		return func(e *advEnv) Req { return Req{Path: path} }
	}
	return []attack{
		// --- DPoP (RFC 9449): the token is bound to e.dpopKey ---
		{name: "dpop: bound token sent as Bearer (downgrade)", want: 401,
			req: bearer(func(e *advEnv) string { return e.dpopToken })},
		{name: "dpop: bound token as Bearer with a valid proof (downgrade)", want: 401,
			req: func(e *advEnv) Req {
				return Req{Authorization: Bearer(e.dpopToken), DPoP: e.dpopKey.Proof("GET", htu("/api"), e.dpopToken)}
			}},
		{name: "dpop: no proof", want: 401, req: proofReq(func(e *advEnv) string { return "" })},
		{name: "dpop: replayed proof", want: 401,
			req: func(e *advEnv) Req {
				r := dpop(e.dpopToken, e.dpopKey.Proof("GET", htu("/api"), e.dpopToken))
				if got, resp := e.s.Check(e.t, r, 0); got != 200 {
					e.t.Fatalf("first use of the proof: %d %s", got, resp.GetDeniedResponse().GetBody())
				}
				return r
			}},
		{name: "dpop: proof for another path (htu)", want: 401, req: func(e *advEnv) Req {
			r := dpop(e.dpopToken, e.dpopKey.Proof("GET", htu("/api"), e.dpopToken))
			r.Path = "/admin/users"
			return r
		}},
		{name: "dpop: proof for another host (htu)", want: 401,
			req: proofReq(func(e *advEnv) string {
				return e.dpopKey.Proof("GET", "https://other.example.org/api", e.dpopToken)
			})},
		{name: "dpop: proof for http instead of https (htu)", want: 401,
			req: proofReq(func(e *advEnv) string { return e.dpopKey.Proof("GET", "http://"+Host+"/api", e.dpopToken) })},
		{name: "dpop: proof for another method (htm)", want: 401,
			req: proofReq(func(e *advEnv) string { return e.dpopKey.Proof("POST", htu("/api"), e.dpopToken) })},
		{name: "dpop: proof for another token (ath)", want: 401,
			req: proofReq(func(e *advEnv) string { return e.dpopKey.Proof("GET", htu("/api"), e.userToken) })},
		{name: "dpop: stale proof (iat)", want: 401,
			req: proofReq(func(e *advEnv) string {
				return e.dpopKey.Proof("GET", htu("/api"), e.dpopToken, oidctest.ProofAge(e.dpopKey, 10*time.Minute))
			})},
		{name: "dpop: proof signed by another key", want: 401,
			req: proofReq(func(e *advEnv) string { return e.dpopOther.Proof("GET", htu("/api"), e.dpopToken) })},
		{name: "dpop: proof with alg none", want: 401, noOutbound: true,
			req: proofReq(func(e *advEnv) string {
				return e.rawProof(map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": e.dpopKeyJWK()}, nil, "", nil)
			})},
		{name: "dpop: proof HS256 with a symmetric jwk", want: 401, noOutbound: true,
			req: proofReq(func(e *advEnv) string {
				secret := []byte("attacker-chosen-secret-0123456789")
				return e.rawProof(map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": map[string]any{"kty": "oct", "k": b64.EncodeToString(secret)}}, nil, jwa.HS256, secret)
			})},
		{name: "dpop: proof whose jwk is a private key", want: 401,
			req: proofReq(func(e *advEnv) string {
				priv, _ := jwk.FromRaw(e.attacker)
				return e.rawProof(map[string]any{"typ": "dpop+jwt", "alg": "RS256", "jwk": priv}, nil, jwa.RS256, e.attacker)
			})},
		{name: "dpop: proof with typ JWT", want: 401,
			req: proofReq(func(e *advEnv) string {
				return e.dpopKey.Proof("GET", htu("/api"), e.dpopToken, oidctest.ProofHeader("typ", "JWT"))
			})},
		{name: "dpop: two DPoP headers (joined by Envoy)", want: 401,
			req: proofReq(func(e *advEnv) string {
				return e.dpopKey.Proof("GET", htu("/api"), e.dpopToken) + "," + e.dpopKey.Proof("GET", htu("/api"), e.dpopToken)
			})},
		{name: "dpop: the access token itself as the proof", want: 401,
			req: proofReq(func(e *advEnv) string { return e.dpopToken })},
		{name: "dpop: attacker's proof for an unbound stolen token", want: 401,
			req: func(e *advEnv) Req { return dpop(e.userToken, e.dpopOther.Proof("GET", htu("/api"), e.userToken)) }},
		{name: "dpop: proof with crit header", want: 401,
			req: proofReq(func(e *advEnv) string {
				return e.dpopKey.Proof("GET", htu("/api"), e.dpopToken, oidctest.ProofHeader("crit", []string{"htm"}))
			})},

		// --- certificate-bound tokens (RFC 8705): the token is bound to e.clientCertDER ---
		{name: "mtls: bound token without a client certificate", want: 401,
			req: bearer(func(e *advEnv) string { return e.mtlsToken })},
		{name: "mtls: bound token with another client certificate", want: 401,
			req: func(e *advEnv) Req {
				return Req{Authorization: Bearer(e.mtlsToken), ClientCert: escapedCert(e.attackerCertDER)}
			}},
		{name: "mtls: bound token with a client-sent x-forwarded-client-cert (gRPC)", want: 401,
			req: func(e *advEnv) Req {
				sum := sha256.Sum256(e.clientCertDER)
				return Req{Authorization: Bearer(e.mtlsToken), Headers: map[string]string{"x-forwarded-client-cert": "Hash=" + hex.EncodeToString(sum[:])}}
			}},
		{name: "mtls: bound token with a garbage certificate", want: 401,
			req: func(e *advEnv) Req {
				return Req{Authorization: Bearer(e.mtlsToken), ClientCert: "-----BEGIN%20CERTIFICATE-----%0Aabc"}
			}},

		// --- algorithm attacks ---
		{name: "alg none", want: 401, noOutbound: true,
			req: bearer(func(e *advEnv) string { return e.mint(nil, oidctest.WithAlg("none")) })},
		{name: "alg NoNe mixed case", want: 401, noOutbound: true,
			req: bearer(func(e *advEnv) string { return e.mint(nil, oidctest.WithAlg("NoNe")) })},
		{name: "alg none on a real token, signature stripped", want: 401, noOutbound: true,
			req: bearer(func(e *advEnv) string {
				tok := replacePart(e.mint(nil), 0, func(string) string {
					return b64.EncodeToString([]byte(fmt.Sprintf(`{"alg":"none","kid":%q}`, e.s.OP.KeyID("RS256"))))
				})
				return replacePart(tok, 2, func(string) string { return "" })
			})},
		{name: "HS256 keyed with the RSA public key (PEM)", want: 401, noOutbound: true,
			req: bearer(func(e *advEnv) string {
				return e.mint(nil, oidctest.WithAlg("HS256"), oidctest.WithHMACSecret(e.s.OP.RSAPublicKeyPEM()), oidctest.WithKid(e.s.OP.KeyID("RS256")))
			})},
		{name: "HS256 keyed with the RSA public key (DER)", want: 401, noOutbound: true,
			req: bearer(func(e *advEnv) string {
				blk, _ := pem.Decode(e.s.OP.RSAPublicKeyPEM())
				return e.mint(nil, oidctest.WithAlg("HS256"), oidctest.WithHMACSecret(blk.Bytes), oidctest.WithKid(e.s.OP.KeyID("RS256")))
			})},
		{name: "ES256 header with an RSA kid", want: 401,
			req: bearer(func(e *advEnv) string {
				return e.mint(nil, oidctest.WithAlg("ES256"), oidctest.WithKid(e.s.OP.KeyID("RS256")))
			})},
		{name: "kid of an encryption key (use enc)", want: 401,
			req: bearer(func(e *advEnv) string {
				return e.withHeader(fmt.Sprintf(`{"alg":"RS256","kid":%q}`, kidEnc), e.enc, e.payload(e.s.OP.Issuer(), "", true))
			})},
		{name: "kid of a key_ops encrypt-only key", want: 401,
			req: bearer(func(e *advEnv) string {
				return e.withHeader(fmt.Sprintf(`{"alg":"RS256","kid":%q}`, kidOps), e.ops, e.payload(e.s.OP.Issuer(), "", true))
			})},
		{name: "OP kid, signed by an unpublished key", want: 401,
			req: bearer(func(e *advEnv) string { return e.mint(nil, oidctest.WithSigner(e.attacker)) })},
		{name: "kid path traversal", want: 401, freshKid: true,
			req: bearer(func(e *advEnv) string {
				return e.withHeader(`{"alg":"RS256","kid":"../../../../etc/passwd"}`, e.attacker, e.payload(e.s.OP.Issuer(), "", true))
			})},
		// Right after the refresh above: another never-published kid is 503 (its key may
		// be one the OP has just published), not a 401 that would be cached as final.
		{name: "second made-up kid while JWKS refreshes are rate-limited", want: 503, noOutbound: true,
			req: bearer(func(e *advEnv) string {
				return e.withHeader(`{"alg":"RS256","kid":"made-up-2"}`, e.attacker, e.payload(e.s.OP.Issuer(), "", true))
			})},
		{name: "crit header", want: 401, noOutbound: true,
			req: bearer(func(e *advEnv) string {
				return e.withHeader(fmt.Sprintf(`{"alg":"RS256","kid":%q,"crit":["exp"],"exp":1}`, kidTrusted), e.trusted, e.payload(e.s.OP.Issuer(), "", true))
			})},

		// --- keys from elsewhere: must never be fetched ---
		{name: "jku to another server", want: 401, freshKid: true,
			req: bearer(func(e *advEnv) string {
				return e.withHeader(fmt.Sprintf(`{"alg":"RS256","kid":%q,"jku":%q}`, kidAttack, e.evil.URL+"/jwks"), e.attacker, e.payload(e.s.OP.Issuer(), "", true))
			})},
		{name: "x5u to another server", want: 401, freshKid: true,
			req: bearer(func(e *advEnv) string {
				return e.withHeader(fmt.Sprintf(`{"alg":"RS256","kid":%q,"x5u":%q}`, kidAttack, e.evil.URL+"/cert.pem"), e.attacker, e.payload(e.s.OP.Issuer(), "", true))
			})},
		{name: "embedded jwk header", want: 401, freshKid: true,
			req: bearer(func(e *advEnv) string {
				jb, _ := json.Marshal(e.attackerJWK)
				return e.withHeader(fmt.Sprintf(`{"alg":"RS256","kid":%q,"jwk":%s}`, kidAttack, jb), e.attacker, e.payload(e.s.OP.Issuer(), "", true))
			})},
		{name: "embedded x5c header", want: 401,
			req: bearer(func(e *advEnv) string {
				return e.withHeader(fmt.Sprintf(`{"alg":"RS256","x5c":[%q]}`, base64.StdEncoding.EncodeToString(e.attackerCertDER)), e.attacker, e.payload(e.s.OP.Issuer(), "", true))
			})},

		// --- issuer attacks ---
		{name: "untrusted iss with its own discovery", want: 401, noOutbound: true,
			req: bearer(func(e *advEnv) string {
				return e.withHeader(fmt.Sprintf(`{"alg":"RS256","kid":%q}`, kidAttack), e.attacker, e.payload(e.evil.URL, "", true))
			})},
		{name: "iss missing", want: 401, noOutbound: true,
			req: bearer(func(e *advEnv) string { return e.mint(map[string]any{"iss": nil}) })},
		{name: "iss with two trailing slashes", want: 401, noOutbound: true,
			req: bearer(func(e *advEnv) string { return e.mint(map[string]any{"iss": e.s.OP.Issuer() + "//"}) })},
		{name: "iss with upper-case scheme", want: 401, noOutbound: true,
			req: bearer(func(e *advEnv) string {
				return e.mint(map[string]any{"iss": "HTTP" + strings.TrimPrefix(e.s.OP.Issuer(), "http")})
			})},
		{name: "iss with trailing slash, signed by another key", want: 401, freshKid: true,
			req: bearer(func(e *advEnv) string {
				return e.withHeader(fmt.Sprintf(`{"alg":"RS256","kid":%q}`, kidAttack), e.attacker, e.payload(e.s.OP.Issuer()+"/", "", true))
			})},
		{name: "iss look-alike (Cyrillic shha for h)", want: 401, noOutbound: true,
			req: bearer(func(e *advEnv) string {
				return e.mint(map[string]any{"iss": "һ" + strings.TrimPrefix(e.s.OP.Issuer(), "h")})
			})},
		{name: "iss look-alike (fullwidth digit one)", want: 401, noOutbound: true,
			req: bearer(func(e *advEnv) string {
				return e.mint(map[string]any{"iss": strings.Replace(e.s.OP.Issuer(), "127.", "１27.", 1)})
			})},
		{name: "iss with zero-width space", want: 401, noOutbound: true,
			req: bearer(func(e *advEnv) string { return e.mint(map[string]any{"iss": e.s.OP.Issuer() + "\u200b"}) })},

		// --- malformed tokens ---
		{name: "token over the size limit", want: 401, noOutbound: true,
			req: bearer(func(e *advEnv) string { return e.mint(map[string]any{"pad": strings.Repeat("x", 9000)}) })},
		{name: "5-part JWE", want: 401,
			req: bearer(func(e *advEnv) string {
				h := b64.EncodeToString([]byte(fmt.Sprintf(`{"alg":"RSA-OAEP","enc":"A256GCM","kid":%q}`, e.s.OP.KeyID("RS256"))))
				return h + ".AAAA.BBBBBBBBBBBBBBBB.CCCC.DDDDDDDDDDDDDDDDDDDDDD"
			})},
		{name: "bad base64 in header ('+')", want: 401,
			req: bearer(func(e *advEnv) string { return replacePart(e.mint(nil), 0, setChar("+")) })},
		{name: "bad base64 in payload ('/')", want: 401,
			req: bearer(func(e *advEnv) string { return replacePart(e.mint(nil), 1, setChar("/")) })},
		{name: "bad base64 in signature ('~')", want: 401,
			req: bearer(func(e *advEnv) string { return replacePart(e.mint(nil), 2, setChar("~")) })},
		{name: "bad base64 in signature (padding)", want: 401,
			req: bearer(func(e *advEnv) string { return e.mint(nil) + "==" })},
		{name: "bad base64 in payload (length 1 mod 4)", want: 401,
			req: bearer(func(e *advEnv) string { return replacePart(e.mint(nil), 1, func(s string) string { return s + "A" }) })},
		{name: "header that is not JSON", want: 401,
			req: bearer(func(e *advEnv) string {
				return replacePart(e.mint(nil), 0, func(string) string { return b64.EncodeToString([]byte("{alg:RS256")) })
			})},

		// --- claim type confusion (signed by a trusted key: only the claims are wrong) ---
		{name: "duplicate exp, the last one expired", want: 401,
			req: bearer(func(e *advEnv) string {
				now := e.clock.Now().Unix()
				return e.trustedRaw(e.payload(e.s.OP.Issuer(), fmt.Sprintf(`"exp":%d,"exp":%d`, now+3600, now-3600), false))
			})},
		{name: "duplicate exp, the last one in the future", want: 401,
			req: bearer(func(e *advEnv) string {
				now := e.clock.Now().Unix()
				return e.trustedRaw(e.payload(e.s.OP.Issuer(), fmt.Sprintf(`"exp":%d,"exp":%d`, now-3600, now+3600), false))
			})},
		{name: "duplicate iss, the first untrusted", want: 401,
			req: bearer(func(e *advEnv) string {
				return e.trustedRaw(e.payload("https://evil.example", fmt.Sprintf(`"iss":%q`, e.s.OP.Issuer()), true))
			})},
		{name: "duplicate member in a nested claim", want: 401,
			req: bearer(func(e *advEnv) string {
				return e.trustedRaw(e.payload(e.s.OP.Issuer(), `"realm_access":{"roles":["user"],"roles":["admin"]}`, true))
			})},
		{name: "duplicate alg in the header", want: 401,
			req: bearer(func(e *advEnv) string {
				return e.withHeader(fmt.Sprintf(`{"alg":"none","alg":"RS256","kid":%q}`, kidTrusted), e.trusted, e.payload(e.s.OP.Issuer(), "", true))
			})},
		{name: "iss with trailing slash, signed by the trusted key", want: 401,
			req: bearer(func(e *advEnv) string { return e.trustedRaw(e.payload(e.s.OP.Issuer()+"/", "", true)) })},
		{name: "exp as string", want: 401,
			req: bearer(func(e *advEnv) string {
				return e.trustedRaw(e.payload(e.s.OP.Issuer(), fmt.Sprintf(`"exp":"%d"`, e.clock.Now().Unix()+3600), false))
			})},
		{name: "exp as float just past the leeway", want: 401,
			req: bearer(func(e *advEnv) string {
				return e.trustedRaw(e.payload(e.s.OP.Issuer(), fmt.Sprintf(`"exp":%d.5`, e.clock.Now().Unix()-61), false))
			})},
		{name: "exp huge (1e300)", want: 401,
			req: bearer(func(e *advEnv) string { return e.trustedRaw(e.payload(e.s.OP.Issuer(), `"exp":1e300`, false)) })},
		{name: "exp huge integer (2^70)", want: 401,
			req: bearer(func(e *advEnv) string {
				return e.trustedRaw(e.payload(e.s.OP.Issuer(), `"exp":1180591620717411303424`, false))
			})},
		{name: "exp negative", want: 401,
			req: bearer(func(e *advEnv) string { return e.trustedRaw(e.payload(e.s.OP.Issuer(), `"exp":-1`, false)) })},
		{name: "exp boolean", want: 401,
			req: bearer(func(e *advEnv) string { return e.trustedRaw(e.payload(e.s.OP.Issuer(), `"exp":true`, false)) })},
		{name: "exp null", want: 401,
			req: bearer(func(e *advEnv) string { return e.trustedRaw(e.payload(e.s.OP.Issuer(), `"exp":null`, false)) })},
		{name: "exp missing", want: 401,
			req: bearer(func(e *advEnv) string { return e.trustedRaw(e.payload(e.s.OP.Issuer(), "", false)) })},
		{name: "expired", want: 401,
			req: bearer(func(e *advEnv) string { return e.mint(nil, oidctest.ExpiresIn(-2*time.Minute)) })},
		{name: "nbf in the future", want: 401,
			req: bearer(func(e *advEnv) string { return e.mint(nil, oidctest.NotBefore(10*time.Minute)) })},
		{name: "aud as object", want: 401,
			req: bearer(func(e *advEnv) string { return e.mint(map[string]any{"aud": map[string]any{"api": true}}) })},
		{name: "aud list of non-strings", want: 401,
			req: bearer(func(e *advEnv) string { return e.mint(map[string]any{"aud": []any{1, true, nil}}) })},
		{name: "aud of another service", want: 401,
			req: bearer(func(e *advEnv) string { return e.mint(map[string]any{"aud": "other"}) })},
		{name: "nested JSON depth bomb in groups (trusted key, /admin)", want: 403,
			req: func(e *advEnv) Req {
				return Req{Path: "/admin", Authorization: Bearer(e.trustedRaw(e.payload(e.s.OP.Issuer(), `"groups":`+nested(2000), true)))}
			}},
		{name: "nested JSON depth bomb in header", want: 401,
			req: bearer(func(e *advEnv) string {
				return e.withHeader(`{"alg":"RS256","x":`+nested(2500)+`}`, e.attacker, e.payload(e.s.OP.Issuer(), "", true))
			})},
		{name: "groups as object (trusted key, /admin)", want: 403,
			req: func(e *advEnv) Req {
				return Req{Path: "/admin", Authorization: Bearer(e.trustedRaw(e.payload(e.s.OP.Issuer(), `"groups":{"admins":true}`, true)))}
			}},

		// --- the Authorization header ---
		{name: "Bearer with two tokens", want: 401, noOutbound: true,
			req: func(e *advEnv) Req { return Req{Authorization: "Bearer " + e.userToken + " " + e.adminToken} }},
		{name: "two Bearer headers joined by Envoy", want: 401, noOutbound: true,
			req: func(e *advEnv) Req { return Req{Authorization: "Bearer " + e.userToken + ",Bearer " + e.adminToken} }},
		{name: "header with CR/LF", want: 401, noOutbound: true,
			req: func(e *advEnv) Req {
				return Req{Authorization: "Bearer " + e.adminToken + "\r\nx-auth-request-user: root"}
			}},
		{name: "header with NUL", want: 401, noOutbound: true,
			req: func(e *advEnv) Req { return Req{Authorization: "Bearer " + e.adminToken + "\x00"} }},
		{name: "Basic scheme", want: 401, noOutbound: true,
			req: func(e *advEnv) Req { return Req{Authorization: "Basic YWRtaW46YWRtaW4="} }},
		{name: "Bearer without a token", want: 401, noOutbound: true,
			req: func(e *advEnv) Req { return Req{Authorization: "Bearer "} }},
		{name: "unknown opaque token", want: 401,
			req: bearer(func(e *advEnv) string { return "0paque-" + strings.Repeat("z", 40) })},

		// --- identity headers from the client ---
		{name: "spoofed identity headers are overwritten or removed", want: 200,
			req: func(e *advEnv) Req {
				return Req{Authorization: Bearer(e.userToken), Headers: map[string]string{
					"x-auth-request-user": "root", "x-auth-request-email": "root@example.org",
					"x-auth-request-groups": "admins", "x-auth-request-issuer": "https://evil.example",
					"x-auth-request-access-token": "forged",
				}}
			},
			verify: func(e *advEnv, resp *authv3.CheckResponse) string {
				up := upstream(map[string]string{
					"x-auth-request-user": "root", "x-auth-request-email": "root@example.org",
					"x-auth-request-groups": "admins", "x-auth-request-issuer": "https://evil.example",
					"x-auth-request-access-token": "forged",
				}, resp)
				want := map[string]string{"x-auth-request-user": oidctest.DefaultSubject, "x-auth-request-groups": "users", "x-auth-request-issuer": e.s.OP.Issuer()}
				var bad []string
				for k, v := range up {
					if want[k] != v {
						bad = append(bad, fmt.Sprintf("%s=%q", k, v))
					}
				}
				for k := range want {
					if _, ok := up[k]; !ok {
						bad = append(bad, k+" missing")
					}
				}
				return strings.Join(bad, ", ")
			}},
		{name: "spoofed groups header on /admin", want: 403,
			req: func(e *advEnv) Req {
				return Req{Path: "/admin", Authorization: Bearer(e.userToken), Headers: map[string]string{"x-auth-request-groups": "admins"}}
			}},

		// --- path tricks: a path that reads one way hits the admin rule (403); one whose
		// readings select different routes, or that cannot be read, is refused (400) ---
		{name: "path //admin", want: 400, req: userOn("//admin")},
		{name: "path /a/../admin", want: 403, req: userOn("/a/../admin")},
		{name: "path /%61dmin", want: 400, req: userOn("/%61dmin")},
		{name: "path /admin%2F", want: 400, req: userOn("/admin%2F")},
		{name: "path /admin?x", want: 403, req: userOn("/admin?x")},
		{name: "path /admin#x", want: 400, req: userOn("/admin#x")},
		{name: "path /./admin/", want: 403, req: userOn("/./admin/")},
		{name: "path /admin;jsessionid=1", want: 400, req: userOn("/admin;jsessionid=1")},
		{name: "path /public/..;/admin", want: 400, req: userOn("/public/..;/admin")},
		{name: `path /\admin`, want: 400, req: userOn(`/\admin`)},
		{name: "path /%2e%2e/admin", want: 400, req: userOn("/%2e%2e/admin")},
		{name: "path /%2561dmin (double-encoded)", want: 400, req: userOn("/%2561dmin")},
		{name: "path /x/%2e%2e%2fadmin", want: 400, req: userOn("/x/%2e%2e%2fadmin")},
		{name: "path /admin%00", want: 400, req: userOn("/admin%00")},
		{name: "path /admin%252F (double encoded)", want: 400, req: userOn("/admin%252F")},
		// --- issue 12: from a protected route onto the public one, without a token. Each
		// was allowed as /health before readings were compared. ---
		{name: "path /admin/..;/health without a token", want: 400, noOutbound: true, req: anonOn("/admin/..;/health")},
		{name: "path /admin/%2e%2e/health without a token", want: 400, noOutbound: true, req: anonOn("/admin/%2e%2e/health")},
		{name: "path /admin/%2E%2e/health without a token", want: 400, noOutbound: true, req: anonOn("/admin/%2E%2e/health")},
		{name: "path /admin/.%2e/health without a token", want: 400, noOutbound: true, req: anonOn("/admin/.%2e/health")},
		{name: "path /admin/..%3b/health without a token", want: 400, noOutbound: true, req: anonOn("/admin/..%3b/health")},
		{name: "path /admin/..;x=1/health without a token", want: 400, noOutbound: true, req: anonOn("/admin/..;x=1/health")},
		{name: "path /admin%2f..%2fhealth without a token", want: 400, noOutbound: true, req: anonOn("/admin%2f..%2fhealth")},
		{name: `path /admin\..\health without a token`, want: 400, noOutbound: true, req: anonOn(`/admin\..\health`)},
		{name: "path /admin%5c..%5chealth without a token", want: 400, noOutbound: true, req: anonOn("/admin%5c..%5chealth")},
		{name: "path /health#/../admin without a token", want: 400, noOutbound: true, req: anonOn("/health#/../admin")},
		{name: "path /admin//../health without a token", want: 400, noOutbound: true, req: anonOn("/admin//../health")},

		// --- OP replies ---
		{name: "userinfo sub differs from token sub", want: 401,
			req:    bearer(func(e *advEnv) string { return e.mint(nil) }),
			before: func(e *advEnv) { e.s.OP.SetFault(oidctest.Userinfo, oidctest.Fault{WrongSub: true}) },
			after:  func(e *advEnv) { e.s.OP.ClearFaults() }},
	}
}

// upstream applies an OK response to the client's headers the way Envoy does
// (Append=false overwrites, then headers_to_remove) and returns the identity headers
// the upstream receives.
func upstream(client map[string]string, resp *authv3.CheckResponse) map[string]string {
	out := map[string]string{}
	for k, v := range client {
		out[k] = v
	}
	ok := resp.GetOkResponse()
	for _, h := range ok.GetHeaders() {
		k := h.GetHeader().GetKey()
		if h.GetAppend() != nil && h.GetAppend().GetValue() { //nolint:staticcheck // Envoy reads it first
			out[k] = out[k] + "," + h.GetHeader().GetValue()
		} else {
			out[k] = h.GetHeader().GetValue()
		}
	}
	for _, k := range ok.GetHeadersToRemove() {
		delete(out, k)
	}
	for k := range out {
		if !strings.HasPrefix(k, "x-auth-request-") {
			delete(out, k)
		}
	}
	return out
}

func newAdvEnv(t *testing.T) *advEnv {
	t.Helper()
	clock := NewClock()
	s := NewStack(t, Options{Now: clock.Now})
	trusted, enc, ops, attacker := testKeys(t)
	e := &advEnv{s: s, clock: clock, trusted: trusted, enc: enc, ops: ops, attacker: attacker}
	e.attackerJWK = pubJWK(t, attacker, kidAttack, nil)
	e.attackerCertDER = selfSignedCert(t, attacker)
	set := jwk.NewSet()
	_ = set.AddKey(e.attackerJWK)
	jb, _ := json.Marshal(set)
	e.evil = newElsewhere(t, jb, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.attackerCertDER}))
	var served atomic.Int64
	s.Net.SetHook(jwksHook(t, &served,
		pubJWK(t, trusted, kidTrusted, map[string]any{jwk.KeyUsageKey: "sig"}),
		pubJWK(t, enc, kidEnc, map[string]any{jwk.KeyUsageKey: "enc"}),
		pubJWK(t, ops, kidOps, map[string]any{jwk.KeyOpsKey: jwk.KeyOperationList{jwk.KeyOpEncrypt}}),
	))
	e.userToken = e.mint(nil)
	e.adminToken = e.mint(map[string]any{"groups": []string{"users", "admins"}})
	e.opaque_ = s.OP.MintOpaque(map[string]any{"groups": []string{"users"}})
	var err error
	if e.dpopKey, err = oidctest.NewDPoPKey("ES256", clock.Now); err != nil {
		t.Fatal(err)
	}
	if e.dpopOther, err = oidctest.NewDPoPKey("ES256", clock.Now); err != nil {
		t.Fatal(err)
	}
	e.dpopToken = e.mint(map[string]any{"cnf": e.dpopKey.Cnf()})
	e.clientCertDER = selfSignedCert(t, ops)
	certSum := sha256.Sum256(e.clientCertDER)
	e.mtlsToken = e.mint(map[string]any{"cnf": map[string]any{"x5t#S256": b64.EncodeToString(certSum[:])}})
	e.t = t

	// Positive controls: the harness can allow, so the denials below mean something.
	controls := []struct {
		name string
		r    Req
	}{
		{"user token on /api", Req{Authorization: Bearer(e.userToken)}},
		{"admin token on /admin", Req{Authorization: Bearer(e.adminToken), Path: "/admin/users"}},
		{"trusted raw-signed token", Req{Authorization: Bearer(e.trustedRaw(e.payload(s.OP.Issuer(), "", true)))}},
		{"exp as float in the future", Req{Authorization: Bearer(e.trustedRaw(e.payload(s.OP.Issuer(), fmt.Sprintf(`"exp":%d.5`, clock.Now().Unix()+600), false)))}},
		{"opaque token", Req{Authorization: Bearer(e.opaque_)}},
		{"public route without a token", Req{Path: "/health"}},
		{"DPoP-bound token with a valid proof", dpop(e.dpopToken, e.dpopKey.Proof("GET", htu("/api"), e.dpopToken))},
		{"certificate-bound token with its certificate", Req{Authorization: Bearer(e.mtlsToken), ClientCert: escapedCert(e.clientCertDER)}},
	}
	for _, c := range controls {
		if got, resp := s.Check(t, c.r, 0); got != 200 {
			t.Fatalf("control %q: status %d (%v), want 200; logs:\n%s", c.name, got, resp, s.Logs.String())
		}
	}
	if served.Load() == 0 {
		t.Fatal("the amended JWKS (enc and key_ops keys) was never served: the key cases would prove nothing")
	}
	return e
}

// TestAdversarial runs the adversarial table through envoy.Server.Check with a real
// Authorizer, policy and fake OP. Every case must be denied (or, for header spoofing,
// must not reach the upstream); cases marked noOutbound must not cause one outbound
// request; the attacker's server must never be contacted.
func TestAdversarial(t *testing.T) {
	e := newAdvEnv(t)
	cases := adversarialCases()
	allowed := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.freshKid {
				e.clock.Advance(31 * time.Second) // past the default JWKS refresh interval (30s)
			}
			r := tc.req(e)
			if tc.before != nil {
				tc.before(e)
			}
			if tc.after != nil {
				defer tc.after(e)
			}
			evilBefore := e.evil.hits.Load()
			outBefore := e.s.Net.Total()
			got, resp := e.s.Check(t, r, 0)
			out := e.s.Net.Total() - outBefore
			t.Logf("status %d, %d outbound: %s", got, out, resp.GetDeniedResponse().GetBody())
			succeeded := ""
			switch {
			case got == 200 && tc.want != 200:
				succeeded = "allowed"
			case got != tc.want:
				t.Errorf("status %d, want %d (%v)", got, tc.want, resp.GetDeniedResponse().GetBody())
			}
			if tc.verify != nil && got == 200 {
				if bad := tc.verify(e, resp); bad != "" {
					succeeded = "spoofed headers reached the upstream: " + bad
				}
			}
			if n := e.evil.hits.Load() - evilBefore; n != 0 {
				succeeded = fmt.Sprintf("%d requests to the attacker's server", n)
			}
			if tc.noOutbound && out != 0 {
				t.Errorf("%d outbound requests, want 0", out)
			}
			if succeeded != "" {
				allowed++
				t.Errorf("ATTACK SUCCEEDED: %s", succeeded)
			}
		})
	}
	if e.evil.hits.Load() != 0 {
		t.Errorf("the attacker's server got %d requests", e.evil.hits.Load())
	}
	report(t, "adversarial: %d cases, %d allowed", len(cases), allowed)
}

// TestAdversarialHTTPHandler sends the header and path attacks through the HTTP
// auth-request handler as well (nginx/Traefik/Envoy http_service).
func TestAdversarialHTTPHandler(t *testing.T) {
	e := newAdvEnv(t)
	h := e.s.Server.HTTPHandler()
	cases := []struct {
		name, path, auth string
		hdr              map[string]string
		want             int
	}{
		{"no token", "/api", "", nil, 401},
		{"two tokens", "/api", "Bearer " + e.userToken + " " + e.adminToken, nil, 401},
		{"path //admin", "//admin", Bearer(e.userToken), nil, 400},
		{"path /%61dmin", "/%61dmin", Bearer(e.userToken), nil, 400},
		{"path /admin/..;/health without a token", "/admin/..;/health", "", nil, 400},
		{"X-Original-URI /a/../admin", "/check", Bearer(e.userToken), map[string]string{"X-Original-URI": "/a/../admin"}, 403},
		{"X-Original-URI /admin/..;/health without a token", "/check", "", map[string]string{"X-Original-URI": "/admin/..;/health"}, 400},
		// issue 12: Caddy sets X-Forwarded-Uri and relays a client's X-Original-URI.
		{"spoofed X-Original-URI beside X-Forwarded-Uri", "/check", "", map[string]string{"X-Original-URI": "/health", "X-Forwarded-Uri": "/admin/secret"}, 400},
		{"spoofed X-Forwarded-Uri beside X-Original-URI", "/check", Bearer(e.userToken), map[string]string{"X-Original-URI": "/admin", "X-Forwarded-Uri": "/api"}, 400},
		{"spoofed X-Original-Method beside X-Forwarded-Method", "/check", Bearer(e.userToken), map[string]string{"X-Forwarded-Uri": "/api", "X-Forwarded-Method": "POST", "X-Original-Method": "GET"}, 400},
		{"spoofed X-Original-Host beside X-Forwarded-Host", "/check", Bearer(e.userToken), map[string]string{"X-Forwarded-Uri": "/api", "X-Forwarded-Host": "a.example", "X-Original-Host": "b.example"}, 400},
		{"spoofed X-Auth-Request-Groups", "/admin", Bearer(e.userToken), map[string]string{"X-Auth-Request-Groups": "admins"}, 403},
		{"repeated X-Forwarded-Uri", "/check", "", map[string]string{"X-Forwarded-Uri": "/admin"}, 400},
		{"alg none", "/api", Bearer(e.mint(nil, oidctest.WithAlg("none"))), nil, 401},
		{"mtls: bound token with a client-sent X-Forwarded-Client-Cert (no trusted header configured)", "/api", Bearer(e.mtlsToken),
			map[string]string{"X-Forwarded-Client-Cert": func() string { sum := sha256.Sum256(e.clientCertDER); return "Hash=" + hex.EncodeToString(sum[:]) }()}, 401},
		{"dpop: bound token as Bearer", "/api", Bearer(e.dpopToken), nil, 401},
		{"dpop: valid proof but the original scheme is unknown", "/api", "DPoP " + e.dpopToken,
			map[string]string{"DPoP": e.dpopKey.Proof("GET", htu("/api"), e.dpopToken)}, 401},
		{"dpop: proof for /api presented for X-Original-URI /admin", "/check", "DPoP " + e.dpopToken,
			map[string]string{"X-Original-URI": "/admin/users", "X-Forwarded-Proto": "https", "DPoP": e.dpopKey.Proof("GET", htu("/api"), e.dpopToken)}, 401},
		{"control: DPoP-bound token with a valid proof", "/api", "DPoP " + e.dpopToken,
			map[string]string{"X-Forwarded-Proto": "https", "DPoP": e.dpopKey.Proof("GET", htu("/api"), e.dpopToken)}, 200},
		{"control: user on /api", "/api", Bearer(e.userToken), nil, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, "http://"+Host+"/", nil)
			req.RequestURI = tc.path
			req.URL.Path = tc.path
			req.Host = Host
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			if tc.name == "repeated X-Forwarded-Uri" {
				req.Header.Add("X-Forwarded-Uri", "/health")
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Errorf("status %d, want %d", rec.Code, tc.want)
			}
		})
	}
}

// dpopKeyJWK is the public JWK of the client's DPoP key, as a proof header carries it.
func (e *advEnv) dpopKeyJWK() map[string]any {
	parts := strings.Split(e.dpopKey.Proof("GET", htu("/api"), ""), ".")
	hb, _ := b64.DecodeString(parts[0])
	var h map[string]any
	_ = json.Unmarshal(hb, &h)
	return h["jwk"].(map[string]any)
}
