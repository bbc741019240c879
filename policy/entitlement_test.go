package policy

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseEntitlement(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want *Entitlement // nil: must not parse
	}{
		{"urn:geant:h-df.de:group:aai-admin", &Entitlement{NID: "geant", Namespace: "h-df.de", Group: "aai-admin"}},
		{"URN:GEANT:H-DF.DE:GROUP:AAI-Admin#Auth", &Entitlement{NID: "geant", Namespace: "h-df.de", Group: "AAI-Admin", Authority: "Auth"}},
		{"urn:geant:h-df.de:sub1:Sub2:group:g:s1:s2:role=Member#a#b", &Entitlement{NID: "geant", Namespace: "h-df.de", SubNamespaces: []string{"sub1", "sub2"}, Group: "g", SubGroups: []string{"s1", "s2"}, Role: "Member", Authority: "a#b"}},
		{"urn:mace:egi.eu:group:vo.x:ROLE=vm_operator", &Entitlement{NID: "mace", Namespace: "egi.eu", Group: "vo.x", Role: "vm_operator"}},
		{"urn:a:group:group:g", &Entitlement{NID: "a", Namespace: "group", Group: "g"}},
		{"urn:a:b:group:g:group", &Entitlement{NID: "a", Namespace: "b", Group: "g", SubGroups: []string{"group"}}},
		{"", nil},
		{"urn:geant:h-df.de:aai-admin", nil},        // no group part
		{"urn:geant:h-df.de:group", nil},            // no group name
		{"urn:geant:h-df.de:group:", nil},           // empty group
		{"urn:geant::group:g", nil},                 // empty namespace
		{"urx:geant:h-df.de:group:g", nil},          // not urn
		{"urn:geant:h-df.de:group:g:role=", nil},    // empty role
		{"urn:geant:h-df.de:group:g:role=a:s", nil}, // role not last
		{"urn:geant:h-df.de:group:role=a", nil},     // role without group
		{"urn:geant:h-df.de:group:g g", nil},        // white space
		{"urn:geant:h-df.de:group:g\x00", nil},      // control character
		{"urn:geant:h-df.de:group:g::x", nil},       // empty subgroup
		{"group:g", nil},
		{":::::", nil},
	} {
		got, err := ParseEntitlement(tc.in)
		if tc.want == nil {
			if err == nil || !errors.Is(err, ErrBadEntitlement) {
				t.Errorf("%q: parsed as %+v, err %v; want ErrBadEntitlement", tc.in, got, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, *tc.want) {
			t.Errorf("%q: got %+v, %v; want %+v", tc.in, got, err, *tc.want)
		}
	}
}

func TestEntitlementSatisfies(t *testing.T) {
	const base = "urn:geant:h-df.de:group:aai-admin"
	for _, tc := range []struct {
		required, held string
		want           bool
	}{
		// The AARC cases of the issue.
		{base, base + ":special-admins#x", true},
		{base, base + ":role=member#x", true},
		{base, "URN:GEANT:H-DF.DE:group:aai-admin", true},
		{base, "urn:geant:h-df.de:group:AAI-admin", false},
		{base, "urn:geant:kit.edu:group:aai-admin", false},
		{base + ":special-admins", base, false},
		{base + ":role=member", base, false},
		// More.
		{base, base, true},
		{base + "#authority-a", base + "#authority-b", true},
		{base + ":role=member", base + ":role=member#x", true},
		{base + ":role=member", base + ":role=Member", false},
		{base + ":role=member", base + ":role=owner", false},
		{base + ":role=member", base + ":sub:role=member", false}, // role needs equal subgroups
		{base + ":sub:role=member", base + ":role=member", false},
		{base + ":sub:role=member", base + ":sub:role=member", true},
		{base + ":sub", base + ":sub:subsub", true},
		{base + ":sub", base + ":sub:role=x", true},
		{base + ":sub", base + ":other", false},
		{base + ":sub", base + ":Sub", false},
		{"urn:geant:h-df.de:ns:group:g", "urn:geant:h-df.de:NS:ns2:group:g", true},
		{"urn:geant:h-df.de:ns:group:g", "urn:geant:h-df.de:group:g", false},
		{"urn:geant:h-df.de:ns:group:g", "urn:geant:h-df.de:other:group:g", false},
		{base, "urn:other:h-df.de:group:aai-admin", false},
		{base, "urn:geant:h-df.de:group:aai-admin2", false},
		{base, "urn:geant:h-df.de:group:aai", false},
	} {
		r, err := ParseEntitlement(tc.required)
		if err != nil {
			t.Fatalf("required %q: %v", tc.required, err)
		}
		h, err := ParseEntitlement(tc.held)
		if err != nil {
			t.Fatalf("held %q: %v", tc.held, err)
		}
		if got := h.Satisfies(r); got != tc.want {
			t.Errorf("required %q held %q: got %v want %v", tc.required, tc.held, got, tc.want)
		}
	}
}

func FuzzEntitlement(f *testing.F) {
	for _, s := range []string{
		"urn:geant:h-df.de:group:aai-admin",
		"urn:geant:h-df.de:group:aai-admin:special-admins#x",
		"URN:GEANT:H-DF.DE:group:aai-admin:role=member#x",
		"urn:mace:egi.eu:ns:group:vo:sub:ROLE=r#auth#more",
		"urn::::group:", "urn:a:b:group:role=x", "#", ":", "urn:a:b:group:g:role=",
	} {
		f.Add(s, "urn:geant:h-df.de:group:aai-admin")
	}
	f.Fuzz(func(t *testing.T, s, other string) {
		e, err := ParseEntitlement(s)
		o, oerr := ParseEntitlement(other)
		if err != nil {
			if !errors.Is(err, ErrBadEntitlement) {
				t.Fatalf("error %v does not wrap ErrBadEntitlement", err)
			}
			return
		}
		// Canonical form round-trips.
		again, err := ParseEntitlement(e.String())
		if err != nil || !reflect.DeepEqual(again, e) {
			t.Fatalf("%q: round trip %q gave %+v, %v; want %+v", s, e.String(), again, err, e)
		}
		// Holding an entitlement satisfies requiring it, whatever the authority and the
		// case of the namespace part.
		if !e.Satisfies(e) {
			t.Fatalf("%q does not satisfy itself", s)
		}
		if up, err := ParseEntitlement(strings.ToUpper(s[:4]) + s[4:]); err != nil || !up.Satisfies(e) {
			t.Fatalf("%q: upper-case urn prefix changes meaning", s)
		}
		if oerr == nil {
			// Satisfies never panics on any pair.
			_ = o.Satisfies(e)
			_ = e.Satisfies(o)
		}
	})
}
