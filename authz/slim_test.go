package authz_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
	"github.com/flaat-extauthz/flaat-extauthz/oidctest"
)

// TestCachedIdentityIsSlim: with the cache on, every identity (the miss that loads it
// and the hits after) holds Issuer, Subject, Claims, Expiry, Sources and Binding only, and those
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
				if id.Issuer != full.Issuer || id.Subject() != full.Subject() || id.Expiry != full.Expiry ||
					id.Sources != full.Sources || !reflect.DeepEqual(id.Claims.Map(), full.Claims.Map()) {
					t.Fatalf("call %d: cached %+v, uncached %+v", i, id, full)
				}
			}
		})
	}
}

// TestCachedIdentityBinding: the token's key binding (cnf) and session (sid) are kept
// in the cached identity (the load and the hits after) as in the uncached one, from the
// token and from the introspection reply; a token with neither has no Binding.
func TestCachedIdentityBinding(t *testing.T) {
	clk := newClock()
	op := newOP(t, clk)
	cases := []struct {
		name      string
		introspec string
		token     func() string
		want      *authz.Binding
	}{
		{"bearer token", authz.IntrospectNever, func() string { return op.MintJWT(nil) }, nil},
		{"sid only", authz.IntrospectNever, func() string { return op.MintJWT(map[string]any{"sid": "s1"}) },
			&authz.Binding{SessionID: "s1"}},
		{"cnf jkt only", authz.IntrospectNever, func() string { return op.MintJWT(map[string]any{"cnf": map[string]any{"jkt": "k1"}}) },
			&authz.Binding{Confirmation: authz.Confirmation{JKT: "k1"}}},
		{"cnf x5t and sid", authz.IntrospectNever,
			func() string {
				return op.MintJWT(map[string]any{"sid": "s2", "cnf": map[string]any{"x5t#S256": "t2"}})
			},
			&authz.Binding{Confirmation: authz.Confirmation{CertThumbprint: "t2"}, SessionID: "s2"}},
		{"opaque: sid and cnf from introspection", authz.IntrospectOpaque,
			func() string {
				return op.MintOpaque(nil, oidctest.WithIntrospection(map[string]any{"sid": "s3", "cnf": map[string]any{"jkt": "k3"}}))
			},
			&authz.Binding{Confirmation: authz.Confirmation{JKT: "k3"}, SessionID: "s3"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ic := op.IssuerConfig()
			ic.Introspect = c.introspec
			tok := c.token()
			ctx := context.Background()
			full, err := newAuthz(t, clk, noCache(ic), nil).Verify(ctx, tok)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(full.Binding, c.want) {
				t.Fatalf("uncached Binding %+v, want %+v", full.Binding, c.want)
			}
			cached := newAuthz(t, clk, authz.Config{Issuers: []authz.IssuerConfig{ic}}, nil)
			for i := range 2 { // the load, then a hit
				id, err := cached.Verify(ctx, tok)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(id.Binding, c.want) {
					t.Fatalf("call %d: cached Binding %+v, want %+v", i, id.Binding, c.want)
				}
			}
		})
	}
}
