// Package otlptest is an OTLP trace receiver for tests: it implements the OTLP
// TraceService over gRPC and the OTLP/HTTP protobuf endpoint (/v1/traces) on loopback
// ports and keeps every span it receives, so tests can check what a real exporter sent
// (trace and parent ids, names, attributes, resource).
//
// It is test-only: production code never imports it.
package otlptest

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	collpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Span is one received span, flattened.
type Span struct {
	TraceID, SpanID, ParentSpanID string // lower-case hex; ParentSpanID "" for a root
	Name                          string
	Kind                          tracepb.Span_SpanKind
	Attributes                    map[string]string // values as strings
	Resource                      map[string]string // the resource's attributes
	Scope                         string            // instrumentation scope name
	StatusError                   bool
	Protocol                      string // grpc or http
}

// Receiver is a running OTLP trace receiver.
type Receiver struct {
	collpb.UnimplementedTraceServiceServer

	grpcAddr string
	httpURL  string
	gs       *grpc.Server
	hs       *http.Server

	mu      sync.Mutex
	spans   []Span
	changed chan struct{} // closed and replaced on every export
}

// Start starts a receiver on 127.0.0.1 random ports and stops it when tb ends.
func Start(tb testing.TB) *Receiver {
	tb.Helper()
	r := &Receiver{changed: make(chan struct{})}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		gl.Close()
		tb.Fatal(err)
	}
	r.grpcAddr = gl.Addr().String()
	r.httpURL = "http://" + hl.Addr().String()
	r.gs = grpc.NewServer()
	collpb.RegisterTraceServiceServer(r.gs, r)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", r.serveHTTP)
	r.hs = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.gs.Serve(gl) }()
	go func() { _ = r.hs.Serve(hl) }()
	tb.Cleanup(func() {
		r.gs.Stop()
		_ = r.hs.Close()
	})
	return r
}

// GRPCEndpoint is the OTLP/gRPC endpoint, as OTEL_EXPORTER_OTLP_ENDPOINT takes it
// (http:// makes the exporter connect without TLS).
func (r *Receiver) GRPCEndpoint() string { return "http://" + r.grpcAddr }

// HTTPEndpoint is the OTLP/HTTP base URL (the exporter appends /v1/traces).
func (r *Receiver) HTTPEndpoint() string { return r.httpURL }

// Export implements the OTLP TraceService.
func (r *Receiver) Export(_ context.Context, req *collpb.ExportTraceServiceRequest) (*collpb.ExportTraceServiceResponse, error) {
	r.add(req, "grpc")
	return &collpb.ExportTraceServiceResponse{}, nil
}

func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		http.Error(w, "want application/x-protobuf, got "+ct, http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 16<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var msg collpb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.add(&msg, "http")
	out, _ := proto.Marshal(&collpb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (r *Receiver) add(req *collpb.ExportTraceServiceRequest, protocol string) {
	var got []Span
	for _, rs := range req.GetResourceSpans() {
		res := attrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				s := Span{
					TraceID:     hex.EncodeToString(sp.GetTraceId()),
					SpanID:      hex.EncodeToString(sp.GetSpanId()),
					Name:        sp.GetName(),
					Kind:        sp.GetKind(),
					Attributes:  attrs(sp.GetAttributes()),
					Resource:    res,
					Scope:       ss.GetScope().GetName(),
					StatusError: sp.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR,
					Protocol:    protocol,
				}
				if p := sp.GetParentSpanId(); len(p) > 0 {
					s.ParentSpanID = hex.EncodeToString(p)
				}
				got = append(got, s)
			}
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		switch x := v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = x.StringValue
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = fmt.Sprint(x.BoolValue)
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = fmt.Sprint(x.IntValue)
		case *commonpb.AnyValue_DoubleValue:
			m[kv.GetKey()] = fmt.Sprint(x.DoubleValue)
		default:
			m[kv.GetKey()] = v.String()
		}
	}
	return m
}

// Spans returns a copy of every span received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// WaitFor waits until done(spans received so far) is true or ctx ends, and returns the
// spans; on ctx's end the error says so and the spans are those received.
func (r *Receiver) WaitFor(ctx context.Context, done func([]Span) bool) ([]Span, error) {
	for {
		r.mu.Lock()
		spans, ch := append([]Span(nil), r.spans...), r.changed
		r.mu.Unlock()
		if done(spans) {
			return spans, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return spans, fmt.Errorf("otlptest: %d spans received, condition not met: %w", len(spans), ctx.Err())
		}
	}
}
