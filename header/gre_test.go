package header

import (
	"encoding/binary"
	"testing"
)

var testParams = NVGREParams{
	SrcMAC: [6]byte{0x52, 0x54, 0, 0, 0, 1},
	DstMAC: [6]byte{0x52, 0x54, 0, 0, 0, 2},
	SrcPA:  [4]byte{192, 168, 1, 1},
	DstPA:  [4]byte{192, 168, 1, 2},
	VSID:   5001,
}

func TestParseNVGRE(t *testing.T) {
	tests := []struct {
		name   string
		hex    []byte
		vsid   uint32
		flowID uint8
		err    error
	}{
		{"ok", []byte{0x20, 0, 0x65, 0x58, 0, 0x13, 0x89, 0xab}, 5001, 0xab, nil},
		{"min", []byte{0x20, 0, 0x65, 0x58, 0, 0x10, 0, 0}, MinVSID, 0, nil},
		{"max", []byte{0x20, 0, 0x65, 0x58, 0xff, 0xff, 0xfe, 7}, MaxVSID, 7, nil},
		{"short", []byte{0x20, 0, 0x65}, 0, 0, ErrTruncated},
		{"noKeyField", []byte{0x20, 0, 0x65, 0x58, 0, 0x13, 0x89}, 0, 0, ErrTruncated},
		{"version1", []byte{0x30, 0x81, 0x88, 0x0b, 0, 0, 0, 0}, 0, 0, ErrGREVersion},
		{"checksum", []byte{0xa0, 0, 0x65, 0x58, 0, 0, 0, 0, 0, 0x13, 0x89, 0}, 0, 0, ErrNVGREChecksum},
		{"sequence", []byte{0x30, 0, 0x65, 0x58, 0, 0x13, 0x89, 0, 0, 0, 0, 1}, 0, 0, ErrNVGRESequence},
		{"noKey", []byte{0, 0, 0x65, 0x58}, 0, 0, ErrNVGRENoKey},
		{"routing", []byte{0x60, 0, 0x65, 0x58, 0, 0x13, 0x89, 0}, 0, 0, ErrNVGREFlags},
		{"reserved0", []byte{0x20, 0x08, 0x65, 0x58, 0, 0x13, 0x89, 0}, 0, 0, ErrNVGREFlags},
		{"ipv4Proto", []byte{0x20, 0, 0x08, 0x00, 0, 0x13, 0x89, 0}, 0, 0, ErrNVGREProtocol},
		{"vsid0", []byte{0x20, 0, 0x65, 0x58, 0, 0, 0, 1}, 0, 0, ErrNVGREReserved},
		{"vsidFFF", []byte{0x20, 0, 0x65, 0x58, 0, 0x0f, 0xff, 1}, 0, 0, ErrNVGREReserved},
		{"vsidFFFFFF", []byte{0x20, 0, 0x65, 0x58, 0xff, 0xff, 0xff, 1}, 0, 0, ErrNVGREReserved},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vsid, flowID, err := ParseNVGRE(tt.hex)
			if err != tt.err || vsid != tt.vsid || flowID != tt.flowID {
				t.Fatalf("= %d, %#x, %v; want %d, %#x, %v", vsid, flowID, err, tt.vsid, tt.flowID, tt.err)
			}
		})
	}
	g := GRE([]byte{0xb0, 0, 0x65, 0x58, 0xde, 0xad, 0, 0, 0x01, 0x02, 0x03, 0x04, 0, 0, 0, 9})
	if !g.ChecksumPresent() || !g.KeyPresent() || !g.SequencePresent() || g.Version() != 0 ||
		g.HeaderLen() != 16 || g.Key() != 0x01020304 || g.Protocol() != EtherTypeTEB {
		t.Fatal("GRE accessors")
	}
}

func TestEncapNVGREGolden(t *testing.T) {
	inner := gold(t, "inner")
	const headroom = 64
	buf := make([]byte, headroom+len(inner)+16)
	copy(buf[headroom:], inner)
	start, err := EncapNVGRE(buf, headroom, len(inner), &testParams, 0xab)
	if err != nil || start != headroom-NVGREOverhead {
		t.Fatal(start, err)
	}
	mustEqual(t, "nvgre", buf[start:headroom+len(inner)], gold(t, "nvgre"))
	if NVGREOverhead != 42 {
		t.Fatal("NVGREOverhead")
	}
	// The same with TTL, TOS, ID, no DF: the outer header still checks.
	p := testParams
	p.TTL, p.TOS, p.ID, p.AllowFragment = 7, 0xb8, 0xbeef, true
	start, _ = EncapNVGRE(buf, headroom, len(inner), &p, 1)
	ip, err := ParseIPv4(buf[start+EthernetHeaderLen:])
	if err != nil || !ip.ChecksumValid() || ip.TTL() != 7 || ip.TOS() != 0xb8 || ip.ID() != 0xbeef || ip.DF() {
		t.Fatalf("params not applied: %x %v", []byte(ip[:20]), err)
	}
}

func TestEncapNVGREErrors(t *testing.T) {
	buf := make([]byte, 100)
	p := testParams
	if _, err := EncapNVGRE(buf, NVGREOverhead-1, 14, &p, 0); err != ErrNoHeadroom {
		t.Fatal(err)
	}
	if _, err := EncapNVGRE(buf, 50, 51, &p, 0); err != ErrTruncated {
		t.Fatal(err)
	}
	if _, err := EncapNVGRE(buf, 50, -1, &p, 0); err != ErrTruncated {
		t.Fatal(err)
	}
	big := make([]byte, 70000)
	if _, err := EncapNVGRE(big, 50, 65536-28, &p, 0); err != ErrTruncated {
		t.Fatal(err)
	}
	if _, err := EncapNVGRE(big, 50, 65535-28, &p, 0); err != nil {
		t.Fatal(err)
	}
	p.VSID = 0xfff
	if _, err := EncapNVGRE(buf, 50, 20, &p, 0); err != ErrNVGREReserved {
		t.Fatal(err)
	}
}

func TestDecapNVGRE(t *testing.T) {
	frame := gold(t, "nvgre")
	r, err := DecapNVGRE(frame)
	if err != nil {
		t.Fatal(err)
	}
	if r.VSID != 5001 || r.FlowID != 0xab || r.SrcPA.String() != "192.168.1.1" || r.DstPA.String() != "192.168.1.2" ||
		r.Inner != NVGREOverhead || r.OuterVLAN != 0 {
		t.Fatalf("%+v", r)
	}
	mustEqual(t, "inner", frame[r.Inner:r.Inner+r.InnerLen], gold(t, "inner"))
	// Ethernet padding after the outer datagram is not part of the inner frame.
	padded := append(append([]byte(nil), frame...), 0, 0, 0, 0)
	if r, err := DecapNVGRE(padded); err != nil || r.InnerLen != len(gold(t, "inner")) {
		t.Fatalf("padded: %+v %v", r, err)
	}

	mod := func(f func(b []byte)) []byte {
		b := append([]byte(nil), frame...)
		f(b)
		return b
	}
	fixIP := func(b []byte) { IPv4(b[14:]).UpdateChecksum() }
	tagged := append(append(append([]byte(nil), frame[:12]...), 0x81, 0, 0x00, 0x2a), frame[12:]...)
	tests := []struct {
		name string
		b    []byte
		err  error
	}{
		{"vlanOuter", tagged, nil},
		{"short", frame[:13], ErrTruncated},
		{"vlanShort", tagged[:16], ErrTruncated},
		{"arp", gold(t, "arpRequest"), ErrEtherType},
		{"ipTruncated", frame[:30], ErrTruncated},
		{"ipChecksum", mod(func(b []byte) { b[24]++ }), ErrIPv4Checksum},
		{"fragment", mod(func(b []byte) { b[20] = 0x20; fixIP(b) }), ErrIPv4Fragment},
		{"notGRE", mod(func(b []byte) { b[23] = ProtocolUDP; fixIP(b) }), ErrProtocol},
		{"greTruncated", mod(func(b []byte) { binary.BigEndian.PutUint16(b[16:], 22); fixIP(b) }), ErrTruncated},
		{"noKey", mod(func(b []byte) { b[34] = 0 }), ErrNVGRENoKey},
		{"reservedVSID", mod(func(b []byte) { b[39], b[40] = 0, 0 }), ErrNVGREReserved},
		{"innerShort", mod(func(b []byte) { binary.BigEndian.PutUint16(b[16:], 20+8+13); fixIP(b) }), ErrNVGREInnerLength},
		{"innerVLAN", mod(func(b []byte) { b[54], b[55] = 0x81, 0 }), ErrVLANTagged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := DecapNVGRE(tt.b)
			if err != tt.err {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err == nil && (r.OuterVLAN != 42 || r.Inner != NVGREOverhead+4 || r.VSID != 5001) {
				t.Fatalf("%+v", r)
			}
		})
	}
}

func TestDecapNVGREIPv6(t *testing.T) {
	inner := gold(t, "inner")
	var b []byte
	b = append(b, make([]byte, 14+40)...)
	Ethernet(b).Encode(vm2MAC, vm1MAC, EtherTypeIPv6)
	IPv6(b[14:]).Encode(uint16(8+len(inner)), ProtocolGRE, 64, a16("fd00::1"), a16("fd00::2"))
	b = append(b, 0x20, 0, 0x65, 0x58, 0xab, 0xcd, 0xef, 0x12)
	b = append(b, inner...)
	r, err := DecapNVGRE(b)
	if err != nil || r.VSID != 0xabcdef || r.FlowID != 0x12 || r.SrcPA.String() != "fd00::1" ||
		r.DstPA.String() != "fd00::2" || r.Inner != 14+40+8 || r.InnerLen != len(inner) {
		t.Fatalf("%+v %v", r, err)
	}
	b[20] = ProtocolUDP
	if _, err := DecapNVGRE(b); err != ErrProtocol {
		t.Fatal(err)
	}
	if _, err := DecapNVGRE(b[:50]); err != ErrTruncated {
		t.Fatal(err)
	}
}

// TestNVGRERoundTrip: whatever EncapNVGRE writes, DecapNVGRE gives back.
func TestNVGRERoundTrip(t *testing.T) {
	inner := gold(t, "inner")
	buf := make([]byte, 2048)
	for vsid := uint32(MinVSID); vsid <= MaxVSID; vsid += 0x10101 {
		for _, n := range []int{14, len(inner), 1500} {
			off := 42 + int(vsid%64)
			copy(buf[off:], inner)
			p := testParams
			p.VSID = vsid
			fid := FlowID(buf[off : off+n])
			start, err := EncapNVGRE(buf, off, n, &p, fid)
			if err != nil {
				t.Fatal(err)
			}
			r, err := DecapNVGRE(buf[start : off+n])
			if err != nil || r.VSID != vsid || r.FlowID != fid || r.Inner != NVGREOverhead || r.InnerLen != n {
				t.Fatalf("vsid %d n %d: %+v %v", vsid, n, r, err)
			}
		}
	}
}
