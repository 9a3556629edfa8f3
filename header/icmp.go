package header

import "encoding/binary"

// ICMPv4 types and codes used here.
const (
	ICMPv4EchoReply       = 0
	ICMPv4DstUnreachable  = 3
	ICMPv4Redirect        = 5
	ICMPv4Echo            = 8
	ICMPv4TimeExceeded    = 11
	ICMPv4ParamProblem    = 12
	ICMPv4CodeFragNeeded  = 4 // with ICMPv4DstUnreachable (RFC 1191)
	ICMPv4CodeTTLExceeded = 0 // with ICMPv4TimeExceeded

	icmpHeaderLen = 8
	// icmpv4Quote is how much of the offending datagram beyond its header
	// an ICMPv4 error quotes (RFC 792).
	icmpv4Quote = 8
	// ICMPv4ErrorMaxFrameLen is the longest frame WriteICMPv4Error
	// writes: Ethernet, IPv4, ICMP header, a 60-byte header and 8 bytes.
	ICMPv4ErrorMaxFrameLen = EthernetHeaderLen + IPv4MinHeaderLen + icmpHeaderLen + IPv4MaxHeaderLen + icmpv4Quote
	// ICMPv6ErrorMaxFrameLen is the longest frame WriteICMPv6Error writes:
	// the ICMPv6 packet is capped at the IPv6 minimum MTU (RFC 4443
	// section 2.4(c)).
	ICMPv6ErrorMaxFrameLen = EthernetHeaderLen + IPv6MinMTU
)

// isICMPv4Error reports whether an ICMP type is an error message.
func isICMPv4Error(t uint8) bool {
	switch t {
	case ICMPv4DstUnreachable, 4 /* source quench */, ICMPv4Redirect, ICMPv4TimeExceeded, ICMPv4ParamProblem:
		return true
	}
	return false
}

// WriteICMPv4Error writes into dst a complete Ethernet+IPv4+ICMP error
// frame about the IPv4 packet orig (from ParseIPv4; the payload of a frame
// whose Ethernet source was origMAC): from (srcMAC, src), to orig's source,
// TTL 64, DF clear, with ICMP type typ, code, the 32-bit "rest of header"
// word rest, and orig's header plus the first 8 bytes of its payload
// (RFC 792), and both checksums. It returns the frame length,
// ErrBufferTooSmall, or ErrICMPSuppressed when RFC 1122 section 3.2.2
// forbids an error about orig: a non-first fragment, an ICMP error
// message, or a source that is not a unicast host (0.0.0.0, 127/8,
// multicast, limited broadcast; subnet broadcasts are the caller's to
// know). dst must not overlap orig.
func WriteICMPv4Error(dst []byte, origMAC [6]byte, orig IPv4, srcMAC [6]byte, src [4]byte, typ, code uint8, rest uint32) (int, error) {
	if !orig.HasTransportHeader() {
		return 0, ErrICMPSuppressed
	}
	if orig.Protocol() == ProtocolICMP {
		p := orig.Payload()
		if len(p) < 1 || isICMPv4Error(p[0]) {
			return 0, ErrICMPSuppressed
		}
	}
	to := orig.Src()
	if to[0] == 0 || to[0] == 127 || to[0] >= 224 {
		return 0, ErrICMPSuppressed
	}
	quote := orig.HeaderLen() + icmpv4Quote
	if quote > len(orig) {
		quote = len(orig)
	}
	n := EthernetHeaderLen + IPv4MinHeaderLen + icmpHeaderLen + quote
	if len(dst) < n {
		return 0, ErrBufferTooSmall
	}
	Ethernet(dst).Encode(origMAC, srcMAC, EtherTypeIPv4)
	f := IPv4Fields{
		TotalLength: uint16(n - EthernetHeaderLen),
		Protocol:    ProtocolICMP,
		Src:         src,
		Dst:         to,
	}
	IPv4(dst[EthernetHeaderLen:]).Encode(&f)
	m := dst[EthernetHeaderLen+IPv4MinHeaderLen : n]
	m[0], m[1], m[2], m[3] = typ, code, 0, 0
	binary.BigEndian.PutUint32(m[4:8], rest)
	copy(m[icmpHeaderLen:], orig[:quote])
	binary.BigEndian.PutUint16(m[2:4], Checksum(m))
	return n, nil
}

// WriteICMPv4FragNeeded writes a "fragmentation needed and DF set"
// (type 3 code 4) error carrying the next-hop MTU (RFC 1191 section 4)
// about orig; see WriteICMPv4Error. The caller sends it when orig has DF
// set and does not fit mtu (orig.DF() && len(orig) > mtu).
func WriteICMPv4FragNeeded(dst []byte, origMAC [6]byte, orig IPv4, srcMAC [6]byte, src [4]byte, mtu uint16) (int, error) {
	return WriteICMPv4Error(dst, origMAC, orig, srcMAC, src, ICMPv4DstUnreachable, ICMPv4CodeFragNeeded, uint32(mtu))
}

// WriteICMPv4TimeExceeded writes a "time to live exceeded in transit"
// (type 11 code 0) error about orig; see WriteICMPv4Error.
func WriteICMPv4TimeExceeded(dst []byte, origMAC [6]byte, orig IPv4, srcMAC [6]byte, src [4]byte) (int, error) {
	return WriteICMPv4Error(dst, origMAC, orig, srcMAC, src, ICMPv4TimeExceeded, ICMPv4CodeTTLExceeded, 0)
}

// WriteICMPv6Error writes into dst a complete Ethernet+IPv6+ICMPv6 error
// frame about the IPv6 packet orig (from ParseIPv6; the payload of a frame
// whose Ethernet source was origMAC): from (srcMAC, src) to orig's source,
// hop limit 255, with type typ, code, the 32-bit word rest, and as much of
// orig as keeps the ICMPv6 packet within 1280 bytes (RFC 4443 section
// 2.4(c)), with its checksum. It returns the frame length,
// ErrBufferTooSmall (dst needs up to ICMPv6ErrorMaxFrameLen), or
// ErrICMPSuppressed when RFC 4443 section 2.4(e) forbids it: orig is an
// ICMPv6 error (directly after the fixed header), or its source is
// unspecified or multicast. Whether orig's destination allows an error is
// the caller's check: only Packet Too Big, and Parameter Problem code 2,
// may answer a packet sent to a multicast group (RFC 4443 section 2.4(e)).
func WriteICMPv6Error(dst []byte, origMAC [6]byte, orig IPv6, srcMAC [6]byte, src [16]byte, typ, code uint8, rest uint32) (int, error) {
	if orig.NextHeader() == ProtocolICMPv6 {
		p := orig.Payload()
		if len(p) < 1 || p[0] < 128 {
			return 0, ErrICMPSuppressed
		}
	}
	to := orig.Src()
	if to == [16]byte{} || to[0] == 0xff {
		return 0, ErrICMPSuppressed
	}
	quote := min(len(orig), IPv6MinMTU-IPv6HeaderLen-icmpHeaderLen)
	n := EthernetHeaderLen + IPv6HeaderLen + icmpHeaderLen + quote
	if len(dst) < n {
		return 0, ErrBufferTooSmall
	}
	Ethernet(dst).Encode(origMAC, srcMAC, EtherTypeIPv6)
	IPv6(dst[EthernetHeaderLen:]).Encode(uint16(icmpHeaderLen+quote), ProtocolICMPv6, 255, src, to)
	m := dst[EthernetHeaderLen+IPv6HeaderLen : n]
	m[0], m[1], m[2], m[3] = typ, code, 0, 0
	binary.BigEndian.PutUint32(m[4:8], rest)
	copy(m[icmpHeaderLen:], orig[:quote])
	binary.BigEndian.PutUint16(m[2:4], ICMPv6Checksum(src, to, m))
	return n, nil
}

// WriteICMPv6PacketTooBig writes a Packet Too Big (type 2) error with the
// MTU about orig; see WriteICMPv6Error. Unlike most errors it may answer
// a packet sent to a multicast group (RFC 4443 section 2.4(e.3)).
func WriteICMPv6PacketTooBig(dst []byte, origMAC [6]byte, orig IPv6, srcMAC [6]byte, src [16]byte, mtu uint32) (int, error) {
	return WriteICMPv6Error(dst, origMAC, orig, srcMAC, src, ICMPv6PacketTooBig, 0, mtu)
}
