package header

import "encoding/binary"

// sum adds b to acc as a sequence of big-endian 16-bit words (an odd final
// byte is padded with zero), without folding. Adding 32-bit words is the
// same in one's complement arithmetic as adding their 16-bit halves,
// because 2^16 = 1 (mod 2^16-1). Only the last chunk of a multi-part sum
// may have odd length.
func sum(b []byte, acc uint64) uint64 {
	for len(b) >= 8 {
		acc += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:8]))
		b = b[8:]
	}
	for len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	return acc
}

// fold reduces an accumulated sum to a 16-bit one's complement sum.
func fold(acc uint64) uint16 {
	for acc > 0xffff {
		acc = (acc & 0xffff) + (acc >> 16)
	}
	return uint16(acc)
}

// Checksum returns the Internet checksum (RFC 1071) of b: the one's
// complement of the one's complement sum of its 16-bit words. Computed
// over a header whose checksum field holds the transmitted value, it is 0
// when the checksum is right.
func Checksum(b []byte) uint16 {
	return ^fold(sum(b, 0))
}

// pseudoSum returns the unfolded sum of a TCP/UDP/ICMPv6 pseudo-header
// (RFC 793, RFC 768, RFC 8200 section 8.1): the addresses, the protocol and
// the upper-layer length. src and dst are both 4 or both 16 bytes.
func pseudoSum(src, dst []byte, proto uint8, length int) uint64 {
	acc := sum(src, 0)
	acc = sum(dst, acc)
	return acc + uint64(proto) + uint64(length&0xffff) + uint64(length>>16)
}

// UpdateChecksum16 returns checksum hc updated for a 16-bit word of the
// covered data changing from old to new (RFC 1624 equation 3:
// HC' = ~(~HC + ~m + m')).
func UpdateChecksum16(hc, old, new uint16) uint16 {
	return ^fold(uint64(^hc) + uint64(^old) + uint64(new))
}

// UpdateChecksumAddr4 returns checksum hc updated for an IPv4 address in
// the covered data (at an even offset) changing from old to new: the IPv4
// header checksum, a TCP/UDP checksum through its pseudo-header, or the
// checksum of an ICMP error quoting a header being rewritten.
func UpdateChecksumAddr4(hc uint16, old, new [4]byte) uint16 {
	return ^fold(uint64(^hc) + addrDelta(old[:], new[:]))
}

// UpdateChecksumAddr16 is UpdateChecksumAddr4 for an IPv6 address.
func UpdateChecksumAddr16(hc uint16, old, new [16]byte) uint16 {
	return ^fold(uint64(^hc) + addrDelta(old[:], new[:]))
}

// addrDelta returns the unfolded one's complement difference new - old of
// two byte strings of the same length, a multiple of 4. ^o as a 32-bit word
// is ~hi,~lo as two 16-bit words, because 2^16 = 1 (mod 2^16-1).
func addrDelta(old, new []byte) uint64 {
	var d uint64
	for i := 0; i+4 <= len(old) && i+4 <= len(new); i += 4 {
		d += uint64(^binary.BigEndian.Uint32(old[i:])) + uint64(binary.BigEndian.Uint32(new[i:]))
	}
	return d
}
