package header

import (
	"bytes"
	"testing"
)

// ipv6With builds an IPv6 packet whose first next header is next, followed
// by the bytes of chain (extension headers and upper-layer bytes).
func ipv6With(next uint8, chain ...[]byte) IPv6 {
	p := bytes.Join(chain, nil)
	ip := make(IPv6, IPv6HeaderLen+len(p))
	ip.Encode(uint16(len(p)), next, 64, [16]byte{0xfd, 15: 1}, [16]byte{0xff, 0x02, 15: 1})
	copy(ip[IPv6HeaderLen:], p)
	return ip
}

// ext is an 8-byte-unit extension header (Hop-by-Hop, Routing, Options)
// with next header next and 8*(1+units) bytes.
func ext(next uint8, units int) []byte {
	h := make([]byte, 8*(1+units))
	h[0], h[1] = next, byte(units)
	return h
}

func fragHdr(next uint8, offset uint16, more bool) []byte {
	h := []byte{next, 0, byte(offset >> 5), byte(offset << 3), 0, 0, 0, 1}
	if more {
		h[3] |= 1
	}
	return h
}

func TestIPv6Transport(t *testing.T) {
	ra := []byte{ICMPv6RouterAdvert, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	udp := []byte{0x02, 0x23, 0x02, 0x22, 0, 8, 0, 0}
	ah := []byte{ProtocolICMPv6, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0} // (1+2)*4 = 12 bytes
	long := ipv6With(ProtocolIPv6Opts)
	for i := range IPv6MaxExtHeaders + 1 {
		next := uint8(ProtocolIPv6Opts)
		if i == IPv6MaxExtHeaders {
			next = ProtocolICMPv6
		}
		long = ipv6With(ProtocolIPv6Opts, long[IPv6HeaderLen:], ext(next, 0))
	}
	tests := []struct {
		name  string
		ip    IPv6
		proto uint8
		n     int // payload length
		later bool
		err   error
	}{
		{"plain", ipv6With(ProtocolICMPv6, ra), ProtocolICMPv6, len(ra), false, nil},
		{"hopByHop", ipv6With(ProtocolIPv6HopByHop, ext(ProtocolICMPv6, 0), ra), ProtocolICMPv6, len(ra), false, nil},
		{"hopByHopLong", ipv6With(ProtocolIPv6HopByHop, ext(ProtocolIPv6Route, 2), ext(ProtocolUDP, 1), udp), ProtocolUDP, len(udp), false, nil},
		{"destOpts", ipv6With(ProtocolIPv6Opts, ext(ProtocolUDP, 0), udp), ProtocolUDP, len(udp), false, nil},
		{"ah", ipv6With(ProtocolAH, ah, ra), ProtocolICMPv6, len(ra), false, nil},
		{"atomicFragment", ipv6With(ProtocolIPv6Frag, fragHdr(ProtocolICMPv6, 0, false), ra), ProtocolICMPv6, len(ra), false, nil},
		{"firstFragment", ipv6With(ProtocolIPv6Frag, fragHdr(ProtocolICMPv6, 0, true), ra), ProtocolICMPv6, len(ra), false, nil},
		{"laterFragment", ipv6With(ProtocolIPv6Frag, fragHdr(ProtocolICMPv6, 2, false), ra), ProtocolICMPv6, len(ra), true, nil},
		{"noNext", ipv6With(ProtocolIPv6HopByHop, ext(ProtocolIPv6NoNext, 0)), ProtocolIPv6NoNext, 0, false, nil},
		{"eightHeaders", ipv6With(ProtocolIPv6Opts, bytes.Repeat(ext(ProtocolIPv6Opts, 0), 7), ext(ProtocolICMPv6, 0), ra), ProtocolICMPv6, len(ra), false, nil},
		{"nineHeaders", long, ProtocolICMPv6, 0, false, ErrIPv6ExtHeaders},
		{"truncatedExt", ipv6With(ProtocolIPv6HopByHop, ext(ProtocolICMPv6, 0)[:7]), ProtocolIPv6HopByHop, 0, false, ErrIPv6ExtHeaders},
		{"extPastPacket", ipv6With(ProtocolIPv6HopByHop, []byte{ProtocolICMPv6, 3, 0, 0, 0, 0, 0, 0}, ra), ProtocolIPv6HopByHop, 0, false, ErrIPv6ExtHeaders},
		{"truncatedFragment", ipv6With(ProtocolIPv6Frag, fragHdr(ProtocolICMPv6, 0, true)[:6]), ProtocolIPv6Frag, 0, false, ErrIPv6ExtHeaders},
		{"firstFragmentNoUpper", ipv6With(ProtocolIPv6Frag, fragHdr(ProtocolIPv6Opts, 0, true), ext(ProtocolICMPv6, 0)), ProtocolICMPv6, 0, false, ErrIPv6ExtHeaders},
		{"firstFragmentNoNext", ipv6With(ProtocolIPv6Frag, fragHdr(ProtocolIPv6NoNext, 0, true)), ProtocolIPv6NoNext, 0, false, ErrIPv6ExtHeaders},
		{"ahPastPacket", ipv6With(ProtocolAH, ah[:10]), ProtocolAH, 0, false, ErrIPv6ExtHeaders},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip, err := ParseIPv6(tt.ip)
			if err != nil {
				t.Fatal(err)
			}
			proto, p, later, err := ip.Transport()
			if proto != tt.proto || len(p) != tt.n || later != tt.later || err != tt.err {
				t.Fatalf("Transport = %d, %d bytes, later %v, %v; want %d, %d, %v, %v", proto, len(p), later, err, tt.proto, tt.n, tt.later, tt.err)
			}
			if err == nil && len(p) > 0 && &p[len(p)-1] != &ip[len(ip)-1] {
				t.Fatal("payload does not end with the packet")
			}
		})
	}
}

// FuzzIPv6Transport: the walk never reads past the packet, and what it
// returns is the packet's tail.
func FuzzIPv6Transport(f *testing.F) {
	f.Add([]byte(ipv6With(ProtocolIPv6HopByHop, ext(ProtocolICMPv6, 0), []byte{ICMPv6RouterAdvert, 0, 0, 0})))
	f.Add([]byte(ipv6With(ProtocolIPv6Frag, fragHdr(ProtocolUDP, 0, true), []byte{0x02, 0x23, 0x02, 0x22, 0, 8, 0, 0})))
	f.Add([]byte(ipv6With(ProtocolAH, []byte{ProtocolIPv6Opts, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}, ext(ProtocolIPv6NoNext, 0))))
	f.Fuzz(func(t *testing.T, b []byte) {
		ip, err := ParseIPv6(b)
		if err != nil {
			return
		}
		_, p, _, err := ip.Transport()
		if err != nil {
			if p != nil {
				t.Fatalf("payload %x with error %v", p, err)
			}
			return
		}
		if len(p) > len(ip)-IPv6HeaderLen || (len(p) > 0 && &p[len(p)-1] != &ip[len(ip)-1]) {
			t.Fatalf("payload of %d bytes is not the tail of a %d-byte packet", len(p), len(ip))
		}
	})
}
