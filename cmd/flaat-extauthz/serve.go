package main

import (
	"context"
	"os"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel"

	"github.com/flaat-extauthz/flaat-extauthz/cmd/flaat-extauthz/internal/gcfloor"
	"github.com/flaat-extauthz/flaat-extauthz/cmd/flaat-extauthz/internal/memlimit"
	"github.com/flaat-extauthz/flaat-extauthz/internal/config"
	"github.com/flaat-extauthz/flaat-extauthz/internal/devswitch"
	"github.com/flaat-extauthz/flaat-extauthz/internal/server"
	"github.com/flaat-extauthz/flaat-extauthz/internal/tracing"
)

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

Tracing (OpenTelemetry, off by default): OTEL_TRACES_EXPORTER=otlp and
OTEL_EXPORTER_OTLP_ENDPOINT turn it on; see docs/tracing.md.

No OP needs to be reachable to start: /healthz answers at once; /readyz and the gRPC
health service report ready once every issuer's discovery and JWKS were fetched
(server.readiness: eager, the default) or at once (lazy).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sw, err := devswitch.FromEnv(a.getenv, allowDev)
			if err != nil {
				return exit(exitFail, err)
			}
			load := func() (*config.File, error) { return cf.load(a.getenv) }
			o := a.serverOptions(cf.source(a.getenv), load)
			o.DevSwitches, o.Grace = sw, grace
			return a.serve(cmd.Context(), o, nil)
		},
	}
	cf.register(cmd.Flags(), true)
	cmd.Flags().BoolVar(&allowDev, "allow-insecure-dev-switches", false,
		"honour flaat's DISABLE_AUTHENTICATION_* environment variables (tokens are then NOT verified) and DISABLE_AUTHORIZATION_AND_ASSUME_AUTHORIZED_USER (the policy is then NOT enforced). Development only; without this flag their presence is a start-up error")
	cmd.Flags().DurationVar(&grace, "shutdown-grace", 0,
		"how long checks in flight may finish after SIGTERM; overrides server.shutdown_grace (default 10s)")
	return cmd
}

// serverOptions fills the lifecycle's options from the process environment of a.
func (a *app) serverOptions(source string, load func() (*config.File, error)) server.Options {
	return server.Options{
		Load: load, Source: source, Version: currentBuild(readBuildInfo).Version,
		Now: a.now, Transport: a.transport, Signals: a.signals, OnListening: a.listening,
	}
}

// serve loads the configuration (f, if non-nil, instead), builds the logger, sets the
// Go memory limit and runs the server until it stops. A configuration problem exits 1,
// a failed listener 3.
func (a *app) serve(ctx context.Context, o server.Options, f *config.File) error {
	if f == nil {
		var err error
		if f, err = o.Load(); err != nil {
			return exit(exitFail, err)
		}
	}
	o.Logger, o.Level = server.NewLogger(a.stderr, f.Log)
	if limit, src := memlimit.FromCgroup(a.getenv, os.ReadFile); limit > 0 {
		debug.SetMemoryLimit(limit)
		o.Logger.Info("Go soft memory limit set below the container's", "limit_bytes", limit, "from", src)
	}
	if t := gcfloor.Start(a.getenv, gcfloor.Floor); t != nil { // not when GOGC is set
		defer t.Stop()
		o.Logger.Debug("Go GC heap floor kept", "floor_bytes", gcfloor.Floor)
	}
	ts, err := tracing.FromEnv(a.getenv)
	if err != nil {
		return exit(exitFail, err)
	}
	tp, err := tracing.Start(ctx, ts, o.Version)
	if err != nil {
		return exit(exitFail, err)
	}
	if tp != nil {
		log := o.Logger
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			log.Warn("tracing: span export failed", "err", err.Error())
		}))
		o.Tracing = tp.Tracing(false) // record_subject comes from the file
		o.OnShutdown = append(o.OnShutdown, tp.Shutdown)
		log.Info("tracing on: exporting spans over OTLP", "protocol", ts.Protocol, "sampler", ts.SamplerName,
			"record_subject", f.Tracing.RecordSubject)
	}
	srv, err := server.New(f, o)
	if err != nil {
		if tp != nil {
			_ = tp.Shutdown(ctx)
		}
		return exit(exitFail, err)
	}
	if err := srv.Run(ctx); err != nil {
		return exit(exitError, err)
	}
	return nil
}
