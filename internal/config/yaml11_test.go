package config

import (
	"strings"
	"testing"
)

// TestYAML11 covers the YAML 1.1 rules sigs.k8s.io/yaml follows: a bare key `n` is the
// boolean false, and unquoted on/off/yes/no/y/n are booleans. The n_of count key is
// `min` (the quoted old name "n" still works), and a boolean where a string is expected
// says to quote it.
func TestYAML11(t *testing.T) {
	const head = "issuers: [{issuer: https://op.example}]\npolicy:\n  default:\n"
	for _, tc := range []struct {
		name, policy string
		wantErr      string // "" : loads and validates
	}{
		{"n_of min", "    n_of: {min: 2, of: [{claim: email}, {groups: {values: [admins]}}, {scope: read}]}\n", ""},
		{"n_of quoted n", "    n_of: {\"n\": 2, of: [{claim: email}, {scope: read}]}\n", ""},
		{"n_of block min", "    n_of:\n      min: 1\n      of:\n        - claim: email\n", ""},
		{"n_of bare n", "    n_of: {n: 2, of: [{claim: email}, {scope: read}]}\n",
			`default.n_of.false: YAML 1.1 reads the bare key n as the boolean false: write min: (or quote "n")`},
		{"group on", "    groups: {values: [admins, ops, on]}\n",
			"default.groups.values[2]: got boolean true — YAML 1.1 reads on/off/yes/no/y/n as booleans; quote the group name"},
		{"group n", "    groups: {values: [n]}\n",
			"default.groups.values[0]: got boolean false — YAML 1.1 reads on/off/yes/no/y/n as booleans; quote the group name"},
		{"group quoted on", "    groups: {values: [admins, \"on\", 'y']}\n", ""},
		{"entitlement yes", "    entitlements: {values: yes}\n",
			"default.entitlements.values: got boolean true — YAML 1.1 reads on/off/yes/no/y/n as booleans; quote the value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse([]byte(head + tc.policy))
			if err == nil {
				err = f.Validate()
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("error %v, want none", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
