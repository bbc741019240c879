package metrics

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flaat-extauthz/flaat-extauthz/cache"
)

// value returns the value of the series name{labels} gathered from reg, and whether it exists.
func value(t *testing.T, reg *prometheus.Registry, name string, labels ...string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join(labels, ",")
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var got []string
			for _, lp := range m.GetLabel() {
				got = append(got, lp.GetName()+"="+lp.GetValue())
			}
			if strings.Join(got, ",") != want {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.OPRequest("https://op", "userinfo", 200, 10*time.Millisecond)
	m.OPRequest("https://op", "userinfo", 200, 20*time.Millisecond)
	m.OPRequest("https://op", "jwks", 0, time.Second)
	m.OPRequest("https://op", "jwks", 42, time.Second)
	m.JWKSRefresh("https://op", nil)
	m.JWKSRefresh("https://op", errors.New("boom"))
	m.JWKSRefresh("https://op", errors.New("boom"))
	m.Reload(true, time.Unix(100, 0))
	m.Reload(false, time.Unix(200, 0))
	m.Reload(false, time.Unix(300, 0))
	m.DevSwitches(true)
	m.DevSwitchDecision()

	tests := []struct {
		name   string
		metric string
		labels []string
		want   float64
	}{
		{"op ok", "flaat_extauthz_op_requests_total", []string{"endpoint=userinfo", "issuer=https://op", "status=200"}, 2},
		{"op no reply", "flaat_extauthz_op_requests_total", []string{"endpoint=jwks", "issuer=https://op", "status=error"}, 1},
		{"op odd status", "flaat_extauthz_op_requests_total", []string{"endpoint=jwks", "issuer=https://op", "status=other"}, 1},
		{"op latency count", "flaat_extauthz_op_request_duration_seconds", []string{"endpoint=userinfo", "issuer=https://op"}, 2},
		{"jwks ok", "flaat_extauthz_jwks_refreshes_total", []string{"issuer=https://op", "result=ok"}, 1},
		{"jwks error", "flaat_extauthz_jwks_refreshes_total", []string{"issuer=https://op", "result=error"}, 2},
		{"reload ok", "flaat_extauthz_config_reloads_total", []string{"result=ok"}, 1},
		{"reload failed", "flaat_extauthz_config_reloads_total", []string{"result=failed"}, 2},
		{"last success unchanged by failures", "flaat_extauthz_config_last_reload_success_timestamp_seconds", nil, 100},
		{"dev switch gauge", "flaat_extauthz_insecure_dev_switches_enabled", nil, 1},
		{"dev switch decisions", "flaat_extauthz_insecure_dev_switch_decisions_total", nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := value(t, reg, tc.metric, tc.labels...)
			if !ok || got != tc.want {
				t.Errorf("%s%v = %v (exists %v), want %v", tc.metric, tc.labels, got, ok, tc.want)
			}
		})
	}
	m.DevSwitches(false)
	if got, _ := value(t, reg, "flaat_extauthz_insecure_dev_switches_enabled"); got != 0 {
		t.Errorf("dev switch gauge after off = %v", got)
	}
}

// TestCacheCountersSurviveReload: replacing the source keeps the old totals, so the
// exported counters never go backwards; the entries gauge follows the current source only.
func TestCacheCountersSurviveReload(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	if got, ok := value(t, reg, "flaat_extauthz_cache_hits_total"); !ok || got != 0 {
		t.Errorf("no source: hits = %v %v, want 0", got, ok)
	}
	old := cache.Stats{Hits: 5, Misses: 2, Loads: 2, Evictions: 3, Size: 7}
	m.SetCacheSource(func() cache.Stats { return old })
	if got, _ := value(t, reg, "flaat_extauthz_cache_entries"); got != 7 {
		t.Errorf("entries = %v, want 7", got)
	}
	cur := cache.Stats{Hits: 1, Misses: 1, Loads: 1, LoadErrors: 1, NegativeHits: 4, StaleHits: 2, Size: 1}
	m.SetCacheSource(func() cache.Stats { return cur })
	for name, want := range map[string]float64{
		"flaat_extauthz_cache_hits_total":          6,
		"flaat_extauthz_cache_misses_total":        3,
		"flaat_extauthz_cache_loads_total":         3,
		"flaat_extauthz_cache_load_errors_total":   1,
		"flaat_extauthz_cache_negative_hits_total": 4,
		"flaat_extauthz_cache_stale_hits_total":    2,
		"flaat_extauthz_cache_evictions_total":     3,
		"flaat_extauthz_cache_entries":             1,
	} {
		if got, ok := value(t, reg, name); !ok || got != want {
			t.Errorf("%s = %v (exists %v), want %v", name, got, ok, want)
		}
	}
}

// TestPreinitialised: labelled counters whose labels are known up front show 0 from the
// first scrape, before anything happened.
func TestPreinitialised(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.Issuers("https://a", "https://b")
	for _, tc := range []struct {
		name   string
		metric string
		labels []string
	}{
		{"reload ok", "flaat_extauthz_config_reloads_total", []string{"result=ok"}},
		{"reload failed", "flaat_extauthz_config_reloads_total", []string{"result=failed"}},
		{"jwks ok a", "flaat_extauthz_jwks_refreshes_total", []string{"issuer=https://a", "result=ok"}},
		{"jwks error b", "flaat_extauthz_jwks_refreshes_total", []string{"issuer=https://b", "result=error"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := value(t, reg, tc.metric, tc.labels...)
			if !ok || got != 0 {
				t.Errorf("%s%v = %v (exists %v), want 0", tc.metric, tc.labels, got, ok)
			}
		})
	}
	if _, ok := value(t, reg, "flaat_extauthz_jwks_refreshes_total", "issuer=https://c", "result=ok"); ok {
		t.Error("series for an issuer never named")
	}
}
