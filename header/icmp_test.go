package header

import (
	"encoding/binary"
	"testing"
)

func TestWriteICMPv4FragNeeded(t *testing.T) {
	frame := gold(t, "big")
	orig, err := ParseIPv4(frame[EthernetHeaderLen:])
	if err != nil {
		t.Fatal(err)
	}
	var buf [ICMPv4ErrorMaxFrameLen]byte
	n, err := WriteICMPv4FragNeeded(buf[:], Ethernet(frame).Src(), orig, swMAC, a4("10.0.0.254"), 1400)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "frag needed", buf[:n], gold(t, "fragNeeded"))
	if _, err := WriteICMPv4FragNeeded(buf[:n-1], vm1MAC, orig, swMAC, a4("10.0.0.254"), 1400); err != ErrBufferTooSmall {
		t.Fatal(err)
	}

	// Time exceeded about a short packet quotes what there is.
	short := gold(t, "ipv4UDPNoCsum")[:24]
	binary.BigEndian.PutUint16(short[2:], 24)
	udp, _ := ParseIPv4(short)
	n, err = WriteICMPv4TimeExceeded(buf[:], vm1MAC, udp, swMAC, a4("10.0.0.254"))
	if err != nil || n != 14+20+8+24 {
		t.Fatal(n, err)
	}
	ip, _ := ParseIPv4(buf[14:n])
	if !ip.ChecksumValid() || Checksum(ip.Payload()) != 0 || ip.Payload()[0] != ICMPv4TimeExceeded {
		t.Fatalf("%x", buf[:n])
	}

	// A header with options is quoted whole, plus 8 bytes.
	tcp, _ := ParseIPv4(gold(t, "ipv4TCP"))
	n, _ = WriteICMPv4FragNeeded(buf[:], vm1MAC, tcp, swMAC, a4("10.0.0.254"), 576)
	if n != 14+20+8+24+8 {
		t.Fatal(n)
	}
	ip, _ = ParseIPv4(buf[14:n])
	if binary.BigEndian.Uint16(ip.Payload()[6:]) != 576 || Checksum(ip.Payload()) != 0 {
		t.Fatal("mtu / checksum")
	}
}

func TestICMPv4Suppressed(t *testing.T) {
	var buf [ICMPv4ErrorMaxFrameLen]byte
	write := func(b []byte) error {
		ip, err := ParseIPv4(b)
		if err != nil {
			t.Fatal(err)
		}
		_, err = WriteICMPv4FragNeeded(buf[:], vm1MAC, ip, swMAC, a4("10.0.0.254"), 1400)
		return err
	}
	if err := write(gold(t, "ipv4ICMP")); err != nil {
		t.Fatalf("echo request: %v", err)
	}
	fn := gold(t, "fragNeeded")[EthernetHeaderLen:]
	if err := write(fn); err != ErrICMPSuppressed {
		t.Fatalf("about an ICMP error: %v", err)
	}
	later := gold(t, "ipv4UDP")
	binary.BigEndian.PutUint16(later[6:], 10)
	if err := write(later); err != ErrICMPSuppressed {
		t.Fatalf("non-first fragment: %v", err)
	}
	for _, src := range []string{"0.0.0.0", "127.0.0.1", "224.0.0.1", "255.255.255.255"} {
		b := gold(t, "ipv4UDP")
		a := a4(src)
		copy(b[12:16], a[:])
		if err := write(b); err != ErrICMPSuppressed {
			t.Fatalf("source %s: %v", src, err)
		}
	}
}

func TestWriteICMPv6PacketTooBig(t *testing.T) {
	frame := gold(t, "big6")
	orig, err := ParseIPv6(frame[EthernetHeaderLen:])
	if err != nil {
		t.Fatal(err)
	}
	var buf [ICMPv6ErrorMaxFrameLen]byte
	n, err := WriteICMPv6PacketTooBig(buf[:], Ethernet(frame).Src(), orig, swMAC, a16("fd00::fe"), 1400)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "packet too big", buf[:n], gold(t, "ptb"))
	if _, err := WriteICMPv6PacketTooBig(buf[:n-1], vm1MAC, orig, swMAC, a16("fd00::fe"), 1400); err != ErrBufferTooSmall {
		t.Fatal(err)
	}
	// About an NS (informational): allowed. About an NA from ::: no.
	ns, _ := ParseIPv6(gold(t, "ns")[EthernetHeaderLen:])
	if n, err := WriteICMPv6PacketTooBig(buf[:], vm1MAC, ns, swMAC, a16("fd00::fe"), 1280); err != nil || n != 14+40+8+len(ns) {
		t.Fatal(n, err)
	}
	dad, _ := ParseIPv6(gold(t, "nsDAD")[EthernetHeaderLen:])
	if _, err := WriteICMPv6PacketTooBig(buf[:], vm1MAC, dad, swMAC, a16("fd00::fe"), 1280); err != ErrICMPSuppressed {
		t.Fatal(err)
	}
	ptb, _ := ParseIPv6(gold(t, "ptb")[EthernetHeaderLen:])
	if _, err := WriteICMPv6PacketTooBig(buf[:], vm1MAC, ptb, swMAC, a16("fd00::fe"), 1280); err != ErrICMPSuppressed {
		t.Fatal(err)
	}
}
