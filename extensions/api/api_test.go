package api

import "testing"

// The layout is shared with other processes: its size must never change
// by accident.
func TestDescIs64Bytes(t *testing.T) {
	if DescSize != 64 {
		t.Fatalf("Desc is %d bytes, the contract says 64", DescSize)
	}
}
