package memlimit

import (
	"errors"
	"testing"
)

func TestFromCgroup(t *testing.T) {
	files := func(m map[string]string) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			if v, ok := m[p]; ok {
				return []byte(v), nil
			}
			return nil, errors.New("no such file")
		}
	}
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "GOMEMLIMIT" {
				return v
			}
			return ""
		}
	}
	v2, v1 := Files[0], Files[1]
	for _, tc := range []struct {
		name   string
		env    string
		files  map[string]string
		want   int64
		source string
	}{
		{"cgroup v2 limit", "", map[string]string{v2: "268435456\n"}, 241591910, v2},
		{"cgroup v2 unlimited", "", map[string]string{v2: "max\n"}, 0, ""},
		{"cgroup v1 limit", "", map[string]string{v1: "536870912\n"}, 483183820, v1},
		{"cgroup v1 unlimited", "", map[string]string{v1: "9223372036854771712\n"}, 0, ""},
		{"v2 wins over v1", "", map[string]string{v2: "100000000", v1: "200000000"}, 90000000, v2},
		{"no cgroup files", "", nil, 0, ""},
		{"garbage", "", map[string]string{v2: "lots"}, 0, ""},
		{"zero", "", map[string]string{v2: "0"}, 0, ""},
		{"GOMEMLIMIT set by the operator", "150MiB", map[string]string{v2: "268435456"}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, src := FromCgroup(env(tc.env), files(tc.files))
			if got != tc.want || src != tc.source {
				t.Fatalf("got %d from %q, want %d from %q", got, src, tc.want, tc.source)
			}
		})
	}
}
