package examples

// The documentation test: every YAML block and every relative link in README.md,
// ARCHITECTURE.md, SECURITY.md and docs/**/*.md is checked, so the documentation cannot rot.
//
// Fence convention (the info string after ```):
//
//	yaml            a complete flaat-extauthz configuration file: loaded and validated
//	                exactly as `flaat-extauthz validate --config FILE` does
//	yaml fragment   a part of a configuration: top-level sections are merged into
//	                fragmentBase; anything else is placed there as a route, the
//	                default requirement or an issuer; then validated the same way
//	yaml envoy      Envoy configuration: decoded strictly (unknown fields and unknown
//	                @type are errors) into go-control-plane's types — a complete
//	                Bootstrap is also validated in full
//	yaml <other>    (k8s, helm, traefik, compose, …) parsed as YAML (duplicate keys are
//	                errors); several documents separated by --- are each parsed
//
// Links: every relative [text](target) outside code must name a file or directory of
// the repository, and a #anchor must name a heading of the target Markdown file (the
// anchors GitHub generates).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"unicode"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	"github.com/flaat-extauthz/flaat-extauthz/envoy"
	"github.com/flaat-extauthz/flaat-extauthz/internal/config"
)

// repoRoot is the repository root as seen from this package's directory.
const repoRoot = ".."

// readmeMaxLines is the most lines README.md may have (STYLE.md 16: the README is a door).
const readmeMaxLines = 300

// fragmentBase is the minimal configuration a `yaml fragment` block is merged into.
const fragmentBase = `
issuers:
  - issuer: https://login.example.org
policy:
  default: {authenticated: true}
`

// fence is one fenced code block of a Markdown file.
type fence struct {
	file string // path relative to the repository root
	line int    // line of the opening fence, 1-based
	info string // the info string, trimmed ("yaml", "yaml fragment", "sh", …)
	body string
}

func (f fence) String() string { return fmt.Sprintf("%s:%d (```%s)", f.file, f.line, f.info) }

var fenceOpen = regexp.MustCompile("^( *)(```+|~~~+)(.*)$")

// closes reports whether line closes a fence opened with marker: the same character, at
// least as many, nothing else.
func closes(line, marker string) bool {
	t := strings.TrimSpace(line)
	return len(t) >= len(marker) && strings.Trim(t, marker[:1]) == ""
}

// fences returns the fenced code blocks of a Markdown document. Fences may be indented
// (inside list items); the opening fence's indentation is removed from the body.
func fences(file, md string) ([]fence, error) {
	var out []fence
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		m := fenceOpen.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		indent, marker, info := len(m[1]), m[2], strings.TrimSpace(m[3])
		var body []string
		closed := false
		j := i + 1
		for ; j < len(lines); j++ {
			if closes(lines[j], marker) {
				closed = true
				break
			}
			l := lines[j]
			for k := 0; k < indent && strings.HasPrefix(l, " "); k++ {
				l = l[1:]
			}
			body = append(body, l)
		}
		if !closed {
			return nil, fmt.Errorf("%s:%d: fence never closed", file, i+1)
		}
		out = append(out, fence{file: file, line: i + 1, info: info, body: strings.Join(body, "\n") + "\n"})
		i = j
	}
	return out, nil
}

// validateConfig loads data the way `flaat-extauthz validate --config FILE` does
// (config.Load, then Validate) and returns every problem.
func validateConfig(dir string, data []byte) error {
	p := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		return err
	}
	f, err := config.Load(p)
	if err != nil {
		return err
	}
	return f.Validate()
}

// fragmentPlacements are where a fragment goes whose keys are not all configuration
// sections (server, issuers, verification, policy, log, tracing): it is tried as each in turn.
type placement struct {
	as   string
	wrap func(frag map[string]any) map[string]any
}

var asSections = placement{"configuration sections", func(frag map[string]any) map[string]any { return frag }}

var fragmentPlacements = []placement{
	{"a route", func(frag map[string]any) map[string]any {
		if _, ok := frag["name"]; !ok {
			frag["name"] = "fragment"
		}
		return map[string]any{"policy": map[string]any{"routes": []any{frag}}}
	}},
	{"a requirement", func(frag map[string]any) map[string]any {
		return map[string]any{"policy": map[string]any{"default": frag}}
	}},
	{"an issuer", func(frag map[string]any) map[string]any {
		return map[string]any{"issuers": []any{frag}}
	}},
}

// fragmentConfigs returns the complete configurations a fragment stands for, each with a
// description. A fragment of configuration sections is merged into fragmentBase (merge).
// Any other
// fragment is placed as a route, a requirement and an issuer (fragmentPlacements).
func fragmentConfigs(fragment string) (descs []string, configs [][]byte, err error) {
	js, err := yaml.YAMLToJSONStrict([]byte(fragment))
	if err != nil {
		return nil, nil, err
	}
	var frag map[string]any
	if err := json.Unmarshal(js, &frag); err != nil {
		return nil, nil, fmt.Errorf("a fragment must be a mapping: %w", err)
	}
	if len(frag) == 0 {
		return nil, nil, errors.New("empty fragment")
	}
	sections := true
	for k := range frag {
		switch k {
		case "server", "issuers", "verification", "policy", "log", "tracing":
		default:
			sections = false
		}
	}
	wraps := fragmentPlacements
	if sections {
		wraps = []placement{asSections}
	}
	for _, w := range wraps {
		var base, one map[string]any
		if err := yaml.Unmarshal([]byte(fragmentBase), &base); err != nil {
			return nil, nil, err
		}
		_ = json.Unmarshal(js, &one) // a fresh copy for each placement
		b, err := json.Marshal(merge(base, w.wrap(one)))
		if err != nil {
			return nil, nil, err
		}
		descs, configs = append(descs, w.as), append(configs, b)
	}
	return descs, configs, nil
}

// merge merges a configuration fragment into the base config section by section: the
// keys of a section the fragment names replace the base's (so policy.routes from the
// fragment keep the base's policy.default, and a fragment's policy.default replaces it
// whole).
func merge(base, frag map[string]any) map[string]any {
	for k, v := range frag {
		bm, bok := base[k].(map[string]any)
		fm, fok := v.(map[string]any)
		if !bok || !fok {
			base[k] = v
			continue
		}
		for kk, vv := range fm {
			bm[kk] = vv
		}
	}
	return base
}

// yamlDocuments converts every YAML document of s (separated by --- lines) to JSON,
// strictly (duplicate keys are errors).
func yamlDocuments(s string) ([][]byte, error) {
	var docs [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---[ \t]*$`).Split(s, -1) {
		if strings.TrimSpace(d) == "" {
			continue
		}
		js, err := yaml.YAMLToJSONStrict([]byte(d))
		if err != nil {
			return nil, err
		}
		docs = append(docs, js)
	}
	if len(docs) == 0 {
		return nil, errors.New("empty YAML block")
	}
	return docs, nil
}

// envoyFragmentTypes are the go-control-plane messages a `yaml envoy` block that is not a
// whole Bootstrap may be: it must decode strictly into one of them.
var envoyFragmentTypes = []func() proto.Message{
	func() proto.Message { return &listenerv3.Listener{} },
	func() proto.Message { return &clusterv3.Cluster{} },
	func() proto.Message { return &hcmv3.HttpConnectionManager{} },
	func() proto.Message { return &hcmv3.HttpFilter{} },
	func() proto.Message { return &extauthzv3.ExtAuthz{} },
	func() proto.Message { return &extauthzv3.ExtAuthzPerRoute{} },
	func() proto.Message { return &routev3.RouteConfiguration{} },
	func() proto.Message { return &routev3.VirtualHost{} },
	func() proto.Message { return &routev3.Route{} },
}

// bootstrapKeys are top-level keys that only a Bootstrap has.
var bootstrapKeys = []string{"static_resources", "dynamic_resources", "admin", "node", "layered_runtime", "overload_manager"}

// checkEnvoy decodes an Envoy YAML document strictly. A document with Bootstrap's
// top-level keys must be a valid Bootstrap (go-control-plane's validation, the messages
// inside every Any included); anything else must decode into one of envoyFragmentTypes,
// with every Any inside it decodable and valid. A list decodes element by element.
func checkEnvoy(js []byte) (*bootstrapv3.Bootstrap, error) {
	strict := protojson.UnmarshalOptions{DiscardUnknown: false}
	var top any
	if err := json.Unmarshal(js, &top); err != nil {
		return nil, err
	}
	if list, ok := top.([]any); ok {
		for i, el := range list {
			b, _ := json.Marshal(el)
			if _, err := checkEnvoy(b); err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return nil, nil
	}
	obj, ok := top.(map[string]any)
	if !ok {
		return nil, errors.New("not a mapping or a list")
	}
	for _, k := range bootstrapKeys {
		if _, ok := obj[k]; ok {
			var bs bootstrapv3.Bootstrap
			if err := strict.Unmarshal(js, &bs); err != nil {
				return nil, fmt.Errorf("not a valid Envoy v3 bootstrap: %w", err)
			}
			if err := validateDeep(&bs); err != nil {
				return nil, err
			}
			return &bs, nil
		}
	}
	var errs []error
	for _, newMsg := range envoyFragmentTypes {
		m := newMsg()
		err := strict.Unmarshal(js, m)
		if err == nil {
			err = validateAnys(m)
		}
		if err == nil {
			return nil, nil
		}
		errs = append(errs, fmt.Errorf("as %s: %w", m.ProtoReflect().Descriptor().Name(), err))
	}
	return nil, fmt.Errorf("not a strict Envoy configuration fragment: %w", errors.Join(errs...))
}

// validateAnys validates the message inside every Any of m (m itself may be a partial
// fragment, so its own required fields are not checked).
func validateAnys(m proto.Message) error {
	var errs []error
	walkAnys(m.ProtoReflect(), func(a *anypb.Any) {
		inner, err := a.UnmarshalNew()
		if err == nil {
			err = validateDeep(inner)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.GetTypeUrl(), err))
		}
	})
	return errors.Join(errs...)
}

// blockCounts counts the checked blocks by kind.
type blockCounts struct{ configs, fragments, envoy, other, bootstraps int }

// checkBlock checks one fence according to its info string; blocks that are not YAML
// are ignored. It returns the complete Envoy Bootstrap when the block was one.
func checkBlock(dir string, f fence, n *blockCounts) (*bootstrapv3.Bootstrap, error) {
	kind, isYAML := strings.CutPrefix(f.info, "yaml")
	if !isYAML || (kind != "" && kind[0] != ' ') {
		return nil, nil
	}
	switch kind = strings.TrimSpace(kind); kind {
	case "":
		n.configs++
		return nil, validateConfig(dir, []byte(f.body))
	case "fragment":
		n.fragments++
		descs, configs, err := fragmentConfigs(f.body)
		if err != nil {
			return nil, err
		}
		var errs []error
		for i, c := range configs {
			err := validateConfig(dir, c)
			if err == nil {
				return nil, nil
			}
			errs = append(errs, fmt.Errorf("as %s in the minimal base config: %w", descs[i], err))
		}
		return nil, errors.Join(errs...)
	case "envoy":
		n.envoy++
		docs, err := yamlDocuments(f.body)
		if err != nil {
			return nil, err
		}
		var bs *bootstrapv3.Bootstrap
		for _, js := range docs {
			b, err := checkEnvoy(js)
			if err != nil {
				return nil, err
			}
			if b != nil {
				n.bootstraps++
				bs = b
			}
		}
		return bs, nil
	default:
		n.other++
		_, err := yamlDocuments(f.body)
		return nil, err
	}
}

// docFiles returns README.md, ARCHITECTURE.md, SECURITY.md and every docs/**/*.md,
// relative to root.
func docFiles(root string) ([]string, error) {
	files := []string{"ARCHITECTURE.md", "README.md", "SECURITY.md"}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(files[3:])
	return files, err
}

var (
	inlineCode = regexp.MustCompile("`+[^`]*`+")
	mdLink     = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	heading    = regexp.MustCompile(`^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$`)
	linkText   = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
)

// proseLines returns the lines of md outside fenced code blocks, with inline code
// removed; fenced lines become empty so that line numbers stay right.
func proseLines(md string) []string {
	lines := strings.Split(md, "\n")
	var marker string
	for i, l := range lines {
		if marker != "" {
			if closes(l, marker) {
				marker = ""
			}
			lines[i] = ""
			continue
		}
		if m := fenceOpen.FindStringSubmatch(l); m != nil {
			marker = m[2]
			lines[i] = ""
			continue
		}
		lines[i] = inlineCode.ReplaceAllString(l, "")
	}
	return lines
}

// anchors returns the anchors GitHub generates for the headings of md: the heading's
// text, lower-cased, without punctuation, spaces as hyphens; repeats get -1, -2, ….
func anchors(md string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	var marker string
	for _, l := range strings.Split(md, "\n") {
		if marker != "" {
			if closes(l, marker) {
				marker = ""
			}
			continue
		}
		if m := fenceOpen.FindStringSubmatch(l); m != nil {
			marker = m[2]
			continue
		}
		m := heading.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		text := linkText.ReplaceAllString(m[2], "$1")
		var b strings.Builder
		for _, r := range strings.ToLower(text) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		slug := b.String()
		if k := seen[slug]; k > 0 {
			out[fmt.Sprintf("%s-%d", slug, k)] = true
		} else {
			out[slug] = true
		}
		seen[slug]++
	}
	return out
}

// checkLinks checks every relative link of the document file (its text md) against the
// repository at root; read returns a Markdown file's text for anchor checks.
func checkLinks(root, file, md string, read func(string) (string, error)) (int, []error) {
	var errs []error
	n := 0
	for i, l := range proseLines(md) {
		for _, m := range mdLink.FindAllStringSubmatch(l, -1) {
			target := m[1]
			if regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`).MatchString(target) {
				continue // http:, https:, mailto:
			}
			n++
			path, anchor, _ := strings.Cut(target, "#")
			rel := file
			if path != "" {
				rel = filepath.ToSlash(filepath.Join(filepath.Dir(file), path))
				if strings.HasPrefix(rel, "../") {
					errs = append(errs, fmt.Errorf("%s:%d: link %q leaves the repository", file, i+1, target))
					continue
				}
				if _, err := os.Stat(filepath.Join(root, rel)); err != nil {
					errs = append(errs, fmt.Errorf("%s:%d: link %q: %s does not exist", file, i+1, target, rel))
					continue
				}
			}
			if anchor == "" || !strings.HasSuffix(rel, ".md") {
				continue
			}
			text, err := read(rel)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s:%d: link %q: %w", file, i+1, target, err))
				continue
			}
			if !anchors(text)[anchor] {
				errs = append(errs, fmt.Errorf("%s:%d: link %q: no heading with anchor #%s in %s", file, i+1, target, anchor, rel))
			}
		}
	}
	return n, errs
}

// docsReport is what checkDocs found.
type docsReport struct {
	files, links int
	blocks       blockCounts
	readmeEnvoy  []*bootstrapv3.Bootstrap // complete Bootstraps in README.md
	errs         []error
}

// checkDocs checks every documentation file of the repository at root; texts, when not
// nil, replaces the content of the files it names (for the self-test).
func checkDocs(t *testing.T, root string, texts map[string]string) docsReport {
	t.Helper()
	files, err := docFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	read := func(rel string) (string, error) {
		if s, ok := texts[rel]; ok {
			return s, nil
		}
		b, err := os.ReadFile(filepath.Join(root, rel))
		return string(b), err
	}
	var r docsReport
	dir := t.TempDir()
	for _, file := range files {
		md, err := read(file)
		if err != nil {
			r.errs = append(r.errs, err)
			continue
		}
		r.files++
		fs, err := fences(file, md)
		if err != nil {
			r.errs = append(r.errs, err)
			continue
		}
		for _, f := range fs {
			bs, err := checkBlock(dir, f, &r.blocks)
			if err != nil {
				r.errs = append(r.errs, fmt.Errorf("%s: %w", f, err))
			}
			if bs != nil && file == "README.md" {
				r.readmeEnvoy = append(r.readmeEnvoy, bs)
			}
		}
		n, errs := checkLinks(root, file, md, read)
		r.links += n
		r.errs = append(r.errs, errs...)
	}
	return r
}

// TestDocs checks every YAML block and relative link of the documentation.
func TestDocs(t *testing.T) {
	r := checkDocs(t, repoRoot, nil)
	for _, err := range r.errs {
		t.Error(err)
	}
	b := r.blocks
	t.Logf("docs: %d files, %d complete configs, %d fragments, %d Envoy blocks (%d bootstraps), %d other YAML blocks, %d relative links; %d problems",
		r.files, b.configs, b.fragments, b.envoy, b.bootstraps, b.other, r.links, len(r.errs))
	if b.configs == 0 || b.envoy == 0 || r.links == 0 {
		t.Errorf("the checker found nothing to check (configs %d, envoy %d, links %d)", b.configs, b.envoy, r.links)
	}
	// The README is a door: short, with the two commands of a fresh machine.
	readme := string(read(t, filepath.Join(repoRoot, "README.md")))
	if n := strings.Count(readme, "\n"); n > readmeMaxLines {
		t.Errorf("README.md has %d lines, the door may have %d: move reference material to docs/", n, readmeMaxLines)
	}
	for _, cmd := range []string{"\ngo run ./cmd/flaat-extauthz serve\n", "\nmake test\n"} {
		if !strings.Contains(readme, cmd) {
			t.Errorf("README.md no longer shows the command %q on a line of its own", strings.TrimSpace(cmd))
		}
	}
	// The README's minimal Envoy configuration is complete: a listener whose ext_authz
	// filter fails closed and points at a defined cluster.
	if len(r.readmeEnvoy) != 1 {
		t.Fatalf("README.md has %d complete Envoy bootstraps (```yaml envoy with static_resources), want 1", len(r.readmeEnvoy))
	}
	bs := r.readmeEnvoy[0]
	ea, _ := extAuthzFilter(t, bs)
	if ea.GetFailureModeAllow() {
		t.Error("README Envoy config: failure_mode_allow must be false")
	}
	name := ea.GetGrpcService().GetEnvoyGrpc().GetClusterName()
	c := cluster(bs, name)
	if c == nil {
		t.Fatalf("README Envoy config: ext_authz gRPC cluster %q is not defined", name)
	}
	if _, ok := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]; !ok {
		t.Errorf("README Envoy config: cluster %s must enable HTTP/2 (gRPC)", name)
	}
	want := defaultPort(t, envoy.DefaultGRPCListen)
	for _, e := range c.GetLoadAssignment().GetEndpoints() {
		for _, le := range e.GetLbEndpoints() {
			if p := le.GetEndpoint().GetAddress().GetSocketAddress().GetPortValue(); int(p) != want {
				t.Errorf("README Envoy config: cluster %s points at port %d, the server's default gRPC port is %d", name, p, want)
			}
		}
	}
}

// TestDocsCheckerFails proves that the checks above can fail: each case breaks one thing
// in a copy of the real documentation and must be reported.
func TestDocsCheckerFails(t *testing.T) {
	readme := string(read(t, filepath.Join(repoRoot, "README.md")))
	blocks, err := fences("README.md", readme)
	if err != nil {
		t.Fatal(err)
	}
	first := func(info string) string {
		for _, f := range blocks {
			if f.info == info {
				return f.body
			}
		}
		t.Fatalf("README.md has no ```%s block", info)
		return ""
	}
	cfg, envoyCfg := first("yaml"), first("yaml envoy")
	if !strings.Contains(envoyCfg, "failure_mode_allow") {
		t.Fatal("README's Envoy config no longer sets failure_mode_allow")
	}
	tests := []struct {
		name string
		add  string // appended to README.md
		want string // in the reported error
	}{
		{"config with a misspelt section", "```yaml\nisuers: []\n" + cfg + "```\n", "unknown section"},
		{"config that does not validate", "```yaml\nissuers: [{issuer: ftp://op}]\n```\n", "issuers[0].issuer"},
		{"fragment with a misspelt key", "```yaml fragment\nverification: {leway: 60s}\n```\n", "leway"},
		{"fragment naming an unknown access level", "```yaml fragment\npolicy: {default: nobody}\n```\n", "nobody"},
		{"Envoy config with a misspelt field", "```yaml envoy\n" + strings.Replace(envoyCfg, "failure_mode_allow", "failure_mode_alow", 1) + "```\n", "failure_mode_alow"},
		{"Envoy fragment with a misspelt field", "```yaml envoy\nhttp_service: {path_prefixx: /check}\n```\n", "path_prefixx"},
		{"other YAML that does not parse", "```yaml k8s\na: 1\na: 2\n```\n", "already set"},
		{"link to a missing file", "[gone](docs/no-such-file.md)\n", "does not exist"},
		{"link to a missing anchor", "[gone](README.md#no-such-heading)\n", "#no-such-heading"},
		{"link to a missing anchor in this file", "[gone](#no-such-heading)\n", "#no-such-heading"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := checkDocs(t, repoRoot, map[string]string{"README.md": readme + "\n" + tc.add})
			var msgs bytes.Buffer
			for _, err := range r.errs {
				fmt.Fprintln(&msgs, err)
			}
			if !strings.Contains(msgs.String(), tc.want) {
				t.Fatalf("the broken copy was not reported with %q; reported:\n%s", tc.want, msgs.String())
			}
		})
	}
}

// TestFragments: a fragment of sections is merged into the base config; any other
// fragment passes when it is a valid route, requirement or issuer, and fails otherwise.
func TestFragments(t *testing.T) {
	tests := []struct {
		name, fragment string
		ok             bool
	}{
		{"sections", "verification: {leeway: 30s}\npolicy: {routes: [{name: h, path: {exact: /h}, public: true}]}\n", true},
		{"a route", "name: admin\npath: {prefix: /admin}\nrequire: {groups: {values: [admins]}}\n", true},
		{"a route's require only", "require: {all_of: [{authenticated: true}, {groups: {values: [a]}}]}\n", true},
		{"a requirement", "groups: {claim: wlcg.groups, values: [ops, sre], match: 2}\n", true},
		{"an issuer", "issuer: https://op.example.org\nuserinfo: never\n", true},
		{"a misspelt section key", "verification: {leway: 30s}\n", false},
		{"a misspelt requirement form", "require: {grups: {values: [a]}}\n", false},
		{"an invalid value", "groups: {values: [a], match: none}\n", false},
		{"not a mapping", "- a\n- b\n", false},
		{"empty", "{}\n", false},
	}
	dir := t.TempDir()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var n blockCounts
			_, err := checkBlock(dir, fence{file: "x.md", line: 1, info: "yaml fragment", body: tc.fragment}, &n)
			if (err == nil) != tc.ok {
				t.Fatalf("ok = %v, want %v (error: %v)", err == nil, tc.ok, err)
			}
		})
	}
}

// TestFences: the fence reader keeps indented blocks and their info strings.
func TestFences(t *testing.T) {
	md := "text\n```yaml fragment\nlog: {level: info}\n```\n1. item\n   ```yaml envoy\n   a: 1\n     b: 2\n   ```\n````md\n```\n````\n"
	got, err := fences("x.md", md)
	if err != nil {
		t.Fatal(err)
	}
	want := []fence{
		{"x.md", 2, "yaml fragment", "log: {level: info}\n"},
		{"x.md", 6, "yaml envoy", "a: 1\n  b: 2\n"},
		{"x.md", 10, "md", "```\n"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || got[0].body != want[0].body || got[1].body != want[1].body || got[2].body != want[2].body {
		t.Fatalf("got %q, want %q", got, want)
	}
	if _, err := fences("x.md", "```yaml\na: 1\n"); err == nil {
		t.Fatal("an unclosed fence was accepted")
	}
}

// TestAnchors: GitHub's heading anchors.
func TestAnchors(t *testing.T) {
	a := anchors("# flaat-extauthz\n## Server, headers, metrics\n### `validate`, `version`\n## Two commands\n## Two commands\n```\n# not a heading\n```\n")
	for _, want := range []string{"flaat-extauthz", "server-headers-metrics", "validate-version", "two-commands", "two-commands-1"} {
		if !a[want] {
			t.Errorf("anchor %q missing from %v", want, a)
		}
	}
	if a["not-a-heading"] {
		t.Error("a line inside a fence was read as a heading")
	}
}
