package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/bench/internal/load"
)

// lat80 is the latency run at 80 % of the warm row's measured peak: what the server's
// own Check duration histogram saw, next to what the client saw.
type lat80 struct {
	offered, done  float64 // calls/s
	calls          int
	server         [3]float64 // p50, p99, p999 estimates, seconds
	serverAtMost   [3]float64 // upper bounds of the buckets holding them
	client         [3]time.Duration
	clientGRPCErrs int
}

// latencyRun drives the warm server with the warm tokens at 80 % of the warm row's
// median throughput (open loop, the built-in generator: h2load has no percentiles and
// ghz cannot offer this rate on one core) and reads the server-side histogram
// flaat_extauthz_check_duration_seconds{transport="grpc"} before and after.
func (b *bench) latencyRun() error {
	peak := b.summary("warm").rps
	if peak <= 0 {
		return nil
	}
	l := &lat80{offered: 0.8 * peak}
	before, err := b.checkHistogram(b.warmSrv)
	if err != nil {
		return err
	}
	logf("latency run: %.0f calls/s offered (80 %% of %.0f) for %s", l.offered, peak, b.o.latency)
	res, err := load.Generate(context.Background(), load.GenConfig{Addr: b.warmSrv.grpc, Bodies: bodiesFor(b.warm...),
		Duration: b.o.latency, Rate: l.offered, Conns: 4, Streams: 64})
	if err != nil {
		return err
	}
	after, err := b.checkHistogram(b.warmSrv)
	if err != nil {
		return err
	}
	d, err := load.SubBuckets(after, before)
	if err != nil {
		return err
	}
	l.calls, l.done, l.clientGRPCErrs = res.Done, res.RPS(), res.GRPCErrors
	for i, q := range []float64{0.50, 0.99, 0.999} {
		l.server[i], l.serverAtMost[i] = load.Quantile(q, d)
		l.client[i] = res.Percentile(100 * q)
	}
	b.lat = l
	return nil
}

func (b *bench) checkHistogram(p *proc) ([]load.Bucket, error) {
	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return load.ParseHistogram(body, "flaat_extauthz_check_duration_seconds", `transport="grpc"`)
}

// secs formats a histogram estimate in µs, with the bucket bound it is below.
func secs(est, atMost float64) string {
	if math.IsNaN(est) {
		return "—"
	}
	bound := "+Inf"
	if !math.IsInf(atMost, 1) {
		bound = fmt.Sprintf("%.0f", atMost*1e6)
	}
	return fmt.Sprintf("%.0f µs (≤ %s)", est*1e6, bound)
}

// latencyLine describes the latency run for the report.
func (l *lat80) line() string {
	return fmt.Sprintf("Latency at 80 %% of the warm peak (%.0f calls/s offered, %.0f done, %d calls, built-in generator, open loop): "+
		"server-side Check duration p50 %s, p99 %s, p999 %s; client-side p50 %s, p99 %s, p999 %s "+
		"(client-side includes the generator's own scheduling on the load core).",
		l.offered, l.done, l.calls, secs(l.server[0], l.serverAtMost[0]), secs(l.server[1], l.serverAtMost[1]), secs(l.server[2], l.serverAtMost[2]),
		us(l.client[0]), us(l.client[1]), us(l.client[2]))
}
