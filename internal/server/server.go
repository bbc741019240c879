// Package server is the lifecycle of a running flaat-extauthz: configuration
// generations, SIGHUP reload, readiness, health, listeners and shutdown.
//
// cmd/flaat-extauthz parses flags, loads the first configuration, builds the logger and
// hands them to New with Options; Run then serves until a stop signal or its context
// ends. The package returns errors and never exits the process.
//
// Listeners: the ext_authz gRPC server, the HTTP auth-request server and the admin
// listener (/metrics, /healthz, /readyz), plus any Options.Listeners (e.g. an OIDC
// back-channel logout endpoint). Options.GRPCOptions, Options.HTTPMiddleware,
// Options.OPTransportWrap and Options.OnShutdown are the hooks for tracing.
//
// Generations: every applied configuration is a generation (an authorizer and the file
// it came from). A reload (SIGHUP) builds a new one and swaps it in; checks in flight
// finish on the old one, which is closed once they have. A configuration that does not
// load, validate or build is refused and the old one keeps serving.
//
// Readiness: with server.readiness eager, /readyz and the gRPC health service report
// ready once every issuer's discovery and JWKS were fetched (retried with back-off
// while not); with lazy, at once.
package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/envoy"
	"github.com/flaat-extauthz/flaat-extauthz/internal/config"
	"github.com/flaat-extauthz/flaat-extauthz/internal/devswitch"
	"github.com/flaat-extauthz/flaat-extauthz/internal/metrics"
	"github.com/flaat-extauthz/flaat-extauthz/internal/resilience"
	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// devSwitchNag is how often the dev-switch warning is repeated.
const devSwitchNag = time.Minute

// readyRetry bounds the wait between two readiness attempts (discovery + JWKS of every
// issuer) while the server is not ready yet.
const readyRetry = 30 * time.Second

// readyTimeout bounds one readiness attempt (discovery + JWKS of every issuer).
const readyTimeout = 5 * time.Second

// Options is what the lifecycle is handed. Logger is required; every other field has a
// working zero value.
type Options struct {
	// Load reads and validates the configuration again; it is called on every SIGHUP.
	// nil: a SIGHUP re-reads only the TLS files.
	Load func() (*config.File, error)
	// Source names where the configuration comes from, for logs.
	Source string
	// Version is the build's version, for the start-up log.
	Version string
	// Logger receives every log line. Level, if set, is the logger's level: a reload
	// sets it from log.level.
	Logger *slog.Logger
	Level  *slog.LevelVar
	// DevSwitches, when Enabled, replace token verification by a made-up identity
	// (devswitch). INSECURE: the caller must have checked --allow-insecure-dev-switches.
	DevSwitches devswitch.Switches
	// Now is the clock (default time.Now). Transport, if set, is the innermost
	// RoundTripper of the OP client (authz.WithTransport; tests fake the network there).
	Now       func() time.Time
	Transport http.RoundTripper
	// OPTransportWrap, if set, wraps the OP client's innermost transport, inside the
	// circuit breaker (authz.WithTransportWrap; e.g. for tracing OP requests).
	OPTransportWrap func(http.RoundTripper) http.RoundTripper
	// Signals delivers SIGHUP (reload) and SIGTERM/SIGINT (stop). nil: the process's.
	Signals <-chan os.Signal
	// Tick creates the ticker of the dev-switch warning (default a time.Ticker).
	Tick func(time.Duration) <-chan time.Time
	// Grace, when positive, overrides server.shutdown_grace.
	Grace time.Duration
	// OnListening, if set, is called once every listener is up, with the bound address
	// of each ("grpc", "http", "admin" and the names of Listeners).
	OnListening func(addrs map[string]string)
	// OnReload, if set, is called after every reload attempt with its result.
	OnReload func(ok bool)

	// Listeners are extra HTTP listeners served, and shut down, with the others.
	Listeners []Listener
	// GRPCOptions are added to the ext_authz gRPC server's options (e.g. a stats
	// handler for tracing).
	GRPCOptions []grpc.ServerOption
	// HTTPMiddleware, if set, wraps the HTTP auth-request handler (e.g. for tracing).
	HTTPMiddleware func(http.Handler) http.Handler
	// OnShutdown functions run after the listeners stopped, in order, within the
	// shutdown grace (e.g. flushing a tracer provider). Their errors are logged.
	OnShutdown []func(context.Context) error
	// Tracing, when its Provider is set, makes a span per check (continuing the trace
	// context the proxy sends) and a child span per OP request (internal/tracing builds
	// it from the OTEL_* variables; the caller flushes it with OnShutdown). Its
	// RecordSubject is taken from the configuration's tracing section at start.
	// Zero: tracing off.
	Tracing envoy.Tracing
}

// Listener is an extra HTTP listener (e.g. for OIDC back-channel logout). Its handler
// may reach the configuration that serves through Server.Authorizer.
type Listener struct {
	// Name labels it in logs, errors and the addresses passed to OnListening.
	Name string
	// Addr is the listen address, e.g. ":9003" or "127.0.0.1:0".
	Addr    string
	Handler http.Handler
}

// Server is one run of the server: listeners, the current generation, reloads. Create
// it with New and run it once with Run.
type Server struct {
	o       Options
	log     *slog.Logger
	format  string
	reg     *prometheus.Registry
	m       *metrics.Metrics
	em      *envoy.Metrics
	srv     *envoy.Server
	health  *health.Server
	grpc    *grpc.Server
	srvJSON []byte              // restartOnly of the server section the listeners were started with
	certs   *envoy.CertReloader // listener TLS; nil when off
	grace   time.Duration
	lns     map[string]net.Listener
	https   map[string]*http.Server // http, admin and the extra listeners
	start   *config.File

	cur       atomic.Pointer[generation]
	listening atomic.Bool
	stopping  atomic.Bool
	reloadMu  sync.Mutex
	closers   sync.WaitGroup // old generations being drained

	// readiness is server.readiness as the listeners started with it; runCtx ends when
	// Run stops. readyLoop is true while a readinessLoop runs. healthMu serialises
	// updates of the gRPC health service (updateHealth).
	readiness string
	runCtx    context.Context
	readyLoop atomic.Bool
	healthMu  sync.Mutex
}

// New builds the first generation from f, the metrics, the gRPC, HTTP and admin servers
// and binds every listener (all or none). An error means nothing was started. After a
// nil error, call Run.
func New(f *config.File, o Options) (*Server, error) {
	if o.Logger == nil {
		return nil, errors.New("server: Options.Logger is nil")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o, log: o.Logger, format: strings.ToLower(f.Log.Format), start: f}
	s.reg = prometheus.NewRegistry()
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.m = metrics.New(s.reg)
	s.reg.MustRegister(resilience.NewCollector("flaat_extauthz", s.opStats))
	em, err := envoy.NewMetrics(s.reg)
	if err != nil {
		return nil, err
	}
	s.em = em
	gen, err := s.build(f)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			gen.eng.Close()
		}
	}()
	s.cur.Store(gen)
	s.m.SetCacheSource(gen.eng.CacheStats)
	s.m.ConfigApplied(o.Now())
	s.m.DevSwitches(o.DevSwitches.Enabled())

	scfg := f.ServerConfig()
	s.srvJSON = restartOnly(scfg)
	tr := o.Tracing
	tr.RecordSubject = f.Tracing.RecordSubject
	if s.srv, err = envoy.NewServer(gen, scfg, envoy.WithLogger(s.log), envoy.WithMetrics(em), envoy.WithClock(o.Now),
		envoy.WithTracing(tr)); err != nil {
		return nil, err
	}
	eff := s.srv.Config()
	s.readiness = eff.Readiness
	s.grace = eff.ShutdownGrace.D()
	if o.Grace > 0 {
		s.grace = o.Grace
	}
	s.health = envoy.NewHealth()
	if s.grpc, err = envoy.NewGRPCServer(s.srv, s.health, o.GRPCOptions...); err != nil {
		return nil, err
	}
	if s.certs, err = s.srv.ListenerTLS(); err != nil { // loaded by NewGRPCServer: the same files for both listeners
		return nil, err
	}
	addrs := []Listener{{Name: "grpc", Addr: eff.GRPCListen}, {Name: "http", Addr: eff.HTTPListen}, {Name: "admin", Addr: eff.AdminListen}}
	if eff.BackchannelListen != "" {
		// OIDC back-channel logout: its own listener, for the OPs only.
		addrs = append(addrs, Listener{Name: "backchannel", Addr: eff.BackchannelListen})
	}
	if s.lns, err = listenAll(append(addrs, o.Listeners...)); err != nil {
		return nil, err
	}
	if s.certs != nil {
		s.lns["http"] = tls.NewListener(s.lns["http"], s.certs.ServerConfig())
	}
	var checks http.Handler = s.srv.HTTPHandler()
	if o.HTTPMiddleware != nil {
		checks = o.HTTPMiddleware(checks)
	}
	s.https = map[string]*http.Server{
		"http":  s.httpServer(checks, 2*time.Minute),
		"admin": s.httpServer(s.adminHandler(), 0),
	}
	if eff.BackchannelListen != "" {
		s.https["backchannel"] = s.httpServer(envoy.BackchannelHandler(s.logoutReceiver, em, s.log), 2*time.Minute)
	}
	for _, l := range o.Listeners {
		s.https[l.Name] = s.httpServer(l.Handler, 2*time.Minute)
	}
	ok = true
	return s, nil
}

func (s *Server) httpServer(h http.Handler, idle time.Duration) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: idle,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
}

// logoutReceiver is the authorizer that serves now, as the back-channel logout
// handler's receiver (nil while the development switches are on: 503).
func (s *Server) logoutReceiver() envoy.LogoutReceiver {
	if a := s.Authorizer(); a != nil {
		return a
	}
	return nil
}

// Registry is the Prometheus registry served at /metrics, for callers that add
// collectors of their own.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Authorizer returns the authorizer of the configuration that serves now; nil while the
// development switches are on. Call it per use: a reload replaces it.
func (s *Server) Authorizer() *authz.Authorizer {
	if g := s.cur.Load(); g != nil {
		if e, ok := g.eng.(authzEngine); ok {
			return e.Authorizer
		}
	}
	return nil
}

// opStats are the OP client's counters and breaker states of the configuration that
// serves now (none with the development switches).
func (s *Server) opStats() map[string]resilience.Stats {
	if a := s.Authorizer(); a != nil {
		return a.OPStats()
	}
	return nil
}

// Run serves until a stop signal (SIGTERM, SIGINT) or ctx ends, reloading on SIGHUP, then
// shuts down: stops accepting, lets checks in flight finish within the shutdown grace and
// closes the authorizer. It returns nil after a requested stop and an error when a
// listener failed.
func (s *Server) Run(ctx context.Context) error {
	serveErr := make(chan error, len(s.lns))
	go func() { serveErr <- serveErrf("grpc", s.grpc.Serve(s.lns["grpc"])) }()
	for name, hs := range s.https {
		go func() { serveErr <- serveErrf(name, hs.Serve(s.lns[name])) }()
	}
	addrs := map[string]string{}
	for k, l := range s.lns {
		addrs[k] = l.Addr().String()
	}
	s.listening.Store(true)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.runCtx = runCtx
	s.startupLog(s.start, s.cur.Load(), addrs)
	if s.o.DevSwitches.Enabled() {
		tick, stop := s.ticker(devSwitchNag)
		defer stop()
		go devswitch.Nag(runCtx, s.log, s.o.DevSwitches, tick)
	}
	s.updateHealth()
	if s.readiness != envoy.ReadinessLazy {
		s.startReadinessLoop()
	}
	if s.o.OnListening != nil {
		s.o.OnListening(addrs)
	}

	sigs, stopSignals := s.signals()
	defer stopSignals()
	var runErr error
loop:
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				s.reload()
				continue
			}
			s.log.Info("stopping", "signal", sig.String(), "grace", s.grace.String())
			break loop
		case <-ctx.Done():
			s.log.Info("stopping", "reason", ctx.Err().Error(), "grace", s.grace.String())
			break loop
		case err := <-serveErr:
			runErr = err
			s.log.Error("listener failed; stopping", "err", err)
			break loop
		}
	}
	cancel()
	s.shutdown()
	if runErr != nil {
		return runErr
	}
	s.log.Info("stopped")
	return nil
}

func (s *Server) signals() (<-chan os.Signal, func()) {
	if s.o.Signals != nil {
		return s.o.Signals, func() {}
	}
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	return ch, func() { signal.Stop(ch) }
}

func (s *Server) ticker(d time.Duration) (<-chan time.Time, func()) {
	if s.o.Tick != nil {
		return s.o.Tick(d), func() {}
	}
	t := time.NewTicker(d)
	return t.C, t.Stop
}

func serveErrf(name string, err error) error {
	if err == nil || errors.Is(err, http.ErrServerClosed) || errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("server: %s listener stopped", name)
	}
	return fmt.Errorf("server: %s listener: %w", name, err)
}

// restartOnly encodes the server settings that are read only when the listeners start,
// to tell a reload that changes them (they need a restart).
func restartOnly(c envoy.Config) []byte {
	b, _ := json.Marshal([]any{c.GRPCListen, c.HTTPListen, c.AdminListen, c.BackchannelListen, c.TLS, c.GRPC, c.ShutdownGrace, c.Readiness})
	return b
}

// listenAll binds every address or none.
func listenAll(ls []Listener) (map[string]net.Listener, error) {
	out := map[string]net.Listener{}
	for _, l := range ls {
		if _, dup := out[l.Name]; dup || l.Name == "" {
			err := fmt.Errorf("server: listener name %q empty or used twice", l.Name)
			for _, o := range out {
				o.Close()
			}
			return nil, err
		}
		nl, err := net.Listen("tcp", l.Addr)
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, fmt.Errorf("%s listener: %w", l.Name, err)
		}
		out[l.Name] = nl
	}
	return out, nil
}

// shutdown stops accepting, lets checks in flight finish within grace and closes the
// current engine.
func (s *Server) shutdown() {
	s.stopping.Store(true)
	s.health.Shutdown() // NOT_SERVING: Envoy health checks move traffic away
	ctx, cancel := context.WithTimeout(context.Background(), s.grace)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		done := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			s.log.Warn("grace period over; cancelling gRPC checks in flight")
			s.grpc.Stop()
			<-done
		}
	})
	for name, hs := range s.https {
		if name == "admin" {
			continue
		}
		wg.Go(func() {
			if err := hs.Shutdown(ctx); err != nil {
				s.log.Warn("grace period over; closing HTTP requests in flight", "listener", name, "err", err)
				hs.Close()
			}
		})
	}
	wg.Wait()
	s.listening.Store(false)
	actx, acancel := context.WithTimeout(context.Background(), time.Second)
	defer acancel()
	if err := s.https["admin"].Shutdown(actx); err != nil {
		s.https["admin"].Close()
	}
	if g := s.cur.Load(); g != nil {
		select {
		case <-g.retire():
		case <-ctx.Done():
		}
		g.eng.Close()
	}
	s.closers.Wait()
	for _, f := range s.o.OnShutdown {
		if err := f(ctx); err != nil {
			s.log.Warn("shutdown hook failed", "err", err.Error())
		}
	}
}

// build compiles f into a new generation: the policy engine and either authz or, with
// the DISABLE_AUTHENTICATION_* switches, the dev-switch authorizer; with
// DISABLE_AUTHORIZATION_AND_ASSUME_AUTHORIZED_USER, authz behind the switch's wrapper.
func (s *Server) build(f *config.File) (*generation, error) {
	pol, err := policy.New(f.Policy)
	if err != nil {
		return nil, err
	}
	s.em.Routes(pol.SelectionNames()...) // a series per route and outcome, at 0 until used
	current := func() *generation { return s.cur.Load() }
	if s.o.DevSwitches.MakesUpIdentity() {
		d := devswitch.New(s.o.DevSwitches, pol, s.o.Now, s.m.DevSwitchDecision)
		return newGeneration(devEngine{d}, f, current), nil
	}
	opts := []authz.Option{authz.WithLogger(s.log), authz.WithObserver(s.m),
		authz.WithClock(s.o.Now), authz.WithTransport(s.o.Transport), authz.WithTransportWrap(s.o.OPTransportWrap),
		authz.WithReplayState(s.Authorizer()), // jti seen before a reload stay seen after it
		authz.WithClaimProjection(config.ClaimProjection(pol, f.ServerConfig()))}
	if s.start.ServerConfig().BackchannelListen != "" { // the listener exists from start to stop
		opts = append(opts, authz.WithLogoutIndex())
	}
	if tp := s.o.Tracing.Provider; tp != nil {
		opts = append(opts, authz.WithTracing(tp, s.o.Tracing.Propagator))
	}
	az, err := authz.New(f.AuthzConfig(), pol, opts...)
	if err != nil {
		return nil, err
	}
	s.m.Issuers(az.Issuers()...)
	if s.o.DevSwitches.AssumeAuthorized {
		off := devswitch.NewAssumeAuthorized(az, s.m.DevSwitchDecision)
		return newGeneration(assumeAuthorizedEngine{authzEngine{az}, off}, f, current), nil
	}
	return newGeneration(authzEngine{az}, f, current), nil
}

// reload applies the configuration file again (SIGHUP). A configuration that does not
// load, validate or build is refused: logged, counted, and the old one keeps serving.
func (s *Server) reload() {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	// The listener certificate files are re-read on every SIGHUP, whatever becomes of
	// the configuration file; a bad one is logged and the last good one keeps serving.
	_ = s.certs.Reload()
	if s.o.Load == nil {
		return
	}
	ok := s.apply()
	if s.o.OnReload != nil {
		s.o.OnReload(ok)
	}
}

// apply loads, builds and swaps in a new generation; false if it was refused.
func (s *Server) apply() bool {
	f, err := s.o.Load()
	var gen *generation
	if err == nil {
		gen, err = s.build(f)
	}
	if err == nil {
		if err = s.srv.Reload(gen, f.ServerConfig()); err != nil { // validated above: not expected
			gen.eng.Close()
		}
	}
	if err != nil {
		s.m.Reload(false, s.o.Now())
		s.log.Error("configuration reload refused; the previous configuration keeps serving", "source", s.o.Source, "err", err.Error())
		return false
	}
	scfg := f.ServerConfig()
	if s.readiness != envoy.ReadinessLazy && s.runCtx != nil {
		// Fetch the new issuers' discovery and JWKS before the swap, so that a reload
		// whose OPs answer never turns the health service NOT_SERVING, not even briefly.
		rctx, cancel := context.WithTimeout(s.runCtx, readyTimeout)
		if gen.eng.Ready(rctx) == nil {
			gen.ready.Store(true)
		}
		cancel()
	}
	if b := restartOnly(scfg); !bytes.Equal(b, s.srvJSON) {
		s.log.Warn("configuration reload: listener, TLS file name, grpc, shutdown_grace and readiness settings take effect only after a restart")
	}
	if strings.ToLower(f.Log.Format) != s.format {
		s.log.Warn("configuration reload: log.format takes effect only after a restart")
	}
	if f.Tracing != s.start.Tracing {
		s.log.Warn("configuration reload: the tracing section takes effect only after a restart")
	}
	if s.o.Level != nil {
		s.o.Level.Set(LogLevel(f.Log.Level))
	}
	old := s.cur.Swap(gen)
	s.updateHealth()
	s.m.SetCacheSource(gen.eng.CacheStats)
	s.m.Reload(true, s.o.Now())
	s.log.Info("configuration reloaded", "source", s.o.Source, "issuers", len(f.Issuers), "routes", len(f.Policy.Routes))
	if s.readiness != envoy.ReadinessLazy && !gen.ready.Load() {
		s.log.Warn("not ready after the reload: the new configuration's issuers' discovery or JWKS not fetched yet; checks are answered meanwhile")
		s.startReadinessLoop()
	}
	s.logWarnings(gen)
	if old != nil {
		s.closers.Go(func() {
			<-old.retire() // checks in flight on the old engine finish with it
			old.eng.Close()
		})
	}
	return true
}

func (s *Server) startupLog(f *config.File, g *generation, addrs map[string]string) {
	iss := make([]string, len(f.Issuers))
	for i, is := range f.Issuers {
		iss[i] = is.Issuer
	}
	s.log.Info("flaat-extauthz serving", "version", s.o.Version, "config", s.o.Source,
		"grpc", addrs["grpc"], "http", addrs["http"], "admin", addrs["admin"], "issuers", iss, "routes", len(f.Policy.Routes))
	if s.o.DevSwitches.Enabled() {
		devswitch.Warn(s.log, s.o.DevSwitches)
	}
	if f.Verification.InsecureSkipTLSVerify {
		s.log.Warn("verification.insecure_skip_tls_verify is on: OP certificates are NOT checked; never use this in production")
	}
	s.logWarnings(g)
}

func (s *Server) logWarnings(g *generation) {
	for _, w := range g.cfg.Warnings() {
		s.log.Warn(w)
	}
}

// NewLogger returns a JSON (default) or text slog logger writing to w, at the level of
// log.level, and the level variable a reload sets (Options.Level).
func NewLogger(w io.Writer, l config.Log) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	level.Set(LogLevel(l.Level))
	opts := &slog.HandlerOptions{Level: level}
	if strings.ToLower(l.Format) == "text" {
		return slog.New(slog.NewTextHandler(w, opts)), level
	}
	return slog.New(slog.NewJSONHandler(w, opts)), level
}

// LogLevel maps log.level (validated) to a slog level; default info.
func LogLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
