package securitytest

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
)

// summary lines are printed after all tests (TestMain) so that `go test -v` and the
// Makefile's grep show the figures together.
var (
	summaryMu sync.Mutex
	summary   []string
)

func report(t testing.TB, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	t.Log(line)
	summaryMu.Lock()
	summary = append(summary, line)
	summaryMu.Unlock()
}

func TestMain(m *testing.M) {
	code := m.Run()
	summaryMu.Lock()
	for _, l := range summary {
		fmt.Println(l)
	}
	summaryMu.Unlock()
	os.Exit(code)
}

var b64 = base64.RawURLEncoding

var (
	keyOnce sync.Once
	keys    struct{ trusted, enc, ops, attacker *rsa.PrivateKey }
)

// testKeys returns RSA keys shared by all tests (generating them is slow).
func testKeys(t testing.TB) (trusted, enc, ops, attacker *rsa.PrivateKey) {
	t.Helper()
	keyOnce.Do(func() {
		for _, k := range []**rsa.PrivateKey{&keys.trusted, &keys.enc, &keys.ops, &keys.attacker} {
			var err error
			if *k, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
				panic(err)
			}
		}
	})
	return keys.trusted, keys.enc, keys.ops, keys.attacker
}

// Key ids of the extra keys that jwksHook publishes next to the OP's own keys.
const (
	kidTrusted = "sec-sig-1" // use sig: a trusted signing key whose private half the test holds
	kidEnc     = "sec-enc-1" // use enc: must never verify a signature
	kidOps     = "sec-ops-1" // key_ops [encrypt]: must never verify a signature
	kidAttack  = "attacker-1"
)

func pubJWK(t testing.TB, k *rsa.PrivateKey, kid string, set map[string]any) jwk.Key {
	t.Helper()
	pk, err := jwk.FromRaw(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	_ = pk.Set(jwk.KeyIDKey, kid)
	for n, v := range set {
		if err := pk.Set(n, v); err != nil {
			t.Fatal(err)
		}
	}
	return pk
}

// jwksHook publishes extra keys in the OP's JWKS (oidctest has no switch for that) and
// counts how often the amended JWKS was served.
func jwksHook(t testing.TB, served *atomic.Int64, extra ...jwk.Key) Hook {
	return func(req *http.Request, next http.RoundTripper) (*http.Response, error) {
		res, err := next.RoundTrip(req)
		if err != nil || !strings.HasSuffix(req.URL.Path, oidctest.JWKSPath) || res.StatusCode != 200 {
			return res, err
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			return nil, err
		}
		var doc struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			return nil, err
		}
		for _, k := range extra {
			kb, err := json.Marshal(k)
			if err != nil {
				return nil, err
			}
			doc.Keys = append(doc.Keys, kb)
		}
		nb, _ := json.Marshal(doc)
		res.Body = io.NopCloser(bytes.NewReader(nb))
		res.ContentLength = int64(len(nb))
		res.Header.Del("Content-Length")
		served.Add(1)
		return res, nil
	}
}

// signRaw builds a compact JWS from raw header and payload JSON (so that tests can
// send duplicate members and odd types), signed with key.
func signRaw(_ testing.TB, header, payload string, alg jwa.SignatureAlgorithm, key any) string {
	input := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(payload))
	s, err := jws.NewSigner(alg)
	if err != nil {
		panic(err)
	}
	sig, err := s.Sign([]byte(input), key)
	if err != nil {
		panic(err)
	}
	return input + "." + b64.EncodeToString(sig)
}

// selfSignedCert returns a DER certificate for key.
func selfSignedCert(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "attacker"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// elsewhere is a server the attacker controls: it serves a JWKS and a certificate and
// counts every request it gets.
type elsewhere struct {
	*httptest.Server
	hits atomic.Int64
}

func newElsewhere(t testing.TB, jwksJSON, certPEM []byte) *elsewhere {
	t.Helper()
	e := &elsewhere{}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		switch r.URL.Path {
		case "/cert.pem":
			w.Write(certPEM)
		case oidctest.DiscoveryPath:
			fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, e.URL, e.URL+"/jwks")
		default:
			w.Header().Set("Content-Type", "application/json")
			w.Write(jwksJSON)
		}
	}))
	t.Cleanup(e.Close)
	return e
}

// settledGoroutines returns the goroutine count once it is at most max, or once it
// has stopped changing when max < 0 (bounded wait): closed connections and cancelled
// fetches end asynchronously. The sleeps wait for goroutines to exit; they order no
// test events.
func settledGoroutines(max int) int {
	deadline := time.Now().Add(5 * time.Second)
	n, stable := runtime.NumGoroutine(), 0
	for time.Now().Before(deadline) {
		if max >= 0 && n <= max {
			break
		}
		if max < 0 && stable >= 10 {
			break
		}
		time.Sleep(10 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			stable++
		} else {
			stable = 0
		}
		n = m
	}
	return n
}
