package resilience

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestCollector(t *testing.T) {
	c := newClock()
	f := &fake{reply: status(500)}
	tr := New(f, WithClock(c.Now), WithFailureThreshold(2))
	get(t, tr, "http://op.example/")
	get(t, tr, "http://op.example/")
	get(t, tr, "http://op.example/") // rejected: open
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector("flaat_extauthz", tr.Stats))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	n := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			n++
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" {
					key += "/" + l.GetValue()
				}
				if l.GetName() == "host" && l.GetValue() != "op.example" {
					t.Errorf("host label %q", l.GetValue())
				}
			}
			got[key] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	want := map[string]float64{
		"flaat_extauthz_op_outbound_requests_total/failure":            2,
		"flaat_extauthz_op_outbound_requests_total/rejected_open":      1,
		"flaat_extauthz_op_outbound_requests_total/rejected_saturated": 0,
		"flaat_extauthz_op_outbound_requests_total/success":            0,
		"flaat_extauthz_op_breaker_opened_total":                       1,
		"flaat_extauthz_op_breaker_probes_total":                       0,
		"flaat_extauthz_op_breaker_state":                              2, // open
		"flaat_extauthz_op_outbound_in_flight":                         0,
		"flaat_extauthz_op_outbound_waiting":                           0,
	}
	if n != len(want) {
		t.Errorf("%d metrics, want %d: %v", n, len(want), got)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
}
