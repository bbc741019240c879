package authz

import (
	"reflect"
	"testing"
)

// TestMergeClaims: precedence userinfo > introspection > token claims, iss always set to
// the token's iss or the issuer, and a lone part that already carries that iss is
// reused rather than copied (a JWT without userinfo or introspection); no part is ever
// modified.
func TestMergeClaims(t *testing.T) {
	const issuer = "https://op.example.org"
	cases := []struct {
		name   string
		id     *Identity
		want   map[string]any
		reused string // which part the result must be, "" for a new map
	}{
		{"jwt alone: reused", &Identity{Issuer: issuer, Parts: &Parts{TokenClaims: map[string]any{"iss": issuer + "/", "sub": "a"}}},
			map[string]any{"iss": issuer + "/", "sub": "a"}, "token"},
		{"userinfo alone without iss: copied, iss added",
			&Identity{Issuer: issuer, Parts: &Parts{Userinfo: map[string]any{"sub": "a", "name": "A"}}},
			map[string]any{"iss": issuer, "sub": "a", "name": "A"}, ""},
		{"userinfo alone with the issuer's iss: reused",
			&Identity{Issuer: issuer, Parts: &Parts{Userinfo: map[string]any{"sub": "a", "iss": issuer}}},
			map[string]any{"iss": issuer, "sub": "a"}, "userinfo"},
		{"userinfo alone with another iss: copied, iss overridden",
			&Identity{Issuer: issuer, Parts: &Parts{Userinfo: map[string]any{"sub": "a", "iss": "https://evil.example"}}},
			map[string]any{"iss": issuer, "sub": "a"}, ""},
		{"userinfo alone with a list iss: copied",
			&Identity{Issuer: issuer, Parts: &Parts{Userinfo: map[string]any{"sub": "a", "iss": []any{issuer}}}},
			map[string]any{"iss": issuer, "sub": "a"}, ""},
		{"introspection alone", &Identity{Issuer: issuer, Parts: &Parts{Introspection: map[string]any{"sub": "a", "active": true}}},
			map[string]any{"iss": issuer, "sub": "a", "active": true}, ""},
		{"all three: precedence, token iss wins",
			&Identity{Issuer: issuer, Parts: &Parts{
				TokenClaims:   map[string]any{"iss": issuer, "sub": "a", "x": "token", "y": "token", "z": "token"},
				Introspection: map[string]any{"iss": "https://in", "x": "in", "y": "in"},
				Userinfo:      map[string]any{"iss": "https://ui", "x": "ui"}}},
			map[string]any{"iss": issuer, "sub": "a", "x": "ui", "y": "in", "z": "token"}, ""},
		{"none", &Identity{Issuer: issuer, Parts: &Parts{}}, map[string]any{"iss": issuer}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := map[string]map[string]any{"token": clone(c.id.Parts.TokenClaims), "in": clone(c.id.Parts.Introspection), "userinfo": clone(c.id.Parts.Userinfo)}
			got := mergeClaims(c.id)
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			parts := map[string]map[string]any{"token": c.id.Parts.TokenClaims, "in": c.id.Parts.Introspection, "userinfo": c.id.Parts.Userinfo}
			for name, p := range parts {
				same := p != nil && reflect.ValueOf(p).UnsafePointer() == reflect.ValueOf(got).UnsafePointer()
				if same != (name == c.reused) {
					t.Errorf("result is the %s map: %v, want reused %q", name, same, c.reused)
				}
				if !reflect.DeepEqual(p, before[name]) {
					t.Errorf("%s part modified: %v, was %v", name, p, before[name])
				}
			}
		})
	}
}

func clone(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
