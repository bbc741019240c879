package validate

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// repoRoot is the repository root, relative to this package.
const repoRoot = "../.."

func read(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// strictJSON decodes JSON into v the way the API server's strict field validation does:
// unknown fields, wrongly cased fields and duplicate fields are errors
// (sigs.k8s.io/json matches field names case-sensitively, unlike encoding/json).
func strictJSON(js []byte, v any) error {
	strictErrs, err := kjson.UnmarshalStrict(js, v, kjson.DisallowUnknownFields, kjson.DisallowDuplicateFields)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

// strictYAML converts one YAML document to JSON (duplicate keys are errors) and decodes
// it with strictJSON.
func strictYAML(doc []byte, v any) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	return strictJSON(js, v)
}

// object is one decoded Kubernetes document.
type object struct {
	Kind, Name string
	Obj        any // a pointer to the k8s.io/api or prometheus-operator type
}

// newTyped returns an empty object of the real API type for apiVersion/kind, or nil.
func newTyped(apiVersion, kind string) any {
	switch apiVersion + "/" + kind {
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}
	case "v1/Service":
		return &corev1.Service{}
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}
	case "v1/Secret":
		return &corev1.Secret{}
	case "v1/Namespace":
		return &corev1.Namespace{}
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "autoscaling/v2/HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}
	case "networking.k8s.io/v1/NetworkPolicy":
		return &networkingv1.NetworkPolicy{}
	case "monitoring.coreos.com/v1/ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}
	case "monitoring.coreos.com/v1/PrometheusRule":
		return &monitoringv1.PrometheusRule{}
	}
	return nil
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// splitDocs splits a multi-document YAML stream, dropping empty documents.
func splitDocs(stream []byte) [][]byte {
	var out [][]byte
	for _, d := range docSeparator.Split(string(stream), -1) {
		js, err := yaml.YAMLToJSON([]byte(d))
		if err == nil && (len(bytes.TrimSpace(js)) == 0 || string(bytes.TrimSpace(js)) == "null") {
			continue
		}
		out = append(out, []byte(d))
	}
	return out
}

// decodeK8s decodes every document of stream strictly into its real API type. A kind
// this package does not know is an error too (add it to newTyped).
func decodeK8s(stream []byte) ([]object, error) {
	var out []object
	var errs []error
	for i, doc := range splitDocs(stream) {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w", i, err))
			continue
		}
		obj := newTyped(head.APIVersion, head.Kind)
		if obj == nil {
			errs = append(errs, fmt.Errorf("document %d: no Go type known for %s %s", i, head.APIVersion, head.Kind))
			continue
		}
		if err := strictYAML(doc, obj); err != nil {
			errs = append(errs, fmt.Errorf("document %d (%s %s): %w", i, head.Kind, head.Metadata.Name, err))
			continue
		}
		out = append(out, object{Kind: head.Kind, Name: head.Metadata.Name, Obj: obj})
	}
	return out, errors.Join(errs...)
}

// only returns the single object of kind in objs (nil when there is none; two fail).
func only[T any](t *testing.T, objs []object, kind string) *T {
	t.Helper()
	var found *T
	for _, o := range objs {
		if o.Kind != kind {
			continue
		}
		if found != nil {
			t.Fatalf("more than one %s", kind)
		}
		found = o.Obj.(*T)
	}
	return found
}

// TestStrictDecodingRejectsTypos: a misspelled or wrongly cased field in a real manifest
// makes decodeK8s fail (the self-test of the strictness every test here relies on).
func TestStrictDecodingRejectsTypos(t *testing.T) {
	good := string(read(t, filepath.Join(repoRoot, "examples", "kubernetes", "flaat-extauthz.yaml")))
	if _, err := decodeK8s([]byte(good)); err != nil {
		t.Fatalf("the unmodified example: %v", err)
	}
	tests := []struct{ name, old, new string }{
		{"misspelled field", "imagePullPolicy:", "imagePullPolicyy:"},
		{"wrongly cased field", "readOnlyRootFilesystem:", "readOnlyRootFileSystem:"},
		{"unknown field in a PDB", "minAvailable:", "minAvailabe:"},
		{"duplicate field", "      automountServiceAccountToken: false\n", "      automountServiceAccountToken: false\n      automountServiceAccountToken: true\n"},
		{"wrong type", "averageUtilization: 70", "averageUtilization: \"70%\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(good, tc.old) {
				t.Fatalf("the example no longer contains %q", tc.old)
			}
			if _, err := decodeK8s([]byte(strings.Replace(good, tc.old, tc.new, 1))); err == nil {
				t.Fatal("the broken manifest was accepted")
			}
		})
	}
}
