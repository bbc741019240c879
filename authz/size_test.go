package authz

import (
	"testing"
	"unsafe"
)

// TestIdentitySize: what a cached identity costs besides its claims' values. A field
// more, or a pointer turned into a value, moves it to the next size class for every
// cached token (the memory target of issue 16): change the bound deliberately.
func TestIdentitySize(t *testing.T) {
	if got := unsafe.Sizeof(Identity{}); got > 96 {
		t.Errorf("Identity is %d bytes, want at most 96", got)
	}
}
