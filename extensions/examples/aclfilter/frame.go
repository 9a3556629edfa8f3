package main

import (
	"encoding/binary"
	"net/netip"
)

// Frame parsing. The bytes come from the switch but were sent by virtual
// machines: they are untrusted, so every field is read only after a length
// check, and a frame that claims more than it holds is an error, never a
// panic or an out-of-bounds read.

// EtherTypes and IP protocol numbers the parser knows.
const (
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86DD
	etherTypeVLAN = 0x8100

	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
	protoSCTP   = 132
)

// parseError is a malformed-frame error; the values below are what
// parseFrame returns, so callers and tests compare with errors.Is.
type parseError string

func (e parseError) Error() string { return "parse frame: " + string(e) }

const (
	errShortEthernet  parseError = "ethernet header truncated"
	errShortVLAN      parseError = "802.1Q tag truncated"
	errShortIPv4      parseError = "ipv4 header truncated"
	errIPv4Version    parseError = "ipv4 version is not 4"
	errIPv4IHL        parseError = "ipv4 header length below 20 or beyond the frame"
	errIPv4TotalLen   parseError = "ipv4 total length below the header length or beyond the frame"
	errShortIPv6      parseError = "ipv6 header truncated"
	errIPv6Version    parseError = "ipv6 version is not 6"
	errIPv6PayloadLen parseError = "ipv6 payload length beyond the frame"
	errShortPorts     parseError = "tcp/udp/sctp header too short for ports"
)

// flow is what the rules look at in one frame: the same fields the switch
// keys its verdict cache on, so that one verdict holds for a whole flow.
type flow struct {
	tagged   bool       // an 802.1Q tag precedes the EtherType
	ip       bool       // IPv4 or IPv6; false: ARP and every other EtherType
	proto    uint8      // IPv4 protocol or IPv6 next header (valid if ip)
	src, dst netip.Addr // valid if ip
	ports    bool       // sport and dport are valid: TCP, UDP or SCTP, first fragment
	sport    uint16
	dport    uint16
}

// parseFrame reads the flow of an Ethernet frame: an optional 802.1Q tag,
// then IPv4 or IPv6 and, for TCP, UDP and SCTP, the ports. b is only read, never
// kept. A frame of another EtherType returns a flow with ip false and no
// error; a frame too short for what its headers claim returns a
// parseError. parseFrame does not allocate.
//
// IPv4: the header length (IHL) and total length are checked against the
// frame; bytes after the total length (Ethernet padding) are ignored.
// Non-first fragments (offset != 0) carry no ports. A TCP, UDP or SCTP
// packet (or first fragment) with fewer than 4 bytes after the IP header
// is malformed: it cannot be matched against port rules.
//
// IPv6: only the fixed 40-byte header is read; extension headers are not
// followed, so the protocol is the first Next Header (0 hop-by-hop, 43
// routing, 44 fragment, 60 destination options, ...) and such packets
// have no ports. See the package documentation for what that means for
// rules.
func parseFrame(b []byte) (flow, error) {
	if len(b) < 14 {
		return flow{}, errShortEthernet
	}
	etherType := binary.BigEndian.Uint16(b[12:14])
	l3 := b[14:]
	tagged := etherType == etherTypeVLAN
	if tagged {
		if len(l3) < 4 {
			return flow{}, errShortVLAN
		}
		etherType = binary.BigEndian.Uint16(l3[2:4])
		l3 = l3[4:]
	}
	var f flow
	var err error
	switch etherType {
	case etherTypeIPv4:
		f, err = parseIPv4(ipv4(l3))
	case etherTypeIPv6:
		f, err = parseIPv6(ipv6(l3))
	}
	if err != nil {
		return flow{}, err
	}
	f.tagged = tagged
	return f, nil
}

// ipv4 is an IPv4 packet: header, payload and maybe link-layer padding.
type ipv4 []byte

func parseIPv4(p ipv4) (flow, error) {
	if len(p) < 20 {
		return flow{}, errShortIPv4
	}
	if p[0]>>4 != 4 {
		return flow{}, errIPv4Version
	}
	ihl := int(p[0]&0x0f) * 4
	if ihl < 20 || ihl > len(p) {
		return flow{}, errIPv4IHL
	}
	total := int(binary.BigEndian.Uint16(p[2:4]))
	if total < ihl || total > len(p) {
		return flow{}, errIPv4TotalLen
	}
	f := flow{
		ip:    true,
		proto: p[9],
		src:   netip.AddrFrom4([4]byte(p[12:16])),
		dst:   netip.AddrFrom4([4]byte(p[16:20])),
	}
	fragOffset := binary.BigEndian.Uint16(p[6:8]) & 0x1fff
	if fragOffset != 0 {
		return f, nil
	}
	return f, readPorts(&f, p[ihl:total])
}

// ipv6 is an IPv6 packet: fixed header, payload and maybe padding.
type ipv6 []byte

func parseIPv6(p ipv6) (flow, error) {
	if len(p) < 40 {
		return flow{}, errShortIPv6
	}
	if p[0]>>4 != 6 {
		return flow{}, errIPv6Version
	}
	payload := int(binary.BigEndian.Uint16(p[4:6]))
	if 40+payload > len(p) {
		return flow{}, errIPv6PayloadLen
	}
	f := flow{
		ip:    true,
		proto: p[6],
		src:   netip.AddrFrom16([16]byte(p[8:24])),
		dst:   netip.AddrFrom16([16]byte(p[24:40])),
	}
	return f, readPorts(&f, p[40:40+payload])
}

// hasPorts reports whether a protocol's header starts with source and
// destination ports: TCP, UDP and SCTP, whose ports the switch's flow key
// also holds.
func hasPorts(proto uint8) bool {
	return proto == protoTCP || proto == protoUDP || proto == protoSCTP
}

// readPorts sets the ports of a TCP, UDP or SCTP flow from its transport
// header.
func readPorts(f *flow, l4 []byte) error {
	if !hasPorts(f.proto) {
		return nil
	}
	if len(l4) < 4 {
		return errShortPorts
	}
	f.ports = true
	f.sport = binary.BigEndian.Uint16(l4[0:2])
	f.dport = binary.BigEndian.Uint16(l4[2:4])
	return nil
}
