//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/flaat-extauthz/flaat-extauthz/envoy"
	"github.com/flaat-extauthz/flaat-extauthz/internal/testutil/otlptest"
)

// checkWith is check with extra gRPC metadata (grpcurl -H), as Envoy sends its trace
// context on the ext_authz call.
func checkWith(t testing.TB, s *server, r checkReq, metadata map[string]string) *authv3.CheckResponse {
	t.Helper()
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "e2e-trace", Method: "GET", Host: "api.e2e.test", Path: r.path, Scheme: "https", Protocol: "HTTP/1.1",
			Headers: r.headers,
		}},
	}}
	body, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	argv := []string{grpcurl(t), "-plaintext", "-max-time", "15", "-d", "@"}
	for k, v := range metadata {
		argv = append(argv, "-H", k+": "+v)
	}
	out, stderr, err := runCmd(t, string(body), append(argv, s.GRPCAddr, "envoy.service.auth.v3.Authorization/Check")...)
	if err != nil {
		t.Fatalf("e2e: grpcurl Check: %v\nstdout: %s\nstderr: %s", err, out, stderr)
	}
	var resp authv3.CheckResponse
	if err := protojson.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("e2e: grpcurl output is not a CheckResponse: %v\n%s", err, out)
	}
	return &resp
}

// traceIDs returns a fresh W3C trace id and parent span id (hex) for case n.
func traceIDs(n int) (string, string) {
	return fmt.Sprintf("%032x", 0xe2e0000+n), fmt.Sprintf("%016x", 0xa0+n)
}

// TestTracingOTLP: flaat-extauthz with OTEL_TRACES_EXPORTER=otlp exports to a real OTLP
// gRPC receiver (otlptest, the OTLP TraceService from go.opentelemetry.io/proto/otlp).
// A Check sent with grpcurl carrying a traceparent (or B3 headers) becomes a server span
// in that trace whose parent is the sent span id, and the OP requests it caused
// (discovery, JWKS, userinfo, introspection against the real oidc-provider) are its
// children; a cached check has no OP children; no span holds a token.
func TestTracingOTLP(t *testing.T) {
	o := startOP(t)
	rcv := otlptest.Start(t)
	s := startServer(t, o, serverOpts{
		Env: []string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
			"OTEL_EXPORTER_OTLP_ENDPOINT=" + rcv.GRPCEndpoint(), "OTEL_BSP_SCHEDULE_DELAY=100",
			"OTEL_SERVICE_NAME=flaat-extauthz-e2e"},
		Mutate: func(cfg map[string]any) {
			// lazy: discovery and JWKS are fetched by the first check, inside its trace.
			cfg["server"].(map[string]any)["readiness"] = "lazy"
			cfg["tracing"] = map[string]any{"record_subject": true}
		},
	})
	adminJWT := o.jwtToken(t, "e2e-admin")
	aliceOpaque := o.accountToken(t, "alice", "opaque")

	tests := []struct {
		name     string
		path     string
		token    string
		meta     func(trace, span string) map[string]string
		http     bool // HTTP auth-request mode instead of gRPC Check
		attrs    map[string]string
		children []string // OP spans under the check span, each at least once
	}{
		{name: "w3c traceparent, first jwt", path: "/admin/x", token: adminJWT,
			meta: func(tr, sp string) map[string]string {
				return map[string]string{"traceparent": "00-" + tr + "-" + sp + "-01"}
			},
			attrs: map[string]string{"flaat.outcome": "allow", "flaat.route": "admin", "flaat.cached": "false",
				"flaat.issuer": o.Issuer, "enduser.id": "e2e-admin", "flaat.transport": "grpc"},
			children: []string{"OP discovery", "OP jwks"}},
		{name: "w3c traceparent, cached jwt", path: "/admin/y", token: adminJWT,
			meta: func(tr, sp string) map[string]string {
				return map[string]string{"traceparent": "00-" + tr + "-" + sp + "-01"}
			},
			attrs: map[string]string{"flaat.outcome": "allow", "flaat.cached": "true"}},
		{name: "b3 multi header, opaque token", path: "/admin/z", token: aliceOpaque,
			meta: func(tr, sp string) map[string]string {
				return map[string]string{"x-b3-traceid": tr, "x-b3-spanid": sp, "x-b3-sampled": "1"}
			},
			attrs:    map[string]string{"flaat.outcome": "allow", "enduser.id": "alice", "flaat.cached": "false"},
			children: []string{"OP userinfo", "OP introspection"}},
		{name: "b3 single header, no token", path: "/data",
			meta:  func(tr, sp string) map[string]string { return map[string]string{"b3": tr + "-" + sp + "-1"} },
			attrs: map[string]string{"flaat.outcome": "no_token", "flaat.route": "default"}},
		{name: "http mode traceparent", path: "/data", token: adminJWT, http: true,
			meta: func(tr, sp string) map[string]string {
				return map[string]string{"traceparent": "00-" + tr + "-" + sp + "-01"}
			},
			attrs: map[string]string{"flaat.outcome": "allow", "flaat.transport": "http"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			trace, parent := traceIDs(i)
			if tc.http {
				tracedHTTPCheck(t, s, tc.path, tc.token, tc.meta(trace, parent))
			} else {
				var hdrs map[string]string
				if tc.token != "" {
					hdrs = bearer(tc.token)
				}
				resp := checkWith(t, s, checkReq{path: tc.path, headers: hdrs}, tc.meta(trace, parent))
				want := codes.OK
				if tc.token == "" {
					want = codes.Unauthenticated
				}
				if got := codes.Code(resp.GetStatus().GetCode()); got != want {
					t.Fatalf("Check status %v, want %v: %v", got, want, resp)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			defer cancel()
			checkName := envoy.SpanNameGRPC
			if tc.http {
				checkName = envoy.SpanNameHTTP
			}
			spans, err := rcv.WaitFor(ctx, func(ss []otlptest.Span) bool {
				var check *otlptest.Span
				got := map[string]bool{}
				for i := range ss {
					if ss[i].TraceID == trace && ss[i].Name == checkName {
						check = &ss[i]
					}
				}
				if check == nil {
					return false
				}
				for _, sp := range ss {
					if sp.TraceID == trace && sp.ParentSpanID == check.SpanID {
						got[sp.Name] = true
					}
				}
				for _, c := range tc.children {
					if !got[c] {
						return false
					}
				}
				return true
			})
			if err != nil {
				t.Fatalf("%v; spans received: %s", err, dump(spans))
			}
			var check otlptest.Span
			for _, sp := range spans {
				if sp.TraceID == trace && sp.Name == checkName {
					check = sp
				}
			}
			if check.ParentSpanID != parent {
				t.Errorf("check span's parent %s, want the sent span %s", check.ParentSpanID, parent)
			}
			if check.Kind.String() != "SPAN_KIND_SERVER" || check.Resource["service.name"] != "flaat-extauthz-e2e" {
				t.Errorf("check span kind %v, service %q", check.Kind, check.Resource["service.name"])
			}
			for k, v := range tc.attrs {
				if check.Attributes[k] != v {
					t.Errorf("check span %s = %q, want %q (all: %v)", k, check.Attributes[k], v, check.Attributes)
				}
			}
			for _, sp := range spans {
				if sp.TraceID != trace || sp.ParentSpanID != check.SpanID {
					continue
				}
				if len(tc.children) == 0 {
					t.Errorf("cached or token-less check has OP child %s", sp.Name)
				}
				if sp.Kind.String() != "SPAN_KIND_CLIENT" || sp.Attributes["flaat.issuer"] != o.Issuer {
					t.Errorf("OP span %s: kind %v issuer %q", sp.Name, sp.Kind, sp.Attributes["flaat.issuer"])
				}
			}
		})
	}
	assertNoTokens(t, "the exported spans", dump(rcv.Spans()))
}

// tracedHTTPCheck sends an HTTP auth request as Envoy's http_service would (original
// path as the request path, its trace headers added) and wants 200.
func tracedHTTPCheck(t testing.TB, s *server, path, token string, hdr map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.HTTPAddr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP check %s = %d, want 200", path, resp.StatusCode)
	}
}

// dump renders spans with every attribute, for failure messages and the token check.
func dump(spans []otlptest.Span) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "%s trace=%s span=%s parent=%s %v\n", s.Name, s.TraceID, s.SpanID, s.ParentSpanID, s.Attributes)
	}
	return b.String()
}

// TestHealthcheckBinary: the built binary's healthcheck subcommand (what the image's
// HEALTHCHECK runs) against a running server: ready over the admin listener and over
// gRPC health, unhealthy once the server stopped.
func TestHealthcheckBinary(t *testing.T) {
	o := startOP(t)
	s := startServer(t, o, serverOpts{})
	bin := flaatBinary(t)
	run := func(args ...string) (int, string) {
		out, stderr, err := runCmd(t, "", append([]string{bin, "healthcheck", "--timeout", "5s"}, args...)...)
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), out + stderr
		}
		if err != nil {
			t.Fatalf("healthcheck: %v", err)
		}
		return 0, out + stderr
	}
	for _, args := range [][]string{{"--addr", s.AdmAddr}, {"--addr", s.AdmAddr, "--path", "/healthz"}, {"--grpc", s.GRPCAddr}} {
		if code, out := run(args...); code != 0 {
			t.Errorf("healthcheck %v = %d, want 0: %s", args, code, out)
		}
	}
	s.Stop() // returns once the process has exited
	for _, args := range [][]string{{"--addr", s.AdmAddr}, {"--grpc", s.GRPCAddr}} {
		if code, out := run(args...); code != 1 {
			t.Errorf("healthcheck %v of a stopped server = %d, want 1: %s", args, code, out)
		}
	}
}
