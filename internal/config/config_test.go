package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValidWithAnIssuer(t *testing.T) {
	f := Default()
	// Without an issuer the default is valid (it denies every token: fail closed) and warns.
	if err := f.Validate(); err != nil {
		t.Fatalf("default without issuer: %v", err)
	}
	if ws := f.Warnings(); len(ws) != 1 || ws[0] != NoIssuerWarning {
		t.Fatalf("default without issuer: warnings %q, want the no-issuer warning", ws)
	}
	Overrides{Issuers: []string{"https://login.example.org"}}.Apply(f)
	if err := f.Validate(); err != nil {
		t.Fatalf("default with issuer: %v", err)
	}
	if ws := f.Warnings(); len(ws) != 0 {
		t.Fatalf("default with issuer: warnings %q", ws)
	}
	if f.Policy.Default == nil {
		t.Fatal("default policy must require something (authenticated)")
	}
	if got := f.AuthzConfig().Issuers; len(got) != 1 || got[0].Issuer != "https://login.example.org" {
		t.Fatalf("issuers = %+v", got)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr []string // substrings; all must appear
		check   func(t *testing.T, f *File)
	}{
		{name: "empty document", yaml: "", check: func(t *testing.T, f *File) {
			if len(f.Issuers) != 0 {
				t.Error("issuers from nothing")
			}
		}},
		{name: "null document", yaml: "~\n"},
		{name: "full", yaml: `
server:
  grpc_listen: 127.0.0.1:1
  readiness: lazy
issuers:
  - issuer: https://op.example
    audiences: [api]
    client_id: c
verification:
  leeway: 30s
  http_timeout: 3
  cache: {size: 10, max_ttl: 1m}
log: {level: debug, format: text}
`, check: func(t *testing.T, f *File) {
			if f.Server.GRPCListen != "127.0.0.1:1" || f.Server.Readiness != "lazy" {
				t.Errorf("server = %+v", f.Server)
			}
			ac := f.AuthzConfig()
			if len(ac.Issuers) != 1 || ac.Issuers[0].Audiences[0] != "api" || ac.Issuers[0].ClientID != "c" {
				t.Errorf("issuers = %+v", ac.Issuers)
			}
			if ac.Leeway.D() != 30*time.Second || ac.HTTPTimeout.D() != 3*time.Second || ac.Cache.Size != 10 || ac.Cache.MaxTTL.D() != time.Minute {
				t.Errorf("verification = %+v", ac)
			}
			if f.Log.Level != "debug" || f.Log.Format != "text" {
				t.Errorf("log = %+v", f.Log)
			}
		}},
		{name: "json document", yaml: `{"issuers":[{"issuer":"https://op"}]}`, check: func(t *testing.T, f *File) {
			if len(f.Issuers) != 1 {
				t.Error("json not accepted")
			}
		}},
		{name: "unknown section", yaml: "serevr: {}\n", wantErr: []string{`unknown section "serevr"`}},
		{name: "tracing section", yaml: "tracing: {record_subject: true}\n", check: func(t *testing.T, f *File) {
			if !f.Tracing.RecordSubject {
				t.Error("tracing.record_subject not read")
			}
		}},
		{name: "tracing is off without the section", yaml: "log: {}\n", check: func(t *testing.T, f *File) {
			if f.Tracing.RecordSubject {
				t.Error("record_subject on by default")
			}
		}},
		{name: "typo in tracing", yaml: "tracing: {record_sub: true}\n", wantErr: []string{`tracing: json: unknown field "record_sub"`}},
		{name: "typo in every section at once", yaml: `
server: {grpc_lisen: x}
issuers: [{isuer: x}]
verification: {leway: 1s}
log: {levl: x}
`, wantErr: []string{`server: json: unknown field "grpc_lisen"`, `issuers: json: unknown field "isuer"`,
			`verification: json: unknown field "leway"`, `log: json: unknown field "levl"`}},
		{name: "bad duration", yaml: "verification: {leeway: soon}\n", wantErr: []string{"verification", "soon"}},
		{name: "wrong type", yaml: "issuers: {issuer: x}\n", wantErr: []string{"issuers"}},
		{name: "not a mapping", yaml: "- a\n- b\n", wantErr: []string{"mapping of sections"}},
		{name: "yaml syntax", yaml: "server: [\n", wantErr: []string{"config:"}},
		{name: "duplicate key", yaml: "log: {}\nlog: {}\n", wantErr: []string{"config:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse([]byte(tc.yaml))
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, want %q", tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, f)
			}
		})
	}
}

func TestValidateReportsEverything(t *testing.T) {
	f, err := Parse([]byte(`
server:
  grpc_listen: "nonsense"
  readiness: sometimes
verification:
  issuers: [{issuer: https://misplaced}]
log: {level: loud, format: xml, denials: never}
`))
	if err != nil {
		t.Fatal(err)
	}
	err = f.Validate()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %T %v, want *config.Error", err, err)
	}
	for _, want := range []string{
		"server.grpc_listen", "server.readiness", "verification: issuers: put the trusted issuers",
		`log: level "loud"`, `log: format "xml"`, `log: denials "never"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("validation error lacks %q:\n%v", want, err)
		}
	}
	if len(ce.Problems) < 6 {
		t.Errorf("%d problems, want every one of them (>= 6):\n%v", len(ce.Problems), err)
	}
}

func TestDenialsAndServerLevel(t *testing.T) {
	f := Default()
	Overrides{Issuers: []string{"https://op"}}.Apply(f)
	f.Log.Denials = "debug"
	if got := f.ServerConfig().DenyLogLevel; got != "debug" {
		t.Errorf("deny level = %q, want log.denials copied", got)
	}
	f.Server.DenyLogLevel = "info"
	if err := f.Validate(); err == nil || !strings.Contains(err.Error(), "disagrees") {
		t.Errorf("disagreeing levels: %v", err)
	}
}

func TestOverrides(t *testing.T) {
	f, err := Parse([]byte("issuers: [{issuer: https://file, client_id: x}]\nserver: {grpc_listen: ':1'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	Overrides{}.Apply(f)
	if f.Issuers[0].ClientID != "x" || f.Server.GRPCListen != ":1" {
		t.Fatal("empty overrides changed the file")
	}
	Overrides{Issuers: []string{"https://a", "https://b"}, GRPCListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0",
		AdminListen: "127.0.0.1:0", LogLevel: "debug", LogFormat: "text"}.Apply(f)
	if len(f.Issuers) != 2 || f.Issuers[1].Issuer != "https://b" || f.Issuers[0].ClientID != "" {
		t.Errorf("issuers = %+v", f.Issuers)
	}
	if f.Server.GRPCListen != "127.0.0.1:0" || f.Server.HTTPListen != "127.0.0.1:0" || f.Server.AdminListen != "127.0.0.1:0" {
		t.Errorf("server = %+v", f.Server)
	}
	if f.Log.Level != "debug" || f.Log.Format != "text" {
		t.Errorf("log = %+v", f.Log)
	}
}

func TestSplitList(t *testing.T) {
	got := SplitList(" https://a, ,https://b ,")
	if strings.Join(got, "|") != "https://a|https://b" {
		t.Errorf("SplitList = %q", got)
	}
	if SplitList("") != nil {
		t.Error("empty list not nil")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("issuers: [{issuer: https://op}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if f, err := Load(good); err != nil || len(f.Issuers) != 1 {
		t.Errorf("Load(good) = %v, %v", f, err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte("# "+strings.Repeat("x", MaxFileSize)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load(big) = %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("nope: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("Load(bad) = %v, want the path in the message", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(DefaultYAML())
	f.Add([]byte("issuers: [{issuer: https://op}]\nverification: {leeway: 1s}\n"))
	f.Add([]byte("{\"server\": {\"grpc_listen\": \":1\"}}"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("log: {level: [1, {x: y}]}"))
	f.Add([]byte("policy: {default: {n_of: {n: 2, of: [{claim: a}]}}}"))
	f.Add([]byte("policy: {default: {n_of: {\"n\": 1, min: 2, of: [{groups: {values: [a, on, \"y\"]}}]}}}"))
	f.Add([]byte("policy: {default: {entitlements: {values: [\"urn:nid:example.org?+r?=q#f:group:a%3ab:role=x\", yes]}}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cf, err := Parse(data)
		if err != nil {
			if cf != nil {
				t.Fatal("a File together with an error")
			}
			return
		}
		_ = cf.Validate() // must not panic either
	})
}

// TestClientSecretFile: Load reads client_secret_file into ClientSecret (trimmed) and
// refuses both-set, missing, empty and oversized files; Validate accepts a file in place
// of client_secret for introspection.
func TestClientSecretFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	secret := write("secret", "  s3cret\n")
	empty := write("empty", "\n \n")
	big := write("big", strings.Repeat("x", maxSecretFileSize+1))
	tests := []struct {
		name       string
		issuer     string // the issuer's YAML flow mapping, %s is replaced by the path
		path       string
		wantSecret string
		wantErr    string
	}{
		{"read and trimmed", `{issuer: https://op, client_id: c, introspect: opaque, client_secret_file: %q}`, secret, "s3cret", ""},
		{"both set", `{issuer: https://op, client_id: c, client_secret: x, client_secret_file: %q}`, secret, "", "not both"},
		{"missing file", `{issuer: https://op, client_id: c, client_secret_file: %q}`, filepath.Join(dir, "nope"), "", "no such file"},
		{"empty file", `{issuer: https://op, client_id: c, client_secret_file: %q}`, empty, "", "is empty"},
		{"oversized file", `{issuer: https://op, client_id: c, client_secret_file: %q}`, big, "", "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := write("config.yaml", "issuers: ["+fmt.Sprintf(tc.issuer, tc.path)+"]\n")
			f, err := Load(cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Load = %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Issuers[0].ClientSecret; got != tc.wantSecret {
				t.Errorf("ClientSecret = %q, want %q", got, tc.wantSecret)
			}
			if err := f.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
	// Parse alone (validate without the file at hand) accepts the file in place of
	// client_secret, and still wants client_id.
	for _, tc := range []struct{ name, doc, wantErr string }{
		{"file instead of secret", "issuers: [{issuer: https://op, client_id: c, introspect: always, client_secret_file: /x}]", ""},
		{"file without client_id", "issuers: [{issuer: https://op, client_secret_file: /x}]", "without client_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			err = f.Validate()
			if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Validate = %v, want error %q", err, tc.wantErr)
			}
		})
	}
}

// TestNonLoopbackHTTPIssuerWarns: an http:// issuer (or discovery URL) on a host that is
// not loopback is valid but warned about by serve and validate (both print Warnings):
// its JWKS can be swapped on the path. Loopback http:// (development) is not.
func TestNonLoopbackHTTPIssuerWarns(t *testing.T) {
	for _, tc := range []struct {
		issuer, discovery string
		warn              bool
	}{
		{"https://login.example.org", "", false},
		{"http://login.example.org", "", true},
		{"HTTP://10.0.0.7:8080/realms/x", "", true},
		{"http://127.0.0.1:8080", "", false},
		{"http://[::1]:8080", "", false},
		{"http://localhost:8080", "", false},
		{"https://login.example.org", "http://login.example.org/.well-known/openid-configuration", true},
	} {
		f := Default()
		Overrides{Issuers: []string{tc.issuer}}.Apply(f)
		f.Issuers[0].DiscoveryURL = tc.discovery
		if err := f.Validate(); err != nil {
			t.Fatalf("%s: %v", tc.issuer, err)
		}
		got := false
		for _, w := range f.Warnings() {
			got = got || strings.Contains(w, "is http:// on a host that is not loopback")
		}
		if got != tc.warn {
			t.Errorf("issuer %s discovery %q: warned %v, want %v (%q)", tc.issuer, tc.discovery, got, tc.warn, f.Warnings())
		}
	}
}
