//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDockerComposeConfig validates examples/docker-compose/docker-compose.yml with
// Debian's docker-compose (`config -q` needs no Docker engine), and proves the check can
// fail by feeding it a broken copy.
func TestDockerComposeConfig(t *testing.T) {
	dc := tool(t, "docker-compose")
	dir := filepath.Join(repoRoot, "examples", "docker-compose")
	if out, stderr, err := runCmd(t, "", dc, "--project-directory", dir, "-f", filepath.Join(dir, "docker-compose.yml"), "config", "-q"); err != nil {
		t.Fatalf("docker-compose config -q: %v\n%s%s", err, out, stderr)
	}

	good, err := os.ReadFile(filepath.Join(dir, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(good), "    depends_on:\n      keycloak:", "    depends_onn:\n      keycloak:", 1)
	if broken == string(good) {
		t.Fatal("docker-compose.yml no longer has the line this test breaks")
	}
	bad := filepath.Join(t.TempDir(), "docker-compose.yml")
	if err := os.WriteFile(bad, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCmd(t, "", dc, "--project-directory", dir, "-f", bad, "config", "-q"); err == nil {
		t.Fatal("docker-compose accepted a compose file with an unknown key")
	}
}
