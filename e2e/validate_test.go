//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExampleConfigsValidateCLI runs `flaat-extauthz validate` on the example
// configurations (the compose demo's file and the Kubernetes ConfigMap's config.yaml), and
// proves the command fails on a broken one.
func TestExampleConfigsValidateCLI(t *testing.T) {
	bin := flaatBinary(t)
	dir := t.TempDir()

	k8s, err := os.ReadFile(filepath.Join(repoRoot, "examples", "kubernetes", "flaat-extauthz.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The ConfigMap's config.yaml is the block under "config.yaml: |", indented 4 spaces.
	_, block, ok := strings.Cut(string(k8s), "  config.yaml: |\n")
	if !ok {
		t.Fatal("examples/kubernetes/flaat-extauthz.yaml: no config.yaml block")
	}
	var cfg strings.Builder
	for _, line := range strings.Split(block, "\n") {
		if line != "" && !strings.HasPrefix(line, "    ") {
			break
		}
		cfg.WriteString(strings.TrimPrefix(line, "    ") + "\n")
	}
	k8sCfg := filepath.Join(dir, "k8s.yaml")
	broken := filepath.Join(dir, "broken.yaml")
	compose := filepath.Join(repoRoot, "examples", "docker-compose", "flaat-extauthz.yaml")
	composeData, err := os.ReadFile(compose)
	if err != nil {
		t.Fatal(err)
	}
	for path, data := range map[string]string{
		k8sCfg: cfg.String(),
		broken: strings.Replace(string(composeData), "userinfo: never", "userinfo: sometimes", 1),
	} {
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name string
		file string
		ok   bool
	}{
		{"docker-compose/flaat-extauthz.yaml", compose, true},
		{"kubernetes ConfigMap config.yaml", k8sCfg, true},
		{"broken copy is refused", broken, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, err := runCmd(t, "", bin, "validate", "--config", tc.file)
			if (err == nil) != tc.ok {
				t.Fatalf("validate: err=%v, want ok=%v\n%s%s", err, tc.ok, out, stderr)
			}
		})
	}
}
