package envoy

import (
	"context"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/flaat-extauthz/flaat-extauthz/authz"
)

// splitHeaderValue is what an upstream does with an identity header: split on ","
// and percent-decode each part.
func splitHeaderValue(t testing.TB, v string) []string {
	t.Helper()
	var out []string
	for p := range strings.SplitSeq(v, ",") {
		d, err := url.PathUnescape(p)
		if err != nil {
			t.Fatalf("part %q of %q: %v", p, v, err)
		}
		out = append(out, d)
	}
	return out
}

func TestClaimHeaderValue(t *testing.T) {
	tests := []struct {
		name  string
		claim any
		want  string
		// values is what an upstream that splits and decodes reads; nil: []string{claim}.
		values []string
	}{
		{name: "plain string unchanged", claim: "alice@example.org", want: "alice@example.org"},
		{name: "list joined", claim: []any{"admins", "ops"}, want: "admins,ops", values: []string{"admins", "ops"}},
		{name: "usual group characters unchanged", claim: []any{"/vo/group one", "urn:mace:x:y#a.b", "Müller-Gruppe"},
			want: "/vo/group one,urn:mace:x:y#a.b,Müller-Gruppe", values: []string{"/vo/group one", "urn:mace:x:y#a.b", "Müller-Gruppe"}},
		{name: "comma inside a list value", claim: []any{"admins,x", "users"}, want: "admins%2Cx,users", values: []string{"admins,x", "users"}},
		{name: "comma inside the only list value", claim: []any{"admins,x"}, want: "admins%2Cx", values: []string{"admins,x"}},
		{name: "comma inside a string claim", claim: "admins,x", want: "admins%2Cx"},
		{name: "percent is encoded so no value fakes an escape", claim: []any{"a%2Cb", "100%"}, want: "a%252Cb,100%25", values: []string{"a%2Cb", "100%"}},
		{name: "CR LF cannot inject a header", claim: "a@b\r\nx-injected: 1", want: "a@b%0D%0Ax-injected: 1"},
		{name: "NUL, tab, DEL", claim: "a\x00b\tc\x7f", want: "a%00b%09c%7F"},
		{name: "leading and trailing spaces kept visible", claim: []any{" admins", "ops ", "a b"}, want: "%20admins,ops%20,a b", values: []string{" admins", "ops ", "a b"}},
		{name: "only spaces", claim: "  ", want: "%20%20"},
		{name: "invalid UTF-8 bytes", claim: "a\xffb\xc3", want: "a%FFb%C3"},
		{name: "numbers and booleans", claim: []any{float64(3), true}, want: "3,true", values: []string{"3", "true"}},
		{name: "empty string is absent", claim: "", want: ""},
		{name: "empty list is absent", claim: []any{}, want: ""},
		{name: "null is absent", claim: nil, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := claimHeaderValue(compact(map[string]any{"c": tt.claim}), "c")
			if got != tt.want {
				t.Fatalf("value %q, want %q", got, tt.want)
			}
			if strings.ContainsAny(got, "\r\n\x00") || !utf8.ValidString(got) || strings.TrimSpace(got) != got {
				t.Fatalf("value %q is not a safe header value", got)
			}
			if got == "" {
				return
			}
			want := tt.values
			if want == nil {
				want = []string{tt.claim.(string)}
			}
			if vs := splitHeaderValue(t, got); strings.Join(vs, "\x00") != strings.Join(want, "\x00") || len(vs) != len(want) {
				t.Fatalf("upstream reads %q, want %q", vs, want)
			}
		})
	}
}

// TestGroupWithCommaIsOneGroup: a group named "admins,x" reaches the upstream as one
// encoded value, over gRPC (fresh and memoised) and in HTTP mode.
func TestGroupWithCommaIsOneGroup(t *testing.T) {
	id := alice()
	setClaim(id, "groups", []any{"admins,x", "ops"})
	const want = "admins%2Cx,ops"
	for _, cached := range []bool{false, true} {
		s, _ := newTestServer(t, &fakeAuthorizer{d: authz.Decision{Outcome: authz.OutcomeAllow, Identity: id, Cached: cached}}, Config{})
		resp, err := s.Check(context.Background(), checkRequest(map[string]string{"authorization": "Bearer t"}))
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for _, h := range resp.GetOkResponse().GetHeaders() {
			if h.GetHeader().GetKey() == "x-auth-request-groups" {
				got = h.GetHeader().GetValue()
			}
		}
		if got != want {
			t.Errorf("gRPC (cached=%v) groups %q, want %q", cached, got, want)
		}
		req := httptest.NewRequest("GET", "/x", nil)
		req.Header.Set("Authorization", "Bearer t")
		rec := httptest.NewRecorder()
		s.HTTPHandler().ServeHTTP(rec, req)
		if rec.Code != 200 || rec.Header().Get("X-Auth-Request-Groups") != want {
			t.Errorf("HTTP (cached=%v) %d groups %q, want 200 %q", cached, rec.Code, rec.Header().Get("X-Auth-Request-Groups"), want)
		}
	}
}

// FuzzClaimHeaderValue: for any list of values the header value is a safe header
// value and splitting plus percent-decoding gives back exactly the values.
func FuzzClaimHeaderValue(f *testing.F) {
	f.Add("admins,x", "ops", " a ")
	f.Add("%", "\r\n", "\xff\x00")
	f.Add("", "ü", "a b")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		for _, vals := range [][]string{{a}, {a, b, c}} {
			list := make([]any, len(vals))
			for i, v := range vals {
				list[i] = v
			}
			got := claimHeaderValue(compact(map[string]any{"l": list}), "l")
			if strings.ContainsAny(got, "\r\n\x00") || !utf8.ValidString(got) || strings.Trim(got, " \t") != got {
				t.Fatalf("unsafe header value %q", got)
			}
			for i := 0; i < len(got); i++ {
				if c := got[i]; c < 0x20 || c == 0x7f {
					t.Fatalf("control byte in %q", got)
				}
			}
			if len(vals) == 1 && vals[0] == "" {
				if got != "" {
					t.Fatalf("empty value gave %q", got)
				}
				continue
			}
			dec := splitHeaderValue(t, got)
			if len(dec) != len(vals) {
				t.Fatalf("%q → %q → %d values, want %d", vals, got, len(dec), len(vals))
			}
			for i := range vals {
				if dec[i] != vals[i] {
					t.Fatalf("%q → %q → %q", vals, got, dec)
				}
			}
		}
	})
}
