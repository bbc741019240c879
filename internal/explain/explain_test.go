package explain

import (
	"context"
	"testing"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/envoy"
	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

func TestClaims(t *testing.T) {
	var cfg policy.Config
	cfg.Routes = []policy.Route{
		{Name: "health", Path: &policy.PathMatch{Exact: "/health"}, Public: true},
		{Name: "admin", Path: &policy.PathMatch{Prefix: "/admin"}, Require: &policy.Requirement{Groups: &policy.ValuesRequirement{Values: policy.StringList{"admins"}}}},
	}
	pol, err := policy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	admin := map[string]any{"sub": "alice", "iss": "https://op", "groups": []any{"admins"}}
	user := map[string]any{"sub": "bob", "iss": "https://op", "groups": []any{"users"}}
	for _, tc := range []struct {
		name    string
		claims  map[string]any
		path    string
		want    authz.Outcome
		status  int // HTTP status of the denial; 0 for allow
		subject string
	}{
		{"member", admin, "/admin/x", authz.OutcomeAllow, 0, "alice"},
		{"not a member", user, "/admin/x", authz.OutcomeForbidden, 403, "bob"},
		{"public", nil, "/health", authz.OutcomeAllow, 0, ""},
		{"no route", admin, "/other", authz.OutcomeForbidden, 403, ""},
		{"bad path", admin, "/admin/%zz", authz.OutcomeBadRequest, 400, ""},
		{"ambiguous path", admin, "/admin/..;/health", authz.OutcomeBadRequest, 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Claims(context.Background(), pol, envoy.Config{}, nil, tc.claims, Request{Method: "GET", Path: tc.path})
			if err != nil {
				t.Fatal(err)
			}
			if res.Decision.Outcome != tc.want {
				t.Fatalf("outcome %v (%s), want %v", res.Decision.Outcome, res.Decision.Reason, tc.want)
			}
			if got := res.Response.GetOkResponse() != nil; got != (tc.status == 0) {
				t.Fatalf("ok response %v, want %v", got, tc.status == 0)
			}
			if tc.status != 0 && int(res.Response.GetDeniedResponse().GetStatus().GetCode()) != tc.status {
				t.Errorf("status %v, want %d", res.Response.GetDeniedResponse().GetStatus().GetCode(), tc.status)
			}
			if tc.subject != "" && (res.Decision.Identity == nil || res.Decision.Identity.Subject() != tc.subject) {
				t.Errorf("identity %+v", res.Decision.Identity)
			}
		})
	}
}

// TestRunNoToken: Run sends no Authorization header for an empty Token, so a real
// authorizer answers 401.
func TestRunNoToken(t *testing.T) {
	pol, err := policy.New(policy.Config{Default: &policy.Requirement{Authenticated: true}})
	if err != nil {
		t.Fatal(err)
	}
	az, err := authz.New(authz.Config{Issuers: []authz.IssuerConfig{{Issuer: "https://op.example"}}}, pol)
	if err != nil {
		t.Fatal(err)
	}
	defer az.Close()
	res, err := Run(context.Background(), az, envoy.Config{}, nil, Request{Method: "GET", Path: "/"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Decision.Outcome != authz.OutcomeNoToken || res.Response.GetDeniedResponse().GetStatus().GetCode() != 401 {
		t.Fatalf("decision %v, response %v; want no_token, 401", res.Decision.Outcome, res.Response)
	}
}
