package header

import (
	"encoding/binary"
	"testing"
)

func TestParseIPv6(t *testing.T) {
	ns := gold(t, "ns")[EthernetHeaderLen:]
	tests := []struct {
		name string
		b    []byte
		err  error
		len  int
	}{
		{"ns", ns, nil, len(ns)},
		{"padded", append(append([]byte(nil), ns...), 0, 0), nil, len(ns)},
		{"short", ns[:39], ErrTruncated, 0},
		{"version", append([]byte{0x40}, ns[1:]...), ErrIPv6Version, 0},
		{"payloadBeyond", ns[:len(ns)-1], ErrIPv6PayloadLength, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip, err := ParseIPv6(tt.b)
			if err != tt.err || len(ip) != tt.len {
				t.Fatalf("len %d err %v; want %d %v", len(ip), err, tt.len, tt.err)
			}
		})
	}
	ip, _ := ParseIPv6(ns)
	if ip.PayloadLength() != 32 || ip.NextHeader() != ProtocolICMPv6 || ip.HopLimit() != 255 ||
		ip.SrcAddr().String() != "fe80::1" || ip.DstAddr().String() != "ff02::1:ff00:2" ||
		ip.TrafficClass() != 0 || ip.FlowLabel() != 0 || len(ip.Payload()) != 32 || !ICMPv6ChecksumValid(ip) {
		t.Fatal("fields")
	}
	if !ip.DecHopLimit() || ip.HopLimit() != 254 {
		t.Fatal("DecHopLimit")
	}
	ip[7] = 1
	if ip.DecHopLimit() || ip.HopLimit() != 1 {
		t.Fatal("DecHopLimit at 1")
	}
	binary.BigEndian.PutUint32(ip[0:4], 6<<28|0xb8<<20|0xabcde)
	if ip.TrafficClass() != 0xb8 || ip.FlowLabel() != 0xabcde {
		t.Fatal("traffic class / flow label")
	}
}

// fixICMPv6 recomputes the ICMPv6 checksum of an Ethernet+IPv6 frame.
func fixICMPv6(b []byte) {
	ip, err := ParseIPv6(b[EthernetHeaderLen:])
	if err != nil || len(ip.Payload()) < 4 {
		return
	}
	m := ip.Payload()
	binary.BigEndian.PutUint16(m[2:], ICMPv6Checksum(ip.Src(), ip.Dst(), m))
}

func TestParseNeighborSolicit(t *testing.T) {
	frame := gold(t, "ns")
	mod := func(name string, f func(b []byte)) []byte {
		b := append([]byte(nil), gold(t, name)...)
		f(b)
		fixICMPv6(b)
		return b
	}
	const m = EthernetHeaderLen + IPv6HeaderLen // ICMPv6 message offset
	tests := []struct {
		name string
		b    []byte
		err  error
	}{
		{"ns", frame, nil},
		{"dad", gold(t, "nsDAD"), nil},
		{"na", gold(t, "na"), ErrNDType},
		{"udp", append(append([]byte(nil), gold(t, "big6")[:20]...), append([]byte{0x11}, gold(t, "big6")[21:]...)...), ErrProtocol},
		{"tcp", mod("ns", func(b []byte) { b[20] = ProtocolTCP }), ErrProtocol},
		{"hopLimit", mod("ns", func(b []byte) { b[21] = 254 }), ErrNDInvalid},
		{"code", mod("ns", func(b []byte) { b[m+1] = 1 }), ErrNDInvalid},
		{"checksum", func() []byte { b := append([]byte(nil), frame...); b[m+3]++; return b }(), ErrICMPv6Checksum},
		{"multicastTarget", mod("ns", func(b []byte) { b[m+8] = 0xff }), ErrNDInvalid},
		{"optionLen0", mod("ns", func(b []byte) { b[m+25] = 0 }), ErrNDInvalid},
		{"optionBeyond", mod("ns", func(b []byte) { b[m+25] = 2 }), ErrNDInvalid},
		{"dadWithSLLA", mod("ns", func(b []byte) { copy(b[22:38], make([]byte, 16)) }), ErrNDInvalid},
		{"dadToAllNodes", mod("nsDAD", func(b []byte) { copy(b[38:54], AllNodesMulticast[:]) }), ErrNDInvalid},
		{"short", func() []byte {
			b := append([]byte(nil), frame[:m+20]...)
			binary.BigEndian.PutUint16(b[18:], 20)
			fixICMPv6(b)
			return b
		}(), ErrTruncated},
		{"tiny", func() []byte {
			b := append([]byte(nil), frame[:m+2]...)
			binary.BigEndian.PutUint16(b[18:], 2)
			return b
		}(), ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip, err := ParseIPv6(tt.b[EthernetHeaderLen:])
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseNeighborSolicit(ip)
			if err != tt.err {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
		})
	}
	ip, _ := ParseIPv6(frame[EthernetHeaderLen:])
	ns, _ := ParseNeighborSolicit(ip)
	if ns.Target() != a16("fe80::2") || ns.TargetAddr().String() != "fe80::2" {
		t.Fatal("target")
	}
	if sll, ok := ns.SourceLinkAddr(); !ok || sll != vm1MAC {
		t.Fatalf("SLLA %x %v", sll, ok)
	}
	ip, _ = ParseIPv6(gold(t, "nsDAD")[EthernetHeaderLen:])
	ns, _ = ParseNeighborSolicit(ip)
	if _, ok := ns.SourceLinkAddr(); ok {
		t.Fatal("SLLA in DAD")
	}
}

func TestWriteNeighborAdvert(t *testing.T) {
	tests := []struct {
		req, want string
		override  bool
	}{
		{"ns", "na", true},
		{"nsDAD", "naDAD", false},
	}
	for _, tt := range tests {
		t.Run(tt.req, func(t *testing.T) {
			req := gold(t, tt.req)
			ip, _ := ParseIPv6(req[EthernetHeaderLen:])
			ns, err := ParseNeighborSolicit(ip)
			if err != nil {
				t.Fatal(err)
			}
			var buf [128]byte
			n, err := WriteNeighborAdvert(buf[:], Ethernet(req).Src(), ip, ns, vm2MAC, tt.override)
			if err != nil || n != NeighborAdvertFrameLen {
				t.Fatal(n, err)
			}
			mustEqual(t, "na", buf[:n], gold(t, tt.want))
			if _, err := WriteNeighborAdvert(buf[:n-1], Ethernet(req).Src(), ip, ns, vm2MAC, tt.override); err != ErrBufferTooSmall {
				t.Fatal(err)
			}
		})
	}
	// Without a source link-layer option the answer goes to the frame's source.
	req := gold(t, "ns")
	ip, _ := ParseIPv6(req[EthernetHeaderLen:])
	binary.BigEndian.PutUint16(ip[4:], 24)
	ip = ip[:IPv6HeaderLen+24]
	fixICMPv6(req)
	ns, err := ParseNeighborSolicit(ip)
	if err != nil {
		t.Fatal(err)
	}
	var buf [128]byte
	other := [6]byte{2, 9, 9, 9, 9, 9}
	n, _ := WriteNeighborAdvert(buf[:], other, ip, ns, vm2MAC, false)
	na := Ethernet(buf[:n])
	nip, _ := ParseIPv6(na.Payload())
	if na.Dst() != other || !ICMPv6ChecksumValid(nip) || nip.Payload()[4] != NASolicited {
		t.Fatalf("%x", buf[:n])
	}
}

func TestSolicitedNodeMulticast(t *testing.T) {
	if got := SolicitedNodeMulticast(a16("2001:db8::1234:5678")); got != a16("ff02::1:ff34:5678") {
		t.Fatalf("%x", got)
	}
	if got := MulticastMAC6(a16("ff02::1:ff34:5678")); got != [6]byte{0x33, 0x33, 0xff, 0x34, 0x56, 0x78} {
		t.Fatalf("%x", got)
	}
}
