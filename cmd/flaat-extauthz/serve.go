package main

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
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/cache"
	"github.com/flaat-extauthz/flaat-extauthz/cmd/flaat-extauthz/internal/devswitch"
	"github.com/flaat-extauthz/flaat-extauthz/cmd/flaat-extauthz/internal/memlimit"
	"github.com/flaat-extauthz/flaat-extauthz/envoy"
	"github.com/flaat-extauthz/flaat-extauthz/internal/config"
	"github.com/flaat-extauthz/flaat-extauthz/internal/metrics"
	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// devSwitchNag is how often the dev-switch warning is repeated.
const devSwitchNag = time.Minute

// readyRetry bounds the wait between two readiness attempts (discovery + JWKS of every
// issuer) while the server is not ready yet.
const readyRetry = 30 * time.Second

func (a *app) serveCmd() *cobra.Command {
	var cf configFlags
	var allowDev bool
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the ext_authz gRPC and HTTP servers and the admin listener",
		Long: `serve runs the Envoy ext_authz gRPC server (default :9001), the HTTP auth-request
server (default :9002) and the admin listener (default :9090: /metrics, /healthz,
/readyz).

Configuration: --config FILE (or $FLAAT_EXTAUTHZ_CONFIG); without one, the embedded
default (require a valid token from an issuer given by --issuer or
$FLAAT_EXTAUTHZ_ISSUERS). Flags override the file. Every problem is reported at once
and serve exits 1.

Signals: SIGHUP reloads the configuration file (issuers, verification, policy, identity
headers and other per-check server settings, log level); a bad new configuration is
refused and the old one keeps serving; it also re-reads the TLS certificate, key and
client CA files (which are also picked up by themselves within 5 s of a change; a bad
file keeps the last good certificate). Listener addresses, TLS file names, gRPC,
shutdown and readiness settings need a restart. SIGTERM and
SIGINT stop accepting, let checks in flight finish (server.shutdown_grace) and exit 0.

No OP needs to be reachable to start: /healthz answers at once; /readyz and the gRPC
health service report ready once every issuer's discovery and JWKS were fetched
(server.readiness: eager, the default) or at once (lazy).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s := &server{a: a, grace: grace}
			s.load = func() (*config.File, error) { return cf.load(a.getenv) }
			s.source = cf.source(a.getenv)
			sw, err := config.DevSwitchesFromEnv(a.getenv, allowDev)
			if err != nil {
				return exit(exitFail, err)
			}
			s.sw = sw
			return s.run(cmd.Context())
		},
	}
	cf.register(cmd.Flags(), true)
	cmd.Flags().BoolVar(&allowDev, "allow-insecure-dev-switches", false,
		"honour flaat's DISABLE_AUTHENTICATION_* environment variables (tokens are then NOT verified) and DISABLE_AUTHORIZATION_AND_ASSUME_AUTHORIZED_USER (the policy is then NOT enforced). Development only; without this flag their presence is a start-up error")
	cmd.Flags().DurationVar(&grace, "shutdown-grace", 0,
		"how long checks in flight may finish after SIGTERM; overrides server.shutdown_grace (default 10s)")
	return cmd
}

// server is one run of serve (or demo): listeners, the current generation, reloads.
type server struct {
	a      *app
	load   func() (*config.File, error)
	source string
	sw     config.DevSwitches
	grace  time.Duration // 0: server.shutdown_grace
	// banner, if set, is called once every listener is up (demo prints its commands).
	banner func(addrs map[string]string)

	log     *slog.Logger
	level   *slog.LevelVar
	format  string
	reg     *prometheus.Registry
	m       *metrics.Metrics
	srv     *envoy.Server
	health  *health.Server
	srvJSON []byte              // restartOnly of the server section the listeners were started with
	certs   *envoy.CertReloader // listener TLS; nil when off

	cur       atomic.Pointer[generation]
	listening atomic.Bool
	stopping  atomic.Bool
	reloadMu  sync.Mutex
	closers   sync.WaitGroup // old generations being drained

	// readiness is server.readiness as the listeners started with it; runCtx ends when
	// serve stops. readyLoop is true while a readinessLoop runs. healthMu serialises
	// updates of the gRPC health service (updateHealth).
	readiness string
	runCtx    context.Context
	readyLoop atomic.Bool
	healthMu  sync.Mutex
}

func (s *server) current() *generation { return s.cur.Load() }

// run loads the configuration, starts the listeners and serves until a stop signal or
// ctx ends. A configuration problem returns exit 1.
func (s *server) run(ctx context.Context) error {
	f, err := s.load()
	if err != nil {
		return exit(exitFail, err)
	}
	s.level = new(slog.LevelVar)
	s.level.Set(logLevel(f.Log.Level))
	s.format = strings.ToLower(f.Log.Format)
	s.log = newLogger(s.a.stderr, s.format, s.level)
	if limit, src := memlimit.FromCgroup(s.a.getenv, os.ReadFile); limit > 0 {
		debug.SetMemoryLimit(limit)
		s.log.Info("Go soft memory limit set below the container's", "limit_bytes", limit, "from", src)
	}

	s.reg = prometheus.NewRegistry()
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.m = metrics.New(s.reg)
	em, err := envoy.NewMetrics(s.reg)
	if err != nil {
		return exit(exitError, err)
	}

	gen, err := s.build(f)
	if err != nil {
		return exit(exitFail, err)
	}
	s.cur.Store(gen)
	s.m.SetCacheSource(gen.eng.CacheStats)
	s.m.ConfigApplied(s.a.now())
	s.m.DevSwitches(s.sw.Enabled())

	scfg := f.ServerConfig()
	s.srvJSON = restartOnly(scfg)
	s.srv, err = envoy.NewServer(gen, scfg, envoy.WithLogger(s.log), envoy.WithMetrics(em), envoy.WithClock(s.a.now))
	if err != nil {
		gen.eng.Close()
		return exit(exitFail, err)
	}
	eff := s.srv.Config()
	grace := eff.ShutdownGrace.D()
	if s.grace > 0 {
		grace = s.grace
	}
	s.health = envoy.NewHealth()
	gs, err := envoy.NewGRPCServer(s.srv, s.health)
	if err != nil {
		gen.eng.Close()
		return exit(exitFail, err)
	}
	s.certs, err = s.srv.ListenerTLS() // loaded by NewGRPCServer: the same files for both listeners
	if err != nil {
		gen.eng.Close()
		return exit(exitFail, err)
	}

	lns, err := listenAll(map[string]string{"grpc": eff.GRPCListen, "http": eff.HTTPListen, "admin": eff.AdminListen})
	if err != nil {
		gen.eng.Close()
		return exit(exitFail, err)
	}
	httpLn := lns["http"]
	if s.certs != nil {
		httpLn = tls.NewListener(httpLn, s.certs.ServerConfig())
	}
	httpSrv := &http.Server{Handler: s.srv.HTTPHandler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	adminSrv := &http.Server{Handler: s.adminHandler(eff.Readiness), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}

	serveErr := make(chan error, 3)
	go func() { serveErr <- serveErrf("grpc", gs.Serve(lns["grpc"])) }()
	go func() { serveErr <- serveErrf("http", httpSrv.Serve(httpLn)) }()
	go func() { serveErr <- serveErrf("admin", adminSrv.Serve(lns["admin"])) }()
	addrs := map[string]string{}
	for k, l := range lns {
		addrs[k] = l.Addr().String()
	}
	s.listening.Store(true)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.runCtx, s.readiness = runCtx, eff.Readiness
	s.startupLog(f, gen, addrs)
	if s.sw.Enabled() {
		tick, stop := s.a.ticker(devSwitchNag)
		defer stop()
		go devswitch.Nag(runCtx, s.log, s.sw, tick)
	}
	s.updateHealth()
	if eff.Readiness != envoy.ReadinessLazy {
		s.startReadinessLoop()
	}
	if s.banner != nil {
		s.banner(addrs)
	}
	if s.a.listening != nil {
		s.a.listening(addrs)
	}

	sigs, stopSignals := s.a.signalChan()
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
			s.log.Info("stopping", "signal", sig.String(), "grace", grace.String())
			break loop
		case <-ctx.Done():
			s.log.Info("stopping", "reason", ctx.Err().Error(), "grace", grace.String())
			break loop
		case err := <-serveErr:
			runErr = err
			s.log.Error("listener failed; stopping", "err", err)
			break loop
		}
	}
	cancel()
	s.shutdown(gs, httpSrv, adminSrv, grace)
	if runErr != nil {
		return exit(exitError, runErr)
	}
	s.log.Info("stopped")
	return nil
}

func serveErrf(name string, err error) error {
	if err == nil || errors.Is(err, http.ErrServerClosed) || errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("%s listener stopped", name)
	}
	return fmt.Errorf("%s listener: %w", name, err)
}

// restartOnly encodes the server settings that are read only when the listeners start,
// to tell a reload that changes them (they need a restart).
func restartOnly(c envoy.Config) []byte {
	b, _ := json.Marshal([]any{c.GRPCListen, c.HTTPListen, c.AdminListen, c.TLS, c.GRPC, c.ShutdownGrace, c.Readiness})
	return b
}

// listenAll binds every address or none.
func listenAll(addrs map[string]string) (map[string]net.Listener, error) {
	out := map[string]net.Listener{}
	for _, name := range []string{"grpc", "http", "admin"} {
		l, err := net.Listen("tcp", addrs[name])
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, fmt.Errorf("%s listener: %w", name, err)
		}
		out[name] = l
	}
	return out, nil
}

// shutdown stops accepting, lets checks in flight finish within grace and closes the
// current engine.
func (s *server) shutdown(gs *grpc.Server, httpSrv, adminSrv *http.Server, grace time.Duration) {
	s.stopping.Store(true)
	s.health.Shutdown() // NOT_SERVING: Envoy health checks move traffic away
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		done := make(chan struct{})
		go func() { gs.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			s.log.Warn("grace period over; cancelling gRPC checks in flight")
			gs.Stop()
			<-done
		}
	}()
	go func() {
		defer wg.Done()
		if err := httpSrv.Shutdown(ctx); err != nil {
			s.log.Warn("grace period over; closing HTTP checks in flight", "err", err)
			httpSrv.Close()
		}
	}()
	wg.Wait()
	s.listening.Store(false)
	actx, acancel := context.WithTimeout(context.Background(), time.Second)
	defer acancel()
	if err := adminSrv.Shutdown(actx); err != nil {
		adminSrv.Close()
	}
	if g := s.cur.Load(); g != nil {
		select {
		case <-g.retire():
		case <-ctx.Done():
		}
		g.eng.Close()
	}
	s.closers.Wait()
}

// build compiles f into a new generation: the policy engine and either authz or, with
// the development switches, the dev-switch authorizer.
func (s *server) build(f *config.File) (*generation, error) {
	pol, err := policy.New(f.Policy)
	if err != nil {
		return nil, err
	}
	if s.sw.MakesUpIdentity() {
		d := devswitch.New(s.sw, pol, s.a.now, s.m.DevSwitchDecision)
		return newGeneration(devEngine{d}, f, s.current), nil
	}
	az, err := authz.New(f.AuthzConfig(), pol, authz.WithLogger(s.log), authz.WithObserver(s.m),
		authz.WithClock(s.a.now), authz.WithHTTPClient(s.a.httpClient),
		authz.WithClaimProjection(config.ClaimProjection(pol, f.ServerConfig())))
	if err != nil {
		return nil, err
	}
	if s.sw.AssumeAuthorized {
		return newGeneration(assumeAuthorizedEngine{authzEngine{az}, devswitch.NewAssumeAuthorized(az, s.m.DevSwitchDecision)}, f, s.current), nil
	}
	return newGeneration(authzEngine{az}, f, s.current), nil
}

// reload applies the configuration file again (SIGHUP). A configuration that does not
// load, validate or build is refused: logged, counted, and the old one keeps serving.
func (s *server) reload() {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	// The listener certificate files are re-read on every SIGHUP, whatever becomes of
	// the configuration file; a bad one is logged and the last good one keeps serving.
	_ = s.certs.Reload()
	f, err := s.load()
	var gen *generation
	if err == nil {
		gen, err = s.build(f)
	}
	if err != nil {
		s.m.Reload(false, s.a.now())
		s.log.Error("configuration reload refused; the previous configuration keeps serving", "source", s.source, "err", err.Error())
		if s.a.reloaded != nil {
			s.a.reloaded(false)
		}
		return
	}
	scfg := f.ServerConfig()
	if err := s.srv.Reload(gen, scfg); err != nil { // validated above: not expected
		gen.eng.Close()
		s.m.Reload(false, s.a.now())
		s.log.Error("configuration reload refused; the previous configuration keeps serving", "source", s.source, "err", err.Error())
		if s.a.reloaded != nil {
			s.a.reloaded(false)
		}
		return
	}
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
	s.level.Set(logLevel(f.Log.Level))
	old := s.cur.Swap(gen)
	s.updateHealth()
	s.m.SetCacheSource(gen.eng.CacheStats)
	s.m.Reload(true, s.a.now())
	s.log.Info("configuration reloaded", "source", s.source, "issuers", len(f.Issuers), "routes", len(f.Policy.Routes))
	if s.readiness != envoy.ReadinessLazy && !gen.ready.Load() {
		s.log.Warn("not ready after the reload: the new configuration's issuers' discovery or JWKS not fetched yet; checks are answered meanwhile")
		s.startReadinessLoop()
	}
	s.logWarnings(gen)
	if old != nil {
		s.closers.Add(1)
		go func() {
			defer s.closers.Done()
			<-old.retire() // checks in flight on the old engine finish with it
			old.eng.Close()
		}()
	}
	if s.a.reloaded != nil {
		s.a.reloaded(true)
	}
}

// startReadinessLoop starts readinessLoop unless one is running.
func (s *server) startReadinessLoop() {
	if s.readyLoop.CompareAndSwap(false, true) {
		go s.readinessLoop(s.runCtx)
	}
}

// readinessLoop tries Ready on the current generation until it succeeds (checkReady
// then marks the gRPC health service SERVING). It retries with a doubling wait up to
// readyRetry. A reload that swaps in a generation that is not ready restarts it (or, if
// it still runs, it carries on with the new generation).
func (s *server) readinessLoop(ctx context.Context) {
	wait := 250 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := s.checkReady(ctx)
		if err == nil {
			s.readyLoop.Store(false)
			// A reload may have swapped in a generation that is not ready after
			// checkReady looked and before the flag was cleared: carry on with it.
			if g := s.cur.Load(); g == nil || g.ready.Load() || !s.readyLoop.CompareAndSwap(false, true) {
				return
			}
			continue
		}
		if attempt == 0 || wait == readyRetry {
			s.log.Warn("not ready yet: issuers' discovery or JWKS not fetched; checks are answered meanwhile (503 while an OP is unreachable)", "err", err.Error())
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			s.readyLoop.Store(false)
			return
		case <-t.C:
		}
		wait = min(2*wait, readyRetry)
	}
}

// readyTimeout bounds one readiness attempt (discovery + JWKS of every issuer).
const readyTimeout = 5 * time.Second

// checkReady asks the current engine; on success the gRPC health turns SERVING.
func (s *server) checkReady(ctx context.Context) error {
	g := s.cur.Load()
	if g == nil {
		return errors.New("no configuration")
	}
	if g.ready.Load() {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := g.eng.Ready(rctx); err != nil {
		return err
	}
	if g.ready.CompareAndSwap(false, true) {
		s.updateHealth()
		if s.cur.Load() == g {
			s.log.Info("ready: every issuer's discovery and JWKS fetched")
		}
	}
	return nil
}

// updateHealth sets the gRPC health service from the current state: SERVING with
// readiness lazy, or once the current generation's issuers were fetched (eager). It
// is called whenever that changes — start-up, a generation turning ready, a reload —
// so the health always describes the configuration that serves: a reload that swaps
// in a generation that is not ready turns it NOT_SERVING until it is; a refused reload
// changes nothing. After shutdown (health.Shutdown) updates are ignored.
func (s *server) updateHealth() {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	if s.stopping.Load() {
		return
	}
	g := s.cur.Load()
	envoy.SetServing(s.health, s.readiness == envoy.ReadinessLazy || (g != nil && g.ready.Load()))
}

// adminHandler serves /metrics, /healthz and /readyz.
func (s *server) adminHandler(readiness string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		var problems []string
		if !s.listening.Load() || s.stopping.Load() {
			problems = append(problems, "listeners are not serving")
		}
		if readiness != envoy.ReadinessLazy {
			if err := s.checkReady(r.Context()); err != nil {
				problems = append(problems, "issuers not ready: "+err.Error())
			}
		}
		if len(problems) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not ready\n"+strings.Join(problems, "\n")+"\n")
			return
		}
		io.WriteString(w, "ready\n")
	})
	return mux
}

func (s *server) startupLog(f *config.File, g *generation, addrs map[string]string) {
	iss := make([]string, len(f.Issuers))
	for i, is := range f.Issuers {
		iss[i] = is.Issuer
	}
	s.log.Info("flaat-extauthz serving", "version", currentBuild(readBuildInfo).Version, "config", s.source,
		"grpc", addrs["grpc"], "http", addrs["http"], "admin", addrs["admin"], "issuers", iss, "routes", len(f.Policy.Routes))
	if s.sw.Enabled() {
		devswitch.Warn(s.log, s.sw)
	}
	if f.Verification.InsecureSkipTLSVerify {
		s.log.Warn("verification.insecure_skip_tls_verify is on: OP certificates are NOT checked; never use this in production")
	}
	s.logWarnings(g)
}

func (s *server) logWarnings(g *generation) {
	for _, w := range g.cfg.Warnings() {
		s.log.Warn(w)
	}
}

// newLogger returns a JSON (default) or text slog logger writing to w at level.
func newLogger(w io.Writer, format string, level *slog.LevelVar) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// logLevel maps log.level (validated) to a slog level; default info.
func logLevel(s string) slog.Level {
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

// authzEngine adapts *authz.Authorizer to engine.
type authzEngine struct{ *authz.Authorizer }

func (e authzEngine) Close() { _ = e.Authorizer.Close() }

// assumeAuthorizedEngine is authz behind DISABLE_AUTHORIZATION_AND_ASSUME_AUTHORIZED_USER.
type assumeAuthorizedEngine struct {
	authzEngine
	off *devswitch.AssumeAuthorized
}

func (e assumeAuthorizedEngine) Authorize(ctx context.Context, r authz.Request) authz.Decision {
	return e.off.Authorize(ctx, r)
}

// devEngine adapts the dev-switch authorizer to engine: always ready, no cache.
type devEngine struct{ *devswitch.Authorizer }

func (devEngine) Ready(context.Context) error { return nil }
func (devEngine) CacheStats() cache.Stats     { return cache.Stats{} }
func (devEngine) Close()                      {}
