package authz_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
)

// TestCachedIdentityIsSlim: with the cache on, every identity (the miss that loads it
// and the hits after) holds Issuer, Subject, Claims, Expiry and Sources only, and those
// are what the uncached Verify of the same token returns; with the cache off every
// part is there.
func TestCachedIdentityIsSlim(t *testing.T) {
	clk := newClock()
	op := newOP(t, clk)
	claims := map[string]any{"groups": []string{"a", "b"}, "email": "alice@example.org"}
	cases := []struct {
		name      string
		userinfo  string
		introspec string
		token     func() string
		parts     func(id *authz.Identity) bool // the full parts the uncached identity has
	}{
		{"jwt, userinfo never", authz.UserinfoNever, authz.IntrospectNever, func() string { return op.MintJWT(claims) },
			func(id *authz.Identity) bool {
				return id.Parts.TokenClaims != nil && id.Parts.Header != nil && id.Parts.Userinfo == nil
			}},
		{"jwt, userinfo required", authz.UserinfoRequired, authz.IntrospectNever, func() string { return op.MintJWT(claims) },
			func(id *authz.Identity) bool {
				return id.Parts.TokenClaims != nil && id.Parts.Header != nil && id.Parts.Userinfo != nil
			}},
		{"jwt, introspection always", authz.UserinfoNever, authz.IntrospectAlways, func() string { return op.MintJWT(claims) },
			func(id *authz.Identity) bool { return id.Parts.TokenClaims != nil && id.Parts.Introspection != nil }},
		{"opaque, userinfo and introspection", authz.UserinfoOptional, authz.IntrospectOpaque, func() string { return op.MintOpaque(claims) },
			func(id *authz.Identity) bool {
				return id.Parts.Userinfo != nil && id.Parts.Introspection != nil && id.Parts.Header == nil
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ic := op.IssuerConfig()
			ic.Userinfo, ic.Introspect = c.userinfo, c.introspec
			tok := c.token()
			ctx := context.Background()
			full, err := newAuthz(t, clk, noCache(ic), nil).Verify(ctx, tok)
			if err != nil {
				t.Fatal(err)
			}
			if full.Parts == nil || !c.parts(full) {
				t.Fatalf("uncached identity lacks parts: %+v", full)
			}
			cached := newAuthz(t, clk, authz.Config{Issuers: []authz.IssuerConfig{ic}}, nil)
			for i := range 2 { // the load, then a hit
				id, err := cached.Verify(ctx, tok)
				if err != nil {
					t.Fatal(err)
				}
				if id.Parts != nil {
					t.Fatalf("call %d: cached identity keeps parts: %+v", i, id)
				}
				if id.Issuer != full.Issuer || id.Subject != full.Subject || !id.Expiry.Equal(full.Expiry) ||
					id.Sources != full.Sources || !reflect.DeepEqual(id.Claims, full.Claims) {
					t.Fatalf("call %d: cached %+v, uncached %+v", i, id, full)
				}
			}
		})
	}
}
