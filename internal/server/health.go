package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flaat-extauthz/flaat-extauthz/envoy"
)

// Paths of the admin listener.
const (
	MetricsPath = "/metrics"
	// HealthzPath answers 200 "ok" while the process runs (liveness).
	HealthzPath = "/healthz"
	// ReadyzPath answers 200 "ready" once the listeners serve and (readiness eager)
	// every issuer's discovery and JWKS were fetched, else 503 with the reasons.
	ReadyzPath = "/readyz"
)

// Probe asks the admin listener at addr (host:port) for path (HealthzPath or
// ReadyzPath) and returns nil on a 200, else an error with the answer: what a
// `healthcheck` command or a container HEALTHCHECK needs. client nil: a client with a
// 5 s timeout.
func Probe(ctx context.Context, client *http.Client, addr, path string) error {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return fmt.Errorf("server: probe: %w", err)
	}
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("server: probe: %w", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("server: probe %s: %d %s", path, res.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// startReadinessLoop starts readinessLoop unless one is running.
func (s *Server) startReadinessLoop() {
	if s.readyLoop.CompareAndSwap(false, true) {
		go s.readinessLoop(s.runCtx)
	}
}

// readinessLoop tries Ready on the current generation until it succeeds (checkReady
// then marks the gRPC health service SERVING). It retries with a doubling wait up to
// readyRetry. A reload that swaps in a generation that is not ready restarts it (or, if
// it still runs, it carries on with the new generation).
func (s *Server) readinessLoop(ctx context.Context) {
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

// checkReady asks the current engine; on success the gRPC health turns SERVING.
func (s *Server) checkReady(ctx context.Context) error {
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
func (s *Server) updateHealth() {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	if s.stopping.Load() {
		return
	}
	g := s.cur.Load()
	envoy.SetServing(s.health, s.readiness == envoy.ReadinessLazy || (g != nil && g.ready.Load()))
}

// adminHandler serves /metrics, /healthz and /readyz.
func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+MetricsPath, promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("GET "+HealthzPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET "+ReadyzPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		var problems []string
		if !s.listening.Load() || s.stopping.Load() {
			problems = append(problems, "listeners are not serving")
		}
		if s.readiness != envoy.ReadinessLazy {
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
