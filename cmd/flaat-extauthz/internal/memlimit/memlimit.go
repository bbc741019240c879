// Package memlimit gives the Go runtime a soft memory limit below the container's hard
// one, so that the garbage collector works harder before the kernel kills the process.
// The identity cache makes flaat-extauthz's heap grow with the number of distinct tokens;
// without a limit the runtime lets RSS reach about twice the live heap (GOGC=100).
package memlimit

import (
	"strconv"
	"strings"
)

// Fraction of the container limit used as the Go soft limit: the rest is headroom for
// memory the runtime does not count (thread stacks, fragmentation, the binary).
const Fraction = 0.9

// Files read, in order: cgroup v2, then cgroup v1.
var Files = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// FromCgroup returns the soft limit to set, in bytes, and where it came from, or 0 when
// none should be set: GOMEMLIMIT is set (the operator decided), or no cgroup limit is
// found ("max", a missing file, or the v1 "unlimited" value). readFile is os.ReadFile in
// production.
func FromCgroup(getenv func(string) string, readFile func(string) ([]byte, error)) (int64, string) {
	if getenv("GOMEMLIMIT") != "" {
		return 0, ""
	}
	for _, f := range Files {
		b, err := readFile(f)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 || n >= 1<<62 { // "max", garbage, or v1's "no limit"
			return 0, ""
		}
		return int64(float64(n) * Fraction), f
	}
	return 0, ""
}
