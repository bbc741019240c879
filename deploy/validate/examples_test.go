package validate

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	securityv1beta1 "istio.io/api/security/v1beta1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flaat-extauthz/flaat-extauthz/envoy"
	"github.com/flaat-extauthz/flaat-extauthz/internal/config"
)

var examplesDir = filepath.Join(repoRoot, "examples")

// kubernetesExample decodes examples/kubernetes strictly (one file, every document).
func kubernetesExample(t *testing.T) []object {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(examplesDir, "kubernetes", "*.yaml"))
	if err != nil || len(files) != 1 {
		t.Fatalf("want one manifest file in examples/kubernetes: %v %v", files, err)
	}
	objs, err := decodeK8s(read(t, files[0]))
	if err != nil {
		t.Fatalf("%s: %v", files[0], err)
	}
	return objs
}

// TestKubernetesExample: every document of examples/kubernetes decodes strictly into its
// k8s.io/api type; together they keep the promises the Helm chart keeps (checkChart:
// hardening, probes, no replicas beside the HPA, ports, selectors, mounted config that
// passes the server's validation), and the ports are the server's defaults.
func TestKubernetesExample(t *testing.T) {
	objs := kubernetesExample(t)
	kinds := map[string]bool{}
	for _, o := range objs {
		kinds[o.Kind] = true
	}
	for _, k := range []string{"ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"} {
		if !kinds[k] {
			t.Errorf("no %s", k)
		}
	}
	checkChart(t, objs, "", false)
	dep := only[appsv1.Deployment](t, objs, "Deployment")
	for _, p := range dep.Spec.Template.Spec.Containers[0].Ports {
		want := map[string]string{"grpc": envoy.DefaultGRPCListen, "http": envoy.DefaultHTTPListen, "admin": envoy.DefaultAdminListen}[p.Name]
		if want != fmt.Sprintf(":%d", p.ContainerPort) {
			t.Errorf("container port %s = %d, server default %s", p.Name, p.ContainerPort, want)
		}
	}
}

// istioObject is the Kubernetes envelope of an Istio resource: decoded strictly, with
// the spec kept for protojson.
type istioObject struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       json.RawMessage   `json:"spec"`
}

// istioOperatorSpec is the part of IstioOperator's spec the example uses. The operator
// API (istio.io/istio/operator/pkg/apis) lives in the whole istio module; only meshConfig
// is set here, and it is decoded into istio.io/api's MeshConfig below, so a strict
// envelope with just that key rejects any other (misspelled) key.
type istioOperatorSpec struct {
	MeshConfig json.RawMessage `json:"meshConfig"`
}

// strictProto decodes JSON into m with protojson, unknown fields being errors.
func strictProto(js []byte, m proto.Message) error {
	return protojson.UnmarshalOptions{DiscardUnknown: false}.Unmarshal(js, m)
}

// decodeIstio decodes every document of an Istio example strictly: the envelope with
// sigs.k8s.io/json, AuthorizationPolicy specs and IstioOperator meshConfig with
// protojson into istio.io/api's messages.
func decodeIstio(data []byte) (policies []*securityv1beta1.AuthorizationPolicy, meshes []*meshv1alpha1.MeshConfig, err error) {
	for i, doc := range splitDocs(data) {
		var o istioObject
		if err := strictYAML(doc, &o); err != nil {
			return nil, nil, fmt.Errorf("document %d: %w", i, err)
		}
		switch o.APIVersion + "/" + o.Kind {
		case "security.istio.io/v1/AuthorizationPolicy", "security.istio.io/v1beta1/AuthorizationPolicy":
			var ap securityv1beta1.AuthorizationPolicy
			if err := strictProto(o.Spec, &ap); err != nil {
				return nil, nil, fmt.Errorf("document %d (AuthorizationPolicy %s): %w", i, o.Metadata.Name, err)
			}
			policies = append(policies, &ap)
		case "install.istio.io/v1alpha1/IstioOperator":
			var spec istioOperatorSpec
			if err := strictJSON(o.Spec, &spec); err != nil {
				return nil, nil, fmt.Errorf("document %d (IstioOperator %s): %w", i, o.Metadata.Name, err)
			}
			var mc meshv1alpha1.MeshConfig
			if err := strictProto(spec.MeshConfig, &mc); err != nil {
				return nil, nil, fmt.Errorf("document %d (IstioOperator %s) meshConfig: %w", i, o.Metadata.Name, err)
			}
			meshes = append(meshes, &mc)
		default:
			return nil, nil, fmt.Errorf("document %d: no Go type known for %s %s", i, o.APIVersion, o.Kind)
		}
	}
	return policies, meshes, nil
}

// TestIstioExampleStrict decodes examples/istio into istio.io/api's types and checks the
// provider and the policy agree; misspelled keys are rejected.
func TestIstioExampleStrict(t *testing.T) {
	var all []byte
	files, _ := filepath.Glob(filepath.Join(examplesDir, "istio", "*.yaml"))
	for _, f := range files {
		all = append(all, read(t, f)...)
		all = append(all, "\n---\n"...)
	}
	aps, meshes, err := decodeIstio(all)
	if err != nil {
		t.Fatal(err)
	}
	if len(aps) != 1 || len(meshes) != 1 || len(meshes[0].GetExtensionProviders()) != 1 {
		t.Fatalf("want one AuthorizationPolicy and one mesh config with one provider, got %d, %d", len(aps), len(meshes))
	}
	prov := meshes[0].GetExtensionProviders()[0]
	g := prov.GetEnvoyExtAuthzGrpc()
	if g == nil || g.GetFailOpen() || g.GetStatusOnError() != "503" {
		t.Fatalf("provider %v: want envoyExtAuthzGrpc, failOpen false, statusOnError 503", prov)
	}
	ap := aps[0]
	if ap.GetAction() != securityv1beta1.AuthorizationPolicy_CUSTOM || ap.GetProvider().GetName() != prov.GetName() {
		t.Errorf("AuthorizationPolicy action %v provider %q, want CUSTOM %q", ap.GetAction(), ap.GetProvider().GetName(), prov.GetName())
	}
	if len(ap.GetSelector().GetMatchLabels()) == 0 {
		t.Error("AuthorizationPolicy must select a workload")
	}

	// The provider points at the Kubernetes example's Service and gRPC port (the server's
	// default), with a timeout above the OP timeout and far below Istio's 600s default.
	k8s := kubernetesExample(t)
	svc := only[corev1.Service](t, k8s, "Service")
	if want := fmt.Sprintf("%s.%s.svc.cluster.local", svc.Name, svc.Namespace); g.GetService() != want {
		t.Errorf("provider service %q, want %q", g.GetService(), want)
	}
	grpcPort := int32(0)
	for _, p := range svc.Spec.Ports {
		if p.Name == "grpc" {
			grpcPort = p.Port
		}
	}
	if int32(g.GetPort()) != grpcPort || fmt.Sprintf(":%d", g.GetPort()) != envoy.DefaultGRPCListen {
		t.Errorf("provider port %d, Service grpc port %d, server default %s", g.GetPort(), grpcPort, envoy.DefaultGRPCListen)
	}
	cm := only[corev1.ConfigMap](t, k8s, "ConfigMap")
	f, err := config.Parse([]byte(cm.Data["config.yaml"]))
	if err != nil {
		t.Fatal(err)
	}
	if d, ht := g.GetTimeout().AsDuration(), f.Verification.HTTPTimeout.D(); d <= ht || d > time.Minute {
		t.Errorf("provider timeout %s: want above verification.http_timeout %s and far below Istio's 600s default", d, ht)
	}

	// The self-test: misspelled keys anywhere are errors.
	mesh := string(read(t, filepath.Join(examplesDir, "istio", "mesh-config.yaml")))
	policy := string(read(t, filepath.Join(examplesDir, "istio", "authorization-policy.yaml")))
	for _, tc := range []struct{ name, doc, old, new string }{
		{"statusOnErrror", mesh, "statusOnError:", "statusOnErrror:"},
		{"failOpen wrong type", mesh, "failOpen: false", "failOpen: \"no\""},
		{"meshconfig envelope", mesh, "meshConfig:", "meshconfig:"},
		{"notPath", policy, "notPaths:", "notPath:"},
		{"unknown action", policy, "action: CUSTOM", "action: CUSTOMIZE"},
		{"metadata typo", policy, "namespace: demo", "namespaces: demo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(tc.doc, tc.old) {
				t.Fatalf("example no longer contains %q", tc.old)
			}
			if _, _, err := decodeIstio([]byte(strings.Replace(tc.doc, tc.old, tc.new, 1))); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// The Keycloak realm is checked against the keys it uses, named and typed as in
// Keycloak's RealmRepresentation (org.keycloak.representations.idm; Keycloak publishes no
// Go types). Decoding is strict and case-sensitive, so a misspelled key fails; a key
// added to the realm must be added here too, after checking its name in Keycloak's docs.
type kcRealm struct {
	Realm               string     `json:"realm"`
	Enabled             bool       `json:"enabled"`
	SSLRequired         string     `json:"sslRequired"`
	AccessTokenLifespan int        `json:"accessTokenLifespan"`
	Groups              []kcGroup  `json:"groups"`
	Users               []kcUser   `json:"users"`
	Clients             []kcClient `json:"clients"`
}

type kcGroup struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

type kcUser struct {
	Username      string `json:"username"`
	Enabled       bool   `json:"enabled"`
	Email         string `json:"email"`
	EmailVerified bool   `json:"emailVerified"`
	FirstName     string `json:"firstName"`
	LastName      string `json:"lastName"`
	Credentials   []struct {
		Type      string `json:"type"`
		Value     string `json:"value"`
		Temporary bool   `json:"temporary"`
	} `json:"credentials"`
	Groups []string `json:"groups"`
}

type kcClient struct {
	ClientID                  string     `json:"clientId"`
	Name                      string     `json:"name"`
	Enabled                   bool       `json:"enabled"`
	Protocol                  string     `json:"protocol"`
	PublicClient              bool       `json:"publicClient"`
	Secret                    string     `json:"secret"`
	ClientAuthenticatorType   string     `json:"clientAuthenticatorType"`
	StandardFlowEnabled       bool       `json:"standardFlowEnabled"`
	DirectAccessGrantsEnabled bool       `json:"directAccessGrantsEnabled"`
	ServiceAccountsEnabled    bool       `json:"serviceAccountsEnabled"`
	DefaultClientScopes       []string   `json:"defaultClientScopes"`
	OptionalClientScopes      []string   `json:"optionalClientScopes"`
	ProtocolMappers           []kcMapper `json:"protocolMappers"`
}

type kcMapper struct {
	Name            string            `json:"name"`
	Protocol        string            `json:"protocol"`
	ProtocolMapper  string            `json:"protocolMapper"`
	ConsentRequired bool              `json:"consentRequired"`
	Config          map[string]string `json:"config"`
}

// checkRealm decodes the realm strictly and checks what the demo relies on: `basic` among
// the default client scopes (the sub mapper; an explicit list replaces Keycloak's
// defaults), the groups mapper into the access token, and the audience mapper.
func checkRealm(data []byte) error {
	var r kcRealm
	if err := strictJSON(data, &r); err != nil {
		return err
	}
	if len(r.Clients) != 1 {
		return fmt.Errorf("%d clients, want 1", len(r.Clients))
	}
	c := r.Clients[0]
	basic := false
	for _, s := range c.DefaultClientScopes {
		basic = basic || s == "basic"
	}
	if !basic {
		return fmt.Errorf("defaultClientScopes %v lacks basic: tokens would carry no sub", c.DefaultClientScopes)
	}
	var groups, audience bool
	for _, m := range c.ProtocolMappers {
		switch m.ProtocolMapper {
		case "oidc-group-membership-mapper":
			groups = m.Config["claim.name"] == "groups" && m.Config["access.token.claim"] == "true"
		case "oidc-audience-mapper":
			audience = m.Config["included.custom.audience"] != "" && m.Config["access.token.claim"] == "true"
		}
	}
	if !groups || !audience {
		return fmt.Errorf("groups mapper into the access token: %v, audience mapper: %v", groups, audience)
	}
	return nil
}

// TestKeycloakRealmFitsTheDemo: the demo configuration trusts this realm with the audience
// its mapper adds, and exactly one of the two users is an admin (so the README shows 200
// and 403).
func TestKeycloakRealmFitsTheDemo(t *testing.T) {
	var r kcRealm
	if err := strictJSON(read(t, filepath.Join(examplesDir, "docker-compose", "keycloak", "demo-realm.json")), &r); err != nil {
		t.Fatal(err)
	}
	f, err := config.Parse(read(t, filepath.Join(examplesDir, "docker-compose", "flaat-extauthz.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Clients) != 1 || len(f.Issuers) != 1 {
		t.Fatalf("%d clients, %d issuers: want 1 and 1", len(r.Clients), len(f.Issuers))
	}
	var aud string
	for _, m := range r.Clients[0].ProtocolMappers {
		if m.ProtocolMapper == "oidc-group-membership-mapper" && m.Config["full.path"] != "false" {
			t.Errorf("groups mapper full.path %q: want short group names (the policy says admins, not /admins)", m.Config["full.path"])
		}
		if m.ProtocolMapper == "oidc-audience-mapper" {
			aud = m.Config["included.custom.audience"]
		}
	}
	if is := f.Issuers[0]; len(is.Audiences) != 1 || is.Audiences[0] != aud {
		t.Errorf("config audiences %v, realm audience mapper adds %q", is.Audiences, aud)
	}
	if !strings.HasSuffix(f.Issuers[0].Issuer, "/realms/"+r.Realm) {
		t.Errorf("config issuer %s is not the realm %s", f.Issuers[0].Issuer, r.Realm)
	}
	admins := 0
	for _, u := range r.Users {
		for _, g := range u.Groups {
			if g == "/admins" {
				admins++
			}
		}
	}
	if len(r.Users) != 2 || admins != 1 {
		t.Errorf("%d users, %d in /admins: want 2 and 1", len(r.Users), admins)
	}
}

// TestKeycloakRealmStrict checks the demo realm and that typos and the missing `basic`
// scope are caught.
func TestKeycloakRealmStrict(t *testing.T) {
	path := filepath.Join(examplesDir, "docker-compose", "keycloak", "demo-realm.json")
	good := string(read(t, path))
	if err := checkRealm([]byte(good)); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, tc := range []struct{ name, old, new string }{
		{"defaultClientScopez", `"defaultClientScopes"`, `"defaultClientScopez"`},
		{"wrongly cased key", `"clientId"`, `"clientID"`},
		{"no basic scope", `"defaultClientScopes": ["basic", `, `"defaultClientScopes": [`},
		{"groups not in the access token", `"claim.name": "groups",`, `"claim.name": "group",`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(good, tc.old) {
				t.Fatalf("realm no longer contains %q", tc.old)
			}
			if err := checkRealm([]byte(strings.Replace(good, tc.old, tc.new, 1))); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
