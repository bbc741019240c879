package validate

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"

	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
)

// externalMetrics are the metric names the rules use that flaat-extauthz does not export,
// with where they come from. Every other name must be in the server's own scrape.
var externalMetrics = map[string]string{
	"up":                            "Prometheus (scrape health of each target)",
	"kube_deployment_spec_replicas": "kube-state-metrics",
	"kube_deployment_status_replicas_available": "kube-state-metrics",
}

// targetLabels are added by Prometheus (or the operator's relabelling) at scrape time.
var targetLabels = map[string]bool{"job": true, "instance": true, "namespace": true, "pod": true, "service": true, "container": true, "endpoint": true}

// grafanaVars replaces the dashboard's Grafana variables with what Grafana would put in.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$job", ".*")

// promExpr is one PromQL expression and where it comes from.
type promExpr struct{ where, expr string }

func ruleExprs(t *testing.T) []promExpr {
	t.Helper()
	var spec monitoringv1.PrometheusRuleSpec
	if err := strictYAML(read(t, filepath.Join(chartDir, "files", "prometheus-rules.yaml")), &spec); err != nil {
		t.Fatalf("prometheus-rules.yaml: %v", err)
	}
	// What `promtool check rules` does: Prometheus's own rule-file loader (unknown fields,
	// durations, PromQL, label names and the annotation templates are all checked).
	path := filepath.Join(chartDir, "files", "prometheus-rules.yaml")
	if _, errs := rulefmt.Parse(read(t, path), false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler)); len(errs) > 0 {
		t.Errorf("%s: %v", path, errors.Join(errs...))
	}
	var out []promExpr
	alerts := map[string]bool{}
	for _, g := range spec.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("rule %q: want an alert with a severity, a summary and a description", r.Alert)
			}
			alerts[r.Alert] = true
			out = append(out, promExpr{"alert " + r.Alert, r.Expr.String()})
		}
	}
	// The alerts issue 13 asks for.
	for _, a := range []string{"FlaatExtauthzUnavailableRatioHigh", "FlaatExtauthzOPBreakerOpen", "FlaatExtauthzConfigReloadFailed",
		"FlaatExtauthzInsecureDevSwitchOn", "FlaatExtauthzReplicasNotReady", "FlaatExtauthzCacheHitRatioCollapsed"} {
		if !alerts[a] {
			t.Errorf("alert %s is missing", a)
		}
	}
	return out
}

func dashboardExprs(t *testing.T) []promExpr {
	t.Helper()
	var d struct {
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(read(t, filepath.Join(chartDir, "files", "grafana-dashboard.json")), &d); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	var out []promExpr
	labelValues := regexp.MustCompile(`^label_values\((\w+),\s*\w+\)$`)
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(map[string]any); ok {
			m := labelValues.FindStringSubmatch(fmt.Sprint(q["query"]))
			if m == nil {
				t.Errorf("variable %s: query %v is not label_values(metric, label)", v.Name, q["query"])
				continue
			}
			out = append(out, promExpr{"variable " + v.Name, m[1]})
		}
	}
	type panel struct {
		Title      string `json:"title"`
		Type       string `json:"type"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var walk func(raw []json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatal(err)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: datasource must be the ${datasource} variable", p.Title)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				out = append(out, promExpr{"panel " + p.Title, grafanaVars.Replace(tg.Expr)})
			}
		}
	}
	walk(d.Panels)
	return out
}

// TestMonitoringKit parses every PromQL expression of the alert rules and the dashboard
// and checks that each metric it selects, and each label it matches on, exists in a live
// scrape of a real flaat-extauthz that has answered allow, 401 and introspection checks.
func TestMonitoringKit(t *testing.T) {
	exprs := append(ruleExprs(t), dashboardExprs(t)...)
	families := liveScrape(t)

	// For the dashboard: what the issue asks it to show.
	var dash strings.Builder
	for _, e := range dashboardExprs(t) {
		dash.WriteString(e.expr + "\n")
	}
	for _, want := range []string{"flaat_extauthz_decisions_total", "flaat_extauthz_check_duration_seconds_bucket",
		"flaat_extauthz_cache_hits_total", "flaat_extauthz_cache_entries", "flaat_extauthz_op_requests_total",
		"flaat_extauthz_op_request_duration_seconds_bucket", "flaat_extauthz_op_breaker_state", "flaat_extauthz_jwks_refreshes_total",
		"flaat_extauthz_config_reloads_total", "flaat_extauthz_insecure_dev_switches_enabled"} {
		if !strings.Contains(dash.String(), want) {
			t.Errorf("the dashboard shows no %s", want)
		}
	}

	missing := map[string][]string{}
	for _, e := range exprs {
		ast, err := parser.NewParser(parser.Options{}).ParseExpr(e.expr)
		if err != nil {
			t.Errorf("%s: %v\n%s", e.where, err, e.expr)
			continue
		}
		parser.Inspect(ast, func(n parser.Node, _ []parser.Node) error {
			vs, ok := n.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
			if name == "" {
				t.Errorf("%s: selector %s names no metric", e.where, vs)
				return nil
			}
			if _, ok := externalMetrics[name]; ok {
				return nil
			}
			if !strings.HasPrefix(name, "flaat_extauthz_") {
				t.Errorf("%s: %s is neither a flaat_extauthz_ metric nor a known external one", e.where, name)
				return nil
			}
			fam, ok := families[name]
			if !ok {
				missing[name] = append(missing[name], e.where)
				return nil
			}
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName || targetLabels[m.Name] {
					continue
				}
				if !fam[m.Name] {
					t.Errorf("%s: %s has no label %q (it has %v)", e.where, name, m.Name, keys(fam))
				}
			}
			return nil
		})
	}
	for _, name := range sortedKeys(missing) {
		t.Errorf("%s is not in the live /metrics scrape (used by %s)", name, strings.Join(dedupe(missing[name]), ", "))
	}
	t.Logf("%d expressions checked against %d metric names of a live scrape", len(exprs), len(families))
}

// liveScrape builds and starts flaat-extauthz against a fake OP on loopback, makes it
// answer a few checks (allow, cached allow, no token, bad token, opaque token through
// introspection) and returns, per metric name in its /metrics (histograms expanded into
// _bucket, _sum and _count), the label names seen.
func liveScrape(t *testing.T) map[string]map[string]bool {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "flaat-extauthz")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/flaat-extauthz")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	op := oidctest.New(t)
	cfg := map[string]any{
		"server": map[string]any{"grpc_listen": "127.0.0.1:0", "http_listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0", "readiness": "eager"},
		"issuers": []any{map[string]any{"issuer": op.Issuer(), "userinfo": "optional", "introspect": "opaque",
			"client_id": op.ClientID(), "client_secret": op.ClientSecret()}},
		"verification": map[string]any{"http_timeout": "2s"},
		"policy":       map[string]any{"default": map[string]any{"authenticated": true}},
		"log":          map[string]any{"level": "info", "format": "json"},
	}
	doc, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := exec.Command(bin, "serve", "--config", cfgPath)
	stderr, err := srv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Process.Kill()
		srv.Wait()
	})
	// The start-up line names the bound addresses.
	addrs := make(chan map[string]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "flaat-extauthz serving" && !sent {
				addrs <- map[string]string{"http": fmt.Sprint(line["http"]), "admin": fmt.Sprint(line["admin"])}
				sent = true
			}
		}
	}()
	var a map[string]string
	select {
	case a = <-addrs:
	case <-time.After(30 * time.Second):
		t.Fatal("flaat-extauthz did not log its addresses within 30s")
	}
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(url, token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _ := get("http://"+a["admin"]+"/readyz", ""); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("flaat-extauthz not ready within 30s")
		}
		time.Sleep(50 * time.Millisecond) // polling a real process, bounded above
	}
	jwt := op.MintJWT(nil)
	for _, c := range []struct {
		name, token string
		want        int
	}{
		{"valid JWT", jwt, http.StatusOK},
		{"the same JWT, cached", jwt, http.StatusOK},
		{"no token", "", http.StatusUnauthorized},
		{"garbage", "not-a-token", http.StatusUnauthorized},
		{"opaque token", op.MintOpaque(nil), http.StatusOK},
	} {
		if code, body := get("http://"+a["http"]+"/resource", c.token); code != c.want {
			t.Fatalf("%s: status %d, want %d: %s", c.name, code, c.want, body)
		}
	}
	code, body := get("http://"+a["admin"]+"/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	out := map[string]map[string]bool{}
	add := func(name string, m *dto.Metric, extra ...string) {
		if out[name] == nil {
			out[name] = map[string]bool{}
		}
		for _, l := range m.GetLabel() {
			out[name][l.GetName()] = true
		}
		for _, e := range extra {
			out[name][e] = true
		}
	}
	for name, f := range fams {
		if len(f.GetMetric()) == 0 {
			out[name] = map[string]bool{}
		}
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				add(name+"_bucket", m, "le")
				add(name+"_sum", m)
				add(name+"_count", m)
			case dto.MetricType_SUMMARY:
				add(name, m, "quantile")
				add(name+"_sum", m)
				add(name+"_count", m)
			default:
				add(name, m)
			}
		}
	}
	return out
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// TestRulesRejectTypos: the rule-file check above can fail.
func TestRulesRejectTypos(t *testing.T) {
	good := string(read(t, filepath.Join(chartDir, "files", "prometheus-rules.yaml")))
	for _, tc := range []struct{ name, old, new string }{
		{"misspelled key", "for: 5m", "fro: 5m"},
		{"broken annotation template", "{{ $labels.host }}", "{{ $labels.host }"},
		{"broken PromQL", "expr: increase(", "expr: increase(("},
		{"bad duration", "for: 2m", "for: 2 minutes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(good, tc.old) {
				t.Fatalf("rules no longer contain %q", tc.old)
			}
			bad := strings.Replace(good, tc.old, tc.new, 1)
			if _, errs := rulefmt.Parse([]byte(bad), false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler)); len(errs) == 0 {
				t.Fatal("accepted")
			}
		})
	}
}
