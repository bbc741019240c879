package oidctest_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// adminPolicy is the policy under test: /admin needs the group "admins", everything
// else any valid token.
func adminPolicy() policy.Config {
	return policy.Config{
		Routes: []policy.Route{{Name: "admin", Path: &policy.PathMatch{Prefix: "/admin"},
			Require: &policy.Requirement{Groups: &policy.ValuesRequirement{Values: policy.StringList{"admins"}}}}},
		Default: &policy.Requirement{Authenticated: true},
	}
}

// TestYourPolicy is how a user tests a policy and the tokens of their OP's shape: a
// fake OP per test, tokens minted with the claims the real OP would put in, and the
// decisions the server would make.
func TestYourPolicy(t *testing.T) {
	op := oidctest.New(t)
	pol, err := policy.New(adminPolicy())
	if err != nil {
		t.Fatal(err)
	}
	a, err := authz.New(authz.Config{Issuers: []authz.IssuerConfig{op.IssuerConfig()}}, pol,
		authz.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	tests := []struct {
		name  string
		token string
		path  string
		want  authz.Outcome
	}{
		{"admin at /admin", op.MintJWT(map[string]any{"sub": "alice", "groups": []string{"admins"}}), "/admin/x", authz.OutcomeAllow},
		{"user at /admin", op.MintJWT(map[string]any{"sub": "bob", "groups": []string{"users"}}), "/admin/x", authz.OutcomeForbidden},
		{"user elsewhere", op.MintJWT(map[string]any{"sub": "bob"}), "/hello", authz.OutcomeAllow},
		{"expired", op.MintJWT(map[string]any{"sub": "bob"}, oidctest.ExpiresIn(-time.Hour)), "/hello", authz.OutcomeInvalidToken},
		{"opaque token, userinfo answers", op.MintOpaque(map[string]any{"sub": "carol", "groups": []string{"admins"}}), "/admin", authz.OutcomeAllow},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := a.Authorize(context.Background(), authz.Request{Method: "GET", Path: tc.path, Authorization: "Bearer " + tc.token})
			if d.Outcome != tc.want {
				t.Errorf("outcome %v (%s), want %v", d.Outcome, d.Reason, tc.want)
			}
		})
	}
}

// Outside a test (here: a runnable example) Start and Close the OP yourself.
func ExampleStart() {
	op, err := oidctest.Start()
	if err != nil {
		panic(err)
	}
	defer op.Close()
	pol, _ := policy.New(adminPolicy())
	a, err := authz.New(authz.Config{Issuers: []authz.IssuerConfig{op.IssuerConfig()}}, pol,
		authz.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		panic(err)
	}
	defer a.Close()
	token := op.MintJWT(map[string]any{"sub": "bob", "groups": []string{"users"}})
	d := a.Authorize(context.Background(), authz.Request{Method: "GET", Path: "/admin", Authorization: "Bearer " + token})
	fmt.Println(d.Outcome, d.Route)
	// Output: forbidden admin
}
