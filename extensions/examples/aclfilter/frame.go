package main

import (
	"net/netip"

	"github.com/xvswitch/xvs/header"
)

// Frame parsing. The bytes come from the switch but were sent by virtual
// machines: they are untrusted, so every field is read only after a length
// check, and a frame that claims more than it holds is an error, never a
// panic or an out-of-bounds read.

// IP protocol numbers the rules name.
const (
	protoICMP   = header.ProtocolICMP
	protoTCP    = header.ProtocolTCP
	protoUDP    = header.ProtocolUDP
	protoICMPv6 = header.ProtocolICMPv6
	protoSCTP   = header.ProtocolSCTP
)

// etherTypeVLAN is the 802.1Q tag the parser reads behind.
const etherTypeVLAN = header.EtherTypeVLAN

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

// parseFrame reads the flow of an Ethernet frame with header.ReadFiveTuple,
// the switch's own reader: an optional 802.1Q tag, then IPv4 or IPv6 and,
// for TCP, UDP and SCTP, the ports. b is only read, never kept. A frame of
// another EtherType returns a flow with ip false and no error; a frame too
// short for what its headers claim returns a parseError. parseFrame does
// not allocate.
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
	t, err := header.ReadFiveTuple(b)
	if err != nil {
		return flow{}, frameError(b, t, err)
	}
	f := flow{tagged: t.Tagged()}
	if t.Version() == 0 {
		return f, nil
	}
	f.ip, f.proto, f.src, f.dst = true, t.Protocol(), t.Src(), t.Dst()
	if hasPorts(f.proto) && t.HasTransportHeader() {
		sport, dport, ok := t.Ports()
		if !ok {
			return flow{}, errShortPorts
		}
		f.ports, f.sport, f.dport = true, sport, dport
	}
	return f, nil
}

// frameError names what is wrong with a frame the reader refused. The
// reader says header.ErrTruncated wherever the frame ends early; the
// filter's counters and tests tell the Ethernet header, the tag, the IP
// header and an IPv4 header length that runs past the frame apart.
func frameError(b []byte, t header.FiveTuple, err error) error {
	switch err {
	case header.ErrIPv4Version:
		return errIPv4Version
	case header.ErrIPv4HeaderLength:
		return errIPv4IHL
	case header.ErrIPv4TotalLength:
		return errIPv4TotalLen
	case header.ErrIPv6Version:
		return errIPv6Version
	case header.ErrIPv6PayloadLength:
		return errIPv6PayloadLen
	}
	ip := header.EthernetHeaderLen // where the IP header starts
	if t.Tagged() {
		ip += header.VLANTagLen
	}
	switch {
	case len(b) < header.EthernetHeaderLen:
		return errShortEthernet
	case t.EtherType() == etherTypeVLAN && !t.Tagged():
		return errShortVLAN
	case t.EtherType() == header.EtherTypeIPv6:
		return errShortIPv6
	case len(b)-ip >= header.IPv4MinHeaderLen:
		return errIPv4IHL // the options run past the frame
	}
	return errShortIPv4
}

// hasPorts reports whether a protocol's header starts with source and
// destination ports: TCP, UDP and SCTP, whose ports the switch's flow key
// also holds.
func hasPorts(proto uint8) bool { return header.HasPorts(proto) }
