package resilience

import (
	"github.com/prometheus/client_golang/prometheus"
)

// NewCollector exports the counters that stats returns (Transport.Stats, or
// authz.Authorizer.OPStats of the configuration that serves now: it is called at every
// scrape) as Prometheus metrics, labelled by OP host (host[:port]; its cardinality is
// bounded by the configured OPs):
//
//	<ns>_op_outbound_requests_total{host,result}   counter; result: success, failure,
//	                                               rejected_open, rejected_saturated
//	<ns>_op_breaker_opened_total{host}             counter
//	<ns>_op_breaker_probes_total{host}             counter
//	<ns>_op_breaker_state{host}                    gauge: 0 closed, 1 half-open, 2 open
//	<ns>_op_outbound_in_flight{host}               gauge
//	<ns>_op_outbound_waiting{host}                 gauge
//
// Register it once: reg.MustRegister(resilience.NewCollector("flaat_extauthz", tr.Stats)).
func NewCollector(namespace string, stats func() map[string]Stats) prometheus.Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, append([]string{"host"}, labels...), nil)
	}
	return &collector{
		stats:    stats,
		requests: d("op_outbound_requests_total", "Outbound requests to OPs by host and result (success, failure, rejected_open, rejected_saturated).", "result"),
		opened:   d("op_breaker_opened_total", "Times the circuit breaker of an OP host opened."),
		probes:   d("op_breaker_probes_total", "Half-open probe requests sent to an OP host."),
		state:    d("op_breaker_state", "Circuit breaker state per OP host: 0 closed, 1 half-open, 2 open."),
		inFlight: d("op_outbound_in_flight", "Outbound requests to an OP host in flight now."),
		waiting:  d("op_outbound_waiting", "Outbound requests waiting for a concurrency slot now."),
	}
}

type collector struct {
	stats                                              func() map[string]Stats
	requests, opened, probes, state, inFlight, waiting *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.requests, c.opened, c.probes, c.state, c.inFlight, c.waiting} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for host, s := range c.stats() {
		for _, r := range []struct {
			result string
			v      int64
		}{{"success", s.Successes}, {"failure", s.Failures}, {"rejected_open", s.RejectedOpen}, {"rejected_saturated", s.RejectedSaturated}} {
			ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(r.v), host, r.result)
		}
		ch <- prometheus.MustNewConstMetric(c.opened, prometheus.CounterValue, float64(s.Opened), host)
		ch <- prometheus.MustNewConstMetric(c.probes, prometheus.CounterValue, float64(s.Probes), host)
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, float64(s.State), host)
		ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(s.InFlight), host)
		ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.GaugeValue, float64(s.Waiting), host)
	}
}
