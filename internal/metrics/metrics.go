// Package metrics holds the Prometheus metrics of the flaat-extauthz process that are not
// the envoy package's own: OP requests and JWKS refreshes (an authz observer), the
// identity cache's counters, configuration reloads and the insecure development switches.
//
// It only records; it serves nothing (cmd/flaat-extauthz mounts the registry on /metrics).
package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flaat-extauthz/flaat-extauthz/cache"
)

// Namespace prefixes every metric name.
const Namespace = "flaat_extauthz"

// Metrics is the process-level metric set. Create it once per registry with New.
type Metrics struct {
	opRequests   *prometheus.CounterVec
	opLatency    *prometheus.HistogramVec
	jwksRefresh  *prometheus.CounterVec
	reloads      *prometheus.CounterVec
	reloadTime   prometheus.Gauge
	devSwitch    prometheus.Gauge
	devWarnings  prometheus.Counter
	cacheMetrics *cacheCollector
}

// New creates the metrics and registers them with reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		opRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "op_requests_total",
			Help: "Requests to OPs by issuer, endpoint (discovery, jwks, userinfo, introspection) and status (HTTP code, or \"error\" when no reply).",
		}, []string{"issuer", "endpoint", "status"}),
		opLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "op_request_duration_seconds",
			Help:    "Latency of requests to OPs by issuer and endpoint.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"issuer", "endpoint"}),
		jwksRefresh: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "jwks_refreshes_total",
			Help: "JWKS refreshes by issuer and result (ok, error).",
		}, []string{"issuer", "result"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "config_reloads_total",
			Help: "Configuration reloads (SIGHUP) by result (ok, failed). A failed reload keeps the previous configuration serving.",
		}, []string{"result"}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last configuration that was applied (start-up or reload).",
		}),
		devSwitch: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "insecure_dev_switches_enabled",
			Help: "1 when a development switch is on: DISABLE_AUTHENTICATION_* (tokens are NOT verified) or DISABLE_AUTHORIZATION_AND_ASSUME_AUTHORIZED_USER (the policy is NOT enforced). Must be 0 in production.",
		}),
		devWarnings: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "insecure_dev_switch_decisions_total",
			Help: "Decisions made up by a DISABLE_AUTHENTICATION_* switch instead of verifying a token, and policy denials DISABLE_AUTHORIZATION_AND_ASSUME_AUTHORIZED_USER turned into allows.",
		}),
		cacheMetrics: newCacheCollector(),
	}
	reg.MustRegister(m.opRequests, m.opLatency, m.jwksRefresh, m.reloads, m.reloadTime,
		m.devSwitch, m.devWarnings, m.cacheMetrics)
	// Every result from the first scrape (0 until it happens), so that rate() and
	// alerts on "failed" work before the first reload.
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("failed")
	return m
}

// Issuers shows the per-issuer counters whose labels are known from the configuration
// (JWKS refreshes by result) at 0 for each issuer, before anything happened. Call it
// for every configuration applied; series of issuers removed by a reload stay.
func (m *Metrics) Issuers(issuers ...string) {
	for _, is := range issuers {
		m.jwksRefresh.WithLabelValues(is, "ok")
		m.jwksRefresh.WithLabelValues(is, "error")
	}
}

// OPRequest records one request to an OP. status is the HTTP status code, or 0 when
// no reply was received (timeout, connection refused); it is then labelled "error".
func (m *Metrics) OPRequest(issuer, endpoint string, status int, d time.Duration) {
	s := "error"
	if status > 0 {
		s = itoa(status)
	}
	m.opRequests.WithLabelValues(issuer, endpoint, s).Inc()
	m.opLatency.WithLabelValues(issuer, endpoint).Observe(d.Seconds())
}

// JWKSRefresh records one JWKS refresh of issuer; err is nil on success.
func (m *Metrics) JWKSRefresh(issuer string, err error) {
	r := "ok"
	if err != nil {
		r = "error"
	}
	m.jwksRefresh.WithLabelValues(issuer, r).Inc()
}

// Reload records a configuration reload; ok is false when the new configuration was
// refused.
func (m *Metrics) Reload(ok bool, now time.Time) {
	if ok {
		m.reloads.WithLabelValues("ok").Inc()
		m.ConfigApplied(now)
		return
	}
	m.reloads.WithLabelValues("failed").Inc()
}

// ConfigApplied sets the time of the configuration now serving.
func (m *Metrics) ConfigApplied(now time.Time) {
	m.reloadTime.Set(float64(now.UnixNano()) / 1e9)
}

// DevSwitches sets the insecure-development-switch gauge.
func (m *Metrics) DevSwitches(on bool) {
	if on {
		m.devSwitch.Set(1)
	} else {
		m.devSwitch.Set(0)
	}
}

// DevSwitchDecision counts one decision made up by a development switch.
func (m *Metrics) DevSwitchDecision() { m.devWarnings.Inc() }

// SetCacheSource makes the cache metrics read current() from now on. When a reload
// replaces the authorizer, call it with the new one's CacheStats: the previous source's
// last counters are kept, so the exported counters never go backwards.
func (m *Metrics) SetCacheSource(current func() cache.Stats) { m.cacheMetrics.set(current) }

func itoa(n int) string {
	if n >= 100 && n < 1000 {
		return strconv.Itoa(n)
	}
	return "other"
}

// cacheCollector exports cache.Stats as Prometheus counters, summing over the
// authorizers that have served since start-up.
type cacheCollector struct {
	mu      sync.Mutex
	base    cache.Stats // totals of retired sources
	current func() cache.Stats

	hits, misses, negHits, staleHits, evictions, loads, loadErrors, size *prometheus.Desc
}

func newCacheCollector() *cacheCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "cache", name), help, nil, nil)
	}
	return &cacheCollector{
		hits:       d("hits_total", "Identity cache lookups that found a fresh verified identity."),
		misses:     d("misses_total", "Identity cache lookups that found nothing fresh and joined or started a verification."),
		negHits:    d("negative_hits_total", "Identity cache lookups that found a recently rejected token."),
		staleHits:  d("stale_hits_total", "Expired identities served because the OP failed (stale-if-error)."),
		evictions:  d("evictions_total", "Identities dropped by the LRU to respect the size bound."),
		loads:      d("loads_total", "Token verifications started by the cache."),
		loadErrors: d("load_errors_total", "Token verifications that failed."),
		size:       d("entries", "Entries held by the identity cache now."),
	}
}

func (c *cacheCollector) set(current func() cache.Stats) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.current != nil {
		old := c.current()
		c.base.Hits += old.Hits
		c.base.Misses += old.Misses
		c.base.NegativeHits += old.NegativeHits
		c.base.StaleHits += old.StaleHits
		c.base.Evictions += old.Evictions
		c.base.Loads += old.Loads
		c.base.LoadErrors += old.LoadErrors
	}
	c.current = current
}

// Describe implements prometheus.Collector.
func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.hits, c.misses, c.negHits, c.staleHits, c.evictions, c.loads, c.loadErrors, c.size} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	s := c.base
	if c.current != nil {
		cur := c.current()
		s.Hits += cur.Hits
		s.Misses += cur.Misses
		s.NegativeHits += cur.NegativeHits
		s.StaleHits += cur.StaleHits
		s.Evictions += cur.Evictions
		s.Loads += cur.Loads
		s.LoadErrors += cur.LoadErrors
		s.Size = cur.Size
	}
	c.mu.Unlock()
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(c.hits, s.Hits)
	counter(c.misses, s.Misses)
	counter(c.negHits, s.NegativeHits)
	counter(c.staleHits, s.StaleHits)
	counter(c.evictions, s.Evictions)
	counter(c.loads, s.Loads)
	counter(c.loadErrors, s.LoadErrors)
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(s.Size))
}
