package server

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/flaat-extauthz/flaat-extauthz/internal/config"
	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
)

// TestServeReloadRereadsClientSecretFile: client_secret_file is read at start-up and at
// every SIGHUP reload, so a rotated secret (e.g. an updated Kubernetes Secret) is used
// without a restart; an unreadable file refuses the reload and the old secret keeps
// serving.
func TestServeReloadRereadsClientSecretFile(t *testing.T) {
	op := oidctest.New(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "client-secret")
	path := filepath.Join(dir, "config.yaml")
	y := "issuers: [{issuer: " + op.Issuer() + ", userinfo: never, introspect: opaque, client_id: " + op.ClientID() +
		", client_secret_file: " + secret + "}]\nverification: {cache: {disabled: true}}\npolicy: {default: {authenticated: true}}\n"
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	writeSecret := func(s string) {
		t.Helper()
		if err := os.WriteFile(secret, []byte(s+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeSecret("an-old-secret-the-op-no-longer-accepts")
	reloaded := make(chan bool, 2)
	r := start(t, Options{Load: fileLoader(path, config.Overrides{}), OnReload: func(ok bool) { reloaded <- ok }})
	check := func() int {
		code, _ := r.Get("http", "/x", map[string]string{"Authorization": "Bearer " + op.MintOpaque(map[string]any{"sub": "alice"})})
		return code
	}
	// The OP refuses our client authentication: a technical failure, not a verdict on the
	// token (503, fail closed).
	if code := check(); code != 503 {
		t.Fatalf("introspection with a client secret the OP refuses: %d, want 503", code)
	}

	writeSecret(op.ClientSecret())
	r.Sigs <- syscall.SIGHUP
	if ok := <-reloaded; !ok {
		t.Fatal("reload with the rotated secret refused")
	}
	if code := check(); code != 200 {
		t.Fatalf("after rotating the secret and SIGHUP: %d, want 200", code)
	}

	if err := os.Remove(secret); err != nil {
		t.Fatal(err)
	}
	r.Sigs <- syscall.SIGHUP
	if ok := <-reloaded; ok {
		t.Fatal("reload with a missing client_secret_file applied")
	}
	if code := check(); code != 200 {
		t.Errorf("after a refused reload: %d, want 200 (the previous secret keeps serving)", code)
	}
}
