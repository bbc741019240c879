package load

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// Bucket is one cumulative bucket of a Prometheus histogram: Count observations were
// at most LE (seconds; +Inf for the last).
type Bucket struct {
	LE    float64
	Count float64
}

// ParseHistogram returns the buckets of the histogram name (e.g.
// "flaat_extauthz_check_duration_seconds") whose labels include match (e.g.
// `transport="grpc"`), sorted by LE, from Prometheus text exposition.
func ParseHistogram(text []byte, name, match string) ([]Bucket, error) {
	prefix := []byte(name + "_bucket{")
	var out []Bucket
	for _, line := range bytes.Split(text, []byte("\n")) {
		if !bytes.HasPrefix(line, prefix) {
			continue
		}
		end := bytes.LastIndexByte(line, '}')
		if end < 0 {
			continue
		}
		labels := line[len(prefix):end]
		if !bytes.Contains(labels, []byte(match)) {
			continue
		}
		_, le, ok := bytes.Cut(labels, []byte(`le="`))
		if !ok {
			continue
		}
		le, _, _ = bytes.Cut(le, []byte(`"`))
		bound, err := strconv.ParseFloat(string(le), 64) // "+Inf" parses as +Inf
		if err != nil {
			return nil, fmt.Errorf("load: histogram %s: le %q: %w", name, le, err)
		}
		f := bytes.Fields(line[end+1:])
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseFloat(string(f[0]), 64)
		if err != nil {
			return nil, fmt.Errorf("load: histogram %s: %w", name, err)
		}
		out = append(out, Bucket{LE: bound, Count: n})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: histogram %s{%s} not found", ErrNoReport, name, match)
	}
	slices.SortFunc(out, func(a, b Bucket) int {
		switch {
		case a.LE < b.LE:
			return -1
		case a.LE > b.LE:
			return 1
		}
		return 0
	})
	return out, nil
}

// SubBuckets returns after - before, bucket by bucket (the observations made between
// two scrapes); both must come from the same histogram.
func SubBuckets(after, before []Bucket) ([]Bucket, error) {
	if len(after) != len(before) {
		return nil, fmt.Errorf("load: histograms of %d and %d buckets", len(after), len(before))
	}
	out := make([]Bucket, len(after))
	for i := range after {
		if after[i].LE != before[i].LE {
			return nil, fmt.Errorf("load: histogram buckets differ (le %g vs %g)", after[i].LE, before[i].LE)
		}
		out[i] = Bucket{LE: after[i].LE, Count: after[i].Count - before[i].Count}
	}
	return out, nil
}

// Quantile estimates the q-quantile (0 < q < 1) of cumulative buckets as Prometheus's
// histogram_quantile does: linear interpolation inside the bucket that holds it (from 0
// for the first bucket). It returns the bucket's upper bound as a second value: the
// quantile is certainly at most that. NaN when there are no observations; a quantile in
// the +Inf bucket is the largest finite bound.
func Quantile(q float64, bs []Bucket) (est, atMost float64) {
	if len(bs) == 0 || bs[len(bs)-1].Count == 0 {
		return math.NaN(), math.NaN()
	}
	rank := q * bs[len(bs)-1].Count
	lower, below := 0.0, 0.0
	for _, b := range bs {
		if b.Count >= rank {
			if math.IsInf(b.LE, 1) {
				return lower, math.Inf(1)
			}
			if b.Count == below {
				return b.LE, b.LE
			}
			return lower + (b.LE-lower)*(rank-below)/(b.Count-below), b.LE
		}
		lower, below = b.LE, b.Count
	}
	return lower, math.Inf(1)
}
