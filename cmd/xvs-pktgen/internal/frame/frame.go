// Package frame builds the test frames xvs-pktgen sends: untagged Ethernet,
// IPv4 (20-byte header, DF set, TTL 64) and UDP, padded to an exact size.
//
// The UDP payload starts with [Magic] so that a sink can tell generator
// frames from other traffic on the same device. The UDP checksum is zero
// (allowed for IPv4), so that a flow can be changed by rewriting addresses
// and ports and fixing only the IPv4 header checksum.
//
// Flows: frame f (0 <= f < Flows) differs from frame 0 by adding f to the
// fields named in [Config.Vary]: the low 16 bits of the source MAC (modulo
// 2^16), the source IPv4 address (modulo 2^32) and the UDP source port
// (modulo 2^16). The XDP program of the live-frames sender applies the same
// arithmetic in the kernel; [Config.Frame] is the reference for it.
package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Frame layout offsets (untagged Ethernet, IPv4 without options, UDP).
const (
	EthLen     = 14
	IPv4Len    = 20
	UDPLen     = 8
	HeaderLen  = EthLen + IPv4Len + UDPLen // 42: where the UDP payload starts
	MagicLen   = 4
	MinSize    = 64   // smallest frame, bytes from the Ethernet header on, FCS excluded
	MaxSize    = 9000 // largest frame
	MaxFlows   = 1 << 16
	OffSrcMAC  = 6
	OffSrcMACL = 10 // low 16 bits of the source MAC
	OffIPv4    = EthLen
	OffIPCsum  = EthLen + 10
	OffSrcIP   = EthLen + 12
	OffDstIP   = EthLen + 16
	OffUDP     = EthLen + IPv4Len
	OffSrcPort = OffUDP
	OffDstPort = OffUDP + 2
)

// Magic is the first 4 bytes of every generator frame's UDP payload
// ("XVSP"), at offset [HeaderLen].
var Magic = [MagicLen]byte{'X', 'V', 'S', 'P'}

// Fields is a set of header fields varied per flow.
type Fields uint8

// The fields a flow index is added to.
const (
	VaryMAC  Fields = 1 << iota // low 16 bits of the source MAC
	VaryIP                      // source IPv4 address
	VaryPort                    // UDP source port

	VaryAll = VaryMAC | VaryIP | VaryPort
)

// ParseFields parses a comma-separated list of "mac", "ip", "port" (or
// "all"/"none").
func ParseFields(s string) (Fields, error) {
	var f Fields
	for _, w := range strings.Split(s, ",") {
		switch strings.TrimSpace(strings.ToLower(w)) {
		case "mac":
			f |= VaryMAC
		case "ip":
			f |= VaryIP
		case "port":
			f |= VaryPort
		case "all":
			f |= VaryAll
		case "none", "":
		default:
			return 0, fmt.Errorf("vary: unknown field %q (want mac, ip, port, all or none)", w)
		}
	}
	return f, nil
}

func (f Fields) String() string {
	var parts []string
	if f&VaryMAC != 0 {
		parts = append(parts, "mac")
	}
	if f&VaryIP != 0 {
		parts = append(parts, "ip")
	}
	if f&VaryPort != 0 {
		parts = append(parts, "port")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

// Config describes the frames of one run.
type Config struct {
	Size    int // frame length in bytes, Ethernet header included, FCS excluded
	SrcMAC  net.HardwareAddr
	DstMAC  net.HardwareAddr
	SrcIP   netip.Addr
	DstIP   netip.Addr
	SrcPort uint16
	DstPort uint16
	Flows   int    // number of distinct flows, 1..MaxFlows
	Vary    Fields // fields that differ between flows (ignored when Flows == 1)
}

// ErrConfig is wrapped by every validation error.
var ErrConfig = errors.New("invalid frame config")

// Validate checks every field and names the bad one.
func (c Config) Validate() error {
	if c.Size < MinSize || c.Size > MaxSize {
		return fmt.Errorf("%w: size %d: must be %d..%d bytes", ErrConfig, c.Size, MinSize, MaxSize)
	}
	if len(c.SrcMAC) != 6 {
		return fmt.Errorf("%w: src-mac %q: not a 6-byte MAC address", ErrConfig, c.SrcMAC)
	}
	if len(c.DstMAC) != 6 {
		return fmt.Errorf("%w: dst-mac %q: not a 6-byte MAC address", ErrConfig, c.DstMAC)
	}
	if !c.SrcIP.Is4() {
		return fmt.Errorf("%w: src-ip %v: not an IPv4 address", ErrConfig, c.SrcIP)
	}
	if !c.DstIP.Is4() {
		return fmt.Errorf("%w: dst-ip %v: not an IPv4 address", ErrConfig, c.DstIP)
	}
	if c.Flows < 1 || c.Flows > MaxFlows {
		return fmt.Errorf("%w: flows %d: must be 1..%d", ErrConfig, c.Flows, MaxFlows)
	}
	if c.Flows > 1 && c.Vary == 0 {
		return fmt.Errorf("%w: flows %d with vary=none: the flows would be identical", ErrConfig, c.Flows)
	}
	return nil
}

// MACBase is the low 16 bits of the source MAC, the value flow 0 has.
func (c Config) MACBase() uint16 { return binary.BigEndian.Uint16(c.SrcMAC[4:6]) }

// IPBase is the source address as a number, the value flow 0 has.
func (c Config) IPBase() uint32 { a := c.SrcIP.As4(); return binary.BigEndian.Uint32(a[:]) }

// Frame writes the frame of flow f into b, which must be c.Size bytes
// long, and returns b. Every byte of b is written, so b may be reused. c
// must be valid.
func (c Config) Frame(b []byte, f int) []byte {
	if len(b) != c.Size {
		panic(fmt.Sprintf("frame: buffer of %d bytes for a %d-byte frame", len(b), c.Size))
	}
	clear(b)
	copy(b[0:6], c.DstMAC)
	copy(b[6:12], c.SrcMAC)
	binary.BigEndian.PutUint16(b[12:14], 0x0800)

	ip := b[OffIPv4 : OffIPv4+IPv4Len]
	ip[0] = 0x45 // version 4, 5 words
	binary.BigEndian.PutUint16(ip[2:4], uint16(c.Size-EthLen))
	binary.BigEndian.PutUint16(ip[6:8], 0x4000) // DF
	ip[8] = 64
	ip[9] = 17 // UDP
	src := c.SrcIP.As4()
	dst := c.DstIP.As4()
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])

	binary.BigEndian.PutUint16(b[OffSrcPort:], c.SrcPort)
	binary.BigEndian.PutUint16(b[OffDstPort:], c.DstPort)
	binary.BigEndian.PutUint16(b[OffUDP+4:], uint16(c.Size-EthLen-IPv4Len))
	copy(b[HeaderLen:], Magic[:])

	if c.Flows > 1 && f != 0 {
		u := uint32(f)
		if c.Vary&VaryMAC != 0 {
			binary.BigEndian.PutUint16(b[OffSrcMACL:], c.MACBase()+uint16(u))
		}
		if c.Vary&VaryIP != 0 {
			binary.BigEndian.PutUint32(b[OffSrcIP:], c.IPBase()+u)
		}
		if c.Vary&VaryPort != 0 {
			binary.BigEndian.PutUint16(b[OffSrcPort:], c.SrcPort+uint16(u))
		}
	}
	binary.BigEndian.PutUint16(ip[10:12], Checksum(ip))
	return b
}

// Checksum is the Internet checksum (RFC 1071) of b, computed as if the
// checksum field inside b were whatever b holds; to fill in a header's
// checksum, zero the field first.
func Checksum(b []byte) uint16 {
	var sum uint32
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
