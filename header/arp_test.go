package header

import (
	"encoding/binary"
	"testing"
)

func TestParseARP(t *testing.T) {
	req := gold(t, "arpRequest")[EthernetHeaderLen:]
	mod := func(i int, v byte) []byte {
		b := append([]byte(nil), req...)
		b[i] = v
		return b
	}
	tests := []struct {
		name string
		b    []byte
		err  error
	}{
		{"request", req, nil},
		{"reply", gold(t, "arpReply")[EthernetHeaderLen:], nil},
		{"padded", append(append([]byte(nil), req...), make([]byte, 18)...), nil},
		{"short", req[:27], ErrTruncated},
		{"htype", mod(1, 6), ErrARPFormat},
		{"ptype", mod(2, 0x86), ErrARPFormat},
		{"hlen", mod(4, 8), ErrARPFormat},
		{"plen", mod(5, 16), ErrARPFormat},
		{"op0", mod(7, 0), ErrARPOp},
		{"op3", mod(7, 3), ErrARPOp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseARP(tt.b)
			if err != tt.err {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err == nil && len(a) != ARPLen {
				t.Fatalf("len %d", len(a))
			}
		})
	}
	a, _ := ParseARP(req)
	if a.Op() != ARPRequest || a.SHA() != vm1MAC || a.SPA() != a4("10.0.0.1") || a.THA() != [6]byte{} ||
		a.TPA() != a4("10.0.0.2") || a.TPAAddr().String() != "10.0.0.2" || a.SPAAddr().String() != "10.0.0.1" {
		t.Fatalf("fields of %x", a)
	}
	if a.IsProbe() || a.IsGratuitous() {
		t.Fatal("plain request taken for probe or gratuitous")
	}
}

func TestARPProbeGratuitous(t *testing.T) {
	var buf [ARPFrameLen]byte
	tests := []struct {
		name            string
		spa, tpa        [4]byte
		probe, gratuity bool
	}{
		{"request", a4("10.0.0.1"), a4("10.0.0.2"), false, false},
		{"probe", a4("0.0.0.0"), a4("10.0.0.2"), true, false},
		{"announce", a4("10.0.0.1"), a4("10.0.0.1"), false, true},
		{"zero", a4("0.0.0.0"), a4("0.0.0.0"), true, false},
	}
	for _, tt := range tests {
		n, err := WriteARPRequest(buf[:], vm1MAC, tt.spa, tt.tpa)
		if err != nil || n != ARPFrameLen {
			t.Fatal(n, err)
		}
		a, err := ParseARP(buf[EthernetHeaderLen:n])
		if err != nil {
			t.Fatal(err)
		}
		if a.IsProbe() != tt.probe || a.IsGratuitous() != tt.gratuity {
			t.Errorf("%s: probe %v gratuitous %v", tt.name, a.IsProbe(), a.IsGratuitous())
		}
	}
	// A gratuitous reply is gratuitous too.
	WriteARPRequest(buf[:], vm1MAC, a4("10.0.0.1"), a4("10.0.0.1"))
	b := buf[EthernetHeaderLen:]
	binary.BigEndian.PutUint16(b[6:], ARPReply)
	if a, _ := ParseARP(b); !a.IsGratuitous() || a.IsProbe() {
		t.Fatal("gratuitous reply")
	}
}

func TestWriteARPReply(t *testing.T) {
	req, err := ParseARP(gold(t, "arpRequest")[EthernetHeaderLen:])
	if err != nil {
		t.Fatal(err)
	}
	var buf [64]byte
	n, err := WriteARPReply(buf[:], req, vm2MAC)
	if err != nil || n != ARPFrameLen {
		t.Fatal(n, err)
	}
	mustEqual(t, "reply", buf[:n], gold(t, "arpReply"))

	if _, err := WriteARPReply(buf[:ARPFrameLen-1], req, vm2MAC); err != ErrBufferTooSmall {
		t.Fatalf("short buffer: %v", err)
	}
	rep, _ := ParseARP(gold(t, "arpReply")[EthernetHeaderLen:])
	if _, err := WriteARPReply(buf[:], rep, vm2MAC); err != ErrARPOp {
		t.Fatalf("reply to a reply: %v", err)
	}
	// The request written by WriteARPRequest is the golden one.
	n, _ = WriteARPRequest(buf[:], vm1MAC, a4("10.0.0.1"), a4("10.0.0.2"))
	mustEqual(t, "request", buf[:n], gold(t, "arpRequest"))
}
