package header

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// tuple is what a FiveTuple reports, as one comparable value.
type tuple struct {
	version      uint8
	etype        uint16
	tagged       bool
	proto        uint8
	src, dst     string // "" if not IP
	fragment     bool
	transport    bool // HasTransportHeader
	ports        bool
	sport, dport uint16
	word         bool // TransportWord ok
}

func tupleOf(t FiveTuple) tuple {
	s, d, ok := t.Ports()
	_, w := t.TransportWord()
	r := tuple{version: t.Version(), etype: t.EtherType(), tagged: t.Tagged(), proto: t.Protocol(),
		fragment: t.Fragment(), transport: t.HasTransportHeader(), ports: ok, sport: s, dport: d, word: w}
	if t.Src().IsValid() {
		r.src, r.dst = t.Src().String(), t.Dst().String()
	}
	return r
}

// withEthernet returns an IPv4 packet behind an Ethernet header vm1 > vm2.
func withEthernet(typ uint16, packet []byte) []byte {
	b := make([]byte, EthernetHeaderLen, EthernetHeaderLen+len(packet))
	Ethernet(b).Encode(vm2MAC, vm1MAC, typ)
	return append(b, packet...)
}

// edit returns a copy of b changed by fn.
func edit(b []byte, fn func(b []byte) []byte) []byte { return fn(bytes.Clone(b)) }

// setU16 returns a copy of b with the big-endian word at off set to v.
func setU16(b []byte, off int, v uint16) []byte {
	return edit(b, func(b []byte) []byte { binary.BigEndian.PutUint16(b[off:], v); return b })
}

func TestReadFiveTuple(t *testing.T) {
	udp4 := tuple{version: 4, etype: EtherTypeIPv4, proto: ProtocolUDP, src: "10.0.0.1", dst: "10.0.0.2", transport: true}
	with := func(base tuple, fn func(*tuple)) tuple { fn(&base); return base }
	ports := func(s, d uint16) func(*tuple) {
		return func(r *tuple) { r.ports, r.sport, r.dport, r.word = true, s, d, true }
	}
	inner := gold(t, "inner")
	tcpOpts := withEthernet(EtherTypeIPv4, gold(t, "ipv4TCP"))
	udp6 := gold(t, "big6")
	tests := []struct {
		name  string
		frame []byte
		want  tuple
		err   error
	}{
		// golden frames
		{"udp4", inner, with(udp4, ports(1000, 2000)), nil},
		{"tcp4 with options", tcpOpts, with(udp4, func(r *tuple) { r.proto = ProtocolTCP; ports(40000, 80)(r) }), nil},
		{"icmp4: no ports", withEthernet(EtherTypeIPv4, gold(t, "ipv4ICMP")), with(udp4, func(r *tuple) { r.proto, r.word = ProtocolICMP, true }), nil},
		{"sctp", gold(t, "sctp"), with(udp4, func(r *tuple) { r.proto = ProtocolSCTP; ports(5000, 6000)(r) }), nil},
		{"gre", gold(t, "nvgre"), tuple{version: 4, etype: EtherTypeIPv4, proto: ProtocolGRE, src: "192.168.1.1", dst: "192.168.1.2", transport: true, word: true}, nil},
		{"vlan tcp4", gold(t, "vlanTCP"), with(udp4, func(r *tuple) { r.tagged, r.proto = true, ProtocolTCP; ports(40000, 443)(r) }), nil},
		{"first fragment", gold(t, "fragFirst"), with(udp4, func(r *tuple) { r.fragment = true; ports(5353, 53)(r) }), nil},
		{"later fragment", gold(t, "fragLater"), with(udp4, func(r *tuple) { r.fragment, r.transport = true, false }), nil},
		{"udp4 padded", gold(t, "udpPadded"), with(udp4, ports(68, 67)), nil},
		{"udp6", udp6, tuple{version: 6, etype: EtherTypeIPv6, proto: ProtocolUDP, src: "fd00::1", dst: "fd00::2", transport: true, ports: true, sport: 1111, dport: 2222, word: true}, nil},
		{"tcp6", gold(t, "tcp6"), tuple{version: 6, etype: EtherTypeIPv6, proto: ProtocolTCP, src: "fd00::1", dst: "fd00::2", transport: true, ports: true, sport: 40001, dport: 22, word: true}, nil},
		{"ipv6 hop-by-hop: protocol 0, no ports", gold(t, "hopByHop6"), tuple{version: 6, etype: EtherTypeIPv6, proto: 0, src: "fd00::1", dst: "fd00::2", transport: true, word: true}, nil},
		{"icmpv6", gold(t, "ns"), tuple{version: 6, etype: EtherTypeIPv6, proto: ProtocolICMPv6, src: "fe80::1", dst: "ff02::1:ff00:2", transport: true, word: true}, nil},
		{"arp", gold(t, "arpRequest"), tuple{etype: EtherTypeARP}, nil},
		{"802.1ad tag: not IP", setU16(gold(t, "vlanTCP"), 12, EtherTypeQinQ), tuple{etype: EtherTypeQinQ}, nil},
		{"two 802.1Q tags: not IP", setU16(gold(t, "vlanTCP"), 16, EtherTypeVLAN), tuple{etype: EtherTypeVLAN, tagged: true}, nil},

		// the transport header against the length fields
		{"udp4 with 3 bytes of udp in the packet", setU16(gold(t, "udpPadded"), 16, 23), with(udp4, func(r *tuple) { r.word = true }), nil},
		{"udp4 ending with the ip header", setU16(inner[:34], 16, 20), udp4, nil},
		{"udp6 with payload length 0", setU16(udp6, 18, 0), tuple{version: 6, etype: EtherTypeIPv6, proto: ProtocolUDP, src: "fd00::1", dst: "fd00::2", transport: true, word: true}, nil},
		{"ipv4 total length 0", setU16(inner, 16, 0), with(udp4, func(r *tuple) { r.word = true }), ErrIPv4TotalLength},
		{"ipv4 total length below header", setU16(inner, 16, 19), with(udp4, func(r *tuple) { r.word = true }), ErrIPv4TotalLength},
		{"ipv4 total length beyond frame", inner[:len(inner)-1], with(udp4, func(r *tuple) { r.word = true }), ErrIPv4TotalLength},
		{"ipv6 payload beyond frame", udp6[:len(udp6)-1], tuple{version: 6, etype: EtherTypeIPv6, proto: ProtocolUDP, src: "fd00::1", dst: "fd00::2", transport: true, word: true}, ErrIPv6PayloadLength},

		// malformed: not IP
		{"empty", nil, tuple{}, ErrTruncated},
		{"13 bytes", inner[:13], tuple{}, ErrTruncated},
		{"vlan tag cut", gold(t, "vlanTCP")[:17], tuple{etype: EtherTypeVLAN}, ErrTruncated},
		{"ipv4 cut", inner[:33], tuple{etype: EtherTypeIPv4}, ErrTruncated},
		{"ipv4 options cut", tcpOpts[:37], tuple{etype: EtherTypeIPv4}, ErrTruncated},
		{"ipv4 version 6", edit(inner, func(b []byte) []byte { b[14] = 0x65; return b }), tuple{etype: EtherTypeIPv4}, ErrIPv4Version},
		{"ipv4 ihl 4", edit(inner, func(b []byte) []byte { b[14] = 0x44; return b }), tuple{etype: EtherTypeIPv4}, ErrIPv4HeaderLength},
		{"ipv6 cut", udp6[:53], tuple{etype: EtherTypeIPv6}, ErrTruncated},
		{"ipv6 version 4", edit(udp6, func(b []byte) []byte { b[14] = 0x45; return b }), tuple{etype: EtherTypeIPv6}, ErrIPv6Version},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkPaths(t, tt.frame)
			ft, err := ReadFiveTuple(tt.frame)
			if err != tt.err {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if got := tupleOf(ft); got != tt.want {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestFiveTupleFields: Addrs aliases the frame, TransportWord is the first
// word after the IP header, and a FiveTuple is reset by every read.
func TestFiveTupleFields(t *testing.T) {
	f := gold(t, "tcp6")
	ft, err := ReadFiveTuple(f)
	if err != nil {
		t.Fatal(err)
	}
	a := ft.Addrs()
	if len(a) != 32 || &a[0] != &f[22] || cap(a) != 32 {
		t.Fatalf("Addrs: %d bytes (cap %d), not the frame's addresses", len(a), cap(a))
	}
	if w, ok := ft.TransportWord(); !ok || w != 40001<<16|22 {
		t.Fatalf("TransportWord %#x %v", w, ok)
	}
	if ft.Src() != netip.MustParseAddr("fd00::1") || ft.Dst() != netip.MustParseAddr("fd00::2") {
		t.Fatalf("Src %v Dst %v", ft.Src(), ft.Dst())
	}
	icmp := withEthernet(EtherTypeIPv4, gold(t, "ipv4ICMP"))
	if ft, err = ReadFiveTuple(icmp); err != nil {
		t.Fatal(err)
	}
	if w, ok := ft.TransportWord(); !ok || w>>24 != 8 || w>>16&0xff != 0 { // echo request, code 0
		t.Fatalf("ICMP TransportWord %#x %v", w, ok)
	}
	if ft, err = ReadFiveTuple(gold(t, "arpRequest")); err != nil || ft.Addrs() != nil || ft.Version() != 0 ||
		ft.Src().IsValid() || ft.HasTransportHeader() {
		t.Fatalf("an ARP frame after an IP one: %+v, %v", tupleOf(ft), err)
	}
	if _, ok := ft.TransportWord(); ok {
		t.Fatal("TransportWord of an ARP frame")
	}
	for _, p := range []uint8{ProtocolTCP, ProtocolUDP, ProtocolSCTP} {
		if !HasPorts(p) {
			t.Errorf("HasPorts(%d) = false", p)
		}
	}
	for _, p := range []uint8{0, ProtocolICMP, ProtocolGRE, ProtocolICMPv6, 44} {
		if HasPorts(p) {
			t.Errorf("HasPorts(%d) = true", p)
		}
	}
}

func TestReadFiveTupleAllocs(t *testing.T) {
	frames := [][]byte{gold(t, "inner"), gold(t, "tcp6"), gold(t, "vlanTCP"), gold(t, "arpRequest"), {1, 2}}
	if n := testing.AllocsPerRun(100, func() {
		for _, f := range frames {
			ft, _ := ReadFiveTuple(f)
			_, _ = ft.Src(), ft.Dst()
		}
	}); n != 0 {
		t.Errorf("ReadFiveTuple allocates %v times per run, want 0", n)
	}
}

// addTupleSeeds adds frames that reach every branch of ReadFiveTuple.
func addTupleSeeds(f *testing.F) {
	addSeeds(f)
	f.Add(withEthernet(EtherTypeIPv4, gold(f, "ipv4TCP")))
	f.Add(withEthernet(EtherTypeIPv4, gold(f, "ipv4ICMP")))
	f.Add(setU16(gold(f, "inner"), 16, 0))
	f.Add(setU16(gold(f, "udpPadded"), 16, 23))
	f.Add(setU16(gold(f, "big6"), 18, 0))
	f.Add(gold(f, "vlanTCP")[:17])
}

// FuzzFiveTuple reads arbitrary frames. Besides never panicking or reading
// outside the frame, the reader must agree with the views of this package
// (ParseIPv4, ParseIPv6), which check the same headers one at a time; its
// fast path must agree with its general one; a frame must read the same
// behind an 802.1Q tag (but for Tagged); and padding appended to a frame
// that read without error must change nothing.
func FuzzFiveTuple(f *testing.F) {
	addTupleSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		ft, err := ReadFiveTuple(b)
		got := tupleOf(ft)
		checkViews(t, b, ft, err)
		checkPaths(t, b)
		if a, proto, l4, ok := QuickIPv4(b); ok {
			// QuickIPv4 takes only what ReadFiveTuple reads as a whole,
			// well-formed, first-fragment-free IPv4 packet, and agrees.
			sp, dp, hasPorts := ft.Ports()
			w, _ := ft.TransportWord()
			if err != nil || ft.Version() != 4 || ft.Tagged() || ft.Fragment() || binary.LittleEndian.Uint64(ft.Addrs()) != a ||
				ft.Protocol() != proto || w != l4 || (hasPorts && uint32(sp)<<16|uint32(dp) != l4) {
				t.Fatalf("QuickIPv4 %#x %d %#x; ReadFiveTuple %+v, %v", a, proto, l4, got, err)
			}
		}
		if len(b) >= EthernetHeaderLen && binary.BigEndian.Uint16(b[12:14]) != EtherTypeVLAN {
			tagged := make([]byte, 0, len(b)+VLANTagLen)
			tagged = append(append(append(tagged, b[:12]...), 0x81, 0, 0, 7), b[12:]...)
			tt, terr := ReadFiveTuple(tagged)
			tg := tupleOf(tt)
			if !tg.tagged {
				t.Fatalf("tagged frame not Tagged: %+v", tg)
			}
			tg.tagged = false
			tw, _ := tt.TransportWord()
			w, _ := ft.TransportWord()
			if terr != err || tg != got || tw != w {
				t.Fatalf("tagged: %+v %v; untagged %+v %v", tg, terr, got, err)
			}
		}
		if err != nil {
			return
		}
		pt, perr := ReadFiveTuple(append(bytes.Clone(b), make([]byte, 9)...))
		padded := tupleOf(pt)
		padded.word = got.word // more bytes may complete a transport word
		if perr != nil || padded != got {
			t.Fatalf("padded: %+v %v; unpadded %+v", padded, perr, got)
		}
	})
}

// checkPaths compares the fast path of the reader with the general one.
func checkPaths(t *testing.T, b []byte) {
	t.Helper()
	fast, ferr := readFiveTuple(b, true)
	slow, serr := readFiveTuple(b, false)
	same := len(fast.addrs) == len(slow.addrs) && (len(fast.addrs) == 0 || &fast.addrs[0] == &slow.addrs[0] && cap(fast.addrs) == cap(slow.addrs))
	if ferr != serr || !same || fast.l4 != slow.l4 || fast.info != slow.info {
		t.Fatalf("fast path %+v %v, general path %+v %v", tupleOf(fast), ferr, tupleOf(slow), serr)
	}
}

// checkViews compares what ReadFiveTuple read from an untagged frame with
// what ParseIPv4 and ParseIPv6 read.
func checkViews(t *testing.T, b []byte, ft FiveTuple, err error) {
	t.Helper()
	if ft.Version() != 0 && (len(ft.Addrs()) != 8 && len(ft.Addrs()) != 32) {
		t.Fatalf("%d bytes of addresses", len(ft.Addrs()))
	}
	if sp, dp, ok := ft.Ports(); ok {
		if w, wok := ft.TransportWord(); !wok || w != uint32(sp)<<16|uint32(dp) {
			t.Fatalf("ports %d %d, transport word %#x %v", sp, dp, w, wok)
		}
	}
	if len(b) < EthernetHeaderLen || ft.Tagged() {
		return
	}
	var proto uint8
	var src, dst netip.Addr
	var payload []byte
	var hasL4 bool
	var verr error
	switch binary.BigEndian.Uint16(b[12:14]) {
	case EtherTypeIPv4:
		var ip IPv4
		ip, verr = ParseIPv4(b[EthernetHeaderLen:])
		if verr == nil {
			proto, src, dst, payload, hasL4 = ip.Protocol(), ip.SrcAddr(), ip.DstAddr(), ip.Payload(), ip.HasTransportHeader()
			if ft.Fragment() != ip.IsFragment() {
				t.Fatalf("Fragment %v, view %v", ft.Fragment(), ip.IsFragment())
			}
		}
	case EtherTypeIPv6:
		var ip IPv6
		ip, verr = ParseIPv6(b[EthernetHeaderLen:])
		if verr == nil {
			proto, src, dst, payload, hasL4 = ip.NextHeader(), ip.SrcAddr(), ip.DstAddr(), ip.Payload(), true
		}
	case EtherTypeVLAN: // not Tagged: the frame ends inside the tag
		if err != ErrTruncated || len(b) >= EthernetHeaderLen+VLANTagLen || ft.Version() != 0 {
			t.Fatalf("cut tag: %v %+v", err, tupleOf(ft))
		}
		return
	default:
		if err != nil || ft.Version() != 0 {
			t.Fatalf("not IP, but %v %+v", err, tupleOf(ft))
		}
		return
	}
	if verr != err {
		t.Fatalf("reader: %v, view: %v", err, verr)
	}
	if err != nil {
		return
	}
	if ft.Protocol() != proto || ft.Src() != src || ft.Dst() != dst || ft.HasTransportHeader() != hasL4 {
		t.Fatalf("reader %+v, view proto %d %v > %v", tupleOf(ft), proto, src, dst)
	}
	sp, dp, ok := ft.Ports()
	wantOK := hasL4 && HasPorts(proto) && len(payload) >= 4
	if ok != wantOK || ok && (sp != binary.BigEndian.Uint16(payload) || dp != binary.BigEndian.Uint16(payload[2:])) {
		t.Fatalf("ports %d %d %v, view payload % x", sp, dp, ok, payload)
	}
}

// BenchmarkReadFiveTuple reads the tuple of an IPv4 UDP frame (the fast
// path) and of an IPv6 TCP frame (the general one).
func BenchmarkReadFiveTuple(b *testing.B) {
	for _, name := range []string{"inner", "tcp6"} {
		f := gold(b, name)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if t, err := ReadFiveTuple(f); err != nil || t.Version() == 0 {
					b.Fatal(err)
				}
			}
			reportMpps(b)
		})
	}
}
