package envoy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
)

// testCert returns a fresh self-signed certificate: its DER and x5t#S256.
func testCert(t testing.TB) (der []byte, x5t string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<32, 0)}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return der, base64.RawURLEncoding.EncodeToString(sum[:])
}

// escapedPEM is a certificate as Envoy's source.certificate and nginx's
// $ssl_client_escaped_cert carry it.
func escapedPEM(der []byte) string {
	return url.PathEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
}

func TestXFCCThumbprint(t *testing.T) {
	der, x5t := testCert(t)
	der2, _ := testCert(t)
	sum := sha256.Sum256(der)
	hash := hex.EncodeToString(sum[:])
	for _, c := range []struct{ name, v, want string }{
		{"Hash only", "By=spiffe://a;Hash=" + hash + ";Subject=\"CN=client\"", x5t},
		{"Hash upper-case hex", "Hash=" + strings.ToUpper(hash), x5t},
		{"Cert only", "Cert=\"" + escapedPEM(der) + "\"", x5t},
		{"Cert unquoted", "Cert=" + escapedPEM(der), x5t},
		{"Hash and matching Cert", "Hash=" + hash + ";Cert=\"" + escapedPEM(der) + "\"", x5t},
		{"quoted Subject with separators", "Subject=\"CN=a,O=b;c\";Hash=" + hash, x5t},
		{"Hash and other Cert", "Hash=" + hash + ";Cert=\"" + escapedPEM(der2) + "\"", ""},
		{"two elements (appended chain)", "Hash=" + hash + ",Hash=" + hash, ""},
		{"two Hash keys", "Hash=" + hash + ";Hash=" + hash, ""},
		{"short hash", "Hash=abcd", ""},
		{"not hex", "Hash=" + strings.Repeat("zz", 32), ""},
		{"garbage Cert", "Cert=\"abc\"", ""},
		{"no certificate", "By=spiffe://a;Subject=\"CN=x\"", ""},
		{"unterminated quote", "Subject=\"CN=x;Hash=" + hash, ""},
		{"pair without =", "Hash", ""},
		{"empty", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := XFCCThumbprint(c.v); got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
	if got := CertThumbprint(escapedPEM(der)); got != x5t {
		t.Fatalf("CertThumbprint = %q, want %q", got, x5t)
	}
	formEncoded := url.QueryEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	if got := CertThumbprint(formEncoded); got != x5t {
		t.Fatalf("CertThumbprint(form-encoded) = %q, want %q", got, x5t)
	}
	if got := CertThumbprint(url.PathEscape(string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))); got != "" {
		t.Fatalf("a non-certificate PEM block gave %q", got)
	}
}

// FuzzXFCC: the XFCC and escaped-PEM parsers never panic, and whatever they return is
// "" or a base64url SHA-256.
func FuzzXFCC(f *testing.F) {
	der, _ := testCert(f)
	sum := sha256.Sum256(der)
	f.Add("By=spiffe://a;Hash=" + hex.EncodeToString(sum[:]) + ";Cert=\"" + escapedPEM(der) + "\"")
	f.Add("Subject=\"a\\\"b\";URI=x,By=y")
	f.Add(escapedPEM(der))
	f.Fuzz(func(t *testing.T, v string) {
		for _, got := range []string{XFCCThumbprint(v), CertThumbprint(v)} {
			if got == "" {
				continue
			}
			if b, err := base64.RawURLEncoding.DecodeString(got); err != nil || len(b) != sha256.Size {
				t.Fatalf("thumbprint %q is not a base64url SHA-256", got)
			}
		}
	})
}

// TestSenderConstraintExtraction: the DPoP header, the original scheme and the client
// certificate reach the authorizer from gRPC attributes and from HTTP headers, the
// certificate only from the sources the configuration trusts.
func TestSenderConstraintExtraction(t *testing.T) {
	der, x5t := testCert(t)
	sum := sha256.Sum256(der)
	xfcc := "Hash=" + hex.EncodeToString(sum[:])

	t.Run("grpc", func(t *testing.T) {
		fa := &fakeAuthorizer{d: allowAlice()}
		s, _ := newTestServer(t, fa, Config{})
		req := checkRequest(map[string]string{"authorization": "DPoP t", "dpop": "p.r.s", "x-forwarded-client-cert": xfcc})
		req.Attributes.Request.Http.Scheme = "https"
		req.Attributes.Source = &authv3.AttributeContext_Peer{Certificate: escapedPEM(der)}
		if _, err := s.Check(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		r := fa.last(t)
		if r.DPoP != "p.r.s" || r.Scheme != "https" || r.ClientCertThumbprint != x5t {
			t.Fatalf("got DPoP %q scheme %q cert %q", r.DPoP, r.Scheme, r.ClientCertThumbprint)
		}
		req.Attributes.Source = nil // a client's XFCC header is never read in gRPC mode
		_, _ = s.Check(context.Background(), req)
		if r := fa.last(t); r.ClientCertThumbprint != "" {
			t.Fatalf("certificate from a client header: %q", r.ClientCertThumbprint)
		}
	})
	for _, c := range []struct {
		name    string
		cfg     ClientCertConfig
		headers map[string][]string
		want    string
	}{
		{"no header configured: XFCC ignored", ClientCertConfig{}, map[string][]string{"X-Forwarded-Client-Cert": {xfcc}}, ""},
		{"xfcc", ClientCertConfig{Header: "X-Forwarded-Client-Cert", Format: CertFormatXFCC}, map[string][]string{"X-Forwarded-Client-Cert": {xfcc}}, x5t},
		{"xfcc twice", ClientCertConfig{Header: "x-forwarded-client-cert", Format: CertFormatXFCC}, map[string][]string{"X-Forwarded-Client-Cert": {xfcc, xfcc}}, ""},
		{"nginx escaped pem", ClientCertConfig{Header: "x-ssl-client-cert", Format: CertFormatEscapedPEM}, map[string][]string{"X-Ssl-Client-Cert": {escapedPEM(der)}}, x5t},
		{"nginx escaped pem twice", ClientCertConfig{Header: "x-ssl-client-cert", Format: CertFormatEscapedPEM}, map[string][]string{"X-Ssl-Client-Cert": {escapedPEM(der), escapedPEM(der)}}, ""},
	} {
		t.Run("http/"+c.name, func(t *testing.T) {
			fa := &fakeAuthorizer{d: allowAlice()}
			s, _ := newTestServer(t, fa, Config{ClientCert: c.cfg})
			req := httptest.NewRequest("GET", "/", nil)
			req.Header = c.headers
			req.Header.Set("X-Original-Uri", "/a?b")
			req.Header.Set("X-Forwarded-Proto", "https")
			req.Header["Dpop"] = []string{"a.b.c", "d.e.f"}
			s.HTTPHandler().ServeHTTP(httptest.NewRecorder(), req)
			r := fa.last(t)
			if r.ClientCertThumbprint != c.want || r.Scheme != "https" || r.DPoP != "a.b.c,d.e.f" || r.Path != "/a?b" {
				t.Fatalf("got cert %q scheme %q DPoP %q path %q", r.ClientCertThumbprint, r.Scheme, r.DPoP, r.Path)
			}
		})
	}
	for _, c := range []struct {
		name   string
		fwd    Forwarded
		hdr    map[string][]string
		scheme string
		status int // 0: the authorizer decides
	}{
		{"auto: X-Original-Proto", Forwarded{}, map[string][]string{"X-Original-Proto": {"https"}}, "https", 0},
		{"auto: X-Forwarded-Proto", Forwarded{}, map[string][]string{"X-Forwarded-Proto": {"http"}}, "http", 0},
		{"auto: both agree", Forwarded{}, map[string][]string{"X-Original-Proto": {"https"}, "X-Forwarded-Proto": {"https"}}, "https", 0},
		{"auto: they disagree", Forwarded{}, map[string][]string{"X-Original-Proto": {"https"}, "X-Forwarded-Proto": {"http"}}, "", 400},
		{"auto: two headers", Forwarded{}, map[string][]string{"X-Forwarded-Proto": {"https", "http"}}, "", 400},
		{"nginx ignores X-Forwarded-Proto", Forwarded{Mode: ForwardedNginx}, map[string][]string{"X-Forwarded-Proto": {"https"}}, "", 0},
		{"traefik reads X-Forwarded-Proto", Forwarded{Mode: ForwardedTraefik}, map[string][]string{"X-Forwarded-Proto": {"https"}, "X-Original-Proto": {"http"}}, "https", 0},
		{"envoy reads no scheme", Forwarded{Mode: ForwardedEnvoy}, map[string][]string{"X-Forwarded-Proto": {"https"}}, "", 0},
		{"custom proto header", Forwarded{Mode: ForwardedCustom, Proto: "X-My-Proto"}, map[string][]string{"X-My-Proto": {"https"}}, "https", 0},
	} {
		t.Run("http/scheme/"+c.name, func(t *testing.T) {
			fa := &fakeAuthorizer{d: allowAlice()}
			s, _ := newTestServer(t, fa, Config{HTTP: HTTPConfig{Forwarded: c.fwd}})
			req := httptest.NewRequest("GET", "/", nil)
			for k, v := range c.hdr {
				req.Header[k] = v
			}
			rec := httptest.NewRecorder()
			s.HTTPHandler().ServeHTTP(rec, req)
			if c.status != 0 {
				if rec.Code != c.status {
					t.Fatalf("status %d, want %d", rec.Code, c.status)
				}
				return
			}
			if r := fa.last(t); r.Scheme != c.scheme {
				t.Fatalf("scheme %q, want %q", r.Scheme, c.scheme)
			}
		})
	}
}

// TestDPoPChallenges: the one table answers invalid_dpop_proof with a DPoP challenge
// naming the algorithms, and a denial of a DPoP-scheme request with a DPoP challenge.
func TestDPoPChallenges(t *testing.T) {
	for _, c := range []struct {
		name      string
		d         authz.Decision
		auth      string
		wantHTTP  int
		wantChall string
	}{
		{"invalid proof", authz.Decision{Outcome: authz.OutcomeInvalidDPoPProof, Reason: "invalid DPoP proof: proof replayed", DPoP: true}, "DPoP t", 401,
			`DPoP realm="flaat-extauthz", error="invalid_dpop_proof", error_description="invalid DPoP proof: proof replayed", algs="ES256 RS256"`},
		{"invalid proof without a reason", authz.Decision{Outcome: authz.OutcomeInvalidDPoPProof}, "Bearer t", 401,
			`DPoP realm="flaat-extauthz", error="invalid_dpop_proof", error_description="invalid DPoP proof", algs="ES256 RS256"`},
		{"invalid token with DPoP scheme", authz.Decision{Outcome: authz.OutcomeInvalidToken, Reason: "token expired", DPoP: true}, "DPoP t", 401,
			`DPoP realm="flaat-extauthz", error="invalid_token", error_description="token expired", algs="ES256 RS256"`},
		{"downgrade (bearer scheme)", authz.Decision{Outcome: authz.OutcomeInvalidToken, Reason: "DPoP-bound token sent as a bearer token"}, "Bearer t", 401,
			`Bearer realm="flaat-extauthz", error="invalid_token", error_description="DPoP-bound token sent as a bearer token"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			fa := &algsAuthorizer{fakeAuthorizer{d: c.d}}
			s, _ := newTestServer(t, fa, Config{})
			resp, _ := s.Check(context.Background(), checkRequest(map[string]string{"authorization": c.auth}))
			den := resp.GetDeniedResponse()
			if int(den.GetStatus().GetCode()) != c.wantHTTP {
				t.Fatalf("status %v", den.GetStatus())
			}
			got := ""
			for _, h := range den.GetHeaders() {
				if h.GetHeader().GetKey() == "www-authenticate" {
					got = h.GetHeader().GetValue()
				}
			}
			if got != c.wantChall {
				t.Fatalf("grpc challenge\n got %s\nwant %s", got, c.wantChall)
			}
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/", nil)
			req.Header.Set("Authorization", c.auth)
			s.HTTPHandler().ServeHTTP(rec, req)
			if rec.Code != c.wantHTTP || rec.Header().Get("WWW-Authenticate") != c.wantChall {
				t.Fatalf("http %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
}

type algsAuthorizer struct{ fakeAuthorizer }

func (a *algsAuthorizer) DPoPAlgorithms() []string { return []string{"ES256", "RS256"} }

type fakeReceiver struct {
	res authz.LogoutResult
	err error
	got []string
}

func (f *fakeReceiver) Logout(_ context.Context, tok string) (authz.LogoutResult, error) {
	f.got = append(f.got, tok)
	return f.res, f.err
}

func TestBackchannelHandler(t *testing.T) {
	form := "application/x-www-form-urlencoded"
	for _, c := range []struct {
		name, method, path, ctype, body string
		err                             error
		want                            int
		wantErr                         string
		result                          string
	}{
		{"accepted", "POST", BackchannelPath, form, "logout_token=a.b.c", nil, 200, "", "accepted"},
		{"refused token", "POST", BackchannelPath, form, "logout_token=a.b.c", &authz.TokenError{Reason: "invalid logout token: replayed", Err: authz.ErrInvalidLogoutToken}, 400, "invalid_request", "refused"},
		{"OP down", "POST", BackchannelPath, form, "logout_token=a.b.c", &authz.UnavailableError{Endpoint: "jwks", Err: io.EOF}, 503, "temporarily_unavailable", "error"},
		{"logout not enabled", "POST", BackchannelPath, form, "logout_token=a.b.c", authz.ErrLogoutDisabled, 503, "temporarily_unavailable", "error"},
		{"no token", "POST", BackchannelPath, form, "x=1", nil, 400, "invalid_request", "refused"},
		{"two tokens", "POST", BackchannelPath, form, "logout_token=a&logout_token=b", nil, 400, "invalid_request", "refused"},
		{"json body", "POST", BackchannelPath, "application/json", `{"logout_token":"a"}`, nil, 400, "invalid_request", "refused"},
		{"huge body", "POST", BackchannelPath, form, "logout_token=" + strings.Repeat("a", maxLogoutBody), nil, 400, "invalid_request", "refused"},
		{"GET", "GET", BackchannelPath, "", "", nil, 405, "", ""},
		{"other path", "POST", "/other", form, "logout_token=a", nil, 404, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := NewMetrics(prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			rcv := &fakeReceiver{res: authz.LogoutResult{Issuer: "https://op", Subject: "alice", Evicted: 3}, err: c.err}
			h := BackchannelHandler(func() LogoutReceiver { return rcv }, m, nil)
			req := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
			req.Header.Set("Content-Type", c.ctype)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != c.want || rec.Header().Get("Cache-Control") != "no-store" {
				t.Fatalf("status %d cache-control %q, want %d", rec.Code, rec.Header().Get("Cache-Control"), c.want)
			}
			if c.wantErr != "" && !strings.Contains(rec.Body.String(), `"error":"`+c.wantErr+`"`) {
				t.Fatalf("body %s", rec.Body)
			}
			if c.result != "" {
				if v := counterValue(t, m.logoutResults.WithLabelValues(c.result)); v != 1 {
					t.Fatalf("%s counter = %v", c.result, v)
				}
				if v := counterValue(t, m.logoutReceived); v != 1 {
					t.Fatalf("received counter = %v", v)
				}
			}
			wantEv := 0.0
			if c.result == "accepted" {
				wantEv = 3
				if len(rcv.got) != 1 || rcv.got[0] != "a.b.c" {
					t.Fatalf("receiver got %q", rcv.got)
				}
			}
			if v := counterValue(t, m.logoutEvictions); v != wantEv {
				t.Fatalf("evictions counter = %v, want %v", v, wantEv)
			}
		})
	}
	t.Run("no receiver", func(t *testing.T) {
		h := BackchannelHandler(func() LogoutReceiver { return nil }, nil, nil)
		req := httptest.NewRequest("POST", BackchannelPath, strings.NewReader("logout_token=a"))
		req.Header.Set("Content-Type", form)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d", rec.Code)
		}
	})
}

func TestValidateClientCertAndBackchannel(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
		want string // "" valid
	}{
		{"xfcc", Config{ClientCert: ClientCertConfig{Header: "X-Forwarded-Client-Cert", Format: CertFormatXFCC}}, ""},
		{"escaped pem", Config{ClientCert: ClientCertConfig{Header: "x-ssl-client-cert", Format: CertFormatEscapedPEM}}, ""},
		{"format without header", Config{ClientCert: ClientCertConfig{Format: CertFormatXFCC}}, "client_cert.header"},
		{"unknown format", Config{ClientCert: ClientCertConfig{Header: "x-c", Format: "der"}}, "client_cert.format"},
		{"header without format", Config{ClientCert: ClientCertConfig{Header: "x-c"}}, "client_cert.format"},
		{"authorization as certificate header", Config{ClientCert: ClientCertConfig{Header: "Authorization", Format: CertFormatXFCC}}, "client_cert.header"},
		{"bad header name", Config{ClientCert: ClientCertConfig{Header: "x c", Format: CertFormatXFCC}}, "client_cert.header"},
		{"backchannel listen", Config{BackchannelListen: "127.0.0.1:0"}, ""},
		{"backchannel listen not host:port", Config{BackchannelListen: "nope"}, "backchannel_listen"},
		{"backchannel listen on the admin address", Config{AdminListen: "127.0.0.1:9999", BackchannelListen: "127.0.0.1:9999"}, "backchannel_listen"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if (err == nil) != (c.want == "") || (err != nil && !strings.Contains(err.Error(), "server."+c.want)) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}
