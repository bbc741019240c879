package envoy

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
)

// Metrics are the Prometheus metrics of decisions:
//
//	flaat_extauthz_decisions_total{outcome,route,reason}   counter
//	flaat_extauthz_check_duration_seconds{transport}        histogram (grpc|http)
//	flaat_extauthz_checks_in_flight                         gauge
//	flaat_extauthz_authorizer_panics_total                  counter
//	flaat_extauthz_backchannel_logout_received_total        counter
//	flaat_extauthz_backchannel_logout_total{result}         counter (accepted|refused|error)
//	flaat_extauthz_backchannel_logout_evictions_total       counter
//
// route is the route or access-level name from the configuration ("none" when no
// route was selected), so its cardinality is bounded by the configuration. reason is
// "" for most decisions and one of the fixed authz.Reason* codes ("ambiguous_path",
// "bad_path", "forwarded_headers") for requests that cannot be judged. A nil
// *Metrics records nothing. Counters are cached per route, so recording a decision
// does no label hashing after the first use of a route.
type Metrics struct {
	decisions *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	inFlight  prometheus.Gauge
	panics    prometheus.Counter
	durGRPC   prometheus.Observer
	durHTTP   prometheus.Observer
	byRoute   sync.Map // route → *routeCounters

	logoutReceived  prometheus.Counter
	logoutResults   *prometheus.CounterVec
	logoutEvictions prometheus.Counter
}

type routeCounters [authz.NumOutcomes]prometheus.Counter

// checkBuckets cover cached answers (10 µs steps up to 100 µs: a warm check takes
// tens of µs, and the latency goal is a p99 of at most 100 µs) up to slow OPs; Envoy's
// default ext_authz timeout is 200 ms.
var checkBuckets = []float64{.00001, .000025, .00005, .000075, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .2, .5, 1, 2.5}

// NewMetrics creates the metrics and registers them with reg (nil: not registered,
// e.g. in tests). It fails if reg already holds metrics of the same names.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flaat_extauthz_decisions_total",
			Help: "Authorization decisions by outcome (allow, no_token, invalid_token, forbidden, unavailable, bad_request, invalid_dpop_proof, cancelled), route and reason (ambiguous_path, bad_path, forwarded_headers or empty).",
		}, []string{"outcome", "route", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flaat_extauthz_check_duration_seconds",
			Help:    "Time to answer one check, by transport (grpc, http).",
			Buckets: checkBuckets,
		}, []string{"transport"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flaat_extauthz_checks_in_flight",
			Help: "Checks being answered right now.",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flaat_extauthz_authorizer_panics_total",
			Help: "Checks answered 503 because the authorizer panicked.",
		}),
	}
	m.logoutReceived = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flaat_extauthz_backchannel_logout_received_total",
		Help: "Requests received by the back-channel logout receiver.",
	})
	m.logoutResults = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flaat_extauthz_backchannel_logout_total",
		Help: "Back-channel logout requests by result: accepted, refused (400: bad request or logout token), error (503: OP unreachable).",
	}, []string{"result"})
	m.logoutEvictions = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flaat_extauthz_backchannel_logout_evictions_total",
		Help: "Cached identities evicted by accepted back-channel logout tokens.",
	})
	for _, r := range []string{"accepted", "refused", "error"} {
		m.logoutResults.WithLabelValues(r)
	}
	m.durGRPC = m.duration.WithLabelValues(TransportGRPC)
	m.durHTTP = m.duration.WithLabelValues(TransportHTTP)
	if reg != nil {
		var errs []error
		for _, c := range []prometheus.Collector{m.decisions, m.duration, m.inFlight, m.panics,
			m.logoutReceived, m.logoutResults, m.logoutEvictions} {
			errs = append(errs, reg.Register(c))
		}
		if err := errors.Join(errs...); err != nil {
			return nil, errors.Join(errors.New("envoy: register metrics"), err)
		}
	}
	return m, nil
}

func (m *Metrics) begin() {
	if m != nil {
		m.inFlight.Inc()
	}
}

func (m *Metrics) panicked() {
	if m != nil {
		m.panics.Inc()
	}
}

// end records one finished check; reason is Decision.ReasonCode.
func (m *Metrics) end(transport, route string, o authz.Outcome, d time.Duration, reason string) {
	if m == nil {
		return
	}
	m.inFlight.Dec()
	if transport == TransportHTTP {
		m.durHTTP.Observe(d.Seconds())
	} else {
		m.durGRPC.Observe(d.Seconds())
	}
	if route == "" {
		route = "none"
	}
	if !o.Valid() {
		o = authz.OutcomeUnavailable
	}
	if reason != "" { // rare (refused requests): no cache
		m.decisions.WithLabelValues(o.String(), route, reason).Inc()
		return
	}
	m.route(route)[o].Inc()
}

// route returns the counters (reason "") of route ("" is "none"), creating them on
// first use.
func (m *Metrics) route(route string) *routeCounters {
	if route == "" {
		route = "none"
	}
	rc, ok := m.byRoute.Load(route)
	if !ok {
		c := new(routeCounters)
		for i := range c {
			c[i] = m.decisions.WithLabelValues(authz.Outcome(i).String(), route, "")
		}
		rc, _ = m.byRoute.LoadOrStore(route, c)
	}
	return rc.(*routeCounters)
}

// Routes shows flaat_extauthz_decisions_total{reason=""} at 0 for every outcome of
// each named route and of "none" (no route selected) before the first check, so that
// dashboards and ratio alerts have every series from the first scrape (policy.Engine's
// SelectionNames lists a configuration's names). Series with a reason (refused
// requests) appear when they happen. A nil *Metrics does nothing.
func (m *Metrics) Routes(names ...string) {
	if m == nil {
		return
	}
	m.route("none")
	for _, n := range names {
		m.route(n)
	}
}

// logout records one back-channel logout request: result is "" (received, nothing
// decided yet), "accepted", "refused" or "error".
func (m *Metrics) logout(result string, evicted int) {
	if m == nil {
		return
	}
	if result == "" {
		m.logoutReceived.Inc()
		return
	}
	m.logoutResults.WithLabelValues(result).Inc()
	if evicted > 0 {
		m.logoutEvictions.Add(float64(evicted))
	}
}
