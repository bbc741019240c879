package load

import "testing"

// FuzzResponseParsers feeds arbitrary server output to the parsers the generator and
// the report use: they must return an error, never panic.
func FuzzResponseParsers(f *testing.F) {
	f.Add(GRPCFrame([]byte{0x0a, 0x02, 0x08, 0x07}))
	f.Add([]byte{0, 0, 0, 0, 9, 1})
	f.Add([]byte(h2loadOut))
	f.Add([]byte("42 (a) b) S 1 2 3 4 5 6 7 8 9 10 11 12"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if msgs, err := SplitFrames(b); err == nil {
			for _, m := range msgs {
				_, _ = CheckStatus(m)
			}
		}
		_, _ = CheckStatus(b)
		_, _ = ParseH2load(b)
		_, _ = ParseGhz(b)
		_, _ = ParseStatCPU(b)
		_, _ = ParseStatusKB(b, "VmHWM")
		_ = ParseAuxvClockTicks(b)
		_, _ = ParseMetric(b, "_cache_entries")
	})
}
