package load

import (
	"math"
	"testing"
)

const exposition = `# HELP flaat_extauthz_check_duration_seconds Time to answer one check.
# TYPE flaat_extauthz_check_duration_seconds histogram
flaat_extauthz_check_duration_seconds_bucket{transport="grpc",le="1e-05"} 10
flaat_extauthz_check_duration_seconds_bucket{transport="grpc",le="2.5e-05"} 60
flaat_extauthz_check_duration_seconds_bucket{transport="grpc",le="5e-05"} 90
flaat_extauthz_check_duration_seconds_bucket{transport="grpc",le="0.0001"} 99
flaat_extauthz_check_duration_seconds_bucket{transport="grpc",le="+Inf"} 100
flaat_extauthz_check_duration_seconds_sum{transport="grpc"} 0.003
flaat_extauthz_check_duration_seconds_count{transport="grpc"} 100
flaat_extauthz_check_duration_seconds_bucket{transport="http",le="1e-05"} 1
flaat_extauthz_check_duration_seconds_bucket{transport="http",le="2.5e-05"} 1
flaat_extauthz_check_duration_seconds_bucket{transport="http",le="5e-05"} 1
flaat_extauthz_check_duration_seconds_bucket{transport="http",le="0.0001"} 1
flaat_extauthz_check_duration_seconds_bucket{transport="http",le="+Inf"} 1
`

func TestHistogramQuantiles(t *testing.T) {
	after, err := ParseHistogram([]byte(exposition), "flaat_extauthz_check_duration_seconds", `transport="grpc"`)
	if err != nil || len(after) != 5 || after[0].LE != 1e-5 || !math.IsInf(after[4].LE, 1) || after[4].Count != 100 {
		t.Fatalf("%v %v", after, err)
	}
	before := []Bucket{{1e-5, 0}, {2.5e-5, 0}, {5e-5, 0}, {1e-4, 0}, {math.Inf(1), 0}}
	d, err := SubBuckets(after, before)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name          string
		q, est, atMos float64
	}{
		{"p10 at the first bound", 0.10, 1e-5, 1e-5},
		{"p50 inside the second bucket", 0.50, 1e-5 + 1.5e-5*40/50, 2.5e-5},
		{"p99 at the 100 µs bound", 0.99, 1e-4, 1e-4},
		{"p999 in +Inf: the largest finite bound", 0.999, 1e-4, math.Inf(1)},
	} {
		est, atMost := Quantile(tc.q, d)
		if math.Abs(est-tc.est) > 1e-12 || atMost != tc.atMos {
			t.Errorf("%s: got %g (≤ %g), want %g (≤ %g)", tc.name, est, atMost, tc.est, tc.atMos)
		}
	}
	if _, err := ParseHistogram([]byte(exposition), "flaat_extauthz_check_duration_seconds", `transport="h3"`); err == nil {
		t.Error("no error for a missing label set")
	}
	if _, err := SubBuckets(after, before[:2]); err == nil {
		t.Error("no error for different bucket counts")
	}
	if est, _ := Quantile(0.5, before); !math.IsNaN(est) {
		t.Errorf("no observations: %g, want NaN", est)
	}
}

// FuzzParseHistogram: any exposition text parses or fails without a panic, and the
// quantiles of what parses are never below 0 and never above the largest bound.
func FuzzParseHistogram(f *testing.F) {
	f.Add([]byte(exposition))
	f.Add([]byte("flaat_extauthz_check_duration_seconds_bucket{transport=\"grpc\",le=\"x\"} 1\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		bs, err := ParseHistogram(text, "flaat_extauthz_check_duration_seconds", `transport="grpc"`)
		if err != nil {
			return
		}
		for _, q := range []float64{0.5, 0.99, 0.999} {
			est, _ := Quantile(q, bs)
			if est < 0 && !math.IsNaN(est) && bs[0].LE >= 0 {
				t.Fatalf("q%g = %g < 0 for %v", q, est, bs)
			}
		}
	})
}
