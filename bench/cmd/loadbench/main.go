// Command loadbench is the reproducible load benchmark of flaat-extauthz (`make
// loadbench`). It builds flaat-extauthz and two baseline servers (bench/cmd/noop: answers
// OK doing nothing; bench/cmd/jwxverify: verifies an RS256 JWT with jwx/v2 on every
// call), starts a fake OP with two issuers in this process, writes a realistic
// configuration (2 issuers, a groups policy, 5 routes), pins every server to one core
// (GOMAXPROCS=1) and itself and the load generators to the other, drives every server
// with the same requests over several interleaved rounds and prints a table:
// throughput (h2load, or the built-in generator where a request set must cycle),
// latency percentiles at a fixed offered load (ghz), server CPU per call
// (/proc/<pid>/stat), peak RSS (VmHWM) and the ratio to the no-op baseline; then a
// latency run at 80 % of the warm row's peak that reads the server's own Check duration
// histogram, and a memory run that caches 100 000 identities. Rows cover the warm and
// cold paths (RS256 and ES256 against jwx), opaque tokens, churn, denials, HTTP mode
// (against a plain no-op and one answering with the same headers) and identity size
// (200 entitlements, 1 000 groups, a 17 KB token, 1 000 routes), and the warm path with
// OpenTelemetry tracing on (every call sampled, spans exported over OTLP/gRPC to a sink
// in this process); every target is printed met or NOT met.
//
// It needs Linux, taskset, h2load (Debian nghttp2-client; installed with apt-get when
// missing and root) and ghz (installed into ./bin with go install when missing). Run it
// from the repository root. Every run is bounded; the defaults take about 3 minutes.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

type options struct {
	rounds       int
	throughput   time.Duration
	latency      time.Duration
	rate         int
	warmTokens   int
	churnTokens  int
	churnCache   int
	memTokens    int
	serverCPU    int
	loadCPU      int
	markdownPath string
	keep         bool
	memoryOnly   bool
	rows         []string
}

func main() {
	var o options
	flag.IntVar(&o.rounds, "rounds", 3, "interleaved rounds; the table shows the median")
	flag.DurationVar(&o.throughput, "throughput", 2*time.Second, "length of each throughput run (whole seconds)")
	flag.DurationVar(&o.latency, "latency", 2*time.Second, "length of each ghz latency run")
	flag.IntVar(&o.rate, "rate", 2000, "offered load of the ghz latency runs, calls/s")
	flag.IntVar(&o.warmTokens, "warm-tokens", 64, "distinct tokens cycled in the warm JWT scenario")
	flag.IntVar(&o.churnTokens, "churn-tokens", 10000, "distinct tokens cycled in the churn scenario")
	flag.IntVar(&o.churnCache, "churn-cache", 1000, "cache size of the churn scenario's server")
	flag.IntVar(&o.memTokens, "memory-identities", 100000, "identities cached in the memory run (0: skip it)")
	flag.IntVar(&o.serverCPU, "server-cpu", 0, "CPU the servers are pinned to")
	flag.IntVar(&o.loadCPU, "load-cpu", 1, "CPU loadbench, h2load and ghz are pinned to")
	flag.StringVar(&o.markdownPath, "markdown", "", "also write the result as markdown to this file")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (configs, server logs)")
	flag.BoolVar(&o.memoryOnly, "memory-only", false, "run only the memory run (no throughput or latency rounds) and print its figures")
	flag.Func("rows", "comma-separated row keys to run (with the rows they are compared with), e.g. token16k,http; default all", func(v string) error {
		o.rows = strings.Split(v, ",")
		return nil
	})
	flag.Parse()
	start := time.Now()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
	logf("done in %s", time.Since(start).Round(time.Second))
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadbench: "+format+"\n", args...)
}

func numCPU() int { return runtime.NumCPU() }

func run(o options) error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("needs Linux (/proc, taskset)")
	}
	if o.throughput < time.Second {
		o.throughput = time.Second
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return fmt.Errorf("run from the repository root (go.mod not found in %s)", root)
	}
	dir, err := os.MkdirTemp("", "loadbench-")
	if err != nil {
		return err
	}
	if o.keep {
		logf("work directory %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	b := &bench{o: o, dir: dir}
	defer b.close()
	if err := b.setup(root); err != nil {
		return err
	}
	if o.memoryOnly {
		if o.memTokens <= 0 {
			return fmt.Errorf("-memory-only needs -memory-identities > 0")
		}
		if err := b.memoryRun(); err != nil {
			return err
		}
		b.memoryReport(os.Stdout)
		return nil
	}
	if err := b.rounds(); err != nil {
		return err
	}
	if err := b.latencyRun(); err != nil {
		return err
	}
	if o.memTokens > 0 {
		if err := b.memoryRun(); err != nil {
			return err
		}
	}
	md := b.report(os.Stdout)
	if o.markdownPath != "" {
		if err := os.WriteFile(o.markdownPath, []byte(md), 0o644); err != nil {
			return err
		}
	}
	return nil
}
