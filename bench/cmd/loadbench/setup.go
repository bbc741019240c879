package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"

	"google.golang.org/protobuf/encoding/protodelim"
	"sigs.k8s.io/yaml"

	"github.com/flaat-extauthz/flaat-extauthz/bench/internal/load"
	"github.com/flaat-extauthz/flaat-extauthz/internal/devop"
)

// baseReq is the request every scenario checks.
var baseReq = load.Request

// bench holds the whole run.
type bench struct {
	o   options
	dir string

	h2load, ghz, protoset string
	bins                  string

	opJWT, opOpaque *devop.OP

	// tokens
	warm      []string // JWTs from both issuers
	opaque    string
	es256     string // the first warm token's claims, signed with ES256
	bad       string // trusted iss, unknown kid, foreign signature
	ents200   string // 200 entitlements (load.ManyEntitlements)
	groups1k  string // 1 000 groups (load.ManyGroups)
	token16k  string // about 16 KB (load.Padded)
	churn     []string
	memTokens []string

	// servers
	noop, jwx, warmSrv, coldSrv, churnSrv *proc
	noopHdr                               *proc // no-op answering HTTP with flaat's allow headers
	entsSrv, routesSrv                    *proc // entitlement requirement; 1 000 routes
	tracedSrv                             *proc // warm configuration, tracing on, exporting to otlp
	gcSrv                                 *proc // warm configuration, GOGC=100: the GC floor off
	otlp                                  *otlpSink

	rows    []*row
	results map[string]*result
	mem     *memResult
	lat     *lat80 // nil until latencyRun
	denyOP1 int    // OP calls made by the first deny call
}

func (b *bench) close() {
	for _, p := range []*proc{b.noop, b.noopHdr, b.jwx, b.warmSrv, b.coldSrv, b.churnSrv, b.entsSrv, b.routesSrv, b.tracedSrv, b.gcSrv} {
		p.stop()
	}
	b.otlp.close()
	if b.opJWT != nil {
		b.opJWT.Close()
	}
	if b.opOpaque != nil {
		b.opOpaque.Close()
	}
}

func (b *bench) setup(root string) error {
	var err error
	if b.h2load, err = ensureH2load(); err != nil {
		return err
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return fmt.Errorf("taskset not found (util-linux): %w", err)
	}
	if b.ghz, err = ensureGhz(root); err != nil {
		return err
	}
	b.bins = filepath.Join(b.dir, "bin")
	logf("building flaat-extauthz, noop, jwxverify")
	if err := build(root, b.bins); err != nil {
		return err
	}
	ps, err := load.Protoset()
	if err != nil {
		return err
	}
	b.protoset = filepath.Join(b.dir, "auth.protoset")
	if err := os.WriteFile(b.protoset, ps, 0o644); err != nil {
		return err
	}

	if b.otlp, err = startOTLPSink(); err != nil {
		return err
	}
	if b.opJWT, err = devop.Start(); err != nil {
		return err
	}
	if b.opOpaque, err = devop.Start(devop.WithIssuerPath("/realms/bench")); err != nil {
		return err
	}
	logf("minting tokens (%d warm, %d churn, %d memory)", b.o.warmTokens, b.o.churnTokens, b.o.memTokens)
	if err := b.mint(); err != nil {
		return err
	}
	// From here on this process (fake OP, generator) and the tools it starts stay on the
	// load core; the servers get the other one.
	if out, err := exec.Command("taskset", "-a", "-p", "-c", strconv.Itoa(b.o.loadCPU), strconv.Itoa(os.Getpid())).CombinedOutput(); err != nil {
		return fmt.Errorf("taskset self: %v: %s", err, out)
	}
	runtime.GOMAXPROCS(1)
	return b.startServers()
}

// mintMany mints n tokens on every core.
func mintMany(n int, f func(i int) string) []string {
	out := make([]string, n)
	var wg sync.WaitGroup
	workers := runtime.NumCPU()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				out[i] = f(i)
			}
		}()
	}
	wg.Wait()
	return out
}

func (b *bench) mint() error {
	ops := []*devop.OP{b.opJWT, b.opOpaque}
	b.warm = mintMany(b.o.warmTokens, func(i int) string {
		op := ops[i%2]
		return op.MintJWT(load.Claims(i))
	})
	b.opaque = b.opOpaque.MintOpaque(load.Claims(0))
	b.es256 = b.opJWT.MintJWT(load.Claims(0), devop.WithAlg("ES256"))
	b.ents200 = b.opJWT.MintJWT(load.ManyEntitlements(0, 200))
	b.groups1k = b.opJWT.MintJWT(load.ManyGroups(0, 1000))
	b.token16k = b.opJWT.MintJWT(load.Padded(0, 12<<10))
	foreign, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	b.bad = b.opJWT.MintJWT(load.Claims(1), devop.WithAlg("ES256"),
		devop.WithSigner(foreign), devop.WithKid("bench-unknown-kid"))
	b.churn = mintMany(b.o.churnTokens, func(i int) string {
		return b.opJWT.MintJWT(load.Claims(100000 + i))
	})
	// ES256 keeps minting and verifying 100 000 tokens within the time budget; the
	// cached identity is the same size whatever the algorithm.
	b.memTokens = mintMany(b.o.memTokens, func(i int) string {
		return b.opJWT.MintJWT(load.Claims(200000+i), devop.WithAlg("ES256"))
	})
	return nil
}

// startFlaat starts flaat-extauthz with load.FlaatConfig, edited by the edits.
func (b *bench) startFlaat(name string, cache map[string]any, edits ...func(map[string]any)) (*proc, error) {
	return b.startFlaatEnv(name, cache, nil, edits...)
}

// startFlaatEnv is startFlaat with env added to the server's environment.
func (b *bench) startFlaatEnv(name string, cache map[string]any, env []string, edits ...func(map[string]any)) (*proc, error) {
	var addrs [3]string
	for i := range addrs {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		addrs[i] = a
	}
	cfgDoc := load.FlaatConfig(b.opJWT.Issuer(), b.opOpaque.Issuer(), addrs[0], addrs[1], addrs[2], cache)
	for _, e := range edits {
		e(cfgDoc)
	}
	doc, err := yaml.Marshal(cfgDoc)
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(b.dir, name+".yaml")
	if err := os.WriteFile(cfg, doc, 0o600); err != nil {
		return nil, err
	}
	p, err := startProcEnv(name, b.dir, b.o.serverCPU, env, filepath.Join(b.bins, "flaat-extauthz"), "serve", "--config", cfg)
	if err != nil {
		return nil, err
	}
	p.grpc, p.http, p.admin = addrs[0], addrs[1], addrs[2]
	return p, p.waitReady(readyz(p.admin))
}

func (b *bench) startServers() error {
	var err error
	g, h, err2 := twoAddrs()
	if err2 != nil {
		return err2
	}
	if b.noop, err = startProc("noop", b.dir, b.o.serverCPU, filepath.Join(b.bins, "noop"), "-grpc", g, "-http", h); err != nil {
		return err
	}
	b.noop.grpc, b.noop.http = g, h
	if err := b.noop.waitReady(grpcReady(g)); err != nil {
		return err
	}
	if g, err = freeAddr(); err != nil {
		return err
	}
	if b.jwx, err = startProc("jwxverify", b.dir, b.o.serverCPU, filepath.Join(b.bins, "jwxverify"), "-grpc", g,
		"-jwks", b.opJWT.URL(devop.JWKS)+","+b.opOpaque.URL(devop.JWKS)); err != nil {
		return err
	}
	b.jwx.grpc = g
	if err := b.jwx.waitReady(grpcReady(g)); err != nil {
		return err
	}
	// The warm server also takes the identity-size scenarios' large tokens.
	if b.warmSrv, err = b.startFlaat("flaat-warm", map[string]any{}, load.LargeTokens); err != nil {
		return err
	}
	if err := b.startNoopHeaders(); err != nil {
		return err
	}
	if b.entsSrv, err = b.startFlaat("flaat-entitlements", map[string]any{}, load.WithEntitlementRequirement); err != nil {
		return err
	}
	if b.routesSrv, err = b.startFlaat("flaat-routes", map[string]any{}, func(doc map[string]any) { load.WithRoutes(doc, 1000) }); err != nil {
		return err
	}
	if b.coldSrv, err = b.startFlaat("flaat-cold", map[string]any{"disabled": true}); err != nil {
		return err
	}
	if b.churnSrv, err = b.startFlaat("flaat-churn", map[string]any{"size": b.o.churnCache}); err != nil {
		return err
	}
	// The warm configuration with the Go runtime's own pacing (GOGC set turns serve's
	// GC floor off, docs/gc-floor.md): what the floor is worth, printed next to it.
	if b.gcSrv, err = b.startFlaatEnv("flaat-gogc100", map[string]any{}, []string{"GOGC=100"}); err != nil {
		return err
	}
	// Tracing on, every check sampled (the calls carry a sampled traceparent), spans
	// batched and exported over OTLP/gRPC to the sink in this process.
	b.tracedSrv, err = b.startFlaatEnv("flaat-traced", map[string]any{},
		[]string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_ENDPOINT=http://" + b.otlp.addr})
	return err
}

// startNoopHeaders starts a second no-op whose HTTP answers carry the headers the warm
// server answers the HTTP row's request with (identity headers, Cache-Control,
// X-Envoy-Auth-Headers-To-Remove): HTTP mode's baseline with the same bytes to send.
func (b *bench) startNoopHeaders() error {
	req := baseReq
	req.Token = b.warm[0]
	code, hdr, err := httpCheck(b.warmSrv.http, req)
	if err != nil {
		return err
	}
	if code != 200 {
		return fmt.Errorf("%w: warm server answered HTTP %d", errMismatch, code)
	}
	args := []string{}
	for name, vs := range hdr {
		if name == "Date" || name == "Content-Length" {
			continue // net/http writes them for the no-op too
		}
		for _, v := range vs {
			args = append(args, "-http-header", name+": "+v)
		}
	}
	g, h, err := twoAddrs()
	if err != nil {
		return err
	}
	if b.noopHdr, err = startProc("noop-headers", b.dir, b.o.serverCPU, filepath.Join(b.bins, "noop"), append([]string{"-grpc", g, "-http", h}, args...)...); err != nil {
		return err
	}
	b.noopHdr.grpc, b.noopHdr.http = g, h
	return b.noopHdr.waitReady(grpcReady(g))
}

func twoAddrs() (string, string, error) {
	a, err := freeAddr()
	if err != nil {
		return "", "", err
	}
	c, err := freeAddr()
	return a, c, err
}

// ghzData writes reqs as count-delimited CheckRequests (ghz --binary --data-file):
// ghz sends call n with message n mod len(reqs).
func (b *bench) ghzData(name string, reqs []load.Req) (string, error) {
	p := filepath.Join(b.dir, name+".bin")
	f, err := os.Create(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	for _, r := range reqs {
		if _, err := protodelim.MarshalTo(f, load.CheckRequest(r)); err != nil {
			return "", err
		}
	}
	return p, f.Close()
}

func reqsFor(tokens ...string) []load.Req {
	out := make([]load.Req, len(tokens))
	for i, t := range tokens {
		out[i] = baseReq
		out[i].Token = t
	}
	return out
}

func bodiesFor(tokens ...string) [][]byte {
	out := make([][]byte, len(tokens))
	for i, r := range reqsFor(tokens...) {
		out[i] = load.CheckBody(r)
	}
	return out
}
