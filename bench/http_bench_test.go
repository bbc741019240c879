package bench_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/bench/internal/load"
)

// BenchmarkHTTPMode serves the HTTP auth-request handler on a real loopback listener
// with net/http (as serve does) and sends keep-alive HTTP/1.1 requests over one
// connection from a minimal client that writes prebuilt bytes and reads the response
// head, so that little of the time is the client's. "noop" is the same server with a
// handler that only answers 200 (the load benchmark's HTTP no-op baseline);
// "noop-headers" answers 200 with the headers flaat-extauthz answers this request with
// (identity headers, Cache-Control, X-Envoy-Auth-Headers-To-Remove), so that flaat minus
// noop-headers is what the auth-request path itself costs and noop-headers minus noop
// what sending those headers costs. Profile the server side with
//
//	go test -run '^$' -bench HTTPMode/flaat -cpuprofile cpu.prof ./bench/
//	go tool pprof -focus 'net/http.\(\*conn\).serve' -top cpu.prof
func BenchmarkHTTPMode(b *testing.B) {
	f := newFixture(b, map[string]any{})
	tok := f.opJWT.MintJWT(load.Claims(0))
	probe := httptest.NewRequest("GET", "/api/v1/items/42", nil)
	probe.Header.Set("Authorization", "Bearer "+tok)
	probe.Header.Set("X-Forwarded-Host", load.Request.Host)
	rec := httptest.NewRecorder()
	f.srv.HTTPHandler().ServeHTTP(rec, probe)
	if rec.Code != 200 || len(rec.Header()) < 3 {
		b.Fatalf("flaat answered %d with %v", rec.Code, rec.Header())
	}
	answer := rec.Header().Clone()
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{
		{"noop", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })},
		{"noop-headers", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			h := w.Header()
			for k, v := range answer {
				h[k] = v
			}
			w.WriteHeader(http.StatusOK)
		})},
		{"flaat", f.srv.HTTPHandler()},
	} {
		b.Run(tc.name, func(b *testing.B) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			hs := &http.Server{Handler: tc.h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
			go func() { _ = hs.Serve(l) }()
			b.Cleanup(func() { hs.Close() })
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			req := []byte(fmt.Sprintf("GET /api/v1/items/42 HTTP/1.1\r\nHost: %s\r\nUser-Agent: h2load nghttp2/1.52.0\r\nAuthorization: Bearer %s\r\nX-Forwarded-Host: %s\r\n\r\n",
				l.Addr(), tok, load.Request.Host))
			br := bufio.NewReaderSize(c, 16<<10)
			roundTrip := func() int {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode
			}
			if code := roundTrip(); code != 200 {
				b.Fatalf("status %d", code)
			}
			b.ReportAllocs()
			for b.Loop() {
				roundTrip()
			}
		})
	}
}
