package header

import (
	"encoding/binary"
	"net/netip"
)

const (
	// IPv6HeaderLen is the length of the fixed IPv6 header.
	IPv6HeaderLen = 40
	// IPv6MinMTU is the minimum link MTU of IPv6 (RFC 8200 section 5).
	IPv6MinMTU = 1280
)

// IPv6 is a view of an IPv6 packet: fixed header and payload. It aliases
// the caller's bytes. Get it from ParseIPv6, which checks the version and
// the payload length once and trims link-layer padding, before calling any
// method.
type IPv6 []byte

// ParseIPv6 checks that b starts with an IPv6 header whose payload fits in
// b and returns a view of exactly the packet (b[:40+PayloadLength]). A
// jumbogram (payload length 0 with a hop-by-hop jumbo option) is returned
// with an empty payload.
func ParseIPv6(b []byte) (IPv6, error) {
	if len(b) < IPv6HeaderLen {
		return nil, ErrTruncated
	}
	if b[0]>>4 != 6 {
		return nil, ErrIPv6Version
	}
	n := IPv6HeaderLen + int(binary.BigEndian.Uint16(b[4:6]))
	if n > len(b) {
		return nil, ErrIPv6PayloadLength
	}
	return IPv6(b[:n]), nil
}

// TrafficClass returns the traffic class (DSCP and ECN).
func (ip IPv6) TrafficClass() uint8 { return uint8(binary.BigEndian.Uint16(ip[0:2]) >> 4) }

// FlowLabel returns the 20-bit flow label.
func (ip IPv6) FlowLabel() uint32 { return binary.BigEndian.Uint32(ip[0:4]) & 0xfffff }

// PayloadLength returns the payload length field.
func (ip IPv6) PayloadLength() uint16 { return binary.BigEndian.Uint16(ip[4:6]) }

// NextHeader returns the next header field.
func (ip IPv6) NextHeader() uint8 { return ip[6] }

// HopLimit returns the hop limit.
func (ip IPv6) HopLimit() uint8 { return ip[7] }

// Src returns the source address.
func (ip IPv6) Src() [16]byte { return [16]byte(ip[8:24]) }

// Dst returns the destination address.
func (ip IPv6) Dst() [16]byte { return [16]byte(ip[24:40]) }

// SrcAddr returns the source address as a netip.Addr.
func (ip IPv6) SrcAddr() netip.Addr { return netip.AddrFrom16(ip.Src()) }

// DstAddr returns the destination address as a netip.Addr.
func (ip IPv6) DstAddr() netip.Addr { return netip.AddrFrom16(ip.Dst()) }

// Payload returns the bytes after the fixed header.
func (ip IPv6) Payload() []byte { return ip[IPv6HeaderLen:] }

// DecHopLimit decrements the hop limit (IPv6 has no header checksum). If it
// is 0 or 1 it changes nothing and returns false: drop the packet.
func (ip IPv6) DecHopLimit() bool {
	if ip[7] <= 1 {
		return false
	}
	ip[7]--
	return true
}

// Encode writes a fixed header into ip[:40] (traffic class and flow label
// zero).
func (ip IPv6) Encode(payloadLen uint16, next, hopLimit uint8, src, dst [16]byte) {
	_ = ip[IPv6HeaderLen-1]
	binary.BigEndian.PutUint32(ip[0:4], 6<<28)
	binary.BigEndian.PutUint16(ip[4:6], payloadLen)
	ip[6], ip[7] = next, hopLimit
	copy(ip[8:24], src[:])
	copy(ip[24:40], dst[:])
}

// ICMPv6Checksum returns the checksum an ICMPv6 message msg sent from src
// to dst should carry (pseudo-header of RFC 8200 section 8.1 included; the
// checksum field, msg[2:4], is taken as zero).
func ICMPv6Checksum(src, dst [16]byte, msg []byte) uint16 {
	acc := pseudoSum(src[:], dst[:], ProtocolICMPv6, len(msg))
	acc = sum(msg[:2], acc)
	if len(msg) > 4 {
		acc = sum(msg[4:], acc)
	}
	return ^fold(acc)
}

// ICMPv6ChecksumValid reports whether the ICMPv6 message in the payload of
// ip carries the right checksum. ip must come from ParseIPv6 with
// NextHeader ProtocolICMPv6.
func ICMPv6ChecksumValid(ip IPv6) bool {
	msg := ip.Payload()
	if len(msg) < 4 {
		return false
	}
	acc := pseudoSum(ip[8:24], ip[24:40], ProtocolICMPv6, len(msg))
	return fold(sum(msg, acc)) == 0xffff
}

// ICMPv6 types used here.
const (
	ICMPv6DstUnreachable  = 1
	ICMPv6PacketTooBig    = 2
	ICMPv6TimeExceeded    = 3
	ICMPv6ParamProblem    = 4
	ICMPv6RouterSolicit   = 133
	ICMPv6RouterAdvert    = 134
	ICMPv6NeighborSolicit = 135
	ICMPv6NeighborAdvert  = 136
	ICMPv6Redirect        = 137

	ndOptSourceLinkAddr = 1
	ndOptTargetLinkAddr = 2

	// NeighborSolicitLen is an NS without options.
	NeighborSolicitLen = 24
	// NeighborAdvertFrameLen is what WriteNeighborAdvert writes: Ethernet,
	// IPv6, NA (24) and a target link-layer address option (8).
	NeighborAdvertFrameLen = EthernetHeaderLen + IPv6HeaderLen + 32

	// NA flags.
	NARouter    = 0x80
	NASolicited = 0x40
	NAOverride  = 0x20
)

// AllNodesMulticast is ff02::1.
var AllNodesMulticast = [16]byte{0: 0xff, 1: 0x02, 15: 0x01}

// SolicitedNodeMulticast returns ff02::1:ffXX:XXXX for a (RFC 4291
// section 2.7.1).
func SolicitedNodeMulticast(a [16]byte) [16]byte {
	return [16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff, 13: a[13], 14: a[14], 15: a[15]}
}

// MulticastMAC6 returns the Ethernet address of IPv6 multicast group a:
// 33:33 followed by its last 32 bits (RFC 2464 section 7).
func MulticastMAC6(a [16]byte) [6]byte {
	return [6]byte{0x33, 0x33, a[12], a[13], a[14], a[15]}
}

// NeighborSolicit is a view of an ICMPv6 Neighbor Solicitation message
// (from the ICMPv6 type to the end of its options). It aliases the
// caller's bytes. Get it from ParseNeighborSolicit, which validates it
// once (RFC 4861 section 7.1.1).
type NeighborSolicit []byte

// ParseNeighborSolicit validates the Neighbor Solicitation carried by ip
// (RFC 4861 section 7.1.1: next header 58 with no extension headers, hop
// limit 255, type 135 code 0, length >= 24, checksum, target not
// multicast, options of non-zero length that fit, and from the
// unspecified address only to a solicited-node group and without a source
// link-layer address option) and returns a view of the message. It
// returns ErrProtocol or ErrNDType for other packets, ErrICMPv6Checksum
// for a bad checksum and ErrNDInvalid for the rest.
func ParseNeighborSolicit(ip IPv6) (NeighborSolicit, error) {
	if ip.NextHeader() != ProtocolICMPv6 {
		return nil, ErrProtocol
	}
	m := ip.Payload()
	if len(m) < 4 {
		return nil, ErrTruncated
	}
	if m[0] != ICMPv6NeighborSolicit {
		return nil, ErrNDType
	}
	if len(m) < NeighborSolicitLen {
		return nil, ErrTruncated
	}
	if ip.HopLimit() != 255 || m[1] != 0 || m[8] == 0xff {
		return nil, ErrNDInvalid
	}
	if !ICMPv6ChecksumValid(ip) {
		return nil, ErrICMPv6Checksum
	}
	hasSLLA := false
	for o := m[NeighborSolicitLen:]; len(o) > 0; {
		if len(o) < 2 || o[1] == 0 || int(o[1])*8 > len(o) {
			return nil, ErrNDInvalid
		}
		if o[0] == ndOptSourceLinkAddr {
			hasSLLA = true
		}
		o = o[int(o[1])*8:]
	}
	if ip.Src() == [16]byte{} {
		d := ip.Dst()
		if hasSLLA || d != SolicitedNodeMulticast(d) {
			return nil, ErrNDInvalid
		}
	}
	return NeighborSolicit(m), nil
}

// Target returns the target address.
func (ns NeighborSolicit) Target() [16]byte { return [16]byte(ns[8:24]) }

// TargetAddr returns the target address as a netip.Addr.
func (ns NeighborSolicit) TargetAddr() netip.Addr { return netip.AddrFrom16(ns.Target()) }

// SourceLinkAddr returns the source link-layer address option, if there is
// one with an Ethernet address.
func (ns NeighborSolicit) SourceLinkAddr() ([6]byte, bool) {
	for o := ns[NeighborSolicitLen:]; len(o) >= 8 && o[1] != 0 && int(o[1])*8 <= len(o); o = o[int(o[1])*8:] {
		if o[0] == ndOptSourceLinkAddr {
			return [6]byte(o[2:8]), true
		}
	}
	return [6]byte{}, false
}

// WriteNeighborAdvert writes into dst a complete Ethernet+IPv6+Neighbor
// Advertisement frame that answers the solicitation ns carried by req
// (in a frame whose Ethernet source was solicitorMAC): "target is at
// mac", with a target link-layer address option, hop limit 255 and the
// checksum. The advertisement comes from the target address. It goes to
// the solicitor (to its source link-layer address option if present, else
// to solicitorMAC) with the Solicited flag, or, if the solicitation came
// from the unspecified address (duplicate address detection), to the
// all-nodes group without it (RFC 4861 section 7.2.4). override sets the
// Override flag; RFC 4861 section 7.2.8 asks a proxy to clear it, so that
// the node owning the address wins, but a switch answering from
// authoritative policy may set it. It returns NeighborAdvertFrameLen or
// ErrBufferTooSmall. dst must not overlap the request.
func WriteNeighborAdvert(dst []byte, solicitorMAC [6]byte, req IPv6, ns NeighborSolicit, mac [6]byte, override bool) (int, error) {
	if len(dst) < NeighborAdvertFrameLen {
		return 0, ErrBufferTooSmall
	}
	target := ns.Target()
	to := req.Src()
	var flags uint8
	ethDst := solicitorMAC
	if to == [16]byte{} {
		to = AllNodesMulticast
		ethDst = MulticastMAC6(to)
	} else {
		flags |= NASolicited
		if sll, ok := ns.SourceLinkAddr(); ok {
			ethDst = sll
		}
	}
	if override {
		flags |= NAOverride
	}
	Ethernet(dst).Encode(ethDst, mac, EtherTypeIPv6)
	IPv6(dst[EthernetHeaderLen:]).Encode(32, ProtocolICMPv6, 255, target, to)
	m := dst[EthernetHeaderLen+IPv6HeaderLen : NeighborAdvertFrameLen]
	m[0], m[1], m[2], m[3] = ICMPv6NeighborAdvert, 0, 0, 0
	m[4], m[5], m[6], m[7] = flags, 0, 0, 0
	copy(m[8:24], target[:])
	m[24], m[25] = ndOptTargetLinkAddr, 1
	copy(m[26:32], mac[:])
	binary.BigEndian.PutUint16(m[2:4], ICMPv6Checksum(target, to, m))
	return NeighborAdvertFrameLen, nil
}

// IPv6 extension headers (RFC 8200 section 4, RFC 7045) and the no next
// header value.
const (
	ProtocolIPv6HopByHop = 0
	ProtocolIPv6Route    = 43
	ProtocolIPv6Frag     = 44
	ProtocolAH           = 51
	ProtocolIPv6NoNext   = 59
	ProtocolIPv6Opts     = 60
	ProtocolMobility     = 135
	ProtocolHIP          = 139
	ProtocolShim6        = 140

	// IPv6MaxExtHeaders is the most extension headers Transport walks; a
	// longer chain is ErrIPv6ExtHeaders. Real traffic carries one or two.
	IPv6MaxExtHeaders = 8
)

// ErrIPv6ExtHeaders: an extension header runs past the packet, the chain
// is longer than IPv6MaxExtHeaders, or a first fragment ends before the
// first 8 bytes of its upper-layer header.
const ErrIPv6ExtHeaders = Error("ipv6: extension header chain cannot be walked")

// Transport walks ip's extension headers (Hop-by-Hop, Routing, Fragment,
// Destination Options, AH, Mobility, HIP, Shim6; at most
// IPv6MaxExtHeaders, each length-checked) and returns the upper-layer
// protocol and its bytes (aliasing ip). later: ip is a fragment other
// than the first, whose payload continues a transport header it does not
// hold. A first fragment without the first 8 bytes of its upper-layer
// header (RFC 7112 wants all of it there) and a chain that is too long or runs past the packet are
// ErrIPv6ExtHeaders. ip must come from ParseIPv6.
func (ip IPv6) Transport() (proto uint8, payload []byte, later bool, err error) {
	proto, p := ip[6], ip[IPv6HeaderLen:]
	frag := false
	for range IPv6MaxExtHeaders + 1 {
		var n int
		switch proto {
		case ProtocolIPv6HopByHop, ProtocolIPv6Route, ProtocolIPv6Opts, ProtocolMobility, ProtocolHIP, ProtocolShim6:
			if len(p) < 8 {
				return proto, nil, false, ErrIPv6ExtHeaders
			}
			n = (int(p[1]) + 1) * 8
		case ProtocolAH:
			if len(p) < 8 {
				return proto, nil, false, ErrIPv6ExtHeaders
			}
			n = (int(p[1]) + 2) * 4
		case ProtocolIPv6Frag:
			if len(p) < 8 {
				return proto, nil, false, ErrIPv6ExtHeaders
			}
			if binary.BigEndian.Uint16(p[2:4])&^7 != 0 { // a non-zero offset
				return p[0], p[8:], true, nil
			}
			frag = binary.BigEndian.Uint16(p[2:4])&1 != 0
			n = 8
		case ProtocolIPv6NoNext:
			if frag {
				return proto, nil, false, ErrIPv6ExtHeaders // a first fragment without its upper-layer header
			}
			return proto, p[:0], false, nil
		default:
			if frag && len(p) < 8 {
				return proto, nil, false, ErrIPv6ExtHeaders
			}
			return proto, p, false, nil
		}
		if n > len(p) {
			return proto, nil, false, ErrIPv6ExtHeaders
		}
		proto, p = p[0], p[n:]
	}
	return proto, nil, false, ErrIPv6ExtHeaders
}
