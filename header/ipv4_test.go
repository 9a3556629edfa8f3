package header

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

func TestParseIPv4(t *testing.T) {
	tcp := gold(t, "ipv4TCP")
	mod := func(f func(b []byte)) []byte {
		b := append([]byte(nil), tcp...)
		f(b)
		return b
	}
	tests := []struct {
		name string
		b    []byte
		err  error
		len  int
	}{
		{"tcp", tcp, nil, len(tcp)},
		{"padded", append(append([]byte(nil), tcp...), 0, 0, 0, 0), nil, len(tcp)},
		{"udp", gold(t, "ipv4UDP"), nil, 33},
		{"short", tcp[:19], ErrTruncated, 0},
		{"version", mod(func(b []byte) { b[0] = 0x66 }), ErrIPv4Version, 0},
		{"ihl4", mod(func(b []byte) { b[0] = 0x44 }), ErrIPv4HeaderLength, 0},
		{"ihl15", mod(func(b []byte) { b[0] = 0x4f }), ErrTruncated, 0},
		{"ihlBeyond", tcp[:22], ErrTruncated, 0},
		{"totalBeyond", tcp[:len(tcp)-1], ErrIPv4TotalLength, 0},
		{"totalBelowHeader", mod(func(b []byte) { binary.BigEndian.PutUint16(b[2:], 20) }), ErrIPv4TotalLength, 0},
		{"headerOnly", mod(func(b []byte) { binary.BigEndian.PutUint16(b[2:], 24) }), nil, 24},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip, err := ParseIPv4(tt.b)
			if err != tt.err {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if len(ip) != tt.len {
				t.Fatalf("len = %d, want %d", len(ip), tt.len)
			}
		})
	}
}

func TestIPv4Fields(t *testing.T) {
	ip, err := ParseIPv4(gold(t, "ipv4TCP"))
	if err != nil {
		t.Fatal(err)
	}
	if ip.Version() != 4 || ip.IHL() != 6 || ip.HeaderLen() != 24 || ip.OptionsLen() != 4 ||
		len(ip.Options()) != 4 || ip.TOS() != 0 || ip.TotalLength() != 56 || ip.ID() != 0x1234 ||
		ip.Flags() != 2 || !ip.DF() || ip.MF() || ip.FragmentOffset() != 0 || ip.IsFragment() ||
		!ip.HasTransportHeader() || ip.TTL() != 64 || ip.Protocol() != ProtocolTCP ||
		ip.Checksum() != 0x1189 || !ip.ChecksumValid() || ip.ComputeChecksum() != 0x1189 ||
		ip.Src() != a4("10.0.0.1") || ip.DstAddr().String() != "10.0.0.2" || ip.SrcAddr().String() != "10.0.0.1" ||
		ip.Dst() != a4("10.0.0.2") || len(ip.Payload()) != 32 {
		t.Fatalf("fields of %x", []byte(ip))
	}
	if c, ok := ip.TransportChecksum(); !ok || c != 0x4d3b {
		t.Fatalf("TransportChecksum = %#x %v", c, ok)
	}
	ip[11]++
	if ip.ChecksumValid() {
		t.Fatal("corrupt checksum accepted")
	}
	ip.UpdateChecksum()
	if !ip.ChecksumValid() || ip.Checksum() != 0x1189 {
		t.Fatal("UpdateChecksum")
	}
	// Fragment flags.
	binary.BigEndian.PutUint16(ip[6:], 0x2000|185) // MF, offset 1480
	if !ip.MF() || ip.DF() || ip.FragmentOffset() != 1480 || !ip.IsFragment() || ip.HasTransportHeader() {
		t.Fatal("fragment flags")
	}
}

func TestIPv4RewriteGolden(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ipv4TCP", "ipv4TCPRewritten"},
		{"ipv4UDP", "ipv4UDPRewritten"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			ip, err := ParseIPv4(gold(t, tt.in))
			if err != nil {
				t.Fatal(err)
			}
			want := gold(t, tt.want)
			if ip.Protocol() == ProtocolTCP {
				if !ip.DecTTL() {
					t.Fatal("DecTTL")
				}
			}
			ip.SetAddrs(a4("192.168.10.7"), a4("172.16.99.200"))
			mustEqual(t, "rewritten", ip, want)
			// And back (PA -> CA).
			ip.SetSrc(a4("10.0.0.1"))
			ip.SetDst(a4("10.0.0.2"))
			if c, _ := ip.TransportChecksum(); !ip.ChecksumValid() || c != binary.BigEndian.Uint16(gold(t, tt.in)[ip.HeaderLen()+map[uint8]int{6: 16, 17: 6}[ip.Protocol()]:]) {
				t.Fatalf("back: %x", []byte(ip))
			}
		})
	}
	// UDP without checksum: stays 0.
	ip, _ := ParseIPv4(gold(t, "ipv4UDPNoCsum"))
	ip.SetAddrs(a4("192.168.10.7"), a4("172.16.99.200"))
	if !ip.ChecksumValid() || ip[26] != 0 || ip[27] != 0 {
		t.Fatalf("udp no checksum: %x", []byte(ip))
	}
	// ICMP: no pseudo-header, message untouched.
	orig := gold(t, "ipv4ICMP")
	ip, _ = ParseIPv4(append([]byte(nil), orig...))
	ip.SetAddrs(a4("192.168.10.7"), a4("172.16.99.200"))
	if !ip.ChecksumValid() || Checksum(ip.Payload()) != 0 {
		t.Fatalf("icmp: %x", []byte(ip))
	}
	mustEqual(t, "icmp payload", ip.Payload(), orig[20:])
	// Same address: nothing changes.
	ip, _ = ParseIPv4(gold(t, "ipv4TCP"))
	ip.SetSrc(a4("10.0.0.1"))
	mustEqual(t, "no-op", ip, gold(t, "ipv4TCP"))
}

func TestDecTTL(t *testing.T) {
	for _, ttl := range []uint8{0, 1, 2, 64, 255} {
		ip, _ := ParseIPv4(gold(t, "ipv4UDP"))
		ip[8] = ttl
		ip.UpdateChecksum()
		ok := ip.DecTTL()
		if ok != (ttl > 1) {
			t.Fatalf("ttl %d: ok %v", ttl, ok)
		}
		if want := ttl; ok && ip.TTL() != want-1 || !ok && ip.TTL() != want {
			t.Fatalf("ttl %d -> %d", ttl, ip.TTL())
		}
		if !ip.ChecksumValid() || ip.ComputeChecksum() != ip.Checksum() {
			t.Fatalf("ttl %d: checksum %#x, want %#x", ttl, ip.Checksum(), ip.ComputeChecksum())
		}
	}
}

// randomIPv4 builds a random IPv4 packet with correct checksums.
func randomIPv4(r *rand.Rand) IPv4 {
	hl := 20 + 4*r.IntN(11)
	protos := []uint8{ProtocolTCP, ProtocolUDP, ProtocolICMP, ProtocolGRE}
	proto := protos[r.IntN(len(protos))]
	minL4 := map[uint8]int{ProtocolTCP: 20, ProtocolUDP: 8, ProtocolICMP: 8, ProtocolGRE: 0}[proto]
	n := hl + minL4 + r.IntN(200)
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	b[0] = 0x40 | byte(hl/4)
	binary.BigEndian.PutUint16(b[2:], uint16(n))
	binary.BigEndian.PutUint16(b[6:], 0) // unfragmented; fragments are tested apart
	b[9] = proto
	ip := IPv4(b)
	p := ip.Payload()
	switch proto {
	case ProtocolUDP:
		binary.BigEndian.PutUint16(p[4:], uint16(len(p)))
		if r.IntN(5) == 0 {
			p[6], p[7] = 0, 0
		} else {
			c, _ := ip.TransportChecksum()
			binary.BigEndian.PutUint16(p[6:], c)
		}
	case ProtocolTCP:
		c, _ := ip.TransportChecksum()
		binary.BigEndian.PutUint16(p[16:], c)
	case ProtocolICMP:
		p[2], p[3] = 0, 0
		binary.BigEndian.PutUint16(p[2:], Checksum(p))
	}
	ip.UpdateChecksum()
	return ip
}

// sameChecksum compares checksums as one's complement numbers (0x0000 and
// 0xffff are both zero).
func sameChecksum(a, b uint16) bool {
	return a == b || a == 0 && b == 0xffff || a == 0xffff && b == 0
}

// TestIPv4RewriteRandom compares the incremental updates of SetSrc, SetDst
// and DecTTL with a full recomputation on random packets.
func TestIPv4RewriteRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		ip := randomIPv4(r)
		orig := append([]byte(nil), ip...)
		proto := ip.Protocol()
		p := ip.Payload()
		udpNone := proto == ProtocolUDP && p[6] == 0 && p[7] == 0
		var src, dst [4]byte
		binary.BigEndian.PutUint32(src[:], r.Uint32())
		binary.BigEndian.PutUint32(dst[:], r.Uint32())
		if r.IntN(4) == 0 {
			src = [4]byte{0xff, 0xff, 0xff, 0xff}
		}
		switch i % 3 {
		case 0:
			ip.SetSrc(src)
			dst = ip.Dst()
		case 1:
			ip.SetDst(dst)
			src = ip.Src()
		case 2:
			ip.SetAddrs(src, dst)
		}
		ip.DecTTL()
		if ip.Src() != src || ip.Dst() != dst {
			t.Fatalf("addresses not written")
		}
		if !sameChecksum(ip.Checksum(), ip.ComputeChecksum()) {
			t.Fatalf("#%d ip checksum %#x, full %#x\n%x", i, ip.Checksum(), ip.ComputeChecksum(), orig)
		}
		switch proto {
		case ProtocolTCP, ProtocolUDP:
			at := map[uint8]int{ProtocolTCP: 16, ProtocolUDP: 6}[proto]
			got := binary.BigEndian.Uint16(p[at:])
			if udpNone {
				if got != 0 {
					t.Fatalf("#%d udp checksum 0 became %#x", i, got)
				}
				continue
			}
			full, _ := ip.TransportChecksum()
			if !sameChecksum(got, full) || proto == ProtocolUDP && got == 0 {
				t.Fatalf("#%d proto %d checksum %#x, full %#x\n%x", i, proto, got, full, orig)
			}
		default:
			mustEqual(t, "payload", ip.Payload(), orig[ip.HeaderLen():])
		}
	}
}

// TestIPv4RewriteFragments: the first fragment's transport checksum is
// updated (it covers the whole datagram, and the pseudo-header delta is
// the same); later fragments' payloads are left alone.
func TestIPv4RewriteFragments(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		ip := randomIPv4(r)
		if ip.Protocol() != ProtocolTCP && ip.Protocol() != ProtocolUDP {
			continue
		}
		src := [4]byte{byte(r.Uint32()), 1, 2, 3}
		// First fragment: MF set, offset 0.
		first := IPv4(append([]byte(nil), ip...))
		binary.BigEndian.PutUint16(first[6:], 0x2000)
		first.UpdateChecksum()
		first.SetSrc(src)
		if !first.ChecksumValid() {
			t.Fatal("first fragment ip checksum")
		}
		binary.BigEndian.PutUint16(first[6:], 0) // as if reassembled
		first.UpdateChecksum()
		full, _ := first.TransportChecksum()
		at := map[uint8]int{ProtocolTCP: 16, ProtocolUDP: 6}[ip.Protocol()]
		got := binary.BigEndian.Uint16(first.Payload()[at:])
		if ip.Protocol() == ProtocolUDP && binary.BigEndian.Uint16(ip.Payload()[6:]) == 0 {
			full = 0
		}
		if !sameChecksum(got, full) {
			t.Fatalf("first fragment checksum %#x, full %#x", got, full)
		}
		// Later fragment: only the IP header changes.
		later := IPv4(append([]byte(nil), ip...))
		binary.BigEndian.PutUint16(later[6:], 0x2000|100)
		later.UpdateChecksum()
		later.SetSrc(src)
		if !later.ChecksumValid() {
			t.Fatal("later fragment ip checksum")
		}
		mustEqual(t, "later fragment payload", later.Payload(), ip.Payload())
	}
}

func TestIPv4TruncatedTransport(t *testing.T) {
	// A TCP packet too short to hold its checksum: only the IP header
	// changes, nothing is read or written beyond the packet.
	b := gold(t, "ipv4UDP")[:28]
	binary.BigEndian.PutUint16(b[2:], 28)
	b[9] = ProtocolTCP
	ip, err := ParseIPv4(b)
	if err != nil {
		t.Fatal(err)
	}
	ip.UpdateChecksum()
	ip.SetAddrs(a4("1.2.3.4"), a4("5.6.7.8"))
	if !ip.ChecksumValid() {
		t.Fatal("checksum")
	}
	if _, ok := ip.TransportChecksum(); ok {
		t.Fatal("TransportChecksum of truncated TCP")
	}
}

func TestIPv4Encode(t *testing.T) {
	var b [20]byte
	IPv4(b[:]).Encode(&IPv4Fields{TotalLength: 33, ID: 7, Protocol: ProtocolUDP, Src: a4("10.0.0.1"), Dst: a4("10.0.0.2")})
	mustEqual(t, "header", b[:], gold(t, "ipv4UDP")[:20])
}

func TestUpdateChecksumHelpers(t *testing.T) {
	// The helpers agree with what SetAddrs does to the golden packets.
	in, want := gold(t, "ipv4UDP"), gold(t, "ipv4UDPRewritten")
	ip := IPv4(in)
	c := UpdateChecksumAddr4(ip.Checksum(), ip.Src(), a4("192.168.10.7"))
	c = UpdateChecksumAddr4(c, ip.Dst(), a4("172.16.99.200"))
	if c != IPv4(want).Checksum() {
		t.Fatalf("ip checksum %#x, want %#x", c, IPv4(want).Checksum())
	}
	// TTL 64 -> 63 as a 16-bit word change.
	tcp, tcpWant := gold(t, "ipv4TCP"), gold(t, "ipv4TCPRewritten")
	c = UpdateChecksum16(IPv4(tcp).Checksum(), 0x4006, 0x3f06)
	c = UpdateChecksumAddr4(c, IPv4(tcp).Src(), IPv4(tcpWant).Src())
	c = UpdateChecksumAddr4(c, IPv4(tcp).Dst(), IPv4(tcpWant).Dst())
	if c != IPv4(tcpWant).Checksum() {
		t.Fatalf("tcp ip checksum %#x", c)
	}
	// IPv6: rewriting the source of an NS keeps its ICMPv6 checksum right.
	ns := gold(t, "ns")
	ip6, _ := ParseIPv6(ns[EthernetHeaderLen:])
	m := ip6.Payload()
	newSrc := a16("fe80::abcd:1234")
	binary.BigEndian.PutUint16(m[2:], UpdateChecksumAddr16(binary.BigEndian.Uint16(m[2:]), ip6.Src(), newSrc))
	copy(ip6[8:24], newSrc[:])
	if !ICMPv6ChecksumValid(ip6) {
		t.Fatal("icmpv6 checksum after source change")
	}
	if Checksum(gold(t, "ipv4ICMP")[20:]) != 0 {
		t.Fatal("Checksum of a valid ICMP message")
	}
}
