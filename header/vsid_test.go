package header_test

import (
	"testing"

	"github.com/xvswitch/xvs/header"
)

// MinVSID and MaxVSID are the one definition of a virtual subnet's VSIDs:
// vswitch, extensions, the example extensions and xvsctl all use them.
func TestValidVSID(t *testing.T) {
	tests := []struct {
		v    uint32
		want bool
	}{
		{0, false}, // non-virtualized, not a virtual subnet
		{0xFFF, false},
		{0x1000, true},
		{5001, true},
		{0xFFFFFE, true},
		{0xFFFFFF, false}, // reserved for vendor-specific NVE-to-NVE traffic
		{0x1000000, false},
		{0xFFFFFFFF, false},
	}
	for _, tt := range tests {
		if got := header.ValidVSID(tt.v); got != tt.want {
			t.Errorf("ValidVSID(%#x) = %v, want %v", tt.v, got, tt.want)
		}
	}
	// Help texts and error messages print the range in decimal; tests
	// elsewhere assert this text.
	if header.MinVSID != 4096 || header.MaxVSID != 16777214 {
		t.Errorf("VSID range %d..%d, want 4096..16777214", header.MinVSID, header.MaxVSID)
	}
}
