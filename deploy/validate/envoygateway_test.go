package validate

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	egv1a1 "github.com/envoyproxy/gateway/api/v1alpha1"
	gwapiv1b1 "sigs.k8s.io/gateway-api/apis/v1beta1"
	"sigs.k8s.io/yaml"
)

// decodeEnvoyGateway decodes the Envoy Gateway example strictly into its Go types.
func decodeEnvoyGateway(data []byte) (*egv1a1.SecurityPolicy, *gwapiv1b1.ReferenceGrant, error) {
	var sp *egv1a1.SecurityPolicy
	var rg *gwapiv1b1.ReferenceGrant
	for _, doc := range splitDocs(data) {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			return nil, nil, err
		}
		var dst any
		switch head.APIVersion + "/" + head.Kind {
		case "gateway.envoyproxy.io/v1alpha1/SecurityPolicy":
			sp = &egv1a1.SecurityPolicy{}
			dst = sp
		case "gateway.networking.k8s.io/v1beta1/ReferenceGrant":
			rg = &gwapiv1b1.ReferenceGrant{}
			dst = rg
		default:
			return nil, nil, fmt.Errorf("no Go type known for %s %s", head.APIVersion, head.Kind)
		}
		if err := strictYAML(doc, dst); err != nil {
			return nil, nil, err
		}
	}
	return sp, rg, nil
}

// TestEnvoyGatewayExample: the SecurityPolicy calls flaat-extauthz's gRPC port, fails
// closed with a timeout above the OP timeout, and the ReferenceGrant allows exactly that
// cross-namespace reference; misspelled keys fail.
func TestEnvoyGatewayExample(t *testing.T) {
	path := filepath.Join(examplesDir, "envoy-gateway", "security-policy.yaml")
	good := string(read(t, path))
	sp, rg, err := decodeEnvoyGateway([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if sp == nil || rg == nil {
		t.Fatal("want a SecurityPolicy and a ReferenceGrant")
	}
	ea := sp.Spec.ExtAuth
	if ea == nil || ea.GRPC == nil || len(ea.GRPC.BackendRefs) != 1 {
		t.Fatalf("extAuth %+v: want one gRPC backend", ea)
	}
	ref := ea.GRPC.BackendRefs[0]
	if ref.Port == nil || *ref.Port != 9001 || ref.Namespace == nil {
		t.Errorf("backendRef %+v: want port 9001 in the flaat-extauthz namespace", ref)
	}
	if ea.FailOpen == nil || *ea.FailOpen || ea.Timeout == nil || *ea.Timeout != "3s" {
		t.Errorf("failOpen %v timeout %v: want false and 3s", ea.FailOpen, ea.Timeout)
	}
	if rg.Namespace != string(*ref.Namespace) || len(rg.Spec.From) != 1 || string(rg.Spec.From[0].Namespace) != sp.Namespace ||
		string(rg.Spec.From[0].Kind) != "SecurityPolicy" || len(rg.Spec.To) != 1 || rg.Spec.To[0].Name == nil || string(*rg.Spec.To[0].Name) != string(ref.Name) {
		t.Errorf("ReferenceGrant %+v does not grant exactly this SecurityPolicy → Service reference", rg.Spec)
	}
	for _, tc := range []struct{ old, new string }{
		{"failOpen:", "failOpne:"},
		{"extAuth:", "extauth:"},
		{"backendRefs:", "backendRefz:"},
		{"namespace: demo\n  to:", "namespaces: demo\n  to:"},
	} {
		t.Run(tc.new, func(t *testing.T) {
			if !strings.Contains(good, tc.old) {
				t.Fatalf("example no longer contains %q", tc.old)
			}
			if _, _, err := decodeEnvoyGateway([]byte(strings.Replace(good, tc.old, tc.new, 1))); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
