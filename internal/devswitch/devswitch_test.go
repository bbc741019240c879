package devswitch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

func engine(t *testing.T) *policy.Engine {
	t.Helper()
	var cfg policy.Config
	y := `{"routes":[
	  {"name":"public","path":{"exact":"/health"},"public":true},
	  {"name":"admin","path":{"prefix":"/admin"},"require":{"groups":{"values":["admins"]}}},
	  {"name":"ent","path":{"prefix":"/ent"},"require":{"groups":{"claim":"eduperson_entitlement","values":["admins"]}}}
	],"default":{"authenticated":true}}`
	if err := jsonUnmarshal(y, &cfg); err != nil {
		t.Fatal(err)
	}
	e, err := policy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestAuthorize(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	pol := engine(t)
	tests := []struct {
		name string
		sw   Switches
		path string
		want authz.Outcome
	}{
		{"user: authenticated route", Switches{AssumeUser: true}, "/x", authz.OutcomeAllow},
		{"user: group route denied", Switches{AssumeUser: true}, "/admin", authz.OutcomeForbidden},
		{"groups: member", Switches{AssumeGroups: []string{"admins"}}, "/admin", authz.OutcomeAllow},
		{"groups: also in entitlement claim", Switches{AssumeGroups: []string{"admins"}}, "/ent", authz.OutcomeAllow},
		{"groups: not member", Switches{AssumeGroups: []string{"users"}}, "/admin", authz.OutcomeForbidden},
		{"valid groups: everything", Switches{AssumeValidGroups: true}, "/admin", authz.OutcomeAllow},
		{"user + authorization: everything", Switches{AssumeUser: true, AssumeAuthorized: true}, "/admin", authz.OutcomeAllow},
		{"authorization + bad path still denied", Switches{AssumeUser: true, AssumeAuthorized: true}, "/%zz", authz.OutcomeBadRequest},
		{"public route", Switches{AssumeUser: true}, "/health", authz.OutcomeAllow},
		{"bad path still denied", Switches{AssumeValidGroups: true}, "/%zz", authz.OutcomeBadRequest},
		{"ambiguous path still denied", Switches{AssumeValidGroups: true}, "/admin/..;/x", authz.OutcomeBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			a := New(tc.sw, pol, func() time.Time { return now }, func() { n++ })
			d := a.Authorize(context.Background(), authz.Request{Method: "GET", Path: tc.path, Authorization: "Bearer ignored"})
			if d.Outcome != tc.want {
				t.Fatalf("outcome %v (%s), want %v", d.Outcome, d.Reason, tc.want)
			}
			if n != 1 {
				t.Errorf("decision hook called %d times", n)
			}
			if d.Identity != nil {
				if d.Identity.Sources != authz.SourceInsecureDevSwitch || d.Identity.Subject() != Subject || !d.Identity.Expiry.Time().Equal(now.Add(time.Hour)) {
					t.Errorf("identity = %+v", d.Identity)
				}
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if d := New(Switches{AssumeUser: true}, pol, nil, nil).Authorize(ctx, authz.Request{Path: "/x"}); d.Outcome != authz.OutcomeCancelled {
		t.Errorf("cancelled ctx: %v, want cancelled (never allow a decision nobody waits for)", d.Outcome)
	}
}

// decided is an authorizer that answers one fixed decision.
type decided authz.Decision

func (d decided) Authorize(context.Context, authz.Request) authz.Decision { return authz.Decision(d) }

func TestAssumeAuthorized(t *testing.T) {
	id := &authz.Identity{Issuer: "https://op", Claims: policy.MapClaims(map[string]any{"sub": "alice"})}
	policyDenial := authz.Decision{Outcome: authz.OutcomeForbidden, Route: "admin", Identity: id, Reason: "groups: 0 of 1",
		Policy: policy.Result{Reason: "groups: 0 of 1", Details: []string{"groups: 0 of 1"}}}
	for _, tc := range []struct {
		name string
		next authz.Decision
		want authz.Outcome
	}{
		{"policy not met: allowed", policyDenial, authz.OutcomeAllow},
		{"allowed stays allowed", authz.Decision{Outcome: authz.OutcomeAllow, Route: "admin", Identity: id}, authz.OutcomeAllow},
		{"no token still 401", authz.Decision{Outcome: authz.OutcomeNoToken, Route: "admin"}, authz.OutcomeNoToken},
		{"invalid token still 401", authz.Decision{Outcome: authz.OutcomeInvalidToken, Route: "admin", Err: errors.New("bad signature")}, authz.OutcomeInvalidToken},
		{"bad path still 400", authz.SelectDenial(policy.ErrBadPath), authz.OutcomeBadRequest},
		{"ambiguous path still 400", authz.SelectDenial(&policy.AmbiguousPathError{}), authz.OutcomeBadRequest},
		{"forbidden without identity stays", authz.Decision{Outcome: authz.OutcomeForbidden, Route: "admin"}, authz.OutcomeForbidden},
		{"OP outage still 503", authz.Decision{Outcome: authz.OutcomeUnavailable, Route: "admin", Err: errors.New("timeout")}, authz.OutcomeUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			d := NewAssumeAuthorized(decided(tc.next), func() { n++ }).Authorize(context.Background(), authz.Request{Path: "/admin"})
			if d.Outcome != tc.want {
				t.Fatalf("outcome %v (%s), want %v", d.Outcome, d.Reason, tc.want)
			}
			overridden := tc.next.Outcome != authz.OutcomeAllow && tc.want == authz.OutcomeAllow
			if overridden != (n == 1) || n > 1 {
				t.Errorf("decision hook called %d times", n)
			}
			if overridden && (!d.Policy.Allowed || !strings.Contains(d.Reason, EnvAssumeAuthorized) || d.Identity != id) {
				t.Errorf("override = %+v", d)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if d := NewAssumeAuthorized(decided(policyDenial), nil).Authorize(ctx, authz.Request{}); d.Outcome == authz.OutcomeAllow {
		t.Error("cancelled ctx: allowed (never allow a decision nobody waits for)")
	}
}

func TestWarnAuthorizationOnly(t *testing.T) {
	var buf bytes.Buffer
	Warn(slog.New(slog.NewTextHandler(&buf, nil)), Switches{AssumeAuthorized: true})
	if !strings.Contains(buf.String(), "policy is NOT enforced") || !strings.Contains(buf.String(), EnvAssumeAuthorized+"=YES") {
		t.Errorf("warning %q", buf.String())
	}
}

func TestNag(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	tick := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	sw := Switches{AssumeUser: true}
	go func() { Nag(ctx, log, sw, tick); close(done) }()
	tick <- time.Now()
	tick <- time.Now()
	cancel()
	<-done
	if n := strings.Count(buf.String(), "INSECURE DEVELOPMENT SWITCHES ARE ON"); n != 2 {
		t.Errorf("%d warnings, want 2:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), EnvAssumeUser+"=YES") {
		t.Error("warning does not name the switch")
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
