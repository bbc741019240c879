// Package config loads, overrides and validates the flaat-extauthz configuration file:
// one YAML (or JSON) document with the sections `server:` (envoy.Config), `issuers:`
// (authz.Config.Issuers), `verification:` (the rest of authz.Config), `policy:`
// (policy.Config), `log:` and `tracing:`.
//
// Loading is strict: unknown keys anywhere are errors, so a typo never silently falls
// back to a default. Validation is pure (no network, no files other than those named for
// reading) and reports every problem of every section in one error.
//
// Package config does not build servers or authorizers; cmd/flaat-extauthz wires them.
package config

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/envoy"
	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// MaxFileSize is the largest configuration file Load accepts (1 MiB).
const MaxFileSize = 1 << 20

// File is the whole configuration file.
type File struct {
	// Server configures the listeners, identity headers and TLS (package envoy).
	Server envoy.Config `json:"server"`
	// Issuers is the list of trusted OPs (authz.Config.Issuers). A token from any other
	// issuer is denied without a network call.
	Issuers []authz.IssuerConfig `json:"issuers"`
	// Verification is the rest of authz.Config (leeway, timeouts, cache, …). Its
	// `issuers` key must stay empty: issuers live at the top level.
	Verification authz.Config `json:"verification"`
	// Policy is the route table and access levels (package policy).
	Policy policy.Config `json:"policy"`
	// Log configures logging.
	Log Log `json:"log"`
	// Tracing adds to the OpenTelemetry tracing that the OTEL_* environment variables
	// turn on (docs/tracing.md).
	Tracing Tracing `json:"tracing"`
}

// Tracing is the `tracing:` section. Tracing itself is turned on and pointed at a
// collector by the standard OTEL_* environment variables (OTEL_TRACES_EXPORTER=otlp,
// OTEL_EXPORTER_OTLP_ENDPOINT, …); this section only says what the spans may hold.
// It is read at start-up: a reload does not change it.
type Tracing struct {
	// RecordSubject adds the verified token's subject (sub) to each check span as
	// enduser.id. Default false. A trace backend is often readable by more people, and
	// kept longer, than the logs: turn it on only where user identifiers may be stored
	// there. No other claim and never the token is recorded, whatever this says.
	RecordSubject bool `json:"record_subject,omitempty"`
}

// Log is the `log:` section.
type Log struct {
	// Level is debug | info | warn | error. Default info.
	Level string `json:"level,omitempty"`
	// Format is json | text. Default json.
	Format string `json:"format,omitempty"`
	// Denials is the level at which each denial is logged: info | debug. Default info.
	// Allowed requests are always logged at debug.
	Denials string `json:"denials,omitempty"`
}

// sections are the known top-level keys, in file order.
var sections = []string{"server", "issuers", "verification", "policy", "log", "tracing"}

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the embedded default configuration file (used when no file is
// given): default listeners, no issuers, and a default policy that requires a valid token.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Default returns the parsed embedded default configuration. It has no issuers: add
// them with Overrides.Issuers.
func Default() *File {
	f, err := Parse(defaultYAML)
	if err != nil {
		panic("config: embedded default is invalid: " + err.Error()) // caught by tests
	}
	return f
}

// Load reads and parses the file at path. It does not validate; call Validate.
func Load(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer fh.Close()
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(fh, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	if n > MaxFileSize {
		return nil, fmt.Errorf("config: %s: larger than %d bytes", path, MaxFileSize)
	}
	f, err := Parse(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	if err := f.readSecretFiles(); err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	return f, nil
}

// maxSecretFileSize bounds a client_secret_file.
const maxSecretFileSize = 64 << 10

// readSecretFiles reads every issuer's client_secret_file into its ClientSecret
// (trimmed). Setting both, an unreadable, oversized or empty file are errors; every
// problem is reported. Load calls it, so a SIGHUP reload picks up a rotated secret.
func (f *File) readSecretFiles() error {
	var errs []error
	for i := range f.Issuers {
		is := &f.Issuers[i]
		if is.ClientSecretFile == "" {
			continue
		}
		loc := fmt.Sprintf("issuers[%d].client_secret_file", i)
		if is.ClientSecret != "" {
			errs = append(errs, fmt.Errorf("%s: set client_secret or client_secret_file, not both", loc))
			continue
		}
		fh, err := os.Open(is.ClientSecretFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", loc, err))
			continue
		}
		b, err := io.ReadAll(io.LimitReader(fh, maxSecretFileSize+1))
		fh.Close()
		switch s := strings.TrimSpace(string(b)); {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: read %s: %w", loc, is.ClientSecretFile, err))
		case len(b) > maxSecretFileSize:
			errs = append(errs, fmt.Errorf("%s: %s is larger than %d bytes", loc, is.ClientSecretFile, maxSecretFileSize))
		case s == "":
			errs = append(errs, fmt.Errorf("%s: %s is empty", loc, is.ClientSecretFile))
		default:
			is.ClientSecret = s
		}
	}
	return errors.Join(errs...)
}

// Parse decodes a YAML or JSON configuration document strictly: unknown keys at any
// level are errors, and every section's decoding problems are reported together. An
// empty document is an empty File (every default). Parse does not validate.
func Parse(data []byte) (*File, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("config: larger than %d bytes", MaxFileSize)
	}
	js, err := yaml.YAMLToJSONStrict(data) // duplicate keys are errors
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	js = bytes.TrimSpace(js)
	f := &File{}
	if len(js) == 0 || string(js) == "null" {
		return f, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(js, &top); err != nil {
		return nil, fmt.Errorf("config: the document must be a mapping of sections (%s): %w",
			strings.Join(sections, ", "), err)
	}
	var errs []error
	keys := make([]string, 0, len(top))
	for k := range top {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var dst any
		switch k {
		case "server":
			dst = &f.Server
		case "issuers":
			dst = &f.Issuers
		case "verification":
			dst = &f.Verification
		case "policy":
			dst = &f.Policy
		case "log":
			dst = &f.Log
		case "tracing":
			dst = &f.Tracing
		default:
			errs = append(errs, fmt.Errorf("config: unknown section %q (known: %s)", k, strings.Join(sections, ", ")))
			continue
		}
		if err := strictDecode(top[k], dst); err != nil {
			errs = append(errs, fmt.Errorf("config: %s: %w", k, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return f, nil
}

// strictDecode decodes one JSON value into dst, refusing unknown fields and trailing data.
func strictDecode(raw json.RawMessage, dst any) error {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("unexpected trailing data")
	}
	return nil
}

// AuthzConfig returns the authz.Config made of the `issuers:` and `verification:` sections.
func (f *File) AuthzConfig() authz.Config {
	c := f.Verification
	c.Issuers = append([]authz.IssuerConfig(nil), f.Issuers...)
	return c
}

// Overrides are values from flags and environment variables that replace those of the
// file. Zero values leave the file's value alone.
type Overrides struct {
	// Issuers, when non-empty, replaces the `issuers:` section with one entry per URL
	// (every other issuer setting at its default).
	Issuers []string
	// GRPCListen, HTTPListen and AdminListen replace the listen addresses.
	GRPCListen, HTTPListen, AdminListen string
	// LogLevel and LogFormat replace log.level and log.format.
	LogLevel, LogFormat string
}

// Apply writes the non-zero overrides into f.
func (o Overrides) Apply(f *File) {
	if len(o.Issuers) > 0 {
		f.Issuers = f.Issuers[:0:0]
		for _, iss := range o.Issuers {
			f.Issuers = append(f.Issuers, authz.IssuerConfig{Issuer: iss})
		}
	}
	applyListen(&f.Server, o)
	if o.LogLevel != "" {
		f.Log.Level = o.LogLevel
	}
	if o.LogFormat != "" {
		f.Log.Format = o.LogFormat
	}
}

// SplitList splits a comma-separated environment value (FLAAT_EXTAUTHZ_ISSUERS) into
// its trimmed, non-empty elements.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Validate checks every section with its own package's validator plus the checks of
// this package, and returns every problem at once (errors.Join), or nil. It has no
// side effects and makes no network calls.
func (f *File) Validate() error {
	var errs []error
	add := func(section string, err error) {
		if err == nil {
			return
		}
		for _, e := range splitJoin(err) { // one line per problem
			if section != "" {
				e = fmt.Errorf("%s: %w", section, e)
			}
			errs = append(errs, e)
		}
	}
	if len(f.Verification.Issuers) > 0 {
		add("verification", errors.New("issuers: put the trusted issuers in the top-level `issuers:` section"))
	}
	// authz names its locations (issuers[i].…, verification.…) itself.
	if err := f.AuthzConfig().Validate(); err != nil {
		var ae *authz.ConfigError
		if errors.As(err, &ae) {
			for _, p := range ae.Problems {
				add("", errors.New(p))
			}
		} else {
			add("", err)
		}
	}
	if _, err := policy.New(f.Policy); err != nil {
		var pe *policy.ConfigError
		if errors.As(err, &pe) {
			for _, p := range pe.Problems {
				add("policy", errors.New(p.String()))
			}
		} else {
			add("policy", err)
		}
	}
	add("", validateServer(&f.Server)) // envoy's messages name "server.<field>"
	add("log", f.Log.validate())
	add("log", f.validateDenials())
	if len(errs) == 0 {
		return nil
	}
	return &Error{Problems: errs}
}

// NoIssuerWarning is the warning for a configuration that trusts no issuer although a
// route needs a token: it is valid (every such request is denied, fail closed) but
// almost certainly not what the operator wants.
const NoIssuerWarning = "issuers: no trusted issuer is configured (config `issuers:`, --issuer or FLAAT_EXTAUTHZ_ISSUERS): every request that needs a token is denied"

// Warnings lists what is valid but probably a mistake: no trusted issuer while some
// route needs a token, plus the policy's own warnings. Call it after Validate.
func (f *File) Warnings() []string {
	var ws []string
	if len(f.Issuers) == 0 && !f.allPublic() {
		ws = append(ws, NoIssuerWarning)
	}
	for i, is := range f.Issuers {
		for _, u := range []struct{ field, url string }{{"issuer", is.Issuer}, {"discovery_url", is.DiscoveryURL}} {
			if insecureRemote(u.url) {
				ws = append(ws, fmt.Sprintf("issuers[%d].%s: %q is http:// on a host that is not loopback: the discovery document and the JWKS can be swapped on the way, and with them every key; use https://", i, u.field, u.url))
			}
		}
	}
	if pol, err := policy.New(f.Policy); err == nil {
		for _, w := range pol.Warnings() {
			ws = append(ws, "policy: "+w)
		}
	}
	return ws
}

// insecureRemote reports whether u is an http:// URL whose host is not loopback
// (localhost, 127.0.0.0/8, ::1).
func insecureRemote(u string) bool {
	pu, err := url.Parse(u)
	if err != nil || !strings.EqualFold(pu.Scheme, "http") {
		return false
	}
	h := strings.ToLower(strings.TrimSuffix(pu.Hostname(), "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return false
	}
	ip := net.ParseIP(h)
	return ip == nil || !ip.IsLoopback()
}

// allPublic reports whether no token can ever be needed: every route is public and there
// is no default requirement other than deny.
func (f *File) allPublic() bool {
	if f.Policy.Default != nil || len(f.Policy.AccessLevels) > 0 || len(f.Policy.Routes) == 0 {
		return false
	}
	for _, r := range f.Policy.Routes {
		if !r.Public {
			return false
		}
	}
	return true
}

// splitJoin returns the errors joined in err (recursively), or err itself.
func splitJoin(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok || !isJoin(err) {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, splitJoin(e)...)
	}
	return out
}

// isJoin reports whether err is an errors.Join result: its message is exactly its
// parts' messages, one per line (other multi-wrapping errors have their own message).
func isJoin(err error) bool {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return false
	}
	var parts []string
	for _, e := range j.Unwrap() {
		parts = append(parts, e.Error())
	}
	return len(parts) > 0 && err.Error() == strings.Join(parts, "\n")
}

// Error is a failed validation: one entry per problem, each prefixed with its section.
type Error struct {
	Problems []error
}

// Error lists every problem, one per line.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "config: %d problem(s):", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap exposes the individual problems to errors.Is / errors.As.
func (e *Error) Unwrap() []error { return e.Problems }

func (l Log) validate() error {
	var errs []error
	switch strings.ToLower(l.Level) {
	case "", "debug", "info", "warn", "warning", "error":
	default:
		errs = append(errs, fmt.Errorf("level %q: want debug, info, warn or error", l.Level))
	}
	switch strings.ToLower(l.Format) {
	case "", "json", "text":
	default:
		errs = append(errs, fmt.Errorf("format %q: want json or text", l.Format))
	}
	switch strings.ToLower(l.Denials) {
	case "", "info", "debug":
	default:
		errs = append(errs, fmt.Errorf("denials %q: want info or debug", l.Denials))
	}
	return errors.Join(errs...)
}

// ClaimProjection lists every claim serve reads from a verified identity: the policy's,
// the identity headers' (server.headers, the defaults when unset), the groups claim and
// the metadata claims. The identity cache keeps only these (and sub and iss), which is
// what makes a cached identity small. The check and userinfo commands do not project.
func ClaimProjection(pol *policy.Engine, sc envoy.Config) []string {
	names := pol.ClaimNames()
	hs := sc.Headers
	if hs == nil {
		hs = envoy.DefaultHeaders()
	}
	for _, h := range hs {
		names = append(names, h.Claim)
	}
	groups := sc.GroupsClaim
	if groups == "" {
		groups = envoy.DefaultGroupsClaim
	}
	names = append(names, groups)
	return append(names, sc.MetadataClaims...)
}
