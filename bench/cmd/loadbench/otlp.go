package main

import (
	"context"
	"net"
	"sync/atomic"

	collpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

// otlpSink is an OTLP/gRPC trace receiver that counts the spans it is sent and drops
// them: the collector of the traced row. It runs in this process, on the load core
// (like the fake OPs), so its work is not charged to the server under test.
type otlpSink struct {
	collpb.UnimplementedTraceServiceServer
	addr  string
	gs    *grpc.Server
	spans atomic.Int64
}

func startOTLPSink() (*otlpSink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &otlpSink{addr: l.Addr().String(), gs: grpc.NewServer()}
	collpb.RegisterTraceServiceServer(s.gs, s)
	go func() { _ = s.gs.Serve(l) }()
	return s, nil
}

// Export counts the request's spans.
func (s *otlpSink) Export(_ context.Context, req *collpb.ExportTraceServiceRequest) (*collpb.ExportTraceServiceResponse, error) {
	var n int64
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			n += int64(len(ss.GetSpans()))
		}
	}
	s.spans.Add(n)
	return &collpb.ExportTraceServiceResponse{}, nil
}

func (s *otlpSink) close() {
	if s != nil {
		s.gs.Stop()
	}
}
