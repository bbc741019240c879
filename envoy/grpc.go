package envoy

import (
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
)

// AuthorizationService is the gRPC service name of Check, also used as the health
// service name.
const AuthorizationService = "envoy.service.auth.v3.Authorization"

// NewHealth returns a grpc.health.v1 server that reports NOT_SERVING for the overall
// server ("") and for AuthorizationService until SetServing(h, true). Call
// SetServing(h, true) once the configured issuers' discovery succeeded (readiness
// "eager") or right away (readiness "lazy"); h.Shutdown() on shutdown.
func NewHealth() *health.Server {
	h := health.NewServer()
	SetServing(h, false)
	return h
}

// SetServing sets the health of "" and AuthorizationService.
func SetServing(h *health.Server, serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	h.SetServingStatus("", st)
	h.SetServingStatus(AuthorizationService, st)
}

// NewGRPCServer returns a gRPC server (not yet serving) with s as the Authorization
// service, h as grpc.health.v1 (nil: a private health server that always reports
// SERVING — pass your own from NewHealth to gate readiness), server reflection (so grpcurl works without
// protos), and s's keepalive, max-concurrent-streams, stream-worker and TLS/mTLS
// settings. TLS files are read here (s.ListenerTLS) and re-read when they change. Its
// codec is the proto codec, except that s's memoised answers are
// sent as the bytes encoded once when they were memoised (they are never modified).
// extra options are appended (e.g. stats handlers). The caller runs Serve on its
// listener and GracefulStop on shutdown.
func NewGRPCServer(s *Server, h *health.Server, extra ...grpc.ServerOption) (*grpc.Server, error) {
	cfg := s.listen
	opts := []grpc.ServerOption{
		grpc.ForceServerCodecV2(newWireCodec(s)),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             cfg.GRPC.KeepaliveMinTime.D(),
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:                  cfg.GRPC.KeepaliveTime.D(),
			Timeout:               cfg.GRPC.KeepaliveTimeout.D(),
			MaxConnectionAge:      cfg.GRPC.MaxConnectionAge.D(),
			MaxConnectionAgeGrace: cfg.GRPC.MaxConnectionAgeGrace.D(),
		}),
	}
	if n := cfg.GRPC.StreamWorkers; n > 0 {
		opts = append(opts, grpc.NumStreamWorkers(uint32(n)))
	}
	if n := cfg.GRPC.MaxConcurrentStreams; n > 0 {
		opts = append(opts, grpc.MaxConcurrentStreams(n))
	}
	certs, err := s.ListenerTLS()
	if err != nil {
		return nil, err
	}
	if certs != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(certs.ServerConfig("h2"))))
	}
	gs := grpc.NewServer(append(opts, extra...)...)
	authv3.RegisterAuthorizationServer(gs, s)
	if h == nil {
		h = health.NewServer()
		SetServing(h, true)
	}
	healthpb.RegisterHealthServer(gs, h)
	reflection.Register(gs)
	return gs, nil
}
