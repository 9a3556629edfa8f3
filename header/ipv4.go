package header

import (
	"encoding/binary"
	"net/netip"
)

const (
	// IPv4MinHeaderLen is the length of an IPv4 header without options.
	IPv4MinHeaderLen = 20
	// IPv4MaxHeaderLen is the longest IPv4 header (IHL 15).
	IPv4MaxHeaderLen = 60
	// DefaultTTL is the TTL of packets this package originates.
	DefaultTTL = 64

	// IP protocol numbers.
	ProtocolICMP   = 1
	ProtocolTCP    = 6
	ProtocolUDP    = 17
	ProtocolGRE    = 47
	ProtocolICMPv6 = 58
	ProtocolSCTP   = 132

	ipv4FlagDF = 0x4000
	ipv4FlagMF = 0x2000
)

// IPv4 is a view of an IPv4 packet: header, options, payload. It aliases
// the caller's bytes. Get it from ParseIPv4, which checks the version,
// header length and total length once and trims link-layer padding, before
// calling any method; the accessors then never read out of bounds.
type IPv4 []byte

// ParseIPv4 checks that b starts with an IPv4 header (version 4, IHL >= 5,
// IHL*4 <= total length <= len(b)) and returns a view of exactly the
// packet (b[:TotalLength], dropping Ethernet padding). The header checksum
// is not checked: see ChecksumValid.
func ParseIPv4(b []byte) (IPv4, error) {
	if len(b) < IPv4MinHeaderLen {
		return nil, ErrTruncated
	}
	if b[0]>>4 != 4 {
		return nil, ErrIPv4Version
	}
	hl := int(b[0]&0x0f) * 4
	if hl < IPv4MinHeaderLen {
		return nil, ErrIPv4HeaderLength
	}
	if len(b) < hl {
		return nil, ErrTruncated
	}
	tl := int(binary.BigEndian.Uint16(b[2:4]))
	if tl < hl || tl > len(b) {
		return nil, ErrIPv4TotalLength
	}
	return IPv4(b[:tl]), nil
}

// Version returns the version field (4 in a parsed packet).
func (ip IPv4) Version() uint8 { return ip[0] >> 4 }

// IHL returns the header length field, in 32-bit words.
func (ip IPv4) IHL() uint8 { return ip[0] & 0x0f }

// HeaderLen returns the header length in bytes, options included.
func (ip IPv4) HeaderLen() int { return int(ip[0]&0x0f) * 4 }

// OptionsLen returns the length of the options in bytes.
func (ip IPv4) OptionsLen() int { return ip.HeaderLen() - IPv4MinHeaderLen }

// Options returns the option bytes (empty without options).
func (ip IPv4) Options() []byte { return ip[IPv4MinHeaderLen:ip.HeaderLen()] }

// TOS returns the type of service byte (DSCP and ECN).
func (ip IPv4) TOS() uint8 { return ip[1] }

// TotalLength returns the total length field.
func (ip IPv4) TotalLength() uint16 { return binary.BigEndian.Uint16(ip[2:4]) }

// ID returns the identification field.
func (ip IPv4) ID() uint16 { return binary.BigEndian.Uint16(ip[4:6]) }

// Flags returns the three flag bits (0x2 is DF, 0x1 is MF).
func (ip IPv4) Flags() uint8 { return ip[6] >> 5 }

// DF reports whether the don't-fragment bit is set.
func (ip IPv4) DF() bool { return ip[6]&0x40 != 0 }

// MF reports whether the more-fragments bit is set.
func (ip IPv4) MF() bool { return ip[6]&0x20 != 0 }

// FragmentOffset returns the fragment offset in bytes.
func (ip IPv4) FragmentOffset() int { return int(binary.BigEndian.Uint16(ip[6:8])&0x1fff) * 8 }

// IsFragment reports whether ip is a fragment (MF set or offset non-zero).
func (ip IPv4) IsFragment() bool { return binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 }

// HasTransportHeader reports whether the payload starts with the
// transport header: true unless ip is a fragment other than the first.
func (ip IPv4) HasTransportHeader() bool { return binary.BigEndian.Uint16(ip[6:8])&0x1fff == 0 }

// TTL returns the time to live.
func (ip IPv4) TTL() uint8 { return ip[8] }

// Protocol returns the protocol of the payload.
func (ip IPv4) Protocol() uint8 { return ip[9] }

// Checksum returns the header checksum field.
func (ip IPv4) Checksum() uint16 { return binary.BigEndian.Uint16(ip[10:12]) }

// Src returns the source address.
func (ip IPv4) Src() [4]byte { return [4]byte(ip[12:16]) }

// Dst returns the destination address.
func (ip IPv4) Dst() [4]byte { return [4]byte(ip[16:20]) }

// SrcAddr returns the source address as a netip.Addr.
func (ip IPv4) SrcAddr() netip.Addr { return netip.AddrFrom4(ip.Src()) }

// DstAddr returns the destination address as a netip.Addr.
func (ip IPv4) DstAddr() netip.Addr { return netip.AddrFrom4(ip.Dst()) }

// Payload returns the bytes after the header, up to the total length.
func (ip IPv4) Payload() []byte { return ip[ip.HeaderLen():] }

// ComputeChecksum returns the checksum the header should carry (computed
// with the checksum field taken as zero).
func (ip IPv4) ComputeChecksum() uint16 {
	h := ip[:ip.HeaderLen()]
	return ^fold(sum(h[12:], sum(h[:10], 0)))
}

// ChecksumValid reports whether the header checksum is right.
func (ip IPv4) ChecksumValid() bool { return Checksum(ip[:ip.HeaderLen()]) == 0 }

// SetChecksum sets the header checksum field.
func (ip IPv4) SetChecksum(c uint16) { binary.BigEndian.PutUint16(ip[10:12], c) }

// UpdateChecksum recomputes and stores the header checksum.
func (ip IPv4) UpdateChecksum() { ip.SetChecksum(ip.ComputeChecksum()) }

// DecTTL decrements the TTL and updates the header checksum incrementally
// (RFC 1624). If the TTL is 0 or 1 it changes nothing and returns false:
// the packet must be dropped (and a time exceeded message may be sent).
func (ip IPv4) DecTTL() bool {
	ttl := ip[8]
	if ttl <= 1 {
		return false
	}
	old := binary.BigEndian.Uint16(ip[8:10])
	ip[8] = ttl - 1
	ip.SetChecksum(UpdateChecksum16(ip.Checksum(), old, old-0x100))
	return true
}

// l4ChecksumOffset returns where the transport checksum of ip lives inside
// ip, or -1 if rewriting the addresses must not touch any transport
// checksum: ICMP has no pseudo-header, a fragment other than the first
// carries no transport header, the transport header is truncated, or a UDP
// checksum is 0 (none).
func (ip IPv4) l4ChecksumOffset() int {
	if !ip.HasTransportHeader() {
		return -1
	}
	hl := ip.HeaderLen()
	var off int
	switch ip.Protocol() {
	case ProtocolTCP:
		off = hl + 16
	case ProtocolUDP:
		off = hl + 6
		if off+2 <= len(ip) && ip[off] == 0 && ip[off+1] == 0 {
			return -1 // no checksum: stays 0 (RFC 768)
		}
	default:
		return -1
	}
	if off+2 > len(ip) {
		return -1
	}
	return off
}

// rewrite replaces the address bytes at ip[at:at+len(a)] (4 or 8 bytes,
// at 12 or 16) with a and updates the header checksum and the transport
// checksum incrementally: the one's complement difference of old and new
// is computed once and added to both (RFC 1624 equation 3).
func (ip IPv4) rewrite(at int, a []byte) {
	delta := addrDelta(ip[at:at+len(a)], a)
	if fold(delta) == 0xffff { // same addresses (or a one's complement no-op)
		copy(ip[at:], a)
		return
	}
	copy(ip[at:], a)
	ip.SetChecksum(^fold(uint64(^ip.Checksum()) + delta))
	if off := ip.l4ChecksumOffset(); off >= 0 {
		c := ^fold(uint64(^binary.BigEndian.Uint16(ip[off:])) + delta)
		if c == 0 && ip.Protocol() == ProtocolUDP {
			c = 0xffff // 0 would mean "no checksum" (RFC 768)
		}
		binary.BigEndian.PutUint16(ip[off:], c)
	}
}

// SetSrc rewrites the source address, updating the header checksum and the
// TCP or UDP checksum (whose pseudo-header covers the address)
// incrementally (RFC 1624). A UDP checksum of 0 (none) stays 0; ICMP
// checksums do not cover the addresses and are left alone; fragments
// other than the first carry no transport header and only the IP checksum
// changes (the first fragment's transport checksum covers the whole
// datagram, and the incremental update stays right for it). ICMP error
// messages quoting a packet are not rewritten inside: that is policy.
// ip must come from ParseIPv4. This is the IP rewrite of HNV in both
// directions (customer address to provider address and back).
func (ip IPv4) SetSrc(a [4]byte) { ip.rewrite(12, a[:]) }

// SetDst is SetSrc for the destination address.
func (ip IPv4) SetDst(a [4]byte) { ip.rewrite(16, a[:]) }

// SetAddrs rewrites both addresses, as SetSrc and SetDst would, updating
// each checksum once.
func (ip IPv4) SetAddrs(src, dst [4]byte) {
	a := [8]byte{src[0], src[1], src[2], src[3], dst[0], dst[1], dst[2], dst[3]}
	ip.rewrite(12, a[:])
}

// IPv4Fields describes a header for Encode.
type IPv4Fields struct {
	TOS         uint8
	TotalLength uint16
	ID          uint16
	DF          bool
	TTL         uint8 // 0 means DefaultTTL
	Protocol    uint8
	Src, Dst    [4]byte
}

// Encode writes a 20-byte header without options, with its checksum, into
// ip[:20], which must be at least that long.
func (ip IPv4) Encode(f *IPv4Fields) {
	_ = ip[IPv4MinHeaderLen-1]
	ip[0] = 0x45
	ip[1] = f.TOS
	binary.BigEndian.PutUint16(ip[2:4], f.TotalLength)
	binary.BigEndian.PutUint16(ip[4:6], f.ID)
	var fl uint16
	if f.DF {
		fl = ipv4FlagDF
	}
	binary.BigEndian.PutUint16(ip[6:8], fl)
	ttl := f.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	ip[8] = ttl
	ip[9] = f.Protocol
	ip[10], ip[11] = 0, 0
	copy(ip[12:16], f.Src[:])
	copy(ip[16:20], f.Dst[:])
	ip.SetChecksum(Checksum(ip[:IPv4MinHeaderLen]))
}

// TransportChecksum computes the TCP or UDP checksum of the payload of ip
// (pseudo-header included, checksum field taken as zero), as a full
// recomputation would. ok is false if ip is not an unfragmented TCP or
// UDP packet long enough to hold the header. A UDP result of 0 is
// returned as 0xffff.
func (ip IPv4) TransportChecksum() (c uint16, ok bool) {
	if ip.IsFragment() {
		return 0, false
	}
	var off int
	switch ip.Protocol() {
	case ProtocolTCP:
		off = 16
	case ProtocolUDP:
		off = 6
	default:
		return 0, false
	}
	p := ip.Payload()
	if len(p) < off+2 {
		return 0, false
	}
	acc := pseudoSum(ip[12:16], ip[16:20], ip.Protocol(), len(p))
	acc = sum(p[:off], acc)
	acc = sum(p[off+2:], acc)
	c = ^fold(acc)
	if c == 0 && ip.Protocol() == ProtocolUDP {
		c = 0xffff
	}
	return c, true
}
