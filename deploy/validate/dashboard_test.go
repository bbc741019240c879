package validate

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// decodeDashboard decodes a dashboard strictly with Grafana's own schema types (the
// foundation SDK, generated from Grafana's dashboard and panel schemas): unknown fields in
// the dashboard, panels, panel options and Prometheus queries are errors, and so are
// missing required ones. (The SDK decodes fieldConfig.defaults loosely.)
func decodeDashboard(data []byte) (*dashboard.Dashboard, error) {
	plugins.RegisterDefaultPlugins() // panel and query types: timeseries, stat, prometheus, …
	var d dashboard.Dashboard
	err := d.UnmarshalJSONStrict(data)
	var be cog.BuildErrors
	if errors.As(err, &be) && len(be) == 0 {
		err = nil // the SDK returns an empty error list on success
	}
	return &d, err
}

// TestDashboardSchema: the dashboard fits Grafana's schema, and typos are caught.
func TestDashboardSchema(t *testing.T) {
	path := filepath.Join(chartDir, "files", "grafana-dashboard.json")
	good := string(read(t, path))
	d, err := decodeDashboard([]byte(good))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if d.Uid == nil || *d.Uid != "flaat-extauthz" || len(d.Panels) == 0 {
		t.Errorf("uid %v, %d panels: want uid flaat-extauthz and panels", d.Uid, len(d.Panels))
	}
	for _, tc := range []struct{ old, new string }{
		{`"gridPos"`, `"gridpos"`},
		{`"legendFormat"`, `"legendFormatt"`},
		{`"showLegend"`, `"showLegends"`},
		{`"schemaVersion"`, `"schemaversion"`},
	} {
		t.Run(tc.new, func(t *testing.T) {
			if !strings.Contains(good, tc.old) {
				t.Fatalf("dashboard has no %s", tc.old)
			}
			if _, err := decodeDashboard([]byte(strings.Replace(good, tc.old, tc.new, 1))); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
