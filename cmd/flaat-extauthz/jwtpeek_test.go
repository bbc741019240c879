package main

import (
	"encoding/base64"
	"testing"
)

func TestDecodeUnverified(t *testing.T) {
	seg := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name  string
		token string
		ok    bool
		iss   string
	}{
		{"jwt", seg(`{"alg":"RS256"}`) + "." + seg(`{"iss":"https://op","exp":12}`) + ".sig", true, "https://op"},
		{"padded", seg(`{"alg":"RS256"}`) + "==." + seg(`{"iss":"x"}`) + ".", true, "x"},
		{"opaque", "abcdef", false, ""},
		{"two parts", seg(`{}`) + "." + seg(`{}`), false, ""},
		{"four parts", "a.b.c.d", false, ""},
		{"header not json", seg(`nope`) + "." + seg(`{}`) + ".s", false, ""},
		{"claims an array", seg(`{}`) + "." + seg(`[1]`) + ".s", false, ""},
		{"claims null", seg(`{}`) + "." + seg(`null`) + ".s", false, ""},
		{"trailing data", seg(`{}`) + "." + seg(`{} {}`) + ".s", false, ""},
		{"bad base64", "!!." + seg(`{}`) + ".s", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, claims, ok := decodeUnverified(tc.token)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if ok {
				if iss, _ := claims["iss"].(string); iss != tc.iss {
					t.Errorf("iss = %q", iss)
				}
			}
		})
	}
	_, claims, _ := decodeUnverified(tests[0].token)
	if exp, ok := numericClaim(claims, "exp"); !ok || exp != 12 {
		t.Errorf("exp = %d %v", exp, ok)
	}
}

func FuzzDecodeUnverified(f *testing.F) {
	seg := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	f.Add(seg(`{"alg":"RS256"}`) + "." + seg(`{"iss":"https://op","exp":1.5e9}`) + ".sig")
	f.Add("a.b.c")
	f.Add("")
	f.Add(seg(`{}`) + "." + seg(`{"exp":"soon"}`) + ".")
	f.Fuzz(func(t *testing.T, token string) {
		h, c, ok := decodeUnverified(token)
		if ok && (h == nil || c == nil) {
			t.Fatal("ok without both parts")
		}
		if !ok && (h != nil || c != nil) {
			t.Fatal("parts without ok")
		}
		numericClaim(c, "exp")
	})
}
