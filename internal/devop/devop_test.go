package devop_test

import (
	"net/http"
	"testing"

	"github.com/flaat-extauthz/flaat-extauthz/internal/devop"
)

// TestStartWithoutTB: the demo's way, Start and Close without a testing.TB; the OP
// serves on loopback and refuses connections once closed.
func TestStartWithoutTB(t *testing.T) {
	op, err := devop.Start()
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Get(op.URL(devop.JWKS))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("jwks %d", res.StatusCode)
	}
	if cfg := op.IssuerConfig(); cfg.Issuer != op.Issuer() || cfg.ClientID == "" {
		t.Fatalf("IssuerConfig %+v", cfg)
	}
	op.Close()
	op.Close() // idempotent
	if _, err := http.Get(op.URL(devop.JWKS)); err == nil {
		t.Fatal("closed: want a transport error")
	}
}
