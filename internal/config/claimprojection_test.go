package config

import (
	"slices"
	"testing"

	"github.com/flaat-extauthz/flaat-extauthz/envoy"
	"github.com/flaat-extauthz/flaat-extauthz/policy"
)

// TestClaimProjection: serve keeps the claims of the policy, of the identity headers
// (the defaults when server.headers is unset, none when it is an empty list), of the
// groups claim (default "groups") and of the metadata claims.
func TestClaimProjection(t *testing.T) {
	pol, err := policy.New(policy.Config{Default: &policy.Requirement{AllOf: []policy.Requirement{
		{Claim: &policy.ClaimRequirement{Name: "realm_access.roles"}},
		{Entitlements: &policy.ValuesRequirement{Values: policy.StringList{"urn:x"}}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	polNames := []string{"eduperson_entitlement", "realm_access.roles"}
	cases := []struct {
		name string
		sc   envoy.Config
		want []string
	}{
		{"defaults", envoy.Config{}, append(polNames, "sub", "email", "groups", "iss", "groups")},
		{"no headers, own groups claim, metadata",
			envoy.Config{Headers: []envoy.HeaderConfig{}, GroupsClaim: "wlcg.groups", MetadataClaims: []string{"email", "acr"}},
			append(polNames, "wlcg.groups", "email", "acr")},
		{"own headers", envoy.Config{Headers: []envoy.HeaderConfig{{Name: "x-user", Claim: "preferred_username"}}},
			append(polNames, "preferred_username", "groups")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ClaimProjection(pol, c.sc); !slices.Equal(got, c.want) {
				t.Fatalf("ClaimProjection = %q, want %q", got, c.want)
			}
		})
	}
}
