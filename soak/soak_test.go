package soak

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/envoy"
	"github.com/flaat-extauthz/flaat-extauthz/internal/testutil/securitytest"
	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
)

// duration is SOAK_DURATION (a Go duration), default 60s, 10s with -short.
func duration(t *testing.T) time.Duration {
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 5*time.Second || d > 2*time.Hour {
			t.Fatalf("SOAK_DURATION=%q: want a duration between 5s and 2h", v)
		}
		return d
	}
	if testing.Short() {
		return 10 * time.Second
	}
	return 60 * time.Second
}

// rate is SOAK_RATE requests per second, default 150.
func rate(t *testing.T) int {
	if v := os.Getenv("SOAK_RATE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 5000 {
			t.Fatalf("SOAK_RATE=%q: want 1..5000", v)
		}
		return n
	}
	return 150
}

// kind is one sort of request in the mix.
type kind int

const (
	warmJWT    kind = iota // verified at start: 200 always (cache), outage included
	warmOpaque             // verified at start: 200 always
	coldJWT                // new each time, userinfo required: 200, 503 during the outage
	coldOpaque             // new each time: 200, 503 during the outage
	forbidden              // warm token on /admin: 403 always
	badSig                 // published kid, wrong key: 401 always (no network)
	expired                // pre-minted expired token: 401 always
	noToken                // 401 always
	nKinds
)

var kindNames = [nKinds]string{"warm_jwt", "warm_opaque", "cold_jwt", "cold_opaque", "forbidden", "bad_signature", "expired", "no_token"}

// mix is the request sequence each worker cycles through (20 slots).
var mix = []kind{warmJWT, coldJWT, warmJWT, forbidden, coldOpaque, warmJWT, badSig, warmOpaque, coldJWT, warmJWT,
	expired, warmJWT, coldJWT, forbidden, noToken, warmJWT, coldOpaque, badSig, warmJWT, warmOpaque}

type sample struct {
	at         time.Duration
	rssKiB     int64
	goroutines int
	heapKiB    uint64
}

func measure(start time.Time) sample {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return sample{at: time.Since(start), rssKiB: rssKiB(), goroutines: runtime.NumGoroutine(), heapKiB: ms.HeapAlloc >> 10}
}

// rssKiB reads VmRSS from /proc/self/status (Linux); -1 elsewhere.
func rssKiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return -1
}

// TestSoak drives steady load for SOAK_DURATION: key rotations at 1/6, 2/6, 4/6 and 5/6
// of the run, an OP outage of duration/20 (30s for 10m) starting at the middle. Every
// answer is checked; wrong decisions and gRPC errors must be 0; at the end the debug
// logs and /metrics are searched for every token used.
func TestSoak(t *testing.T) {
	dur := duration(t)
	rps := rate(t)
	outage := dur / 20
	openFor := outage / 3
	if openFor < time.Second {
		openFor = time.Second
	}
	const httpTimeout = 300 * time.Millisecond
	outageStart := dur / 2
	outageEnd := outageStart + outage
	// Cold tokens may still be refused (breaker open, probe pending) for up to openFor
	// after the outage, plus one OP timeout.
	recoveredBy := outageEnd + openFor + httpTimeout + time.Second

	s := securitytest.NewStack(t, securitytest.Options{
		Userinfo:            "required",
		HTTPTimeout:         httpTimeout,
		JWKSRefreshInterval: time.Second,
		CacheSize:           20000,
		CacheMaxTTL:         2 * dur, // warm tokens stay cached through the run
		Breaker:             authz.BreakerConfig{FailureThreshold: 5, OpenDuration: authz.Duration(openFor), MaxConcurrent: 32},
	})
	op := s.OP

	// gRPC on loopback, as Envoy would call it.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs, err := envoy.NewGRPCServer(s.Server, nil)
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	defer gs.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)

	// Token pools.
	var usedMu sync.Mutex
	used := map[string]bool{}
	use := func(tok string) string {
		usedMu.Lock()
		used[tok] = true
		usedMu.Unlock()
		return tok
	}
	mintJWT := func(opts ...oidctest.MintOption) string {
		return use(op.MintJWT(map[string]any{"aud": "api", "groups": []string{"users"}}, opts...))
	}
	firstKid := op.KeyID("RS256")
	var warmJWTs, warmOpaques, expiredToks, badSigs []string
	for i := 0; i < 50; i++ {
		warmJWTs = append(warmJWTs, mintJWT(oidctest.ExpiresIn(3*dur+time.Hour)))
	}
	for i := 0; i < 20; i++ {
		warmOpaques = append(warmOpaques, use(op.MintOpaque(map[string]any{"groups": []string{"users"}}, oidctest.ExpiresIn(3*dur+time.Hour))))
		expiredToks = append(expiredToks, mintJWT(oidctest.ExpiresIn(-time.Hour)))
	}
	otherOP := oidctest.New(t) // its keys are not trusted
	for i := 0; i < 20; i++ {
		// Signed by another OP's key, but naming our first (always published) kid and our issuer.
		badSigs = append(badSigs, use(otherOP.MintJWT(map[string]any{"iss": op.Issuer(), "aud": "api"}, oidctest.WithKid(firstKid))))
	}
	ctx := context.Background()
	check := func(ctx context.Context, auth, path string) (int, error) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		resp, err := client.Check(ctx, securitytest.CheckRequest(securitytest.Req{Authorization: auth, Path: path}))
		if err != nil {
			return 0, err
		}
		return securitytest.HTTPStatus(resp), nil
	}
	for _, tok := range append(append([]string{}, warmJWTs...), warmOpaques...) {
		if got, err := check(ctx, securitytest.Bearer(tok), "/api"); got != 200 || err != nil {
			t.Fatalf("warm-up: %d %v", got, err)
		}
	}

	// Load.
	type outcome struct{ total, wrong [nKinds]atomic.Int64 }
	var out outcome
	var statusCount sync.Map // "kind status" → *atomic.Int64
	count := func(k kind, status string) {
		v, _ := statusCount.LoadOrStore(kindNames[k]+" "+status, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
	var wrongMu sync.Mutex
	var wrongSamples []string
	var grpcErrors atomic.Int64

	start := time.Now()
	samples := []sample{measure(start)}
	opAtStart := op.Total()
	var opAtOutageStart, opAtOutageEnd int

	ticks := make(chan struct{}, rps)
	var wg sync.WaitGroup
	workers := 8
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slot := w * 3
			for range ticks {
				k := mix[slot%len(mix)]
				slot++
				auth, path := "", "/api"
				switch k {
				case warmJWT:
					auth = securitytest.Bearer(warmJWTs[slot%len(warmJWTs)])
				case warmOpaque:
					auth = securitytest.Bearer(warmOpaques[slot%len(warmOpaques)])
				case coldJWT:
					auth = securitytest.Bearer(mintJWT())
				case coldOpaque:
					auth = securitytest.Bearer(use(op.MintOpaque(nil)))
				case forbidden:
					auth, path = securitytest.Bearer(warmJWTs[slot%len(warmJWTs)]), "/admin"
				case badSig:
					auth = securitytest.Bearer(badSigs[slot%len(badSigs)])
				case expired:
					auth = securitytest.Bearer(expiredToks[slot%len(expiredToks)])
				}
				begin := time.Since(start)
				got, err := check(ctx, auth, path)
				end := time.Since(start)
				out.total[k].Add(1)
				if err != nil {
					grpcErrors.Add(1)
					out.wrong[k].Add(1)
					count(k, "grpc_error")
					continue
				}
				count(k, strconv.Itoa(got))
				ok := false
				switch k {
				case warmJWT, warmOpaque:
					ok = got == 200
				case forbidden:
					ok = got == 403
				case badSig, expired, noToken:
					ok = got == 401
				case coldJWT, coldOpaque:
					switch {
					case end < outageStart || begin > recoveredBy:
						ok = got == 200
					case begin > outageStart && end < outageEnd:
						ok = got == 503
					default: // the outage began or ended while the check ran, or recovery
						ok = got == 200 || got == 503
					}
				}
				if !ok {
					out.wrong[k].Add(1)
					wrongMu.Lock()
					if len(wrongSamples) < 10 {
						wrongSamples = append(wrongSamples, fmt.Sprintf("%s at %v–%v: %d", kindNames[k], begin.Round(time.Millisecond), end.Round(time.Millisecond), got))
					}
					wrongMu.Unlock()
				}
			}
		}()
	}

	// The pacer and the scenario (rotations, outage) run here.
	rotations := map[time.Duration]bool{dur / 6: true, 2 * dur / 6: true, 4 * dur / 6: true, 5 * dur / 6: true}
	var rotated int
	tick := time.NewTicker(time.Second / time.Duration(rps))
	inOutage, outageDone := false, false
	dropped := 0
	for now := range tick.C {
		el := now.Sub(start)
		if el >= dur {
			break
		}
		for at := range rotations {
			if el >= at {
				delete(rotations, at)
				op.Rotate(oidctest.KeepOld())
				rotated++
			}
		}
		if !inOutage && !outageDone && el >= outageStart {
			samples = append(samples, measure(start))
			opAtOutageStart = op.Total()
			op.Down()
			inOutage = true
		}
		if inOutage && el >= outageEnd {
			op.ClearFaults()
			opAtOutageEnd = op.Total()
			inOutage, outageDone = false, true
		}
		select {
		case ticks <- struct{}{}:
		default:
			dropped++ // workers are behind: the load stays bounded, never queues up
		}
	}
	tick.Stop()
	close(ticks)
	wg.Wait()
	elapsed := time.Since(start)
	samples = append(samples, measure(start))
	opTotal := op.Total() - opAtStart

	// Report.
	var total, wrong int64
	for k := kind(0); k < nKinds; k++ {
		total += out.total[k].Load()
		wrong += out.wrong[k].Load()
	}
	var lines []string
	statusCount.Range(func(k, v any) bool {
		lines = append(lines, fmt.Sprintf("%s=%d", k, v.(*atomic.Int64).Load()))
		return true
	})
	sort.Strings(lines)
	t.Logf("soak: %v at %d req/s target, %d workers, outage %v at %v, breaker open %v, %d key rotations", dur, rps, workers, outage, outageStart, openFor, rotated)
	t.Logf("soak: requests %d (%.0f/s), dropped ticks %d, gRPC errors %d, wrong decisions %d", total, float64(total)/elapsed.Seconds(), dropped, grpcErrors.Load(), wrong)
	t.Logf("soak: by kind and status: %s", strings.Join(lines, " "))
	outagePS := float64(opAtOutageEnd-opAtOutageStart) / outage.Seconds()
	t.Logf("soak: OP requests %d (%.1f/s overall, %.1f/s during the outage); breaker %+v", opTotal, float64(opTotal)/elapsed.Seconds(), outagePS, s.BreakerTotals())
	cs := s.Authorizer.CacheStats()
	t.Logf("soak: cache size %d (bound 20000), hits %d, misses %d, negative hits %d, evictions %d", cs.Size, cs.Hits, cs.Misses, cs.NegativeHits, cs.Evictions)
	for i, name := range []string{"start", "middle", "end"} {
		if i < len(samples) {
			sm := samples[i]
			t.Logf("soak: %-6s at %6v: RSS %d KiB, heap %d KiB, goroutines %d", name, sm.at.Round(time.Second), sm.rssKiB, sm.heapKiB, sm.goroutines)
		}
	}
	for _, w := range wrongSamples {
		t.Logf("soak: wrong: %s", w)
	}

	if wrong != 0 || grpcErrors.Load() != 0 {
		t.Errorf("%d wrong decisions, %d gRPC errors", wrong, grpcErrors.Load())
	}
	if total < int64(float64(rps)*dur.Seconds()/4) {
		t.Errorf("only %d requests in %v: the load did not run", total, dur)
	}
	for _, k := range []kind{coldJWT, coldOpaque} {
		if v, ok := statusCount.Load(kindNames[k] + " 503"); !ok || v.(*atomic.Int64).Load() == 0 {
			t.Errorf("%s never got 503: the outage did not happen", kindNames[k])
		}
	}
	if g0, g1 := samples[0].goroutines, samples[len(samples)-1].goroutines; g1 > g0+workers+40 {
		t.Errorf("goroutines grew from %d to %d", g0, g1)
	}
	if cs.Size > 20000 {
		t.Errorf("cache holds %d entries, bound 20000", cs.Size)
	}

	// Secrets: no token in the debug logs or the metrics of the run.
	leaks := findTokens(s.Logs.String()+"\n"+s.MetricsText(t), used)
	t.Logf("soak: secrets: %d tokens × %d KiB logs+metrics: %d occurrences", len(used), len(s.Logs.String())>>10, leaks)
	if leaks != 0 {
		t.Errorf("%d token occurrences in logs/metrics", leaks)
	}
	fmt.Printf("soak: %v, %d requests, %d wrong decisions, %d gRPC errors, %d OP requests (%.1f/s), RSS %d→%d→%d KiB, goroutines %d→%d→%d, %d token leaks\n",
		dur, total, wrong, grpcErrors.Load(), opTotal, float64(opTotal)/elapsed.Seconds(),
		samples[0].rssKiB, samples[1%len(samples)].rssKiB, samples[len(samples)-1].rssKiB,
		samples[0].goroutines, samples[1%len(samples)].goroutines, samples[len(samples)-1].goroutines, leaks)
}

// findTokens counts how many pieces of text (maximal runs of base64url characters) are
// a token or a JWT signature from used. Linear in the text, so it scales to a 10-minute
// run's debug log.
func findTokens(text string, used map[string]bool) int {
	secret := make(map[string]bool, 2*len(used))
	for tok := range used {
		secret[tok] = true
		if p := strings.Split(tok, "."); len(p) == 3 && len(p[2]) >= 16 {
			secret[p[2]] = true
		}
	}
	n := 0
	for _, piece := range strings.FieldsFunc(text, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) {
		if len(piece) >= 16 && secret[piece] {
			n++
		}
	}
	return n
}

func TestFindTokens(t *testing.T) {
	used := map[string]bool{"eyJhbGciOi.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ": true, "opaque_token_abcdefghijklmnop": true}
	for text, want := range map[string]int{
		`{"msg":"x","token":"eyJhbGciOi.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"}`: 1,
		`Bearer opaque_token_abcdefghijklmnop, again opaque_token_abcdefghijklmnop`:   2,
		`token_hash=0011223344556677 opaque_token_abcdefghijklmnopq`:                  0,
	} {
		if got := findTokens(text, used); got != want {
			t.Errorf("findTokens(%q) = %d, want %d", text, got, want)
		}
	}
}
