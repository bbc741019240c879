package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoTestCodeLinked: the production binary links neither package testing nor
// net/http/httptest (the demo's OP is internal/devop; test helpers live in
// internal/testutil and oidctest, which only tests import).
func TestNoTestCodeLinked(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the binary's packages: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps listed only %d packages: %q", len(deps), deps)
	}
	for _, d := range deps {
		switch {
		case d == "testing", d == "net/http/httptest", strings.HasPrefix(d, "testing/"),
			strings.HasSuffix(d, "/oidctest"), strings.Contains(d, "/internal/testutil/"):
			t.Errorf("flaat-extauthz links %s", d)
		}
	}
}
