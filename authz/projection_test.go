package authz_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// TestClaimProjection: an Authorizer with WithClaimProjection(pol.ClaimNames()) decides
// every request exactly as one without (outcome and reason), for every requirement form
// and for JWTs and opaque tokens (merged userinfo and introspection), while its
// identities hold only the projected claims.
func TestClaimProjection(t *testing.T) {
	clk := newClock()
	op := newOP(t, clk)
	rich := map[string]any{
		"aud": []string{"api", "other"}, "scope": "openid read", "groups": []string{"ops", "users"},
		"email": "alice@example.org", "realm_access": map[string]any{"roles": []string{"r1"}},
		"wlcg.groups":           []string{"/wlcg"},
		"eduperson_entitlement": []string{"urn:geant:example.org:group:vo#aai.example.org"},
		"https://example.org/x": "p,q", "noise": "dropped", "name": "Alice",
	}
	poor := map[string]any{"aud": "other", "scp": []string{"read"}, "groups": "users", "realm_access.roles": "r1", "noise": 1}
	tokens := map[string]string{
		"jwt rich": op.MintJWT(rich),
		"jwt poor": op.MintJWT(poor),
		"opaque, userinfo and introspection": op.MintOpaque(map[string]any{"email": "u@example.org", "name": "U"},
			oidctest.WithIntrospectionExt(map[string]any{"groups": []any{"ops"}, "scope": "read", "noise": true})),
	}
	policies := map[string]string{
		"authenticated":          `{"authenticated":true}`,
		"claim":                  `{"claim":"email"}`,
		"claim dotted":           `{"claim":"realm_access.roles"}`,
		"claim URL, separator":   `{"claim":{"name":"https://example.org/x","separator":","}}`,
		"groups":                 `{"groups":{"values":["ops"]}}`,
		"groups literal dotted":  `{"groups":{"claim":"wlcg.groups","values":["/wlcg"]}}`,
		"groups path":            `{"groups":{"claim":"realm_access.roles","values":["r1"],"match":"one"}}`,
		"entitlements":           `{"entitlements":{"values":["urn:geant:example.org:group:vo#aai.example.org"]}}`,
		"issuer":                 fmt.Sprintf(`{"issuer":%q}`, op.Issuer()),
		"subject":                fmt.Sprintf(`{"subject":%q}`, oidctest.DefaultSubject),
		"audience":               `{"audience":"api"}`,
		"scope":                  `{"scope":"read"}`,
		"all_of":                 `{"all_of":[{"groups":{"values":["ops"]}},{"scope":"read"}]}`,
		"any_of":                 `{"any_of":[{"claim":"nothing"},{"audience":"api"}]}`,
		"n_of":                   `{"n_of":{"min":2,"of":[{"claim":"email"},{"claim":"realm_access.roles"},{"claim":"name"}]}}`,
		"level":                  `"lvl"`,
		"claim that is not read": `{"claim":"noise"}`,
	}
	ctx := context.Background()
	outcomes := map[authz.Outcome]int{}
	for pname, req := range policies {
		var pc policy.Config
		js := `{"access_levels":{"lvl":{"all_of":[{"authenticated":true},{"groups":{"values":["users"]}}]}},"default":` + req + `}`
		if err := json.Unmarshal([]byte(js), &pc); err != nil {
			t.Fatalf("%s: %v", pname, err)
		}
		pol, err := policy.New(pc)
		if err != nil {
			t.Fatalf("%s: %v", pname, err)
		}
		cfg := authz.Config{Issuers: []authz.IssuerConfig{op.IssuerConfig()}}
		full := newAuthz(t, clk, cfg, pol)
		names := pol.ClaimNames()
		projected := newAuthz(t, clk, cfg, pol, authz.WithClaimProjection(names))
		keep := map[string]bool{"sub": true, "iss": true}
		for _, n := range names {
			keep[n] = true
			if first, _, ok := strings.Cut(n, "."); ok {
				keep[first] = true
			}
		}
		for tname, tok := range tokens {
			t.Run(pname+"/"+tname, func(t *testing.T) {
				r := authz.Request{Method: "GET", Path: "/x", Authorization: "Bearer " + tok}
				for i := range 2 { // the load, then a cache hit
					want, got := full.Authorize(ctx, r), projected.Authorize(ctx, r)
					if got.Outcome != want.Outcome || got.Reason != want.Reason {
						t.Fatalf("call %d: projected %s %q, full %s %q", i, got.Outcome, got.Reason, want.Outcome, want.Reason)
					}
					outcomes[got.Outcome]++
					if got.Identity == nil {
						continue
					}
					wantClaims := map[string]any{}
					for k, v := range want.Identity.Claims.All() {
						if keep[k] {
							wantClaims[k] = v
						}
					}
					if !reflect.DeepEqual(got.Identity.Claims.Map(), wantClaims) {
						t.Fatalf("call %d: projected claims %v, want %v", i, got.Identity.Claims.Map(), wantClaims)
					}
				}
			})
		}
	}
	if outcomes[authz.OutcomeAllow] == 0 || outcomes[authz.OutcomeForbidden] == 0 || len(outcomes) != 2 {
		t.Fatalf("outcomes %v: the table must allow and forbid, nothing else", outcomes)
	}
}

// TestClaimProjectionKeeps: what a projected identity keeps, uncached and cached.
func TestClaimProjectionKeeps(t *testing.T) {
	clk := newClock()
	op := newOP(t, clk)
	tok := op.MintJWT(map[string]any{"aud": "api", "scp": "x", "groups": []string{"g"}, "email": "e",
		"realm_access": map[string]any{"roles": []string{"r"}}, "a.b": 1, "name": "N", "nbf": clk.Now().Unix()})
	ic := never(op.IssuerConfig())
	for _, cacheOff := range []bool{true, false} {
		cfg := authz.Config{Issuers: []authz.IssuerConfig{ic}, Cache: authz.CacheConfig{Disabled: cacheOff}}
		for _, c := range []struct {
			names []string
			want  []string
		}{
			{nil, []string{"iss", "sub"}},
			{[]string{"email", "", "realm_access.roles", "a.b", "missing"}, []string{"a.b", "email", "iss", "realm_access", "sub"}},
			{[]string{"scp", "aud", "exp"}, []string{"aud", "exp", "iss", "scp", "sub"}},
		} {
			a := newAuthz(t, clk, cfg, nil, authz.WithClaimProjection(c.names))
			id, err := a.Verify(context.Background(), tok)
			if err != nil {
				t.Fatal(err)
			}
			if got := slices.Sorted(maps.Keys(id.Claims.Map())); !slices.Equal(got, c.want) {
				t.Errorf("cache off %v, names %q: claims %q, want %q", cacheOff, c.names, got, c.want)
			}
			if cacheOff && (id.Parts.TokenClaims["name"] != "N" || id.Parts.TokenClaims["nbf"] == nil) {
				t.Errorf("TokenClaims projected too: %v", id.Parts.TokenClaims)
			}
		}
	}
}
