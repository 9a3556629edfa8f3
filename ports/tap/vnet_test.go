package tap

import (
	"encoding/binary"
	"encoding/hex"
	"testing"

	"github.com/xvswitch/xvs/header"
)

// partialUDP is an Ethernet/IPv4/UDP frame (10.98.0.1:40000 ->
// 10.98.0.2:9999, "hello xvs\n") as a sender with checksum offload leaves
// it: the UDP checksum field holds the uncomplemented pseudo-header sum
// 0x14ea. The complete checksum, computed independently, is 0xf840.
const (
	partialUDP = "020000000002020000000001080045000026123440004011" +
		"13cd0a6200010a6200029c40270f001214ea68656c6c6f207876730a"
	partialUDPCsumStart = 14 + 20 // Ethernet + IPv4
	partialUDPCsumOff   = 6       // checksum field in the UDP header
	partialUDPWant      = 0xf840
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hdr(flags, gso uint8, start, off uint16) vnetHdr {
	h := make(vnetHdr, vnetHdrLen)
	h[0], h[1] = flags, gso
	binary.LittleEndian.PutUint16(h[6:], start)
	binary.LittleEndian.PutUint16(h[8:], off)
	return h
}

// refSum is a plain byte-pair ones' complement sum, written separately
// from header.Checksum so the tests do not check the code against itself.
func refSum(b []byte) uint16 {
	var s uint32
	for i := 0; i < len(b); i += 2 {
		w := uint32(b[i]) << 8
		if i+1 < len(b) {
			w |= uint32(b[i+1])
		}
		s += w
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

func TestVnetApply(t *testing.T) {
	for _, tc := range []struct {
		name    string
		h       vnetHdr
		want    dropReason
		csummed bool
	}{
		{"plain", hdr(0, vnetGSONone, 0, 0), dropNone, false},
		{"data valid ignored", hdr(0x02, vnetGSONone, 0, 0), dropNone, false},
		{"gso tcpv4", hdr(0, 0x01, 0, 0), dropVnetGSO, false},
		{"gso udp l4 with csum", hdr(vnetFlagNeedsCsum, 0x05, partialUDPCsumStart, partialUDPCsumOff), dropVnetGSO, false},
		{"gso ecn bit", hdr(0, 0x80, 0, 0), dropVnetGSO, false},
		{"short header", vnetHdr{0, 0, 0}, dropMalformed, false},
		{"csum field past end", hdr(vnetFlagNeedsCsum, vnetGSONone, partialUDPCsumStart, 100), dropMalformed, false},
		{"csum start past end", hdr(vnetFlagNeedsCsum, vnetGSONone, 0xffff, 0xffff), dropMalformed, false},
		{"odd csum offset", hdr(vnetFlagNeedsCsum, vnetGSONone, partialUDPCsumStart, 5), dropMalformed, false},
		{"csum start in ethernet header", hdr(vnetFlagNeedsCsum, vnetGSONone, 2, 0), dropMalformed, false},
		{"needs csum", hdr(vnetFlagNeedsCsum, vnetGSONone, partialUDPCsumStart, partialUDPCsumOff), dropNone, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frame := mustHex(t, partialUDP)
			orig := append([]byte(nil), frame...)
			got, csummed := tc.h.apply(frame)
			if got != tc.want || csummed != tc.csummed {
				t.Fatalf("apply = %v, %v; want %v, %v", got, csummed, tc.want, tc.csummed)
			}
			field := partialUDPCsumStart + partialUDPCsumOff
			for i := range frame {
				if frame[i] != orig[i] && !(csummed && (i == field || i == field+1)) {
					t.Fatalf("byte %d changed from %#x to %#x", i, orig[i], frame[i])
				}
			}
			if !csummed {
				return
			}
			if c := binary.BigEndian.Uint16(frame[field:]); c != partialUDPWant {
				t.Fatalf("completed checksum %#04x, want %#04x", c, partialUDPWant)
			}
		})
	}
}

// TestCompleteChecksumZero checks that a checksum that computes to zero is
// sent as 0xffff (zero means "no checksum" in UDP over IPv4).
func TestCompleteChecksumZero(t *testing.T) {
	// Sum of the other words is 0xffff, so the complement is 0.
	l4 := []byte{0xff, 0xff, 0x00, 0x00}
	completeChecksum(l4, 2)
	if got := binary.BigEndian.Uint16(l4[2:]); got != 0xffff {
		t.Fatalf("checksum %#04x, want 0xffff", got)
	}
}

// TestChecksumOddLengths checks the sum completeChecksum relies on
// (header.Checksum, the complement of the ones' complement sum) against
// the reference, at every length up to 37 bytes.
func TestChecksumOddLengths(t *testing.T) {
	b := make([]byte, 37)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	for n := range len(b) + 1 {
		if got, want := ^header.Checksum(b[:n]), refSum(b[:n]); got != want {
			t.Fatalf("len %d: ones' complement sum %#04x, reference %#04x", n, got, want)
		}
	}
}

// FuzzVnetApply feeds arbitrary headers and frames: apply must not panic,
// must not touch the frame unless it completes a checksum, and a completed
// checksum must verify: the sum from csum_start plus the seed the field held
// (standing for the pseudo-header) folds to 0xffff.
func FuzzVnetApply(f *testing.F) {
	f.Add(mustHex(f, "00000000000000000000"), mustHex(f, partialUDP))
	f.Add(mustHex(f, "01000000000022000600"), mustHex(f, partialUDP))
	f.Add(mustHex(f, "01000000000022001000"), mustHex(f, partialUDP)[:40])
	f.Add(mustHex(f, "01010000000022000600"), mustHex(f, partialUDP))
	f.Add(mustHex(f, "0100000000000e000000"), []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17})
	f.Fuzz(func(t *testing.T, h, frame []byte) {
		orig := append([]byte(nil), frame...)
		reason, csummed := vnetHdr(h).apply(frame)
		if !csummed {
			if string(frame) != string(orig) {
				t.Fatal("frame changed without a checksum completed")
			}
			return
		}
		if reason != dropNone {
			t.Fatalf("checksum completed on a dropped frame (%v)", reason)
		}
		start := int(vnetHdr(h).csumStart())
		field := start + int(vnetHdr(h).csumOffset())
		seed := refSum(orig[field : field+2])
		sum := uint32(refSum(frame[start:])) + uint32(seed)
		if got := uint16(sum&0xffff + sum>>16); got != 0xffff {
			t.Fatalf("completed checksum does not verify: sum %#04x", got)
		}
	})
}
