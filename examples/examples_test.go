package examples

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	"github.com/flaat-extauthz/flaat-extauthz/envoy"
	"github.com/flaat-extauthz/flaat-extauthz/internal/config"
)

// defaultPort returns the port of one of envoy's default listen addresses.
func defaultPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// loadFlaatConfig parses and validates a flaat-extauthz config with the server's loader.
func loadFlaatConfig(t *testing.T, name string, data []byte) *config.File {
	t.Helper()
	f, err := config.Parse(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := f.Validate(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return f
}

func listenPort(t *testing.T, name, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: listen address %q: %v", name, addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%s: listen port %q: %v", name, p, err)
	}
	return n
}

// --- Envoy ---

// loadBootstrap decodes envoy.yaml strictly (unknown fields and unresolvable @type are
// errors) and runs go-control-plane's generated validation on it and on every Any inside.
func loadBootstrap(t *testing.T, path string) *bootstrapv3.Bootstrap {
	t.Helper()
	js, err := yaml.YAMLToJSON(read(t, path))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var bs bootstrapv3.Bootstrap
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(js, &bs); err != nil {
		t.Fatalf("%s: not a valid Envoy v3 bootstrap: %v", path, err)
	}
	if err := validateDeep(&bs); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &bs
}

// validateDeep runs ValidateAll on m and, recursively, on the message inside every Any.
func validateDeep(m proto.Message) error {
	var errs []error
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.ProtoReflect().Descriptor().FullName(), err))
		}
	}
	walkAnys(m.ProtoReflect(), func(a *anypb.Any) {
		inner, err := a.UnmarshalNew()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.GetTypeUrl(), err))
			return
		}
		if err := validateDeep(inner); err != nil {
			errs = append(errs, err)
		}
	})
	return errors.Join(errs...)
}

// walkAnys calls f for every google.protobuf.Any directly or indirectly inside m (but not
// inside other Anys: validateDeep recurses into those itself).
func walkAnys(m protoreflect.Message, f func(*anypb.Any)) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		visit := func(v protoreflect.Value) {
			msg := v.Message()
			if a, ok := msg.Interface().(*anypb.Any); ok {
				f(a)
				return
			}
			walkAnys(msg, f)
		}
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				visit(l.Get(i))
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				visit(mv)
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			visit(v)
		}
		return true
	})
}

// extAuthzFilter finds the ext_authz filter and the listener's HCM in bs.
func extAuthzFilter(t *testing.T, bs *bootstrapv3.Bootstrap) (*extauthzv3.ExtAuthz, *hcmv3.HttpConnectionManager) {
	t.Helper()
	for _, l := range bs.GetStaticResources().GetListeners() {
		for _, fc := range l.GetFilterChains() {
			for _, nf := range fc.GetFilters() {
				var hcm hcmv3.HttpConnectionManager
				if nf.GetTypedConfig().UnmarshalTo(&hcm) != nil {
					continue
				}
				for _, hf := range hcm.GetHttpFilters() {
					var ea extauthzv3.ExtAuthz
					if hf.GetTypedConfig().UnmarshalTo(&ea) == nil {
						return &ea, &hcm
					}
				}
			}
		}
	}
	t.Fatal("no ext_authz HTTP filter in any listener")
	return nil, nil
}

func cluster(bs *bootstrapv3.Bootstrap, name string) *clusterv3.Cluster {
	for _, c := range bs.GetStaticResources().GetClusters() {
		if c.GetName() == name {
			return c
		}
	}
	return nil
}

// TestEnvoyBootstrap: the compose demo's envoy.yaml is a valid bootstrap whose ext_authz
// filter fails closed, has a timeout, and points over gRPC (HTTP/2) at flaat-extauthz's
// gRPC port, with the router last.
func TestEnvoyBootstrap(t *testing.T) {
	bs := loadBootstrap(t, filepath.Join("docker-compose", "envoy.yaml"))
	ea, hcm := extAuthzFilter(t, bs)

	if ea.GetFailureModeAllow() {
		t.Error("ext_authz failure_mode_allow must be false (fail closed)")
	}
	gs := ea.GetGrpcService()
	if gs == nil {
		t.Fatal("ext_authz must use grpc_service")
	}
	timeout := gs.GetTimeout().AsDuration()
	if timeout <= 200*time.Millisecond {
		t.Errorf("ext_authz timeout %s: set it above Envoy's 200ms default and flaat-extauthz's OP timeout", timeout)
	}
	cfg := loadFlaatConfig(t, "docker-compose/flaat-extauthz.yaml", read(t, filepath.Join("docker-compose", "flaat-extauthz.yaml")))
	if ht := cfg.Verification.HTTPTimeout.D(); ht != 0 && timeout <= ht {
		t.Errorf("ext_authz timeout %s must exceed verification.http_timeout %s", timeout, ht)
	}

	name := gs.GetEnvoyGrpc().GetClusterName()
	c := cluster(bs, name)
	if c == nil {
		t.Fatalf("ext_authz cluster %q is not defined", name)
	}
	if _, ok := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]; !ok {
		t.Errorf("cluster %s must enable HTTP/2 (gRPC)", name)
	}
	grpcPort := listenPort(t, "server.grpc_listen", cfg.Server.GRPCListen)
	if want := defaultPort(t, envoy.DefaultGRPCListen); grpcPort != want {
		t.Errorf("demo grpc_listen port %d differs from the server default %d", grpcPort, want)
	}
	for _, e := range c.GetLoadAssignment().GetEndpoints() {
		for _, le := range e.GetLbEndpoints() {
			sa := le.GetEndpoint().GetAddress().GetSocketAddress()
			if int(sa.GetPortValue()) != grpcPort || sa.GetAddress() != "flaat-extauthz" {
				t.Errorf("cluster %s endpoint %s:%d, want flaat-extauthz:%d", name, sa.GetAddress(), sa.GetPortValue(), grpcPort)
			}
		}
	}

	filters := hcm.GetHttpFilters()
	if last := filters[len(filters)-1].GetName(); last != "envoy.filters.http.router" {
		t.Errorf("the last HTTP filter is %s, want the router", last)
	}
	// Per-route context_extensions must name access levels that exist.
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			a, ok := r.GetTypedPerFilterConfig()["envoy.filters.http.ext_authz"]
			if !ok {
				continue
			}
			var per extauthzv3.ExtAuthzPerRoute
			if err := a.UnmarshalTo(&per); err != nil {
				t.Fatalf("route %v: %v", r.GetMatch(), err)
			}
			if lvl, ok := per.GetCheckSettings().GetContextExtensions()["flaat_policy"]; ok {
				if _, found := cfg.Policy.AccessLevels[lvl]; !found {
					t.Errorf("route %v selects access level %q that flaat-extauthz.yaml does not define", r.GetMatch(), lvl)
				}
			}
		}
	}
}

// TestEnvoyBootstrapRejectsTypos proves the strict decoding above can fail.
func TestEnvoyBootstrapRejectsTypos(t *testing.T) {
	good := string(read(t, filepath.Join("docker-compose", "envoy.yaml")))
	tests := []struct{ name, old, new string }{
		{"unknown field", "failure_mode_allow: false", "failure_mode_alow: false"},
		{"unknown @type", "ext_authz.v3.ExtAuthz\n", "ext_authz.v3.ExtAuthzz\n"},
		{"invalid value inside an Any", "cluster_name: flaat_extauthz }", "cluster_name: \"\" }"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(good, tc.old) {
				t.Fatalf("envoy.yaml no longer contains %q", tc.old)
			}
			js, err := yaml.YAMLToJSON([]byte(strings.Replace(good, tc.old, tc.new, 1)))
			if err != nil {
				t.Fatal(err)
			}
			var bs bootstrapv3.Bootstrap
			err = protojson.Unmarshal(js, &bs)
			if err == nil {
				err = validateDeep(&bs)
			}
			if err == nil {
				t.Fatal("the broken bootstrap was accepted")
			}
		})
	}
}

// --- docker-compose ---

type composeFile struct {
	Services map[string]struct {
		Image string `json:"image"`
		Build *struct {
			Context    string `json:"context"`
			Dockerfile string `json:"dockerfile"`
		} `json:"build"`
		Command []string `json:"command"`
		Volumes []string `json:"volumes"`
		User    string   `json:"user"`
	} `json:"services"`
}

// TestComposeImagesPinned: every image of the demo has an exact version (no floating
// x.y or -latest tags), and Envoy's is the release whose API the go-control-plane module in
// go.mod describes, so TestEnvoyBootstrap validates envoy.yaml against that Envoy's protos.
func TestComposeImagesPinned(t *testing.T) {
	var cf composeFile
	if err := yaml.Unmarshal(read(t, filepath.Join("docker-compose", "docker-compose.yml")), &cf); err != nil {
		t.Fatal(err)
	}
	exact := map[string]*regexp.Regexp{
		"envoyproxy/envoy":          regexp.MustCompile(`^v(\d+)\.(\d+)\.\d+$`),
		"quay.io/keycloak/keycloak": regexp.MustCompile(`^\d+\.\d+\.\d+$`),
		"mendhak/http-https-echo":   regexp.MustCompile(`^\d+$`), // the project's release numbers
	}
	gomod := string(read(t, filepath.Join("..", "go.mod")))
	gcp := regexp.MustCompile(`(?m)^\s*github.com/envoyproxy/go-control-plane/envoy v(\d+)\.(\d+)\.\d+`).FindStringSubmatch(gomod)
	if gcp == nil {
		t.Fatal("go.mod: no github.com/envoyproxy/go-control-plane/envoy requirement")
	}
	seen := 0
	for name, svc := range cf.Services {
		if svc.Build != nil {
			continue // built from this repository
		}
		repo, tag, ok := strings.Cut(svc.Image, ":")
		re, known := exact[repo]
		if !ok || !known {
			t.Errorf("service %s: image %q is not one of the pinned images %v", name, svc.Image, exact)
			continue
		}
		m := re.FindStringSubmatch(tag)
		if m == nil {
			t.Errorf("service %s: image %s: tag %q is not an exact version", name, repo, tag)
			continue
		}
		seen++
		if repo == "envoyproxy/envoy" && (m[1] != gcp[1] || m[2] != gcp[2]) {
			t.Errorf("Envoy image %s, but go.mod's go-control-plane describes Envoy %s.%s: validate against the Envoy you run", tag, gcp[1], gcp[2])
		}
	}
	if seen != len(exact) {
		t.Errorf("%d pinned images found, want %d", seen, len(exact))
	}
}

// TestComposeFile: services, mounted files and the build of flaat-extauthz fit together.
// (`docker-compose config -q` runs in the e2e suite, where the tool is installed.)
func TestComposeFile(t *testing.T) {
	var cf composeFile
	if err := yaml.Unmarshal(read(t, filepath.Join("docker-compose", "docker-compose.yml")), &cf); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"keycloak", "flaat-extauthz", "envoy", "echo"} {
		if _, ok := cf.Services[name]; !ok {
			t.Errorf("service %s missing", name)
		}
	}
	fx := cf.Services["flaat-extauthz"]
	if fx.Build == nil {
		t.Fatal("flaat-extauthz must be built from the repository's Dockerfile")
	}
	if _, err := os.Stat(filepath.Join("docker-compose", fx.Build.Context, fx.Build.Dockerfile)); err != nil {
		t.Errorf("build: %v", err)
	}
	if fx.User == "" || strings.HasPrefix(fx.User, "0") || strings.HasPrefix(fx.User, "root") {
		t.Errorf("flaat-extauthz runs as %q, want a non-root user", fx.User)
	}
	for name, svc := range cf.Services {
		for _, v := range svc.Volumes {
			src := strings.SplitN(v, ":", 2)[0]
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(filepath.Join("docker-compose", src)); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			}
		}
	}
	// The envoy cluster for the echo service must name the compose service.
	bs := loadBootstrap(t, filepath.Join("docker-compose", "envoy.yaml"))
	for _, c := range bs.GetStaticResources().GetClusters() {
		for _, e := range c.GetLoadAssignment().GetEndpoints() {
			for _, le := range e.GetLbEndpoints() {
				host := le.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()
				if _, ok := cf.Services[host]; !ok {
					t.Errorf("envoy cluster %s points at %s, which is no compose service", c.GetName(), host)
				}
			}
		}
	}
}

// TestDockerfile: multi-stage, static (CGO off), distroless or scratch, non-root, Go
// version of the build stage matching go.mod; cross-compiled for BuildKit's
// TARGETOS/TARGETARCH on the build platform; OCI labels; a HEALTHCHECK that runs the
// binary's own healthcheck (exec form: distroless has no shell). The command line of
// the HEALTHCHECK is run for real by cmd/flaat-extauthz's TestDockerHealthcheck.
func TestDockerfile(t *testing.T) {
	df := string(read(t, filepath.Join("..", "Dockerfile")))
	froms := regexp.MustCompile(`(?m)^FROM\s+(?:--platform=\S+\s+)?(\S+)`).FindAllStringSubmatch(df, -1)
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, got %d FROM lines", len(froms))
	}
	final := froms[len(froms)-1][1]
	if !strings.HasPrefix(final, "gcr.io/distroless/static") && final != "scratch" {
		t.Errorf("final image %s: want distroless/static or scratch", final)
	}
	if !strings.Contains(df, "CGO_ENABLED=0") || !strings.Contains(df, "./cmd/flaat-extauthz") {
		t.Error("the build stage must build ./cmd/flaat-extauthz with CGO_ENABLED=0")
	}
	users := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(df, -1)
	if len(users) == 0 || strings.HasPrefix(users[len(users)-1][1], "0") || strings.HasPrefix(users[len(users)-1][1], "root") {
		t.Errorf("final USER %v: want a non-root user", users)
	}
	gomod := string(read(t, filepath.Join("..", "go.mod")))
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(gomod)
	if goVer == nil || !strings.Contains(froms[0][1], "golang:"+goVer[1]) {
		t.Errorf("build image %s does not match go.mod's go %v", froms[0][1], goVer)
	}
	for _, port := range []string{envoy.DefaultGRPCListen, envoy.DefaultHTTPListen, envoy.DefaultAdminListen} {
		if !regexp.MustCompile(`(?m)^EXPOSE .*\b` + strings.TrimPrefix(port, ":") + `\b`).MatchString(df) {
			t.Errorf("Dockerfile does not EXPOSE %s", port)
		}
	}
	for _, want := range []struct{ what, re string }{
		{"build stage on the build platform", `(?m)^FROM --platform=\$BUILDPLATFORM golang:`},
		{"TARGETOS/TARGETARCH declared", `(?m)^ARG TARGETOS\b[\s\S]*^ARG TARGETARCH\b`},
		{"cross-compiled for them", `GOOS=\$\{TARGETOS\} GOARCH=\$\{TARGETARCH\}`},
		{"HEALTHCHECK runs the binary (exec form)", `(?m)^HEALTHCHECK [^\n]*\\\n\s+CMD \["/usr/local/bin/flaat-extauthz", "healthcheck"`},
	} {
		if !regexp.MustCompile(want.re).MatchString(df) {
			t.Errorf("Dockerfile: %s: no match for %s", want.what, want.re)
		}
	}
	last := df[strings.LastIndex(df, "\nFROM "):]
	for _, label := range []string{"title", "description", "source", "version", "revision", "created"} {
		if !strings.Contains(last, "org.opencontainers.image."+label+"=") {
			t.Errorf("final stage lacks the OCI label org.opencontainers.image.%s", label)
		}
	}
}

// TestNginxExample: the nginx snippet (run for real by the e2e suite) points at the
// server's default HTTP port and sets the headers the HTTP mode reads.
func TestNginxExample(t *testing.T) {
	for _, f := range []string{"flaat-extauthz.conf", "flaat-extauthz-mtls.conf"} {
		t.Run(f, func(t *testing.T) { checkNginxExample(t, f) })
	}
}

func checkNginxExample(t *testing.T, file string) {
	conf := string(read(t, filepath.Join("nginx", file)))
	if want := "server 127.0.0.1" + envoy.DefaultHTTPListen + ";"; !strings.Contains(conf, want) {
		t.Errorf("nginx upstream flaat_extauthz: want %q", want)
	}
	for _, h := range []string{
		`proxy_set_header\s+X-Original-URI\s+\$request_uri;`,
		`proxy_set_header\s+X-Original-Method\s+\$request_method;`,
		`proxy_set_header\s+X-Original-Host\s+\$http_host;`, // with the port: a DPoP htu names it
		`proxy_set_header\s+X-Original-Proto\s+\$scheme;`,
		`proxy_set_header\s+X-Forwarded-Uri\s+"";`,
		`proxy_set_header\s+X-Forwarded-Method\s+"";`,
		`proxy_set_header\s+X-Forwarded-Host\s+"";`,
		`proxy_set_header\s+X-Forwarded-Proto\s+"";`,
		`auth_request\s+/`,
		`proxy_set_header\s+X-Auth-Request-User\s+\$flaat_user;`,
		`auth_request_set\s+\$flaat_user\s+\$upstream_http_x_auth_request_user;`,
	} {
		if !regexp.MustCompile(h).MatchString(conf) {
			t.Errorf("nginx snippet lacks %s", h)
		}
	}
}

// traefikForwardAuth transcribes Traefik v3.7's dynamic.ForwardAuth (pkg/config/dynamic/
// middlewares.go): Traefik itself cannot be built from the Go module proxy (its go.mod
// has replace directives and the dynamic config imports a module that is not
// published), so this is the closest schema check available. Unknown fields fail.
type traefikForwardAuth struct {
	Address                  string           `json:"address"`
	TLS                      *json.RawMessage `json:"tls"`
	TrustForwardHeader       *bool            `json:"trustForwardHeader"`
	AuthResponseHeaders      []string         `json:"authResponseHeaders"`
	AuthResponseHeadersRegex string           `json:"authResponseHeadersRegex"`
	AuthRequestHeaders       []string         `json:"authRequestHeaders"`
	MaxResponseBodySize      *int64           `json:"maxResponseBodySize"`
	AddAuthCookiesToResponse []string         `json:"addAuthCookiesToResponse"`
	HeaderField              string           `json:"headerField"`
	ForwardBody              bool             `json:"forwardBody"`
	MaxBodySize              *int64           `json:"maxBodySize"`
	PreserveLocationHeader   bool             `json:"preserveLocationHeader"`
	PreserveRequestMethod    bool             `json:"preserveRequestMethod"`
	AuthSigninURL            string           `json:"authSigninURL"`
}

// strictYAML decodes YAML into v, failing on fields v does not have.
func strictYAML(t *testing.T, path string, v any) {
	t.Helper()
	j, err := yaml.YAMLToJSON(read(t, path))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	dec := json.NewDecoder(strings.NewReader(string(j)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestTraefikExample checks examples/traefik against a transcription of Traefik's config
// types and for the header hygiene flaat-extauthz relies on: only listed client headers
// reach the check (never a client's X-Original-* or X-Forwarded-*), Traefik sets
// X-Forwarded-* itself, the identity headers replace client copies, and every router
// passes the middleware. It is not Traefik: docs/deploy-caddy-traefik.md calls the
// example unverified.
func TestTraefikExample(t *testing.T) {
	var static struct {
		EntryPoints map[string]struct {
			Address          string `json:"address"`
			ForwardedHeaders struct {
				TrustedIPs []string `json:"trustedIPs"`
				Insecure   bool     `json:"insecure"`
			} `json:"forwardedHeaders"`
		} `json:"entryPoints"`
		Providers struct {
			File struct {
				Filename string `json:"filename"`
			} `json:"file"`
		} `json:"providers"`
	}
	strictYAML(t, filepath.Join("traefik", "traefik.yml"), &static)
	if static.Providers.File.Filename != "dynamic.yml" {
		t.Errorf("traefik.yml: file provider %q, want dynamic.yml", static.Providers.File.Filename)
	}
	for name, ep := range static.EntryPoints {
		if ep.ForwardedHeaders.Insecure || len(ep.ForwardedHeaders.TrustedIPs) > 0 {
			t.Errorf("entry point %s trusts client X-Forwarded-* headers", name)
		}
	}

	var dyn struct {
		HTTP struct {
			Middlewares map[string]struct {
				ForwardAuth *traefikForwardAuth `json:"forwardAuth"`
			} `json:"middlewares"`
			Routers map[string]struct {
				EntryPoints []string `json:"entryPoints"`
				Rule        string   `json:"rule"`
				Middlewares []string `json:"middlewares"`
				Service     string   `json:"service"`
			} `json:"routers"`
			Services map[string]struct {
				LoadBalancer struct {
					Servers []struct {
						URL string `json:"url"`
					} `json:"servers"`
				} `json:"loadBalancer"`
			} `json:"services"`
		} `json:"http"`
	}
	strictYAML(t, filepath.Join("traefik", "dynamic.yml"), &dyn)
	mw, ok := dyn.HTTP.Middlewares["flaat-extauthz"]
	if !ok || mw.ForwardAuth == nil {
		t.Fatal("dynamic.yml: no forwardAuth middleware named flaat-extauthz")
	}
	fa := mw.ForwardAuth
	if want := "http://127.0.0.1" + envoy.DefaultHTTPListen + "/"; fa.Address != want {
		t.Errorf("forwardAuth.address %q, want %q", fa.Address, want)
	}
	if fa.TrustForwardHeader == nil || *fa.TrustForwardHeader {
		t.Error("forwardAuth.trustForwardHeader must be false: Traefik then deletes client X-Forwarded-* and sets its own")
	}
	if len(fa.AuthRequestHeaders) == 0 {
		t.Error("forwardAuth.authRequestHeaders is empty: Traefik would pass every client header, X-Original-URI included")
	}
	hasAuth := false
	for _, h := range fa.AuthRequestHeaders {
		l := strings.ToLower(h)
		hasAuth = hasAuth || l == "authorization"
		if strings.HasPrefix(l, "x-original-") || strings.HasPrefix(l, "x-forwarded-") {
			t.Errorf("forwardAuth.authRequestHeaders passes the client's %s", h)
		}
	}
	if !hasAuth {
		t.Error("forwardAuth.authRequestHeaders lacks Authorization")
	}
	for _, h := range []string{"X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups", "X-Auth-Request-Issuer"} {
		if !slices.Contains(fa.AuthResponseHeaders, h) {
			t.Errorf("forwardAuth.authResponseHeaders lacks %s (a client copy would reach the app)", h)
		}
	}
	if len(dyn.HTTP.Routers) == 0 {
		t.Fatal("dynamic.yml: no router")
	}
	for name, r := range dyn.HTTP.Routers {
		if !slices.Contains(r.Middlewares, "flaat-extauthz") {
			t.Errorf("router %s does not use the flaat-extauthz middleware", name)
		}
		if _, ok := dyn.HTTP.Services[r.Service]; !ok {
			t.Errorf("router %s: service %q is not defined", name, r.Service)
		}
		for _, ep := range r.EntryPoints {
			if _, ok := static.EntryPoints[ep]; !ok {
				t.Errorf("router %s: entry point %q is not in traefik.yml", name, ep)
			}
		}
	}
}
