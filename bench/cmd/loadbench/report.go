package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/bench/internal/load"
)

type memResult struct {
	identities       int
	idleRSS, rss     uint64
	peak             uint64
	entries          float64
	fill             time.Duration
	churnRSS         []uint64 // RSS of the churn server after each round
	churnRSSStartKiB uint64
	heapAlloc        float64 // go_memstats_heap_alloc_bytes after the fill
}

// memoryRun starts a fresh flaat-extauthz with the default cache (100 000 entries) and
// sends memTokens distinct tokens once each.
func (b *bench) memoryRun() error {
	m := &memResult{identities: len(b.memTokens)}
	if r := b.results["churn"]; r != nil { // nil with -memory-only
		for _, s := range r.samples {
			m.churnRSS = append(m.churnRSS, s.rss)
		}
	}
	b.mem = m
	for _, p := range []*proc{b.coldSrv, b.churnSrv} { // free the server core of idle processes
		p.stop()
	}
	b.coldSrv, b.churnSrv = nil, nil
	p, err := b.startFlaat("flaat-memory", map[string]any{"size": max(100000, len(b.memTokens))})
	if err != nil {
		return err
	}
	defer p.stop()
	if _, m.idleRSS, err = load.Memory(p.pid); err != nil {
		return err
	}
	logf("memory run: caching %d identities", len(b.memTokens))
	t0 := time.Now()
	res, err := load.Generate(context.Background(), load.GenConfig{Addr: p.grpc, Bodies: bodiesFor(b.memTokens...), Total: len(b.memTokens)})
	m.fill = time.Since(t0)
	if err != nil {
		return err
	}
	if res.Codes[0] != len(b.memTokens) {
		return fmt.Errorf("memory run: codes %v, want %d allowed", res.Codes, len(b.memTokens))
	}
	if m.peak, m.rss, err = load.Memory(p.pid); err != nil {
		return err
	}
	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if m.entries, err = load.ParseMetric(body, "_cache_entries"); err != nil {
		logf("memory run: %v", err)
	}
	// Where the RSS goes: the heap now (live identities plus garbage not yet collected)
	// and the garbage collector's next target (about twice the live heap at GOGC=100).
	var ms []string
	for _, name := range []string{"go_memstats_heap_alloc_bytes", "go_memstats_heap_inuse_bytes", "go_memstats_next_gc_bytes", "go_memstats_sys_bytes"} {
		if v, err := load.ParseMetric(body, name); err == nil {
			if name == "go_memstats_heap_alloc_bytes" {
				m.heapAlloc = v
			}
			ms = append(ms, fmt.Sprintf("%s %s MiB", strings.TrimSuffix(strings.TrimPrefix(name, "go_memstats_"), "_bytes"), mib(uint64(v))))
		}
	}
	logf("memory run: %s", strings.Join(ms, ", "))
	return nil
}

func median[T int | float64 | time.Duration | uint64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func pick[T any](ss []sample, f func(sample) T) []T {
	out := make([]T, len(ss))
	for i, s := range ss {
		out[i] = f(s)
	}
	return out
}

type summary struct {
	rps           float64
	cpu           time.Duration
	p50, p90, p99 time.Duration
	peak          uint64
	opCalls       int
	lat           bool
}

func (b *bench) summary(key string) summary {
	r, res := b.findRow(key), b.results[key]
	if r == nil || res == nil { // left out by -rows
		return summary{}
	}
	ss := res.samples
	s := summary{
		rps: median(pick(ss, func(s sample) float64 { return s.rps })),
		cpu: median(pick(ss, func(s sample) time.Duration { return s.cpuPerCall })),
		p50: median(pick(ss, func(s sample) time.Duration { return s.p50 })),
		p90: median(pick(ss, func(s sample) time.Duration { return s.p90 })),
		p99: median(pick(ss, func(s sample) time.Duration { return s.p99 })),
		lat: r.ghzFile != "",
	}
	for _, x := range ss {
		s.peak = max(s.peak, x.peak)
		s.opCalls += x.opCalls
	}
	return s
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }
func mib(b uint64) string       { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }

// report prints the table and the targets, and returns them as markdown.
func (b *bench) report(w io.Writer) string {
	var md strings.Builder
	fmt.Fprintf(&md, "Machine: %s. Servers pinned to CPU %d with GOMAXPROCS=1; loadbench, h2load and ghz on CPU %d. "+
		"Median of %d interleaved rounds; throughput runs %s, latency runs %s at %d calls/s offered (ghz, 16 workers, 2 connections).\n\n",
		machine(), b.o.serverCPU, b.o.loadCPU, b.o.rounds, b.o.throughput, b.o.latency, b.o.rate)
	md.WriteString("| scenario | load tool | calls/s | vs baseline | p50 | p90 | p99 | server CPU/call | peak RSS MiB | OP calls |\n")
	md.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range b.rows {
		s := b.summary(r.key)
		ratio := "—"
		if r.baseline != "" {
			if base := b.summary(r.baseline); base.rps > 0 {
				ratio = fmt.Sprintf("%.0f %%", 100*s.rps/base.rps)
			}
		}
		p50, p90, p99 := "—", "—", "—"
		if s.lat {
			p50, p90, p99 = us(s.p50), us(s.p90), us(s.p99)
		}
		ops := "—"
		if r.opCalls {
			ops = fmt.Sprint(s.opCalls)
		}
		fmt.Fprintf(&md, "| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n",
			r.label, r.tool, s.rps, ratio, p50, p90, p99, us(s.cpu), mib(s.peak), ops)
	}
	if m := b.mem; m != nil {
		fmt.Fprintf(&md, "\nMemory: %d identities cached (cache_entries %.0f) in %s: RSS %s MiB (idle %s MiB, peak %s MiB), about %.1f KiB per identity.\n",
			m.identities, m.entries, m.fill.Round(100*time.Millisecond), mib(m.rss), mib(m.idleRSS), mib(m.peak),
			float64(m.rss-min(m.rss, m.idleRSS))/1024/float64(max(m.identities, 1)))
		rs := make([]string, len(m.churnRSS))
		for i, x := range m.churnRSS {
			rs[i] = mib(x)
		}
		fmt.Fprintf(&md, "Churn server RSS after each round: %s MiB.\n", strings.Join(rs, ", "))
	}
	if b.lat != nil {
		md.WriteString("\n" + b.lat.line() + "\n")
	}
	if b.otlp != nil {
		fmt.Fprintf(&md, "\nTracing: the traced server exported %d spans over OTLP/gRPC to loadbench's sink during the run "+
			"(every call carries a sampled traceparent; its ratio is against the warm JWT row).\n", b.otlp.spans.Load())
	}
	md.WriteString("\nTargets:\n\n")
	for _, t := range b.targets() {
		fmt.Fprintf(&md, "- %s\n", t)
	}
	io.WriteString(w, md.String())
	return md.String()
}

// memoryReport prints the memory run's figures alone (-memory-only).
func (b *bench) memoryReport(w io.Writer) {
	m := b.mem
	fmt.Fprintf(w, "Machine: %s. Memory: %d identities cached (cache_entries %.0f) in %s: RSS %s MiB (idle %s MiB, peak %s MiB), about %.1f KiB per identity.\n",
		machine(), m.identities, m.entries, m.fill.Round(100*time.Millisecond), mib(m.rss), mib(m.idleRSS), mib(m.peak),
		float64(m.rss-min(m.rss, m.idleRSS))/1024/float64(max(m.identities, 1)))
	fmt.Fprintln(w, m.target())
}

// target is the memory target's line (issue 16: ≤ 128 MiB without a soft memory limit).
func (m *memResult) target() string {
	return fmt.Sprintf("%d cached identities ≤ 128 MiB RSS: %s MiB (live heap %s MiB) — %s",
		m.identities, mib(m.rss), mib(uint64(m.heapAlloc)), verdict(m.identities >= 100000 && m.rss <= 128<<20))
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func (b *bench) targets() []string {
	noop, warm, cold, jwx, deny := b.summary("noop"), b.summary("warm"), b.summary("cold"), b.summary("jwx"), b.summary("deny")
	var t []string
	if noop.rps > 0 && warm.rps > 0 {
		r := warm.rps / noop.rps
		t = append(t, fmt.Sprintf("warm JWT throughput ≥ 85 %% of no-op: %.0f %% — %s", 100*r, verdict(r >= 0.85)))
	}
	if warm.cpu > 0 {
		t = append(t, fmt.Sprintf("warm JWT server CPU ≤ 30 µs/call: %s — %s", us(warm.cpu), verdict(warm.cpu <= 30*time.Microsecond)))
	}
	if noop.p99 > 0 && warm.p99 > 0 {
		r := float64(warm.p99) / float64(noop.p99)
		t = append(t, fmt.Sprintf("warm JWT p99 ≤ 1.5× no-op p99 at %d calls/s: %s vs %s (%.2f×) — %s", b.o.rate, us(warm.p99), us(noop.p99), r, verdict(r <= 1.5)))
	}
	if jwx.rps > 0 && cold.rps > 0 {
		// The goal holds in every round, not only for the medians: each round's cold run
		// against that round's jwx run.
		cs, js := b.results["cold"].samples, b.results["jwx"].samples
		var per []string
		all := true
		for i := range min(len(cs), len(js)) {
			r := cs[i].rps / js[i].rps
			per = append(per, fmt.Sprintf("%.2f×", r))
			all = all && r >= 1.6
		}
		t = append(t, fmt.Sprintf("cold JWT RS256 ≥ 1.6× jwx verify every call in every round: %s; median %.2f× (%.0f vs %.0f calls/s; CPU %s vs %s per call) — %s",
			strings.Join(per, ", "), cold.rps/jwx.rps, cold.rps, jwx.rps, us(cold.cpu), us(jwx.cpu), verdict(all)))
	}
	if ce, je := b.summary("cold-es256"), b.summary("jwx-es256"); je.rps > 0 {
		t = append(t, fmt.Sprintf("cold JWT ES256 (reported): %.2f× jwx verify every call (%.0f vs %.0f calls/s; CPU %s vs %s per call)",
			ce.rps/je.rps, ce.rps, je.rps, us(ce.cpu), us(je.cpu)))
	}
	if h, hn := b.summary("http"), b.summary("noop-http"); hn.rps > 0 {
		r := h.rps / hn.rps
		t = append(t, fmt.Sprintf("warm JWT, HTTP mode ≥ 85 %% of the HTTP no-op: %.0f %% — %s", 100*r, verdict(r >= 0.85)))
		if hh := b.summary("noop-http-hdr"); hh.rps > 0 {
			t = append(t, fmt.Sprintf("warm JWT, HTTP mode vs the no-op answering with the same headers (reported): %.0f %%; that no-op itself: %.0f %% of the plain one (CPU %s vs %s per call)",
				100*h.rps/hh.rps, 100*hh.rps/hn.rps, us(hh.cpu), us(hn.cpu)))
		}
	}
	// The GC floor (docs/gc-floor.md) is part of serve; these lines say what the warm and
	// HTTP ratios are without it.
	if g, n := b.summary("warm-gogc"), noop; g.rps > 0 && n.rps > 0 {
		t = append(t, fmt.Sprintf("warm JWT with the GC floor off (GOGC=100), reported: %.0f %% of no-op (CPU %s per call)", 100*g.rps/n.rps, us(g.cpu)))
	}
	if g, n := b.summary("http-gogc"), b.summary("noop-http"); g.rps > 0 && n.rps > 0 {
		t = append(t, fmt.Sprintf("warm JWT, HTTP mode with the GC floor off (GOGC=100), reported: %.0f %% of the HTTP no-op (CPU %s per call)", 100*g.rps/n.rps, us(g.cpu)))
	}
	// Identity size: CPU per call against the warm row's (same server build, same run).
	// A large token's own cost (receiving and decoding it: the no-op with the same
	// token) is printed next to it, and what flaat-extauthz spends above that floor.
	for _, c := range []struct {
		key, floor string
		limit      float64
	}{{"ents", "noop-ents", 1.3}, {"groups", "noop-groups", 1.3}, {"token16k", "noop-token16k", 1.5}, {"routes", "", 1.3}} {
		if s := b.summary(c.key); warm.cpu > 0 && s.cpu > 0 {
			r := float64(s.cpu) / float64(warm.cpu)
			line := fmt.Sprintf("%s: server CPU ≤ %.1f× warm JWT: %s vs %s (%.2f×) — %s", b.row(c.key).label, c.limit, us(s.cpu), us(warm.cpu), r, verdict(r <= c.limit))
			if f, n := b.summary(c.floor), b.summary("noop"); f.cpu > 0 && n.cpu > 0 {
				line += fmt.Sprintf("; the no-op with the same token %s (%s more than with the small token), flaat-extauthz above that %s (warm JWT above the no-op: %s)",
					us(f.cpu), us(f.cpu-n.cpu), us(s.cpu-f.cpu), us(warm.cpu-n.cpu))
			}
			t = append(t, line)
		}
	}
	if l := b.lat; l != nil {
		t = append(t, fmt.Sprintf("server-side Check p99 ≤ 100 µs at 80 %% of the warm peak: %s — %s", secs(l.server[1], l.serverAtMost[1]), verdict(l.serverAtMost[1] <= 100e-6 || l.server[1] <= 100e-6)))
	}
	if noop.rps > 0 && deny.rps > 0 {
		r := deny.rps / noop.rps
		t = append(t, fmt.Sprintf("deny ≥ 80 %% of no-op: %.0f %% — %s", 100*r, verdict(r >= 0.8)))
	}
	if b.findRow("deny") != nil {
		t = append(t, fmt.Sprintf("deny: OP calls made by the first bad-token call %d, during the %d measured deny runs %d — %s",
			b.denyOP1, len(b.results["deny"].samples), deny.opCalls, verdict(deny.opCalls == 0)))
	}
	if m := b.mem; m != nil {
		t = append(t, m.target())
	}
	return t
}
