package validate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/flaat-extauthz/flaat-extauthz/internal/config"
)

var chartDir = filepath.Join(repoRoot, "deploy", "helm", "flaat-extauthz")

// kubeVersion is the cluster version helm lint/template assume (the chart needs >= 1.27).
const kubeVersion = "1.33.0"

// helmBin is the helm that .ci/helm.sh installs (pinned, from the Go module proxy).
func helmBin(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(repoRoot, "bin", "helm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("helm is not installed at %s: run `bash .ci/helm.sh` (make deploy-check does): %v", p, err)
	}
	return p
}

// helm runs the helm binary with a time bound and returns stdout and stderr.
func helm(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helmBin(t), args...)
	// Keep helm away from the user's kubeconfig, repositories and caches.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CACHE_HOME="+home, "XDG_CONFIG_HOME="+home,
		"XDG_DATA_HOME="+home, "KUBECONFIG="+filepath.Join(home, "none"))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// valuesFiles are the chart's ci/*-values.yaml files (helm's chart-testing convention).
func valuesFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("%d values files in %s/ci, want at least 3", len(files), chartDir)
	}
	return files
}

// render runs helm template with the values file and extra arguments.
func render(t *testing.T, values string, extra ...string) (string, error) {
	t.Helper()
	args := append([]string{"template", "rel", chartDir, "--namespace", "authz", "--kube-version", kubeVersion, "-f", values}, extra...)
	out, errOut, err := helm(t, args...)
	if err != nil {
		return "", &helmError{err: err, stderr: errOut}
	}
	return out, nil
}

type helmError struct {
	err    error
	stderr string
}

func (e *helmError) Error() string { return e.err.Error() + ": " + e.stderr }

// TestHelmLint: helm lint --strict passes with every values file.
func TestHelmLint(t *testing.T) {
	for _, vf := range valuesFiles(t) {
		t.Run(filepath.Base(vf), func(t *testing.T) {
			out, errOut, err := helm(t, "lint", "--strict", "--kube-version", kubeVersion, "-f", vf, chartDir)
			if err != nil {
				t.Fatalf("helm lint: %v\n%s%s", err, out, errOut)
			}
		})
	}
}

// TestHelmTemplate renders the chart with every values file, decodes every document
// strictly into the real API types, and checks that the documents fit together and
// keep the chart's promises (hardening, probes, HPA vs replicas, secrets, checksum).
func TestHelmTemplate(t *testing.T) {
	for _, vf := range valuesFiles(t) {
		t.Run(filepath.Base(vf), func(t *testing.T) {
			out, err := render(t, vf)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := decodeK8s([]byte(out))
			if err != nil {
				t.Fatalf("rendered manifests: %v", err)
			}
			var values struct {
				ClientSecrets struct {
					ExistingSecret string `json:"existingSecret"`
				} `json:"clientSecrets"`
				RollOnConfigChange *bool `json:"rollOnConfigChange"`
			}
			if err := yaml.Unmarshal(read(t, vf), &values); err != nil {
				t.Fatal(err)
			}
			checkChart(t, objs, values.ClientSecrets.ExistingSecret, values.RollOnConfigChange == nil || *values.RollOnConfigChange)
		})
	}
}

func checkChart(t *testing.T, objs []object, existingSecret string, rolls bool) {
	dep := only[appsv1.Deployment](t, objs, "Deployment")
	if dep == nil {
		t.Fatal("no Deployment")
	}
	var cm *corev1.ConfigMap // the configuration (another one may hold the dashboard)
	for _, o := range objs {
		if c, ok := o.Obj.(*corev1.ConfigMap); ok && c.Name == dep.Name {
			cm = c
		}
	}
	if cm == nil {
		t.Fatalf("no ConfigMap %s", dep.Name)
	}
	pod := dep.Spec.Template
	podLabels := pod.Labels
	selects := func(what string, sel map[string]string) {
		t.Helper()
		if len(sel) == 0 {
			t.Errorf("%s: empty selector", what)
		}
		for k, v := range sel {
			if podLabels[k] != v {
				t.Errorf("%s: selector %s=%s does not select the pods", what, k, v)
			}
		}
	}
	selects("Deployment", dep.Spec.Selector.MatchLabels)

	// The configuration passes the server's own validation; its ports are the container's.
	cfgText, ok := cm.Data["config.yaml"]
	if !ok {
		t.Fatal("ConfigMap has no config.yaml")
	}
	f, err := config.Parse([]byte(cfgText))
	if err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	if err := f.Validate(); err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for name, addr := range map[string]string{"grpc": f.Server.GRPCListen, "http": f.Server.HTTPListen, "admin": f.Server.AdminListen} {
		if want := ":" + strconv.Itoa(int(ports[name])); addr != want {
			t.Errorf("server %s listen %q, container port %s", name, addr, want)
		}
	}

	// Image: set by the user, never :latest.
	if c.Image == "" || strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image, ":") && !strings.Contains(c.Image, "@") {
		t.Errorf("image %q: want an exact tag or a digest", c.Image)
	}

	// replicas XOR HPA.
	hpa := only[autoscalingv2.HorizontalPodAutoscaler](t, objs, "HorizontalPodAutoscaler")
	switch {
	case hpa != nil && dep.Spec.Replicas != nil:
		t.Errorf("the Deployment sets replicas (%d) beside an HPA: every upgrade would reset the HPA's count", *dep.Spec.Replicas)
	case hpa == nil && dep.Spec.Replicas == nil:
		t.Error("no HPA and no replicas")
	case hpa != nil && (hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != dep.Name):
		t.Errorf("HPA targets %s %s, want Deployment %s", hpa.Spec.ScaleTargetRef.Kind, hpa.Spec.ScaleTargetRef.Name, dep.Name)
	}

	// Hardening.
	psc, sc := pod.Spec.SecurityContext, c.SecurityContext
	if psc == nil || sc == nil {
		t.Fatal("pod and container securityContext are required")
	}
	isTrue := func(b *bool) bool { return b != nil && *b }
	isFalse := func(b *bool) bool { return b != nil && !*b }
	if !isTrue(psc.RunAsNonRoot) || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("pod securityContext: runAsNonRoot %v, runAsUser %v: want non-root", psc.RunAsNonRoot, psc.RunAsUser)
	}
	if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccompProfile %v, want RuntimeDefault", psc.SeccompProfile)
	}
	if !isTrue(sc.ReadOnlyRootFilesystem) || !isFalse(sc.AllowPrivilegeEscalation) || isTrue(sc.Privileged) {
		t.Errorf("container securityContext: readOnlyRootFilesystem %v, allowPrivilegeEscalation %v, privileged %v",
			sc.ReadOnlyRootFilesystem, sc.AllowPrivilegeEscalation, sc.Privileged)
	}
	if sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0 {
		t.Errorf("capabilities %v, want drop [ALL] and nothing added", sc.Capabilities)
	}
	if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken must be false (the server never calls the Kubernetes API)")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %v: want cpu and memory requests and a memory limit", c.Resources)
	}

	// Probes: readiness is gRPC health on the gRPC port or GET /readyz on admin; liveness
	// GET /healthz on admin.
	rp, lp := c.ReadinessProbe, c.LivenessProbe
	switch {
	case rp == nil:
		t.Error("no readiness probe")
	case rp.GRPC != nil:
		if rp.GRPC.Port != ports["grpc"] || (rp.GRPC.Service != nil && *rp.GRPC.Service != "") {
			t.Errorf("readiness gRPC probe on port %d service %v, want the gRPC port %d and the server's overall health", rp.GRPC.Port, rp.GRPC.Service, ports["grpc"])
		}
	case rp.HTTPGet != nil:
		if rp.HTTPGet.Path != "/readyz" || rp.HTTPGet.Port.String() != "admin" {
			t.Errorf("readiness GET %s%s, want admin /readyz", rp.HTTPGet.Port.String(), rp.HTTPGet.Path)
		}
	default:
		t.Error("readiness probe must be grpc or httpGet")
	}
	if lp == nil || lp.HTTPGet == nil || lp.HTTPGet.Path != "/healthz" || lp.HTTPGet.Port.String() != "admin" {
		t.Errorf("liveness probe %v: want GET admin /healthz", lp)
	}

	// The config file and the client secrets are mounted where the server reads them.
	mounts := map[string]string{} // volume name → mount path
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
		if !m.ReadOnly {
			t.Errorf("volume %s is mounted read-write", m.Name)
		}
	}
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		vols[v.Name] = v
	}
	cfgArg := ""
	for i, a := range c.Args {
		if a == "--config" && i+1 < len(c.Args) {
			cfgArg = c.Args[i+1]
		}
	}
	if v, ok := vols["config"]; !ok || v.ConfigMap == nil || v.ConfigMap.Name != cm.Name || cfgArg != filepath.Join(mounts["config"], "config.yaml") {
		t.Errorf("--config %q is not config.yaml of ConfigMap %s mounted at %s", cfgArg, cm.Name, mounts["config"])
	}
	for i, is := range f.Issuers {
		if is.ClientSecret != "" {
			t.Errorf("issuers[%d]: a client secret is written into the ConfigMap", i)
		}
		if is.ClientSecretFile == "" {
			continue
		}
		sv, ok := vols["client-secrets"]
		if !ok || sv.Secret == nil || sv.Secret.SecretName != existingSecret || existingSecret == "" {
			t.Errorf("issuers[%d].client_secret_file %s, but Secret %q is not mounted", i, is.ClientSecretFile, existingSecret)
			continue
		}
		if filepath.Dir(is.ClientSecretFile) != mounts["client-secrets"] {
			t.Errorf("issuers[%d].client_secret_file %s is not in the mounted Secret %s", i, is.ClientSecretFile, mounts["client-secrets"])
		}
	}

	// A changed configuration rolls the pods (unless the user chose SIGHUP reloads).
	sum := sha256.Sum256([]byte(strings.TrimSuffix(cfgText, "\n")))
	got, has := pod.Annotations["checksum/config"]
	switch {
	case rolls && got != hex.EncodeToString(sum[:]):
		t.Errorf("checksum/config %q is not the sha256 of the ConfigMap's config.yaml (%x)", got, sum)
	case !rolls && has:
		t.Error("rollOnConfigChange is false but the checksum annotation is set")
	}

	// Services: the main one exposes gRPC and HTTP only; admin only on the metrics one.
	for _, o := range objs {
		if o.Kind != "Service" {
			continue
		}
		svc := o.Obj.(*corev1.Service)
		selects("Service "+svc.Name, svc.Spec.Selector)
		names := map[string]bool{}
		for _, p := range svc.Spec.Ports {
			names[p.Name] = true
			if p.TargetPort.String() != p.Name || p.Port != ports[p.Name] {
				t.Errorf("Service %s port %s: %d → %s, want the container port of that name", svc.Name, p.Name, p.Port, p.TargetPort.String())
			}
		}
		isAdmin := svc.Labels["app.kubernetes.io/component"] == "metrics"
		if isAdmin != names["admin"] || (isAdmin && len(names) != 1) || (!isAdmin && !(names["grpc"] && names["http"])) {
			t.Errorf("Service %s ports %v: the main Service carries grpc and http, only the metrics Service carries admin", svc.Name, names)
		}
	}

	if pdb := only[policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget"); pdb != nil {
		selects("PodDisruptionBudget", pdb.Spec.Selector.MatchLabels)
		if pdb.Spec.MinAvailable == nil && pdb.Spec.MaxUnavailable == nil {
			t.Error("PDB without minAvailable or maxUnavailable")
		}
		min := 0
		if hpa != nil && hpa.Spec.MinReplicas != nil {
			min = int(*hpa.Spec.MinReplicas)
		} else if dep.Spec.Replicas != nil {
			min = int(*dep.Spec.Replicas)
		}
		if pdb.Spec.MinAvailable != nil && pdb.Spec.MinAvailable.IntValue() >= min {
			t.Errorf("PDB minAvailable %s with at least %d replicas: no node could ever be drained", pdb.Spec.MinAvailable.String(), min)
		}
	}

	if np := only[networkingv1.NetworkPolicy](t, objs, "NetworkPolicy"); np != nil {
		selects("NetworkPolicy", np.Spec.PodSelector.MatchLabels)
		if len(np.Spec.PolicyTypes) != 1 || np.Spec.PolicyTypes[0] != networkingv1.PolicyTypeIngress {
			t.Errorf("policyTypes %v, want [Ingress]", np.Spec.PolicyTypes)
		}
		for i, r := range np.Spec.Ingress {
			if len(r.From) == 0 {
				t.Errorf("ingress rule %d allows everybody", i)
			}
			var named []string
			for _, p := range r.Ports {
				named = append(named, p.Port.String())
			}
			switch strings.Join(named, ",") {
			case "grpc,http", "admin":
			default:
				t.Errorf("ingress rule %d opens %v: want grpc+http (proxies) or admin (monitoring) rules", i, named)
			}
		}
	}

	sm := only[monitoringv1.ServiceMonitor](t, objs, "ServiceMonitor")
	if sm != nil {
		var adminSvc *corev1.Service
		for _, o := range objs {
			if s, ok := o.Obj.(*corev1.Service); ok && s.Labels["app.kubernetes.io/component"] == "metrics" {
				adminSvc = s
			}
		}
		if adminSvc == nil {
			t.Fatal("ServiceMonitor without the metrics Service")
		}
		for k, v := range sm.Spec.Selector.MatchLabels {
			if adminSvc.Labels[k] != v {
				t.Errorf("ServiceMonitor selector %s=%s does not select Service %s", k, v, adminSvc.Name)
			}
		}
		if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "admin" || sm.Spec.Endpoints[0].Path != "/metrics" {
			t.Errorf("ServiceMonitor endpoints %+v, want port admin path /metrics", sm.Spec.Endpoints)
		}
	}
	if pr := only[monitoringv1.PrometheusRule](t, objs, "PrometheusRule"); pr != nil {
		var file monitoringv1.PrometheusRuleSpec
		if err := strictYAML(read(t, filepath.Join(chartDir, "files", "prometheus-rules.yaml")), &file); err != nil {
			t.Fatal(err)
		}
		if len(pr.Spec.Groups) != len(file.Groups) || len(pr.Spec.Groups[0].Rules) != len(file.Groups[0].Rules) {
			t.Errorf("the PrometheusRule does not carry files/prometheus-rules.yaml")
		}
	}
}

// TestHelmRefuses: values that would deploy something unsafe or broken make helm fail
// with a message that says what to do.
func TestHelmRefuses(t *testing.T) {
	minimal := filepath.Join(chartDir, "ci", "minimal-values.yaml")
	tests := []struct {
		name    string
		set     []string
		wantErr string
	}{
		{"latest tag", []string{"--set", "image.tag=latest"}, "latest is refused"},
		{"no image", []string{"--set", "image.repository="}, "image.repository is required"},
		{"no issuers", []string{"--set", "config.issuers=null"}, "at least one trusted issuer"},
		{"listen address in config", []string{"--set", "config.server.grpc_listen=:1"}, "set ports.* instead"},
		{"secret key without Secret", []string{"--set", "config.issuers[0].issuer=https://op", "--set", "config.issuers[0].client_id=c", "--set", "config.issuers[0].clientSecretKey=k"}, "needs clientSecrets.existingSecret"},
		{"unknown probe type", []string{"--set", "probes.readiness.type=tcp"}, "must be grpc or http"},
		{"network policy without proxies", []string{"--set", "networkPolicy.enabled=true"}, "networkPolicy.proxies"},
		{"misspelled value", []string{"--set", "autoscaling.enabeld=true"}, "enabeld"},
		{"PDB that blocks every drain", []string{"--set", "replicaCount=1"}, "no node could ever be drained"},
		{"PDB that blocks every drain with the HPA", []string{"--set", "autoscaling.enabled=true", "--set", "autoscaling.minReplicas=1"}, "no node could ever be drained"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t, minimal, tc.set...)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("helm template = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestHelmRenderingRejectsTypos: the strict decoding of rendered output catches a typo
// that a template could introduce (checked on real rendered output).
func TestHelmRenderingRejectsTypos(t *testing.T) {
	out, err := render(t, filepath.Join(chartDir, "ci", "production-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ old, new string }{
		{"imagePullPolicy:", "imagePullPolicyy:"},
		{"readOnlyRootFilesystem:", "readOnlyRootFileSystem:"},
		{"scrapeTimeout:", "scrapeTimeOut:"},
		{"averageUtilization:", "averageutilization:"},
	} {
		t.Run(tc.new, func(t *testing.T) {
			if !strings.Contains(out, tc.old) {
				t.Fatalf("rendered output has no %q", tc.old)
			}
			if _, err := decodeK8s([]byte(strings.Replace(out, tc.old, tc.new, 1))); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
