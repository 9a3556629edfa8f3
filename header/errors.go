package header

// Error is the type of every error this package returns. The values are
// constants, so returning one allocates nothing and callers compare them
// with == or errors.Is; each names one drop reason, so a caller can count
// drops per reason (STYLE.md principle 11) by switching on the error.
type Error string

func (e Error) Error() string { return string(e) }

// Errors shared by all parsers and builders.
const (
	// ErrTruncated: the bytes end before the header (or a length field
	// inside it) says they should.
	ErrTruncated = Error("header: truncated")
	// ErrBufferTooSmall: a builder's destination cannot hold what it
	// would write; nothing useful was written.
	ErrBufferTooSmall = Error("header: destination buffer too small")
	// ErrNoHeadroom: an encapsulation has fewer bytes before the frame
	// than it must prepend.
	ErrNoHeadroom = Error("header: not enough headroom")
)

// Ethernet errors.
const (
	// ErrVLANTagged: a frame carries an 802.1Q/802.1ad tag where none is
	// allowed (NVGRE inner frames, RFC 7637 section 3.2).
	ErrVLANTagged = Error("ethernet: vlan tagged")
	// ErrEtherType: the frame's EtherType is not the one expected.
	ErrEtherType = Error("ethernet: unexpected ethertype")
)

// ARP errors.
const (
	// ErrARPFormat: not Ethernet/IPv4 ARP (htype 1, ptype 0x0800, hlen 6,
	// plen 4).
	ErrARPFormat = Error("arp: not ethernet/ipv4")
	// ErrARPOp: the operation is neither request (1) nor reply (2), or a
	// builder was given something other than a request.
	ErrARPOp = Error("arp: bad operation")
)

// IPv4 errors.
const (
	ErrIPv4Version      = Error("ipv4: version is not 4")
	ErrIPv4HeaderLength = Error("ipv4: header length below 20")
	ErrIPv4TotalLength  = Error("ipv4: total length inconsistent with header length or buffer")
	ErrIPv4Checksum     = Error("ipv4: bad header checksum")
	// ErrIPv4Fragment: a fragment where whole datagrams are required
	// (outer NVGRE headers are never reassembled here).
	ErrIPv4Fragment = Error("ipv4: fragment")
	// ErrProtocol: the IP protocol / next header is not the expected one.
	ErrProtocol = Error("ip: unexpected protocol")
)

// IPv6 and ICMPv6 errors.
const (
	ErrIPv6Version       = Error("ipv6: version is not 6")
	ErrIPv6PayloadLength = Error("ipv6: payload length exceeds buffer")
	ErrICMPv6Checksum    = Error("icmpv6: bad checksum")
	// ErrNDInvalid: a Neighbor Discovery message fails a validity check
	// of RFC 4861 section 7.1 (hop limit, code, length, options, target,
	// addresses).
	ErrNDInvalid = Error("icmpv6: invalid neighbor discovery message")
	ErrNDType    = Error("icmpv6: not a neighbor solicitation")
)

// GRE / NVGRE errors, one per thing RFC 7637 forbids, so drops can be
// counted by reason.
const (
	ErrGREVersion       = Error("nvgre: gre version is not 0")
	ErrNVGREChecksum    = Error("nvgre: checksum bit set")
	ErrNVGRESequence    = Error("nvgre: sequence bit set")
	ErrNVGRENoKey       = Error("nvgre: key bit not set")
	ErrNVGREFlags       = Error("nvgre: reserved gre flag bits set")
	ErrNVGREProtocol    = Error("nvgre: protocol is not 0x6558")
	ErrNVGREReserved    = Error("nvgre: reserved vsid")
	ErrNVGREInnerLength = Error("nvgre: inner frame shorter than an ethernet header")
)

// ICMP builder errors.
const (
	// ErrICMPSuppressed: RFC 1122 section 3.2.2 / RFC 4443 section 2.4(e)
	// forbid an ICMP error about this packet (an ICMP error itself, a
	// non-first fragment, a multicast/broadcast/unspecified source).
	ErrICMPSuppressed = Error("icmp: no error may be sent about this packet")
)
