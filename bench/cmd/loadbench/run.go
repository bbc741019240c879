package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/bench/internal/load"
)

// tool is how a row's throughput is measured.
type tool int

const (
	toolH2load tool = iota // h2load over h2c, one fixed gRPC body
	toolGen                // the built-in generator, cycling through bodies
	toolH1                 // h2load --h1 against the HTTP check port
)

func (t tool) String() string {
	return [...]string{"h2load", "gen", "h2load --h1"}[t]
}

// row is one line of the table: a server driven with one request set.
type row struct {
	key, label string
	srv        *proc
	tool       tool
	tokens     []string // throughput requests (one token for h2load)
	ghzFile    string   // latency requests; "" for none
	want       int      // expected CheckResponse code (HTTP status for toolH1)
	baseline   string   // key of the row the ratio is taken against
	opCalls    bool     // report OP calls during the runs
	metadata   []string // "key: value" gRPC metadata sent with every call (h2load and ghz)
}

// traceparent is the W3C trace context of the traced row: sampled, so every check
// makes and exports a span (the most a proxy that samples everything would cost).
const traceparent = "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// sample is one round's measurement of a row.
type sample struct {
	rps           float64
	calls         int
	cpuPerCall    time.Duration
	peak          uint64
	rss           uint64
	p50, p90, p99 time.Duration
	opCalls       int
}

type result struct{ samples []sample }

func (b *bench) defineRows() error {
	warmGhz, err := b.ghzData("warm", reqsFor(b.warm...))
	if err != nil {
		return err
	}
	coldGhz, err := b.ghzData("cold", reqsFor(b.warm[0]))
	if err != nil {
		return err
	}
	opaqueGhz, err := b.ghzData("opaque", reqsFor(b.opaque))
	if err != nil {
		return err
	}
	churnGhz, err := b.ghzData("churn", reqsFor(b.churn...))
	if err != nil {
		return err
	}
	denyGhz, err := b.ghzData("deny", reqsFor(b.bad))
	if err != nil {
		return err
	}
	es256Ghz, err := b.ghzData("cold-es256", reqsFor(b.es256))
	if err != nil {
		return err
	}
	nWarm := fmt.Sprintf("%d tokens", len(b.warm))
	b.rows = []*row{
		{key: "noop", label: "no-op baseline", srv: b.noop, tool: toolH2load, tokens: b.warm[:1], ghzFile: warmGhz},
		{key: "noop-gen", label: "no-op baseline, " + nWarm, srv: b.noop, tool: toolGen, tokens: b.warm},
		{key: "noop-http", label: "no-op baseline, HTTP", srv: b.noop, tool: toolH1, tokens: b.warm[:1], want: 200},
		{key: "noop-http-hdr", label: "no-op baseline, HTTP, answering with flaat's headers", srv: b.noopHdr, tool: toolH1, tokens: b.warm[:1], want: 200},
		{key: "warm", label: "warm JWT (cache hit)", srv: b.warmSrv, tool: toolH2load, tokens: b.warm[:1], ghzFile: warmGhz, baseline: "noop", opCalls: true},
		{key: "warm-gen", label: "warm JWT, " + nWarm, srv: b.warmSrv, tool: toolGen, tokens: b.warm, baseline: "noop-gen", opCalls: true},
		{key: "cold", label: "cold JWT RS256 (cache off)", srv: b.coldSrv, tool: toolH2load, tokens: b.warm[:1], ghzFile: coldGhz, baseline: "noop", opCalls: true},
		{key: "jwx", label: "jwx verify every call", srv: b.jwx, tool: toolH2load, tokens: b.warm[:1], ghzFile: coldGhz, baseline: "noop"},
		{key: "cold-es256", label: "cold JWT ES256 (cache off)", srv: b.coldSrv, tool: toolH2load, tokens: []string{b.es256}, ghzFile: es256Ghz, baseline: "noop", opCalls: true},
		{key: "jwx-es256", label: "jwx verify every call, ES256", srv: b.jwx, tool: toolH2load, tokens: []string{b.es256}, baseline: "noop"},
		{key: "opaque", label: "warm opaque (userinfo cached)", srv: b.warmSrv, tool: toolH2load, tokens: []string{b.opaque}, ghzFile: opaqueGhz, baseline: "noop", opCalls: true},
		{key: "churn", label: fmt.Sprintf("churn %d tokens / cache %d", len(b.churn), b.o.churnCache), srv: b.churnSrv, tool: toolGen, tokens: b.churn, ghzFile: churnGhz, baseline: "noop-gen", opCalls: true},
		{key: "deny", label: "deny, repeated bad token", srv: b.warmSrv, tool: toolH2load, tokens: []string{b.bad}, ghzFile: denyGhz, want: 16, baseline: "noop", opCalls: true},
		{key: "http", label: "warm JWT, HTTP mode", srv: b.warmSrv, tool: toolH1, tokens: b.warm[:1], want: 200, baseline: "noop-http", opCalls: true},
		{key: "warm-gogc", label: "warm JWT, GC floor off (GOGC=100)", srv: b.gcSrv, tool: toolH2load, tokens: b.warm[:1], baseline: "noop", opCalls: true},
		{key: "http-gogc", label: "warm JWT, HTTP mode, GC floor off (GOGC=100)", srv: b.gcSrv, tool: toolH1, tokens: b.warm[:1], want: 200, baseline: "noop-http", opCalls: true},
		// Identity size (issue 16): what an identity holds must not change the warm cost.
		// The no-op with each large token: receiving and decoding a CheckRequest of that
		// size, the floor under the identity-size rows (their "above the floor" figures).
		{key: "noop-ents", label: fmt.Sprintf("no-op baseline, the %d KB entitlements token", len(b.ents200)/1000), srv: b.noop, tool: toolH2load, tokens: []string{b.ents200}},
		{key: "noop-groups", label: fmt.Sprintf("no-op baseline, the %d KB groups token", len(b.groups1k)/1000), srv: b.noop, tool: toolH2load, tokens: []string{b.groups1k}},
		{key: "noop-token16k", label: fmt.Sprintf("no-op baseline, the %d KB token", len(b.token16k)/1000), srv: b.noop, tool: toolH2load, tokens: []string{b.token16k}},
		{key: "ents", label: fmt.Sprintf("warm, 200 entitlements (%d KB token), entitlement requirement", len(b.ents200)/1000), srv: b.entsSrv, tool: toolH2load, tokens: []string{b.ents200}, baseline: "noop", opCalls: true},
		{key: "groups", label: fmt.Sprintf("warm, 1 000 groups (%d KB token), group requirement", len(b.groups1k)/1000), srv: b.warmSrv, tool: toolH2load, tokens: []string{b.groups1k}, baseline: "noop", opCalls: true},
		{key: "token16k", label: fmt.Sprintf("warm, %d KB token", len(b.token16k)/1000), srv: b.warmSrv, tool: toolH2load, tokens: []string{b.token16k}, baseline: "noop", opCalls: true},
		{key: "routes", label: "warm JWT behind 1 000 prefix routes", srv: b.routesSrv, tool: toolH2load, tokens: b.warm[:1], baseline: "noop", opCalls: true},
		{key: "traced", label: "warm JWT, tracing on (sampled)", srv: b.tracedSrv, tool: toolH2load, tokens: b.warm[:1], ghzFile: warmGhz,
			baseline: "warm", opCalls: true, metadata: []string{traceparent}},
	}
	if len(b.o.rows) > 0 {
		if err := b.keepRows(b.o.rows); err != nil {
			return err
		}
	}
	b.results = map[string]*result{}
	for _, r := range b.rows {
		b.results[r.key] = &result{}
	}
	return nil
}

// keepRows narrows the table to the named rows and the rows they are compared with
// (-rows, for profiling one scenario; the targets of rows left out are not printed).
func (b *bench) keepRows(keys []string) error {
	keep := map[string]bool{}
	var add func(key string) error
	add = func(key string) error {
		if keep[key] {
			return nil
		}
		i := slices.IndexFunc(b.rows, func(r *row) bool { return r.key == key })
		if i < 0 {
			return fmt.Errorf("-rows: no row %q", key)
		}
		keep[key] = true
		for _, dep := range append([]string{b.rows[i].baseline}, related[key]...) {
			if dep != "" {
				if err := add(dep); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, k := range keys {
		if err := add(k); err != nil {
			return err
		}
	}
	b.rows = slices.DeleteFunc(b.rows, func(r *row) bool { return !keep[r.key] })
	return nil
}

// related names, per row, the rows its target line reads besides its baseline.
var related = map[string][]string{
	"warm":       {"noop"},
	"cold":       {"jwx"},
	"cold-es256": {"jwx-es256"},
	"http":       {"noop-http", "noop-http-hdr"},
	"ents":       {"warm", "noop-ents"},
	"groups":     {"warm", "noop-groups"},
	"token16k":   {"warm", "noop-token16k"},
	"routes":     {"warm"},
	"deny":       {"noop"},
}

func (b *bench) opTotal() int { return b.opJWT.Total() + b.opOpaque.Total() }

// sanity makes one call of the row's first request and checks the answer. For servers
// that decide (flaat-extauthz, jwxverify) it is also the "first call" of the row.
func (b *bench) sanity(r *row) error {
	req := baseReq
	req.Token = r.tokens[0]
	var got int
	var err error
	if r.tool == toolH1 {
		got, err = httpCode(r.srv.http, req)
	} else {
		got, err = checkCode(r.srv.grpc, req)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", r.label, err)
	}
	if got != r.want {
		log, _ := os.ReadFile(r.srv.logPath)
		return fmt.Errorf("%s: %w: code %d, want %d; %s log:\n%s", r.label, errMismatch, got, r.want, r.srv.name, tail(log, 1500))
	}
	return nil
}

// warmUp fills the caches of the flaat-extauthz servers before the first round.
func (b *bench) warmUp() error {
	for _, w := range []struct {
		p      *proc
		tokens []string
	}{{b.warmSrv, append(append([]string{}, b.warm...), b.opaque)}, {b.tracedSrv, b.warm}, {b.gcSrv, b.warm},
		{b.churnSrv, b.churn[:min(len(b.churn), 2*b.o.churnCache)]}} {
		if _, err := load.Generate(context.Background(), load.GenConfig{Addr: w.p.grpc, Bodies: bodiesFor(w.tokens...), Total: len(w.tokens)}); err != nil {
			return fmt.Errorf("warm-up %s: %w", w.p.name, err)
		}
	}
	return nil
}

func (b *bench) rounds() error {
	if err := b.defineRows(); err != nil {
		return err
	}
	b.opJWT.ResetCounts()
	b.opOpaque.ResetCounts()
	if r := b.findRow("deny"); r != nil {
		if err := b.sanity(r); err != nil { // the first call with the bad token
			return err
		}
		b.denyOP1 = b.opTotal()
	}
	for _, r := range b.rows {
		if err := b.sanity(r); err != nil {
			return err
		}
	}
	if err := b.warmUp(); err != nil {
		return err
	}
	for round := range b.o.rounds {
		rows := slices.Clone(b.rows)
		if round%2 == 1 { // alternate the order so that drift does not favour one side
			slices.Reverse(rows)
		}
		logf("round %d/%d", round+1, b.o.rounds)
		for _, r := range rows {
			s, err := b.measure(r)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round+1, r.label, err)
			}
			b.results[r.key].samples = append(b.results[r.key].samples, s)
		}
	}
	return nil
}

func (b *bench) row(key string) *row {
	if r := b.findRow(key); r != nil {
		return r
	}
	panic("loadbench: no row " + key)
}

// findRow returns the row named key, nil when -rows left it out.
func (b *bench) findRow(key string) *row {
	for _, r := range b.rows {
		if r.key == key {
			return r
		}
	}
	return nil
}

// measure runs one throughput run (CPU, RSS) and, if the row has one, one latency run.
func (b *bench) measure(r *row) (sample, error) {
	var s sample
	if err := b.sanity(r); err != nil {
		return s, err
	}
	ticks := load.ClockTicks()
	if err := load.ResetPeak(r.srv.pid); err != nil {
		logf("%v (peak RSS is then per process life)", err)
	}
	ops0 := b.opTotal()
	cpu0, err := load.CPUTime(r.srv.pid, ticks)
	if err != nil {
		return s, err
	}
	switch r.tool {
	case toolGen:
		res, err := load.Generate(context.Background(), load.GenConfig{Addr: r.srv.grpc, Bodies: bodiesFor(r.tokens...), Duration: b.o.throughput})
		if err != nil {
			return s, err
		}
		if res.GRPCErrors > 0 || res.Codes[r.want] != res.Done {
			return s, fmt.Errorf("%w: generator saw codes %v, %d gRPC errors", errMismatch, res.Codes, res.GRPCErrors)
		}
		s.rps, s.calls = res.RPS(), res.Done
	case toolH2load, toolH1:
		res, err := b.runH2load(r)
		if err != nil {
			return s, err
		}
		s.rps, s.calls = res.RPS, res.Done
	}
	cpu1, err := load.CPUTime(r.srv.pid, ticks)
	if err != nil {
		return s, err
	}
	if s.calls > 0 {
		s.cpuPerCall = (cpu1 - cpu0) / time.Duration(s.calls)
	}
	if r.ghzFile != "" {
		g, err := b.runGhz(r)
		if err != nil {
			return s, err
		}
		s.p50, s.p90, s.p99 = g.P50, g.P90, g.P99
	}
	if s.peak, s.rss, err = load.Memory(r.srv.pid); err != nil {
		return s, err
	}
	s.opCalls = b.opTotal() - ops0
	return s, nil
}

func (b *bench) runH2load(r *row) (load.H2loadResult, error) {
	secs := strconv.Itoa(int(b.o.throughput.Round(time.Second) / time.Second))
	args := []string{"-c", strconv.Itoa(b.o.loadCPU), b.h2load, "-t", "1", "-D", secs}
	if r.tool == toolH1 {
		args = append(args, "--h1", "-c", "32",
			"-H", "authorization: Bearer "+r.tokens[0], "-H", "x-forwarded-host: "+baseReq.Host,
			"http://"+r.srv.http+"/api/v1/items/42")
	} else {
		body := fmt.Sprintf("%s/%s.body", b.dir, r.key)
		if err := os.WriteFile(body, bodiesFor(r.tokens[0])[0], 0o644); err != nil {
			return load.H2loadResult{}, err
		}
		args = append(args, "-c", "4", "-m", "16", "-d", body,
			"-H", "content-type: application/grpc", "-H", "te: trailers")
		for _, m := range r.metadata {
			args = append(args, "-H", m)
		}
		args = append(args, "http://"+r.srv.grpc+load.CheckPath)
	}
	out, err := exec.Command("taskset", args...).CombinedOutput()
	if err != nil {
		return load.H2loadResult{}, fmt.Errorf("h2load: %v\n%s", err, tail(out, 1500))
	}
	res, err := load.ParseH2load(out)
	if err != nil {
		return res, fmt.Errorf("%w\n%s", err, tail(out, 1500))
	}
	if res.Done == 0 || res.Succeeded != res.Done {
		return res, fmt.Errorf("h2load: %d of %d calls succeeded\n%s", res.Succeeded, res.Done, tail(out, 1500))
	}
	return res, nil
}

func (b *bench) runGhz(r *row) (load.GhzResult, error) {
	args := []string{"-c", strconv.Itoa(b.o.loadCPU), b.ghz,
		"--insecure", "--protoset", b.protoset, "--call", "envoy.service.auth.v3.Authorization.Check",
		"--binary-file", r.ghzFile, "--disable-template-functions", "--disable-template-data",
		"--rps", strconv.Itoa(b.o.rate), "-c", "16", "--connections", "2",
		"-z", b.o.latency.String(), "--duration-stop", "ignore", "-O", "json"}
	if len(r.metadata) > 0 {
		md := map[string]string{}
		for _, m := range r.metadata {
			k, v, _ := strings.Cut(m, ": ")
			md[k] = v
		}
		js, err := json.Marshal(md)
		if err != nil {
			return load.GhzResult{}, err
		}
		args = append(args, "-m", string(js))
	}
	cmd := exec.Command("taskset", append(args, r.srv.grpc)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return load.GhzResult{}, fmt.Errorf("ghz: %v\n%s%s", err, tail(out, 1000), tail(stderr.Bytes(), 1000))
	}
	g, err := load.ParseGhz(out)
	if err != nil {
		return g, err
	}
	if g.Errors > 0 {
		return g, fmt.Errorf("ghz: %d calls failed: %s", g.Errors, tail(out, 1000))
	}
	return g, nil
}
