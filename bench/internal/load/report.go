package load

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// H2loadResult is what the benchmark reads from h2load's report.
type H2loadResult struct {
	// RPS is the "finished in …, N req/s" figure.
	RPS float64
	// Done, Succeeded and Failed are from the "requests:" line. h2load counts any 2xx
	// as success; gRPC errors travel in trailers and are not seen here.
	Done, Succeeded, Failed, Errored, Timeout int
}

var (
	h2loadFinished = regexp.MustCompile(`(?m)^finished in [0-9.]+m?s, ([0-9.]+) req/s`)
	h2loadRequests = regexp.MustCompile(`(?m)^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
)

// ErrNoReport is wrapped when a tool's output lacks the expected report.
var ErrNoReport = fmt.Errorf("load: no report in tool output")

// ParseH2load parses the summary of `h2load` (nghttp2 1.4x–1.6x).
func ParseH2load(out []byte) (H2loadResult, error) {
	var r H2loadResult
	m := h2loadFinished.FindSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("%w: h2load: no \"finished in\" line", ErrNoReport)
	}
	var err error
	if r.RPS, err = strconv.ParseFloat(string(m[1]), 64); err != nil {
		return r, fmt.Errorf("load: h2load req/s: %w", err)
	}
	q := h2loadRequests.FindSubmatch(out)
	if q == nil {
		return r, fmt.Errorf("%w: h2load: no \"requests:\" line", ErrNoReport)
	}
	ints := make([]int, 0, 7)
	for _, s := range q[1:] {
		n, err := strconv.Atoi(string(s))
		if err != nil {
			return r, fmt.Errorf("load: h2load requests: %w", err)
		}
		ints = append(ints, n)
	}
	r.Done, r.Succeeded, r.Failed, r.Errored, r.Timeout = ints[2], ints[3], ints[4], ints[5], ints[6]
	return r, nil
}

// GhzResult is what the benchmark reads from ghz's JSON report (-O json).
type GhzResult struct {
	Count       int
	RPS         float64
	P50         time.Duration
	P90         time.Duration
	P99         time.Duration
	Errors      int            // calls that ended in a gRPC error
	StatusCodes map[string]int // statusCodeDistribution
}

type ghzJSON struct {
	Count                  int            `json:"count"`
	RPS                    float64        `json:"rps"`
	ErrorDistribution      map[string]int `json:"errorDistribution"`
	StatusCodeDistribution map[string]int `json:"statusCodeDistribution"`
	LatencyDistribution    []struct {
		Percentage int   `json:"percentage"`
		Latency    int64 `json:"latency"` // nanoseconds
	} `json:"latencyDistribution"`
}

// ParseGhz parses ghz's JSON report and picks the 50th, 90th and 99th percentiles.
func ParseGhz(out []byte) (GhzResult, error) {
	var j ghzJSON
	if err := json.Unmarshal(out, &j); err != nil {
		return GhzResult{}, fmt.Errorf("load: ghz report: %w", err)
	}
	r := GhzResult{Count: j.Count, RPS: j.RPS, StatusCodes: j.StatusCodeDistribution}
	for _, n := range j.ErrorDistribution {
		r.Errors += n
	}
	found := 0
	for _, l := range j.LatencyDistribution {
		d := time.Duration(l.Latency)
		switch l.Percentage {
		case 50:
			r.P50, found = d, found+1
		case 90:
			r.P90, found = d, found+1
		case 99:
			r.P99, found = d, found+1
		}
	}
	if found != 3 {
		return r, fmt.Errorf("%w: ghz: latencyDistribution lacks p50/p90/p99 (count %d)", ErrNoReport, j.Count)
	}
	return r, nil
}

// ParseMetric returns the value of the first sample in a Prometheus text exposition whose
// metric name (without labels) ends with suffix, e.g. "_cache_entries".
func ParseMetric(text []byte, suffix string) (float64, error) {
	for _, line := range bytes.Split(text, []byte("\n")) {
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		name, rest, ok := bytes.Cut(line, []byte(" "))
		if !ok {
			continue
		}
		if i := bytes.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
			if j := bytes.LastIndexByte(line, '}'); j >= 0 {
				rest = bytes.TrimSpace(line[j+1:])
			}
		}
		if !bytes.HasSuffix(name, []byte(suffix)) {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 {
			continue
		}
		return strconv.ParseFloat(string(f[0]), 64)
	}
	return 0, fmt.Errorf("%w: metric *%s not found", ErrNoReport, suffix)
}
