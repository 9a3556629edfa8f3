package header

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"testing"
)

var (
	vm1MAC = [6]byte{2, 0, 0, 0, 0, 1}
	vm2MAC = [6]byte{2, 0, 0, 0, 0, 2}
	swMAC  = [6]byte{2, 0, 0x5e, 0, 0, 0xfe}
)

// gold returns a fresh copy of golden frame name.
func gold(t testing.TB, name string) []byte {
	t.Helper()
	s, ok := golden[name]
	if !ok {
		t.Fatalf("no golden frame %q", name)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("golden %q: %v", name, err)
	}
	return b
}

func a4(s string) [4]byte   { return netip.MustParseAddr(s).As4() }
func a16(s string) [16]byte { return netip.MustParseAddr(s).As16() }

// mustEqual fails with a hex dump of both frames if they differ.
func mustEqual(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s:\n got %x\nwant %x", what, got, want)
	}
}
