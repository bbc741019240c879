//go:build e2e

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
)

// dpopKey is a fresh client DPoP key on the real clock.
func dpopKey(t testing.TB, alg string) *oidctest.DPoPKey {
	t.Helper()
	k, err := oidctest.NewDPoPKey(alg, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// dpopToken asks the OP for a DPoP-bound access token of alice (the mint grant, with a
// proof of key for POST <issuer>/token): format "jwt" is an RS256 JWT with cnf.jkt,
// "opaque" has cnf.jkt in introspection.
func (o *op) dpopToken(t testing.TB, key *oidctest.DPoPKey, format string) string {
	t.Helper()
	form := url.Values{"grant_type": {o.MintGrant}, "account": {"alice"}, "format": {format}}
	status, out := o.postH(t, "/token", "e2e-user", form, map[string]string{"DPoP": key.Proof("POST", o.Issuer+"/token", "")})
	tok, _ := out["access_token"].(string)
	typ, _ := out["token_type"].(string)
	if status != http.StatusOK || tok == "" || !strings.EqualFold(typ, "DPoP") {
		t.Fatalf("e2e: OP /token with DPoP: status %d, %v", status, out)
	}
	if isJWT := strings.Count(tok, ".") == 2; isJWT != (format == "jwt") {
		t.Fatalf("e2e: asked the OP for a %s token, got %.10s…", format, tok)
	}
	return remember(tok)
}

// clientCert is a fresh self-signed client certificate: the URL-encoded PEM (as Envoy's
// source.certificate and nginx's $ssl_client_escaped_cert carry it) and the hex SHA-256
// of its DER (as Envoy's XFCC Hash= carries it).
func clientCert(t testing.TB) (escaped, hexHash string) {
	t.Helper()
	_, escaped, hexHash = tlsCert(t, "e2e-client")
	return escaped, hexHash
}

// tlsCert is a fresh self-signed certificate for name (also as an IP SAN when it is
// one) with its key, and the encodings of clientCert.
func tlsCert(t testing.TB, name string) (cert tls.Certificate, escaped, hexHash string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	leaf, _ := x509.ParseCertificate(der)
	cert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k, Leaf: leaf}
	return cert, url.PathEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))), hex.EncodeToString(sum[:])
}

// writePEM writes cert and its key as PEM files into dir.
func writePEM(t testing.TB, dir string, cert tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	kb, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	for f, b := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: cert.Certificate[0]}, keyFile: {Type: "PRIVATE KEY", Bytes: kb}} {
		if err := os.WriteFile(f, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

// TestCertificateBoundNginx: certificate-bound tokens through Debian's nginx terminating
// TLS with client certificates (examples/nginx/flaat-extauthz-mtls.conf), which passes
// $ssl_client_escaped_cert to flaat-extauthz's HTTP mode; a client-sent copy of that
// header never counts.
func TestCertificateBoundNginx(t *testing.T) {
	o := startOP(t)
	s := startServer(t, o, serverOpts{Userinfo: "never", Mutate: func(cfg map[string]any) {
		cfg["server"].(map[string]any)["client_cert"] = map[string]any{"header": "x-ssl-client-cert", "format": "escaped_pem"}
	}})
	up := startUpstream(t)
	serverCert, _, _ := tlsCert(t, "127.0.0.1")
	certFile, keyFile := writePEM(t, t.TempDir(), serverCert)
	port := freePort(t)
	roots := x509.NewCertPool()
	roots.AddCert(serverCert.Leaf)
	clientFor := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Timeout: callTimeout, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12}}}
	}
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	n := startNginxSite(t, "flaat-extauthz-mtls.conf", map[string]string{
		"server 127.0.0.1:9002;":     "server " + s.HTTPAddr + ";",
		"server 127.0.0.1:8080;":     "server " + strings.TrimPrefix(up.srv.URL, "http://") + ";",
		"listen 127.0.0.1:8443 ssl;": fmt.Sprintf("listen 127.0.0.1:%d ssl;", port),
		"/etc/nginx/tls/server.crt;": certFile + ";",
		"/etc/nginx/tls/server.key;": keyFile + ";",
	}, base, func() bool {
		resp, err := clientFor().Get(base + "/public/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	own, ownEscaped, _ := tlsCert(t, "e2e-client")
	other, _, _ := tlsCert(t, "e2e-other")
	for _, format := range []string{"jwt", "opaque"} {
		tok := o.mtlsToken(t, ownEscaped, format)
		for i, c := range []struct {
			name   string
			client *http.Client
			spoof  string
			want   int
		}{
			{"right certificate", clientFor(own), "", 200},
			{"another certificate", clientFor(other), "", 401},
			{"no certificate", clientFor(), "", 401},
			{"no certificate, client-sent X-SSL-Client-Cert", clientFor(), ownEscaped, 401},
			{"another certificate, client-sent X-SSL-Client-Cert", clientFor(other), ownEscaped, 401},
		} {
			t.Run(format+"/"+c.name, func(t *testing.T) {
				uri := fmt.Sprintf("/items?mtls=%s-%d", format, i)
				req, _ := http.NewRequest(http.MethodGet, n.URL+uri, nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				if c.spoof != "" {
					req.Header.Set("X-SSL-Client-Cert", c.spoof)
				}
				resp, err := c.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != c.want {
					t.Fatalf("status %d, want %d", resp.StatusCode, c.want)
				}
				if reached := up.seen(uri) != nil; reached != (c.want == 200) {
					t.Fatalf("upstream reached: %v", reached)
				}
			})
		}
	}
}

// mtlsToken asks the OP for a certificate-bound token of alice (client e2e-mtls, the
// mint grant) for the certificate (the OP reads it from a test-only header; it speaks
// plain HTTP).
func (o *op) mtlsToken(t testing.TB, escapedCert, format string) string {
	t.Helper()
	form := url.Values{"grant_type": {o.MintGrant}, "account": {"alice"}, "format": {format}}
	status, out := o.postH(t, "/token", "e2e-mtls", form, map[string]string{"X-E2E-Client-Cert": escapedCert})
	tok, _ := out["access_token"].(string)
	if status != http.StatusOK || tok == "" {
		t.Fatalf("e2e: OP /token for a certificate-bound token: status %d, %v", status, out)
	}
	return remember(tok)
}

// checkStatus is the HTTP status Envoy would apply: 200 on an OK response.
func checkStatus(resp *authv3.CheckResponse) int {
	if resp.GetOkResponse() != nil && resp.GetStatus().GetCode() == 0 {
		return http.StatusOK
	}
	return int(resp.GetDeniedResponse().GetStatus().GetCode())
}

// senderCase is one request of the DPoP tables: the credential, the proof, the method
// and path of the original request, and what must come back.
type senderCase struct {
	name      string
	auth      string
	proof     string
	method    string
	path      string
	want      int
	challenge string // substring of WWW-Authenticate ("" when 200)
}

const (
	proofChallenge = `DPoP realm="flaat-extauthz", error="invalid_dpop_proof"`
	tokenChallenge = `error="invalid_token"`
)

// dpopCases builds the RFC 9449 table for a token of key, requested as base+path;
// other is a second token (for a wrong ath), stranger a key the token is not bound to.
func dpopCases(base, tok, other string, key, stranger *oidctest.DPoPKey) []senderCase {
	valid := key.Proof("GET", base+"/items/1", tok)
	return []senderCase{
		{"valid proof", "DPoP " + tok, valid, "GET", "/items/1", 200, ""},
		{"replayed proof", "DPoP " + tok, valid, "GET", "/items/1", 401, proofChallenge},
		{"wrong htu", "DPoP " + tok, key.Proof("GET", base+"/items/2", tok), "GET", "/items/1", 401, proofChallenge},
		{"wrong htm", "DPoP " + tok, key.Proof("POST", base+"/items/1", tok), "GET", "/items/1", 401, proofChallenge},
		{"wrong ath", "DPoP " + tok, key.Proof("GET", base+"/items/1", other), "GET", "/items/1", 401, proofChallenge},
		{"stale iat", "DPoP " + tok, key.Proof("GET", base+"/items/1", tok, oidctest.ProofAge(key, 5*time.Minute)), "GET", "/items/1", 401, proofChallenge},
		{"proof signed by another key", "DPoP " + tok, stranger.Proof("GET", base+"/items/1", tok), "GET", "/items/1", 401, proofChallenge},
		{"bearer downgrade", "Bearer " + tok, "", "GET", "/items/1", 401, tokenChallenge},
		{"second valid proof", "DPoP " + tok, key.Proof("GET", base+"/items/1", tok), "GET", "/items/1", 200, ""},
	}
}

// TestDPoPGRPC: DPoP-bound JWT and opaque tokens from the real OP through gRPC Check.
func TestDPoPGRPC(t *testing.T) {
	o := startOP(t)
	s := startServer(t, o, serverOpts{Userinfo: "never"}) // opaque DPoP tokens need introspection
	const base = "https://api.e2e.test"
	for _, alg := range []string{"ES256", "RS256"} {
		for _, format := range []string{"jwt", "opaque"} {
			key, stranger := dpopKey(t, alg), dpopKey(t, "ES256")
			tok, other := o.dpopToken(t, key, format), o.dpopToken(t, key, format)
			for _, c := range dpopCases(base, tok, other, key, stranger) {
				t.Run(alg+"/"+format+"/"+c.name, func(t *testing.T) {
					resp := check(t, s, checkReq{method: c.method, path: c.path,
						headers: map[string]string{"authorization": c.auth, "dpop": c.proof}})
					if got := checkStatus(resp); got != c.want {
						t.Fatalf("status %d, want %d: %s", got, c.want, resp.GetDeniedResponse().GetBody())
					}
					if ch := deniedHeader(resp, "www-authenticate"); !strings.Contains(ch, c.challenge) {
						t.Fatalf("WWW-Authenticate %q lacks %q", ch, c.challenge)
					}
				})
			}
		}
	}
}

// TestDPoPNginx: the same through Debian's nginx (auth_request, the example
// configuration) in front of an upstream: htu is the URL the client used at nginx.
func TestDPoPNginx(t *testing.T) {
	o := startOP(t)
	s := startServer(t, o, serverOpts{Userinfo: "never"})
	up := startUpstream(t)
	n := startNginx(t, s.HTTPAddr, strings.TrimPrefix(up.srv.URL, "http://"))
	for _, format := range []string{"jwt", "opaque"} {
		key, stranger := dpopKey(t, "ES256"), dpopKey(t, "ES256")
		tok, other := o.dpopToken(t, key, format), o.dpopToken(t, key, format)
		for i, c := range dpopCases(n.URL, tok, other, key, stranger) {
			t.Run(format+"/"+c.name, func(t *testing.T) {
				// One URI per case so the upstream's record shows whether it got through;
				// the query is not part of htu.
				uri := fmt.Sprintf("%s?case=%s-%d", c.path, format, i)
				resp, body := n.get(t, uri, map[string]string{"Authorization": c.auth, "DPoP": c.proof})
				if resp.StatusCode != c.want {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.want, body)
				}
				if ch := resp.Header.Get("WWW-Authenticate"); !strings.Contains(ch, c.challenge) {
					t.Fatalf("WWW-Authenticate %q lacks %q", ch, c.challenge)
				}
				if reached := up.seen(uri) != nil; reached != (c.want == 200) {
					t.Fatalf("upstream reached: %v, want %v", reached, c.want == 200)
				}
			})
		}
	}
}

// TestCertificateBound: certificate-bound tokens from the real OP, with the right and a
// wrong client certificate: gRPC from source.certificate, HTTP mode from a trusted
// X-Forwarded-Client-Cert (set as Envoy's http_service would, with
// forward_client_cert_details SANITIZE_SET).
func TestCertificateBound(t *testing.T) {
	o := startOP(t)
	s := startServer(t, o, serverOpts{Userinfo: "never", Mutate: func(cfg map[string]any) {
		cfg["server"].(map[string]any)["client_cert"] = map[string]any{"header": "x-forwarded-client-cert", "format": "xfcc"}
	}})
	cert, hash := clientCert(t)
	otherCert, otherHash := clientCert(t)
	for _, format := range []string{"jwt", "opaque"} {
		tok := o.mtlsToken(t, cert, format)
		if format == "opaque" {
			if intro := o.introspect(t, tok); intro["cnf"] == nil {
				t.Fatalf("e2e: the OP did not bind the token to the certificate: %v", intro)
			}
		}
		for _, c := range []struct {
			name, cert string
			want       int
		}{
			{"right certificate", cert, 200},
			{"another certificate", otherCert, 401},
			{"no certificate", "", 401},
		} {
			t.Run("grpc/"+format+"/"+c.name, func(t *testing.T) {
				resp := check(t, s, checkReq{path: "/items", headers: bearer(tok), cert: c.cert})
				if got := checkStatus(resp); got != c.want {
					t.Fatalf("status %d, want %d: %s", got, c.want, resp.GetDeniedResponse().GetBody())
				}
			})
		}
		for _, c := range []struct {
			name, xfcc string
			want       int
		}{
			{"right certificate", "By=spiffe://e2e/api;Hash=" + hash, 200},
			{"another certificate", "Hash=" + otherHash, 401},
			{"appended chain", "Hash=" + hash + ",Hash=" + hash, 401},
			{"no certificate", "", 401},
		} {
			t.Run("http/"+format+"/"+c.name, func(t *testing.T) {
				hdr := map[string]string{"Authorization": "Bearer " + tok, "X-Original-URI": "/items"}
				if c.xfcc != "" {
					hdr["X-Forwarded-Client-Cert"] = c.xfcc
				}
				if got := getStatus(t, "http://"+s.HTTPAddr+"/", hdr); got != c.want {
					t.Fatalf("status %d, want %d", got, c.want)
				}
			})
		}
	}
}

// getStatus GETs u with headers and returns the status.
func getStatus(t testing.TB, u string, hdr map[string]string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// --- back-channel logout ---

// rp is a relying party registered at the OP (dynamic registration) with a
// back-channel logout URI.
type rp struct {
	ID, Secret string
}

const rpRedirect = "http://127.0.0.1/e2e-callback"

// registerRP registers a confidential code-flow client whose backchannel_logout_uri is
// logoutURI.
func (o *op) registerRP(t testing.TB, logoutURI string) rp {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"redirect_uris": []string{rpRedirect}, "response_types": []string{"code"},
		"grant_types": []string{"authorization_code"}, "token_endpoint_auth_method": "client_secret_basic",
		"backchannel_logout_uri": logoutURI, "backchannel_logout_session_required": true,
	})
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, o.Issuer+"/reg", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &out) != nil || out.ClientID == "" {
		t.Fatalf("e2e: OP registration: %d %s", resp.StatusCode, b)
	}
	o.Clients[out.ClientID] = out.ClientSecret
	return rp{ID: out.ClientID, Secret: out.ClientSecret}
}

// browser is a cookie-keeping HTTP client that stops at the RP's redirect URI.
func browser(t testing.TB) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: callTimeout, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), rpRedirect) {
			return http.ErrUseLastResponse
		}
		if len(via) > 20 {
			return errors.New("too many redirects")
		}
		return nil
	}}
}

var promptRe = regexp.MustCompile(`name="prompt" value="(login|consent)"`)

// login runs the authorization-code flow through the OP's development login and
// consent pages as account, and returns the (opaque) access token.
func (o *op) login(t testing.TB, b *http.Client, client rp, account string) string {
	t.Helper()
	q := url.Values{"client_id": {client.ID}, "response_type": {"code"}, "scope": {"openid"},
		"redirect_uri": {rpRedirect}, "state": {"e2e-state"}, "nonce": {"e2e-nonce"}}
	resp, err := b.Get(o.Issuer + "/auth?" + q.Encode())
	for step := 0; ; step++ {
		if err != nil {
			t.Fatalf("e2e: login step %d: %v", step, err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); strings.HasPrefix(loc, rpRedirect) {
			u, _ := url.Parse(loc)
			code := u.Query().Get("code")
			if code == "" {
				t.Fatalf("e2e: redirect without code: %s", loc)
			}
			status, out := o.post(t, "/token", client.ID, url.Values{"grant_type": {"authorization_code"},
				"code": {code}, "redirect_uri": {rpRedirect}})
			tok, _ := out["access_token"].(string)
			if status != http.StatusOK || tok == "" {
				t.Fatalf("e2e: code exchange: %d %v", status, out)
			}
			return remember(tok)
		}
		m := promptRe.FindSubmatch(page)
		if m == nil || step > 4 {
			t.Fatalf("e2e: unexpected page in the login flow (%d %s):\n%.2000s", resp.StatusCode, resp.Request.URL, page)
		}
		form := url.Values{"prompt": {string(m[1])}}
		if string(m[1]) == "login" {
			form.Set("login", account)
			form.Set("password", "e2e")
		}
		resp, err = b.PostForm(resp.Request.URL.String(), form)
	}
}

var xsrfRe = regexp.MustCompile(`name="xsrf" value="([^"]+)"`)

// logout ends the browser's session at the OP (RP-initiated logout, confirmed): the OP
// then posts logout tokens to the RPs' back-channel URIs and revokes the grants.
func (o *op) logout(t testing.TB, b *http.Client, client rp) {
	t.Helper()
	resp, err := b.Get(o.Issuer + "/session/end?client_id=" + url.QueryEscape(client.ID))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := xsrfRe.FindSubmatch(page)
	if m == nil {
		t.Fatalf("e2e: no logout form (%d):\n%.2000s", resp.StatusCode, page)
	}
	resp, err = b.PostForm(o.Issuer+"/session/end/confirm", url.Values{"xsrf": {string(m[1])}, "logout": {"yes"}})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		t.Fatalf("e2e: logout confirm: %d", resp.StatusCode)
	}
}

// TestBackchannelLogout: a user logs in at the real OP (development login pages), the
// token is checked and cached by two flaat-extauthz servers, one of them with the
// back-channel logout receiver. The user logs out at the OP: the receiver's server
// turns the next check into a denial within one second (the OP revoked the grant and
// the cached identity was evicted); the server without a receiver keeps serving its
// cached allow, which is exactly the gap back-channel logout closes.
func TestBackchannelLogout(t *testing.T) {
	o := startOP(t)
	bcAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	client := o.registerRP(t, "http://"+bcAddr+"/backchannel-logout")
	withLogout := startServer(t, o, serverOpts{Mutate: func(cfg map[string]any) {
		cfg["server"].(map[string]any)["backchannel_listen"] = bcAddr
		cfg["issuers"].([]any)[0].(map[string]any)["logout_audiences"] = []any{client.ID}
	}})
	without := startServer(t, o, serverOpts{})

	b := browser(t)
	tok := o.login(t, b, client, "alice")
	if intro := o.introspect(t, tok); intro["active"] != true || intro["sid"] == nil {
		t.Fatalf("e2e: the logged-in token: %v", intro)
	}
	for _, s := range []*server{withLogout, without} {
		for i := range 2 {
			if resp := check(t, s, checkReq{path: "/items", headers: bearer(tok)}); checkStatus(resp) != 200 {
				t.Fatalf("warm-up %d: %d %s", i, checkStatus(resp), resp.GetDeniedResponse().GetBody())
			}
		}
	}
	o.logout(t, b, client)
	loggedOut := time.Now()
	if intro := o.introspect(t, tok); intro["active"] == true {
		t.Fatalf("e2e: the OP did not revoke the session's token at logout: %v", intro)
	}
	deadline := loggedOut.Add(time.Second)
	var last int
	for {
		last = checkStatus(check(t, withLogout, checkReq{path: "/items", headers: bearer(tok)}))
		if last == 401 || time.Now().After(deadline) {
			break
		}
		time.Sleep(pollEvery)
	}
	if last != 401 {
		t.Fatalf("check after logout on the server with the receiver = %d, want 401 within 1s", last)
	}
	t.Logf("denied %s after the logout", time.Since(loggedOut).Round(time.Millisecond))
	if !strings.Contains(withLogout.proc.Log(), `"msg":"back-channel logout"`) {
		t.Errorf("no back-channel logout line in the log")
	}
	if got := checkStatus(check(t, without, checkReq{path: "/items", headers: bearer(tok)})); got != 200 {
		t.Errorf("server without the receiver = %d; expected its cached allow (200), which the receiver is there to end", got)
	}
}
