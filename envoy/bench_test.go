package envoy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
)

func discardLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
}

type constAuthorizer struct{ d authz.Decision }

func (c constAuthorizer) Authorize(context.Context, authz.Request) authz.Decision { return c.d }

func benchServer(b *testing.B, d authz.Decision) *Server {
	b.Helper()
	m, _ := NewMetrics(nil)
	s, err := NewServer(constAuthorizer{d: d}, Config{}, WithLogger(discardLogger()), WithMetrics(m))
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkCheckAllow is a full Check (extraction, authorizer, metrics, log-level
// check, response with 4 identity headers, 1 removal and dynamic metadata) for a freshly
// verified identity (not from the cache: the answer is built, not memoised).
func BenchmarkCheckAllow(b *testing.B) {
	s := benchServer(b, allowAlice())
	req := checkRequest(map[string]string{"authorization": "Bearer abc.def.ghi", "x-request-id": "r"})
	benchCheck(b, s, req)
}

// BenchmarkCheckAllowCached is BenchmarkCheckAllow with an identity from the cache (the
// same pointer every call): the prebuilt answer is reused.
func BenchmarkCheckAllowCached(b *testing.B) {
	d := allowAlice()
	d.Cached = true
	s := benchServer(b, d)
	req := checkRequest(map[string]string{"authorization": "Bearer abc.def.ghi", "x-request-id": "r"})
	benchCheck(b, s, req)
}

// BenchmarkCheckDeny is a full Check answered 403 with challenge and JSON body.
func BenchmarkCheckDeny(b *testing.B) {
	s := benchServer(b, authz.Decision{Outcome: authz.OutcomeForbidden, Reason: `groups: missing "ops"`, Route: "admin"})
	req := checkRequest(map[string]string{"authorization": "Bearer abc.def.ghi"})
	benchCheck(b, s, req)
}

// BenchmarkCheckResponseAllow is response building alone.
func BenchmarkCheckResponseAllow(b *testing.B) {
	s := benchServer(b, allowAlice())
	r := authz.Request{Authorization: "Bearer abc"}
	d := allowAlice()
	b.ReportAllocs()
	for b.Loop() {
		_ = s.snap.Load().checkResponse(&r, &d)
	}
}

// BenchmarkExtract is CheckRequest → authz.Request alone.
func BenchmarkExtract(b *testing.B) {
	s := benchServer(b, allowAlice())
	req := checkRequest(map[string]string{"authorization": "Bearer abc.def.ghi", "x-request-id": "r"})
	b.ReportAllocs()
	for b.Loop() {
		_ = s.snap.Load().requestFromCheck(req)
	}
}

// BenchmarkHTTPAllow is the HTTP handler on an allow of a cached identity (recorder
// overhead included).
func BenchmarkHTTPAllow(b *testing.B) {
	d := allowAlice()
	d.Cached = true
	s := benchServer(b, d)
	h := s.HTTPHandler()
	req := httptest.NewRequest("GET", "/x", nil)
	req.Header.Set("Authorization", "Bearer abc")
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}

// BenchmarkCheckDenyLogged is BenchmarkCheckDeny with the denial logged as JSON at info
// (to io.Discard): a flood of one bad token. Sampled: deny_log_interval 10s.
func BenchmarkCheckDenyLogged(b *testing.B) {
	for _, interval := range []time.Duration{0, 10 * time.Second} {
		name := "every"
		if interval > 0 {
			name = "sampled"
		}
		b.Run(name, func(b *testing.B) {
			log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
			d := authz.Decision{Outcome: authz.OutcomeInvalidToken, Reason: "token signature invalid", Route: "api",
				TokenHash: "0011223344556677", Err: errors.New("authz: invalid token: signature")}
			s, err := NewServer(constAuthorizer{d: d}, Config{DenyLogInterval: durationPtr(interval)}, WithLogger(log))
			if err != nil {
				b.Fatal(err)
			}
			req := checkRequest(map[string]string{"authorization": "Bearer abc.def.ghi", "x-request-id": "r"})
			benchCheck(b, s, req)
		})
	}
}

// BenchmarkCodecMarshalAllow is what gRPC spends encoding a memoised allow answer
// (4 identity headers, removals, dynamic metadata): "stored" is NewGRPCServer's codec
// sending the encoding kept with the memo entry, "proto" the standard proto codec
// marshalling the message again.
func BenchmarkCodecMarshalAllow(b *testing.B) {
	d := allowAlice()
	d.Cached = true
	s := benchServer(b, d)
	resp, _ := s.Check(context.Background(), checkRequest(map[string]string{"authorization": "Bearer abc.def.ghi"}))
	for _, c := range []struct {
		name  string
		codec encoding.CodecV2
	}{{"stored", newWireCodec(s)}, {"proto", encoding.GetCodecV2(protocodec.Name)}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				data, err := c.codec.Marshal(resp)
				if err != nil {
					b.Fatal(err)
				}
				data.Free()
			}
		})
	}
}

// benchCheck measures s.Check answering req, with allocations reported.
func benchCheck(b *testing.B, s *Server, req *authv3.CheckRequest) {
	b.Helper()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Check(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
