package resilience

import (
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

func TestSameHostRedirect(t *testing.T) {
	u := func(s string) *http.Request {
		p, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Request{URL: p}
	}
	cases := []struct {
		name     string
		orig, to string
		hops     int
		want     error
	}{
		{"same host", "https://op.example/a", "https://op.example/b", 1, nil},
		{"same host other case", "https://op.example/a", "https://OP.example/b", 1, nil},
		{"other host", "https://op.example/a", "https://evil.example/b", 1, http.ErrUseLastResponse},
		{"other port", "https://op.example/a", "https://op.example:8443/b", 1, http.ErrUseLastResponse},
		{"subdomain", "https://op.example/a", "https://a.op.example/b", 1, http.ErrUseLastResponse},
		{"userinfo trick", "https://op.example/a", "https://op.example@evil.example/b", 1, http.ErrUseLastResponse},
		{"https to http", "https://op.example/a", "http://op.example/b", 1, http.ErrUseLastResponse},
		{"http to https", "http://op.example/a", "https://op.example/b", 1, nil},
		{"too many", "https://op.example/a", "https://op.example/b", MaxRedirects, errTooManyRedirects},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			via := []*http.Request{u(tc.orig)}
			for len(via) < tc.hops {
				via = append(via, u(tc.orig))
			}
			if err := sameHostRedirect(u(tc.to), via); !errors.Is(err, tc.want) {
				t.Errorf("sameHostRedirect = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestClientRedirects runs real servers: a same-host redirect is followed, a redirect to
// another host is not (that host gets no request, the caller sees the 3xx).
func TestClientRedirects(t *testing.T) {
	var evilHits atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		evilHits.Add(1)
		io.WriteString(w, `{"keys":[]}`)
	}))
	defer evil.Close()
	op := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/moved":
			http.Redirect(w, r, "/jwks", http.StatusFound)
		case "/away":
			http.Redirect(w, r, evil.URL+"/jwks", http.StatusFound)
		case "/jwks":
			io.WriteString(w, "ok")
		}
	}))
	defer op.Close()
	client, tr := NewClient(ClientConfig{})
	defer tr.CloseIdleConnections()

	res, err := client.Get(op.URL + "/moved")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(b) != "ok" {
		t.Errorf("same-host redirect: %d %q", res.StatusCode, b)
	}

	res, err = client.Get(op.URL + "/away")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound {
		t.Errorf("cross-host redirect: status %d, want the 302 itself", res.StatusCode)
	}
	if n := evilHits.Load(); n != 0 {
		t.Errorf("the other host got %d requests, want 0", n)
	}
}

func TestNewClientLimitsAndDefaults(t *testing.T) {
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 10<<20))
	}))
	defer big.Close()
	client, tr := NewClient(ClientConfig{}, WithMaxConcurrent(3))
	defer tr.CloseIdleConnections()
	if client.Timeout != 0 {
		t.Errorf("Timeout = %v, want none (request contexts carry the deadline)", client.Timeout)
	}
	if tr.maxConc != 3 || tr.maxBody != DefaultMaxBodyBytes {
		t.Errorf("transport: maxConc %d maxBody %d", tr.maxConc, tr.maxBody)
	}
	base := tr.next.(*http.Transport)
	if base.TLSClientConfig.MinVersion != tls.VersionTLS12 || base.MaxIdleConnsPerHost != DefaultMaxIdleConnsPerHost || base.Proxy == nil {
		t.Errorf("base transport: TLS min %x, idle per host %d, proxy set %v", base.TLSClientConfig.MinVersion, base.MaxIdleConnsPerHost, base.Proxy != nil)
	}
	res, err := client.Get(big.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if !errors.Is(err, ErrBodyTooLarge) || len(b) > DefaultMaxBodyBytes {
		t.Errorf("10 MiB body: read %d bytes, err %v", len(b), err)
	}

	// A custom base and an explicit "no limit".
	f := &fake{reply: status(200)}
	c2, tr2 := NewClient(ClientConfig{Base: f}, WithMaxBodyBytes(0))
	if tr2.maxBody != 0 || tr2.next != f {
		t.Errorf("custom: maxBody %d, base %T", tr2.maxBody, tr2.next)
	}
	if _, err := c2.Get("http://op.example/"); err != nil || f.calls.Load() != 1 {
		t.Errorf("custom base: err %v calls %d", err, f.calls.Load())
	}
}
