package load

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// DefaultClockTicks is USER_HZ on every mainstream Linux build; ClockTicks falls back
// to it when /proc/self/auxv cannot be read.
const DefaultClockTicks = 100

// atClkTck is the auxiliary vector entry that carries sysconf(_SC_CLK_TCK).
const atClkTck = 17

// ParseAuxvClockTicks returns AT_CLKTCK from the contents of /proc/self/auxv (pairs of
// native-endian machine words; this code assumes 64-bit little-endian, as on amd64 and
// arm64), or 0 when it is absent.
func ParseAuxvClockTicks(auxv []byte) int {
	for len(auxv) >= 16 {
		k := binary.LittleEndian.Uint64(auxv[:8])
		v := binary.LittleEndian.Uint64(auxv[8:16])
		if k == atClkTck {
			return int(v)
		}
		if k == 0 { // AT_NULL ends the vector
			break
		}
		auxv = auxv[16:]
	}
	return 0
}

// ClockTicks returns the kernel's clock ticks per second for /proc/<pid>/stat times.
func ClockTicks() int {
	if b, err := os.ReadFile("/proc/self/auxv"); err == nil {
		if t := ParseAuxvClockTicks(b); t > 0 {
			return t
		}
	}
	return DefaultClockTicks
}

// ParseStatCPU returns utime+stime (fields 14 and 15, in clock ticks) from the contents
// of /proc/<pid>/stat. The command name (field 2) may contain spaces and parentheses,
// so the fields are counted after its last ')'.
func ParseStatCPU(stat []byte) (uint64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("load: /proc stat: no command name")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 13 {
		return 0, fmt.Errorf("load: /proc stat: %d fields after the command name, want ≥ 13", len(f))
	}
	ut, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("load: /proc stat utime: %w", err)
	}
	st, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("load: /proc stat stime: %w", err)
	}
	return ut + st, nil
}

// ParseStatusKB returns the value of a "Key:   1234 kB" line (e.g. VmHWM, VmRSS) of
// /proc/<pid>/status, in KiB.
func ParseStatusKB(status []byte, key string) (uint64, error) {
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != key {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("load: /proc status %s: unexpected value %q", key, v)
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("load: /proc status %s: %w", key, err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("load: /proc status: no %s line", key)
}

// CPUTime returns the user+system CPU time the process pid has used so far.
func CPUTime(pid, ticks int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("load: %w", err)
	}
	t, err := ParseStatCPU(b)
	if err != nil {
		return 0, err
	}
	return time.Duration(t) * time.Second / time.Duration(ticks), nil
}

// Memory returns VmHWM (peak RSS) and VmRSS of pid in bytes.
func Memory(pid int) (peak, rss uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("load: %w", err)
	}
	if peak, err = ParseStatusKB(b, "VmHWM"); err != nil {
		return 0, 0, err
	}
	if rss, err = ParseStatusKB(b, "VmRSS"); err != nil {
		return 0, 0, err
	}
	return peak << 10, rss << 10, nil
}

// ResetPeak resets VmHWM of pid to its current RSS (writing 5 to clear_refs; Linux ≥ 4.0,
// own processes or root). Peaks are then per scenario, not per process life.
func ResetPeak(pid int) error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return fmt.Errorf("load: reset peak rss: %w", err)
	}
	return nil
}
