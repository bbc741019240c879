package load

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
)

func TestGRPCFrame(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  []byte
		want []byte
	}{
		{"empty", nil, []byte{0, 0, 0, 0, 0}},
		{"three bytes", []byte("abc"), []byte{0, 0, 0, 0, 3, 'a', 'b', 'c'}},
		{"300 bytes", bytes.Repeat([]byte{7}, 300), append([]byte{0, 0, 0, 1, 44}, bytes.Repeat([]byte{7}, 300)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := GRPCFrame(tc.msg)
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("GRPCFrame = %x, want %x", got, tc.want)
			}
			msgs, err := SplitFrames(append(got, got...))
			if err != nil || len(msgs) != 2 || !bytes.Equal(msgs[0], tc.msg) || !bytes.Equal(msgs[1], tc.msg) {
				t.Fatalf("SplitFrames(two frames) = %q, %v", msgs, err)
			}
		})
	}
}

func TestSplitFramesErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"short header", []byte{0, 0, 0}},
		{"short body", []byte{0, 0, 0, 0, 9, 1, 2}},
		{"compressed", []byte{1, 0, 0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := SplitFrames(tc.in); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestCheckBodyRoundTrip(t *testing.T) {
	r := Req{Method: "GET", Host: "api.example.org", Path: "/a?b", Token: "t.o.k"}
	msgs, err := SplitFrames(CheckBody(r))
	if err != nil || len(msgs) != 1 {
		t.Fatalf("SplitFrames: %v, %d messages", err, len(msgs))
	}
	var req authv3.CheckRequest
	if err := proto.Unmarshal(msgs[0], &req); err != nil {
		t.Fatal(err)
	}
	h := req.GetAttributes().GetRequest().GetHttp()
	if h.GetPath() != r.Path || h.GetHost() != r.Host || h.GetMethod() != r.Method ||
		h.GetHeaders()["authorization"] != "Bearer t.o.k" || h.GetHeaders()[":path"] != r.Path {
		t.Fatalf("decoded %v", h)
	}
	if _, ok := CheckRequest(Req{Method: "GET"}).GetAttributes().GetRequest().GetHttp().GetHeaders()["authorization"]; ok {
		t.Fatal("authorization header without a token")
	}
}

func TestCheckStatus(t *testing.T) {
	for _, code := range []int32{0, 7, 14, 16} {
		b, err := proto.Marshal(&authv3.CheckResponse{Status: &status.Status{Code: code, Message: "m"},
			HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{Body: "x"}}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := CheckStatus(b)
		if err != nil || got != int(code) {
			t.Fatalf("code %d: CheckStatus = %d, %v", code, got, err)
		}
	}
	if got, err := CheckStatus(nil); got != 0 || err != nil {
		t.Fatalf("empty response: %d, %v", got, err)
	}
	if _, err := CheckStatus([]byte{0x0a, 0x05, 0x08}); err == nil {
		t.Fatal("truncated response: no error")
	}
}

func TestParseStatCPU(t *testing.T) {
	fields := "S 1 2 3 4 5 6 7 8 9 10 1234 56 0 0 20 0 1 0"
	for _, tc := range []struct {
		name, in string
		want     uint64
		err      bool
	}{
		{"plain", "42 (noop) " + fields, 1290, false},
		{"name with spaces and parens", "42 (a) b (c)) " + fields, 1290, false},
		{"no name", "42 noop " + fields, 0, true},
		{"too short", "42 (noop) S 1 2", 0, true},
		{"not a number", "42 (noop) S 1 2 3 4 5 6 7 8 9 10 x 56 0", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStatCPU([]byte(tc.in))
			if (err != nil) != tc.err || got != tc.want {
				t.Fatalf("ParseStatCPU = %d, %v; want %d, error %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestParseStatusKB(t *testing.T) {
	st := "Name:\tnoop\nVmPeak:\t  800000 kB\nVmHWM:\t   21600 kB\nVmRSS:\t   20480 kB\nThreads:\t5\n"
	for _, tc := range []struct {
		key  string
		want uint64
		err  bool
	}{
		{"VmHWM", 21600, false},
		{"VmRSS", 20480, false},
		{"VmSwap", 0, true},
		{"Threads", 0, true}, // no kB unit
	} {
		got, err := ParseStatusKB([]byte(st), tc.key)
		if (err != nil) != tc.err || got != tc.want {
			t.Fatalf("%s: %d, %v", tc.key, got, err)
		}
	}
}

func auxv(pairs ...uint64) []byte {
	b := make([]byte, 8*len(pairs))
	for i, p := range pairs {
		binary.LittleEndian.PutUint64(b[8*i:], p)
	}
	return b
}

func TestParseAuxvClockTicks(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want int
	}{
		{"present", auxv(6, 4096, 17, 100, 0, 0), 100},
		{"after AT_NULL is ignored", auxv(6, 4096, 0, 0, 17, 250), 0},
		{"absent", auxv(6, 4096, 0, 0), 0},
		{"truncated", auxv(6, 4096, 17)[:20], 0},
	} {
		if got := ParseAuxvClockTicks(tc.in); got != tc.want {
			t.Fatalf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	if got := ClockTicks(); got <= 0 {
		t.Fatalf("ClockTicks = %d", got)
	}
}

const h2loadOut = `starting benchmark...
Application protocol: h2c

finished in 2.00s, 42760.50 req/s, 1.70MB/s
requests: 85521 total, 85552 started, 85520 done, 85519 succeeded, 1 failed, 0 errored, 0 timeout
status codes: 85520 2xx, 0 3xx, 0 4xx, 0 5xx
`

func TestParseH2load(t *testing.T) {
	r, err := ParseH2load([]byte(h2loadOut))
	if err != nil {
		t.Fatal(err)
	}
	want := H2loadResult{RPS: 42760.5, Done: 85520, Succeeded: 85519, Failed: 1}
	if r != want {
		t.Fatalf("ParseH2load = %+v, want %+v", r, want)
	}
	for _, bad := range []string{"", strings.Replace(h2loadOut, "requests:", "reqs:", 1), strings.Replace(h2loadOut, "finished", "done", 1)} {
		if _, err := ParseH2load([]byte(bad)); !errors.Is(err, ErrNoReport) {
			t.Fatalf("ParseH2load(%.30q) error %v, want ErrNoReport", bad, err)
		}
	}
}

func TestParseGhz(t *testing.T) {
	in := `{"count":4000,"rps":1999.5,"errorDistribution":{"rpc error: code = Unavailable":2},
	"statusCodeDistribution":{"OK":3998,"Unavailable":2},
	"latencyDistribution":[{"percentage":10,"latency":100000},{"percentage":50,"latency":250000},
	{"percentage":90,"latency":499000},{"percentage":99,"latency":2227000}]}`
	g, err := ParseGhz([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if g.Count != 4000 || g.RPS != 1999.5 || g.Errors != 2 || g.P50 != 250*time.Microsecond ||
		g.P90 != 499*time.Microsecond || g.P99 != 2227*time.Microsecond || g.StatusCodes["OK"] != 3998 {
		t.Fatalf("ParseGhz = %+v", g)
	}
	if _, err := ParseGhz([]byte(`{"count":0,"latencyDistribution":null}`)); !errors.Is(err, ErrNoReport) {
		t.Fatalf("no percentiles: %v", err)
	}
	if _, err := ParseGhz([]byte(`Error: boom`)); err == nil {
		t.Fatal("not JSON: no error")
	}
}

func TestParseMetric(t *testing.T) {
	text := []byte("# HELP x_cache_entries n\n# TYPE x_cache_entries gauge\nx_cache_entries 1234\n" +
		"x_op_requests_total{endpoint=\"jwks\",status=\"200\"} 3\n")
	if v, err := ParseMetric(text, "_cache_entries"); err != nil || v != 1234 {
		t.Fatalf("entries: %v, %v", v, err)
	}
	if v, err := ParseMetric(text, "_op_requests_total"); err != nil || v != 3 {
		t.Fatalf("labelled: %v, %v", v, err)
	}
	if _, err := ParseMetric(text, "_missing"); !errors.Is(err, ErrNoReport) {
		t.Fatalf("missing: %v", err)
	}
}

func TestProtoset(t *testing.T) {
	b, err := Protoset()
	if err != nil {
		t.Fatal(err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	files, err := protodesc.NewFiles(&set) // fails if a dependency is missing
	if err != nil {
		t.Fatal(err)
	}
	d, err := files.FindDescriptorByName("envoy.service.auth.v3.Authorization")
	if err != nil {
		t.Fatal(err)
	}
	if d.FullName() != "envoy.service.auth.v3.Authorization" {
		t.Fatalf("found %s", d.FullName())
	}
}

// recorder is an ext_authz server that denies the token "deny" (PERMISSION_DENIED) and
// records which tokens it saw.
type recorder struct {
	mu   sync.Mutex
	seen map[string]int
}

func (r *recorder) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	tok := req.GetAttributes().GetRequest().GetHttp().GetHeaders()["authorization"]
	r.mu.Lock()
	r.seen[tok]++
	r.mu.Unlock()
	if tok == "Bearer deny" {
		return &authv3.CheckResponse{Status: &status.Status{Code: 7}}, nil
	}
	return &authv3.CheckResponse{Status: &status.Status{}}, nil
}

func startRecorder(t *testing.T) (*recorder, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{seen: map[string]int{}}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, rec)
	go gs.Serve(l)
	t.Cleanup(gs.Stop)
	return rec, l.Addr().String()
}

func TestGenerateTotal(t *testing.T) {
	rec, addr := startRecorder(t)
	var bodies [][]byte
	for _, tok := range []string{"a", "b", "deny", "c"} {
		bodies = append(bodies, CheckBody(Req{Method: "GET", Host: "h", Path: "/", Token: tok}))
	}
	res, err := Generate(context.Background(), GenConfig{Addr: addr, Bodies: bodies, Conns: 3, Streams: 5, Total: 4001})
	if err != nil {
		t.Fatal(err)
	}
	// 4001 calls over 4 bodies in order: a gets one more.
	want := map[string]int{"Bearer a": 1001, "Bearer b": 1000, "Bearer deny": 1000, "Bearer c": 1000}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for k, v := range want {
		if rec.seen[k] != v {
			t.Fatalf("server saw %v, want %v", rec.seen, want)
		}
	}
	if res.Done != 4001 || res.GRPCErrors != 0 || res.Codes[0] != 3001 || res.Codes[7] != 1000 || len(res.Latencies) != 4001 {
		t.Fatalf("result: done %d, errors %d, codes %v, %d latencies", res.Done, res.GRPCErrors, res.Codes, len(res.Latencies))
	}
	if res.Percentile(50) <= 0 || res.Percentile(99) < res.Percentile(50) || res.Percentile(100) != res.Latencies[len(res.Latencies)-1] {
		t.Fatalf("percentiles: p50 %v p99 %v", res.Percentile(50), res.Percentile(99))
	}
}

func TestGenerateDuration(t *testing.T) {
	_, addr := startRecorder(t)
	body := CheckBody(Req{Method: "GET", Host: "h", Path: "/", Token: "a"})
	res, err := Generate(context.Background(), GenConfig{Addr: addr, Bodies: [][]byte{body}, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Done == 0 || res.Codes[0] != res.Done || res.Elapsed != 200*time.Millisecond || res.RPS() <= 0 {
		t.Fatalf("result: done %d, codes %v, elapsed %v", res.Done, res.Codes, res.Elapsed)
	}
}

func TestGenerateErrors(t *testing.T) {
	_, addr := startRecorder(t)
	body := CheckBody(Req{Method: "GET", Path: "/"})
	for _, tc := range []struct {
		name string
		cfg  GenConfig
	}{
		{"no bodies", GenConfig{Addr: addr, Total: 1}},
		{"no bound", GenConfig{Addr: addr, Bodies: [][]byte{body}}},
		{"refused", GenConfig{Addr: "127.0.0.1:1", Bodies: [][]byte{body}, Total: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Generate(context.Background(), tc.cfg); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	var xs []time.Duration
	for i := 1; i <= 100; i++ {
		xs = append(xs, time.Duration(i))
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {90, 90}, {99, 99}, {100, 100}, {0.5, 1}} {
		if got := percentile(xs, tc.p); got != tc.want {
			t.Fatalf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if percentile(nil, 50) != 0 {
		t.Fatal("empty")
	}
}
