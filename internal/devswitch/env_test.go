package devswitch

import (
	"strings"
	"testing"
)

func TestFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		allowed bool
		want    Switches
		wantErr string
	}{
		{name: "none", env: nil, want: Switches{}},
		{name: "explicit no", env: map[string]string{EnvAssumeUser: "NO", EnvAssumeValidGroups: "false"}},
		{name: "user allowed", env: map[string]string{EnvAssumeUser: "YES"}, allowed: true, want: Switches{AssumeUser: true}},
		{name: "lower-case yes", env: map[string]string{EnvAssumeValidGroups: "yes"}, allowed: true, want: Switches{AssumeValidGroups: true}},
		{name: "groups allowed", env: map[string]string{EnvAssumeGroups: `["a","b"]`}, allowed: true, want: Switches{AssumeGroups: []string{"a", "b"}}},
		{name: "user not allowed", env: map[string]string{EnvAssumeUser: "YES"}, wantErr: "--allow-insecure-dev-switches"},
		{name: "groups not allowed", env: map[string]string{EnvAssumeGroups: `["a"]`}, wantErr: "--allow-insecure-dev-switches"},
		{name: "garbage bool", env: map[string]string{EnvAssumeUser: "maybe"}, allowed: true, wantErr: "want YES or NO"},
		{name: "groups not json", env: map[string]string{EnvAssumeGroups: "a,b"}, allowed: true, wantErr: "JSON list"},
		{name: "groups empty", env: map[string]string{EnvAssumeGroups: "[]"}, allowed: true, wantErr: "empty list"},
		{name: "authorization allowed", env: map[string]string{EnvAssumeAuthorized: "YES"}, allowed: true, want: Switches{AssumeAuthorized: true}},
		{name: "authorization not allowed", env: map[string]string{EnvAssumeAuthorized: "YES"}, wantErr: "--allow-insecure-dev-switches"},
		{name: "authorization garbage", env: map[string]string{EnvAssumeAuthorized: "sure"}, allowed: true, wantErr: EnvAssumeAuthorized + ": want YES or NO"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromEnv(func(k string) string { return tc.env[k] }, tc.allowed)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if got.Enabled() {
					t.Error("switches on despite the error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.want.String() || got.Enabled() != tc.want.Enabled() || got.MakesUpIdentity() != tc.want.MakesUpIdentity() {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
