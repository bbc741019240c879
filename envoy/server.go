// Package envoy is the protocol adapter of flaat-extauthz: the Envoy ext_authz v3 gRPC
// server (envoy.service.auth.v3.Authorization/Check) and the HTTP auth-request handler
// (Envoy http_service, nginx auth_request, Traefik forwardAuth). It turns a request into
// an authz.Request, asks an Authorizer, and maps the authz.Decision to a response with
// one table (ResponseFor): allow → identity headers for the upstream; no or invalid
// token → 401 with an RFC 6750 challenge; policy not met → 403; OP outage → 503.
//
// It never verifies tokens itself, and it never answers Check with a gRPC error: Envoy
// would treat that as a failure and, with failure_mode_allow, let the request through.
// Every problem — a nil request, a panicking authorizer, a cancelled context — becomes a
// denial.
package envoy

import (
	"context"
	"fmt"
	"log/slog"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// Authorizer decides one request. authz.Authorizer implements it; tests use fakes.
// Authorize must always return a Decision (outages are OutcomeUnavailable); if it
// panics, the Server answers 503.
type Authorizer interface {
	Authorize(ctx context.Context, r authz.Request) authz.Decision
}

// AuthorizerFunc adapts a function to Authorizer.
type AuthorizerFunc func(ctx context.Context, r authz.Request) authz.Decision

// Authorize calls f.
func (f AuthorizerFunc) Authorize(ctx context.Context, r authz.Request) authz.Decision {
	return f(ctx, r)
}

// Transport names used in logs and metrics.
const (
	TransportGRPC = "grpc"
	TransportHTTP = "http"
)

// Server answers ext_authz Check calls and HTTP auth requests. It is safe for
// concurrent use; SetAuthorizer and Reload swap the authorizer (and configuration)
// atomically while checks run: each check uses one consistent snapshot from start to
// end. It starts no goroutines and holds no connections, so it needs no Close.
type Server struct {
	listen  Config // as given to NewServer: listener, TLS and gRPC settings
	snap    atomic.Pointer[snapshot]
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time
	since   func(time.Time) time.Duration // time.Since, or based on the injected clock

	certsMu sync.Mutex
	certs   *CertReloader // listener TLS, loaded by the first ListenerTLS

	// WithTracing; tracer nil: tracing off, nothing is extracted or started.
	tracer       trace.Tracer
	prop         propagation.TextMapPropagator
	traceSubject bool
	spanOpts     []trace.SpanStartOption
}

// snapshot is what one check uses from start to end: the authorizer and the
// response-shaping configuration, swapped together by Reload, with everything that can
// be derived from the configuration once (instead of on every check) and the memo of
// prebuilt allow answers for cached identities.
type snapshot struct {
	a        Authorizer
	cfg      Config
	denyLvl  slog.Level
	allNames []string // every identity header name + access token header, for public routes
	strip    []string // authorization (+ token header) when StripAuthorization, else nil
	// anonResp and anonHTTPRemove answer an allow without identity (public route): every
	// identity header removed. Shared by all such answers; never modified.
	anonResp       *authv3.CheckResponse
	anonHTTPRemove []string       // header value slice, len == cap == 1
	httpNames      []string       // canonical form of cfg.Headers names
	fwd            forwardedNames // candidate headers of cfg.HTTP.Forwarded
	tokenKey       string         // canonical cfg.TokenHeader ("" when none), for HTTP mode
	certKey        string         // canonical cfg.ClientCert.Header ("" when none), for HTTP mode
	memo           *allowMemo
	deny           *denyMemo
	wire           *wireTable   // encodings of memo entries and anonResp, for wireCodec
	sampler        *denySampler // nil: every denial is logged
	dpopAlgs       string       // the algs of DPoP challenges, space-separated
}

// dpopAlgorithmser is implemented by authz.Authorizer: the proof algorithms it accepts.
type dpopAlgorithmser interface{ DPoPAlgorithms() []string }

func newSnapshot(a Authorizer, cfg Config) *snapshot {
	v := &snapshot{a: a, cfg: cfg, memo: newAllowMemo(), deny: newDenyMemo(), wire: newWireTable(), httpNames: canonicalNames(cfg.Headers),
		sampler: newDenySampler(cfg.denyLogInterval()), fwd: cfg.HTTP.Forwarded.names()}
	v.denyLvl, _ = parseLevel(cfg.DenyLogLevel)
	if cfg.TokenHeader != "" {
		v.tokenKey = textproto.CanonicalMIMEHeaderKey(cfg.TokenHeader)
	}
	if cfg.ClientCert.Header != "" {
		v.certKey = textproto.CanonicalMIMEHeaderKey(cfg.ClientCert.Header)
	}
	algs := authz.DefaultDPoPAlgorithms
	if da, ok := a.(dpopAlgorithmser); ok && da != nil {
		algs = da.DPoPAlgorithms()
	}
	v.dpopAlgs = strings.Join(algs, " ")
	for _, h := range cfg.Headers {
		v.allNames = append(v.allNames, h.Name)
	}
	v.allNames = append(v.allNames, cfg.AccessTokenHeader)
	if cfg.StripAuthorization {
		v.strip = []string{"authorization"}
		if cfg.TokenHeader != "" {
			v.strip = append(v.strip, cfg.TokenHeader)
		}
	}
	remove := append(append(make([]string, 0, len(v.allNames)+len(v.strip)), v.allNames...), v.strip...)
	v.anonResp = okResponse(nil, remove, nil)
	v.wire.put(v.anonResp)
	v.anonHTTPRemove = []string{strings.Join(remove, ", ")}
	return v
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger for decision lines. Default: slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(s *Server) {
		if l != nil {
			s.log = l
		}
	}
}

// WithMetrics records decisions, latency and in-flight checks in m. Default: none.
func WithMetrics(m *Metrics) Option { return func(s *Server) { s.metrics = m } }

// WithClock sets the clock used to measure check latency. Default time.Now.
func WithClock(now func() time.Time) Option {
	return func(s *Server) {
		if now != nil {
			s.now = now
			s.since = func(t time.Time) time.Duration { return now().Sub(t) }
		}
	}
}

// Compile-time guards: Server is an ext_authz v3 gRPC service, and the real
// authorizer fits the interface.
var (
	_ authv3.AuthorizationServer = (*Server)(nil)
	_ Authorizer                 = (*authz.Authorizer)(nil)
)

// NewServer validates cfg (defaults applied to zero fields) and returns a Server that
// asks a. A nil a is allowed: every check is then answered 503 until SetAuthorizer.
func NewServer(a Authorizer, cfg Config, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Server{listen: cfg, log: slog.Default(), now: time.Now, since: time.Since}
	for _, o := range opts {
		o(s)
	}
	s.snap.Store(newSnapshot(a, cfg))
	return s, nil
}

// SetAuthorizer replaces the authorizer for all later checks (config reload), keeping
// the configuration. Checks already running finish with the authorizer they started
// with. A nil a makes every later check answer 503.
func (s *Server) SetAuthorizer(a Authorizer) {
	for {
		old := s.snap.Load()
		if s.snap.CompareAndSwap(old, newSnapshot(a, old.cfg)) {
			return
		}
	}
}

// Reload validates cfg and then replaces the authorizer and the configuration together
// for all later checks; checks already running finish with what they started with. On
// a validation error nothing changes. Identity headers, token header, realm, metadata
// claims, strip/forward switches, path prefix and log level take effect at once; the
// listener, TLS file name, gRPC, shutdown and readiness settings are read only when
// the listeners start (NewGRPCServer, the caller's HTTP server) and need a restart; the
// TLS files' contents are re-read by ListenerTLS's CertReloader.
func (s *Server) Reload(a Authorizer, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	s.snap.Store(newSnapshot(a, cfg.withDefaults()))
	return nil
}

// ListenerTLS returns the reloader of the listener certificate (and client CA) files
// of the configuration given to NewServer, reading them on the first call; nil, nil
// when TLS is off. Both listeners share it: NewGRPCServer uses it, the HTTP check
// listener takes ServerConfig() of it, and SIGHUP calls its Reload. New files are also
// picked up by themselves (see CertReloader). It uses the Server's logger and clock.
func (s *Server) ListenerTLS() (*CertReloader, error) {
	s.certsMu.Lock()
	defer s.certsMu.Unlock()
	if s.certs != nil || !s.listen.TLS.Enabled() {
		return s.certs, nil
	}
	c, err := NewCertReloader(s.listen.TLS, s.log, s.now)
	if err != nil {
		return nil, err
	}
	s.certs = c
	return c, nil
}

// Config returns the configuration in effect (defaults applied).
func (s *Server) Config() Config { return s.snap.Load().cfg }

// Check implements envoy.service.auth.v3.Authorization/Check. It always returns a
// CheckResponse and a nil error.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (resp *authv3.CheckResponse, err error) {
	defer func() {
		if p := recover(); p != nil { // a bug here or in the log sink: still deny, never a gRPC error
			resp, err = s.snap.Load().denied(&authz.Decision{Outcome: authz.OutcomeUnavailable, Reason: "internal error"}, false), nil
			defer func() { _ = recover() }() // the logger may be what panicked
			s.log.LogAttrs(ctx, slog.LevelError, "envoy: panic while answering a check", slog.String("panic", fmt.Sprint(p)))
		}
	}()
	v := s.snap.Load()
	r := v.requestFromCheck(req)
	if s.tracer != nil {
		ctx = s.prop.Extract(ctx, grpcCarrier{ctx})
	}
	d := s.decide(ctx, v, &r, TransportGRPC)
	return v.checkResponse(&r, &d), nil
}

// decide asks the current authorizer, turning panics, cancelled contexts and unknown
// outcomes into denials, and records metrics, the span (WithTracing; ctx carries the
// caller's trace context) and the log line.
func (s *Server) decide(ctx context.Context, v *snapshot, r *authz.Request, transport string) (d authz.Decision) {
	var start time.Time
	if s.metrics != nil { // the clock is read only for the latency histogram
		start = s.now()
	}
	var span trace.Span
	if s.tracer != nil {
		ctx, span = s.startSpan(ctx, transport)
	}
	s.metrics.begin()
	defer func() {
		if p := recover(); p != nil {
			s.metrics.panicked()
			d = authz.Decision{Outcome: authz.OutcomeUnavailable, Reason: "internal error",
				Err: fmt.Errorf("envoy: authorizer panic: %v", p)}
		}
		if s.metrics != nil {
			// time.Since reads only the monotonic clock (time.Now reads two clocks).
			s.metrics.end(transport, d.Route, d.Outcome, s.since(start), d.ReasonCode)
		}
		if span != nil {
			s.endSpan(span, transport, r, &d)
		}
		s.logDecision(ctx, v, r, &d, transport)
	}()
	if v.a == nil {
		return authz.Decision{Outcome: authz.OutcomeUnavailable, Reason: "not ready",
			Err: fmt.Errorf("envoy: no authorizer configured")}
	}
	d = v.a.Authorize(ctx, *r)
	if !d.Outcome.Valid() {
		d = authz.Decision{Outcome: authz.OutcomeUnavailable, Reason: "internal error", Route: d.Route,
			Err: fmt.Errorf("envoy: authorizer returned unknown outcome %d", int(d.Outcome))}
	}
	if d.Outcome == authz.OutcomeAllow {
		if err := ctx.Err(); err != nil { // nobody waits for this allow; never send a late one
			d = authz.Decision{Outcome: authz.OutcomeCancelled, Reason: "request cancelled", Route: d.Route,
				TokenHash: d.TokenHash, Err: fmt.Errorf("envoy: check abandoned: %w", err)}
		}
	}
	return d
}

// record is decide for a decision made before the authorizer is asked (a request the
// adapter itself refuses): it records metrics, the span and the log line the same way.
func (s *Server) record(ctx context.Context, v *snapshot, r *authz.Request, transport string, d authz.Decision) authz.Decision {
	var start time.Time
	if s.metrics != nil {
		start = s.now()
	}
	if s.tracer != nil {
		var span trace.Span
		ctx, span = s.startSpan(ctx, transport)
		defer func() { s.endSpan(span, transport, r, &d) }()
	}
	s.metrics.begin()
	if s.metrics != nil {
		s.metrics.end(transport, d.Route, d.Outcome, s.since(start), d.ReasonCode)
	}
	s.logDecision(ctx, v, r, &d, transport)
	return d
}

// appendFalse is shared by every HeaderValueOption: it is never mutated.
var appendFalse = wrapperspb.Bool(false)

// headerOption is one header that replaces any existing value. Both the deprecated
// Append=false (which Envoy honours first when present, as "overwrite") and
// AppendAction are set, so old and new Envoys overwrite a client's copy.
func headerOption(name, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: name, Value: value},
		Append:       appendFalse, //nolint:staticcheck // deliberately set for Envoys before append_action
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// checkResponse maps d to a CheckResponse through the table. An allow may be a shared,
// prebuilt message (see allowParts): callers must not modify the result.
func (v *snapshot) checkResponse(r *authz.Request, d *authz.Decision) *authv3.CheckResponse {
	if d.Outcome != authz.OutcomeAllow {
		return v.denied(d, r.Authorization != "")
	}
	return v.allowResponse(r, d)
}

// metadata is the dynamic metadata of an allow: sub, iss, groups and the configured
// claims. Envoy files it under its ext_authz filter namespace. Its messages are built
// in blk's, which must not have been used before.
func (v *snapshot) metadata(id *authz.Identity, blk *allowBlock) *structpb.Struct {
	f := make(map[string]*structpb.Value, 3+len(v.cfg.MetadataClaims))
	if sub := id.Subject(); sub != "" {
		f["sub"] = blk.sub.set(sub)
	}
	if id.Issuer != "" {
		f["iss"] = blk.iss.set(id.Issuer)
	}
	if vs, ok := id.Claims.Values(v.cfg.GroupsClaim); ok {
		f["groups"] = blk.groups.set(vs)
	}
	for _, name := range v.cfg.MetadataClaims {
		if v, ok := metadataValue(id.Claims, name); ok {
			f[name] = v
		}
	}
	blk.md.Fields = f
	return &blk.md
}

// metadataValue keeps a scalar claim's JSON type (string, number, bool) and turns a
// list into a list of strings; objects are kept as structs when representable.
func metadataValue(claims policy.Claims, name string) (*structpb.Value, bool) {
	vs, ok := claims.Values(name)
	if !ok {
		return nil, false
	}
	raw, literal := claims.Lookup(name)
	if literal {
		switch t := raw.(type) {
		case string:
			return structpb.NewStringValue(t), true
		case bool:
			return structpb.NewBoolValue(t), true
		case float64:
			return structpb.NewNumberValue(t), true
		case map[string]any:
			if v, err := structpb.NewValue(t); err == nil {
				return v, true
			}
		case []any, []string:
			return stringList(vs), true
		}
	}
	if len(vs) == 1 {
		return structpb.NewStringValue(vs[0]), true
	}
	return stringList(vs), true
}

func stringList(vs []string) *structpb.Value {
	// Three allocations for the list and its elements instead of two per element plus
	// three (the list is built for every check of an identity that is not memoised, e.g.
	// with the cache off).
	return new(listValue).set(vs)
}

// bearerToken returns the token of an Authorization value the authorizer has already
// accepted, "" when there is none. The size limit was enforced by the authorizer with
// its own configuration, so none is applied here.
func bearerToken(authorization string) string {
	tok, _, err := authz.ParseCredential(authorization, 1<<24)
	if err != nil {
		return ""
	}
	return tok
}

// parseLevel maps a deny_log_level name to a slog level.
func parseLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, true
	case "info":
		return slog.LevelInfo, true
	case "warn", "warning":
		return slog.LevelWarn, true
	}
	return 0, false
}
