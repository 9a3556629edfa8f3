package header

import (
	"encoding/binary"
	"net/netip"
)

const (
	// GREMinHeaderLen is a GRE header without optional fields (RFC 2784).
	GREMinHeaderLen = 4
	// NVGREHeaderLen is the NVGRE header: GRE with the key field only.
	NVGREHeaderLen = 8
	// NVGREOverhead is what NVGRE encapsulation over IPv4 prepends to the
	// inner frame: outer Ethernet (14) + IPv4 (20) + GRE with key (8).
	NVGREOverhead = EthernetHeaderLen + IPv4MinHeaderLen + NVGREHeaderLen

	// MinVSID and MaxVSID bound the VSIDs a virtual subnet may use:
	// 0..0xFFF are reserved and 0xFFFFFF is reserved for vendor-specific
	// NVE-to-NVE traffic (RFC 7637 section 3.2).
	MinVSID = 0x1000
	MaxVSID = 0xFFFFFE

	greFlagC        = 0x8000
	greFlagK        = 0x2000
	greFlagS        = 0x1000
	greVersionMask  = 0x0007
	greReservedMask = 0x4ff8 // R (RFC 1701 routing) and Reserved0
	nvgreFlags      = greFlagK
)

// ValidVSID reports whether v is a VSID a virtual subnet may carry.
func ValidVSID(v uint32) bool { return v >= MinVSID && v <= MaxVSID }

// GRE is a view of a GRE header (RFC 2784 with the key and sequence
// extensions of RFC 2890). It aliases the caller's bytes. Check
// len(g) >= GREMinHeaderLen before the flag accessors and
// len(g) >= g.HeaderLen() before Key; ParseNVGRE does both.
type GRE []byte

// ChecksumPresent reports the C bit.
func (g GRE) ChecksumPresent() bool { return g[0]&0x80 != 0 }

// KeyPresent reports the K bit.
func (g GRE) KeyPresent() bool { return g[0]&0x20 != 0 }

// SequencePresent reports the S bit.
func (g GRE) SequencePresent() bool { return g[0]&0x10 != 0 }

// Version returns the version field (0 for GRE, 1 for PPTP).
func (g GRE) Version() uint8 { return g[1] & greVersionMask }

// FlagsVersion returns the first 16 bits (0x2000 for NVGRE).
func (g GRE) FlagsVersion() uint16 { return binary.BigEndian.Uint16(g[0:2]) }

// Protocol returns the protocol type (EtherTypeTEB for NVGRE).
func (g GRE) Protocol() uint16 { return binary.BigEndian.Uint16(g[2:4]) }

// HeaderLen returns the header length the C, K and S bits imply.
func (g GRE) HeaderLen() int {
	n := GREMinHeaderLen
	if g.ChecksumPresent() {
		n += 4
	}
	if g.KeyPresent() {
		n += 4
	}
	if g.SequencePresent() {
		n += 4
	}
	return n
}

// Key returns the key field; valid when KeyPresent and the header is
// HeaderLen bytes long.
func (g GRE) Key() uint32 {
	at := 4
	if g.ChecksumPresent() {
		at += 4
	}
	return binary.BigEndian.Uint32(g[at : at+4])
}

// VSID returns the Virtual Subnet ID of an NVGRE header (key bits 0-23).
func (g GRE) VSID() uint32 { return binary.BigEndian.Uint32(g[4:8]) >> 8 }

// FlowID returns the FlowID of an NVGRE header (key bits 24-31).
func (g GRE) FlowID() uint8 { return g[7] }

// EncodeNVGRE writes an 8-byte NVGRE header (0x2000, 0x6558, key) into
// g[:8].
func (g GRE) EncodeNVGRE(vsid uint32, flowID uint8) {
	_ = g[NVGREHeaderLen-1]
	binary.BigEndian.PutUint32(g[0:4], nvgreFlags<<16|EtherTypeTEB)
	binary.BigEndian.PutUint32(g[4:8], vsid<<8|uint32(flowID))
}

// ParseNVGRE checks that b starts with an NVGRE header (RFC 7637 section
// 3.2) and returns its VSID and FlowID. Each violation has its own error,
// checked in this order: ErrTruncated, ErrGREVersion, ErrNVGREChecksum,
// ErrNVGRESequence, ErrNVGRENoKey, ErrNVGREFlags (other reserved bits),
// ErrNVGREProtocol, ErrNVGREReserved (VSID 0..0xFFF or 0xFFFFFF).
func ParseNVGRE(b []byte) (vsid uint32, flowID uint8, err error) {
	if len(b) < GREMinHeaderLen {
		return 0, 0, ErrTruncated
	}
	g := GRE(b)
	fv := g.FlagsVersion()
	switch {
	case fv&greVersionMask != 0:
		return 0, 0, ErrGREVersion
	case fv&greFlagC != 0:
		return 0, 0, ErrNVGREChecksum
	case fv&greFlagS != 0:
		return 0, 0, ErrNVGRESequence
	case fv&greFlagK == 0:
		return 0, 0, ErrNVGRENoKey
	case fv&greReservedMask != 0:
		return 0, 0, ErrNVGREFlags
	case g.Protocol() != EtherTypeTEB:
		return 0, 0, ErrNVGREProtocol
	}
	if len(b) < NVGREHeaderLen {
		return 0, 0, ErrTruncated
	}
	vsid, flowID = g.VSID(), g.FlowID()
	if !ValidVSID(vsid) {
		return 0, 0, ErrNVGREReserved
	}
	return vsid, flowID, nil
}

// NVGREParams is what EncapNVGRE writes in front of an inner frame. It is
// built once per destination (lookup record) and reused: nothing in it
// changes per frame except what the caller chooses to change (ID).
type NVGREParams struct {
	// SrcMAC, DstMAC are the outer Ethernet addresses: this host's
	// provider NIC and the next hop toward DstPA.
	SrcMAC, DstMAC [6]byte
	// SrcPA, DstPA are the provider addresses (netip.Addr.As4()).
	SrcPA, DstPA [4]byte
	// VSID is the virtual subnet, MinVSID..MaxVSID.
	VSID uint32
	// TTL of the outer header; 0 means DefaultTTL (64).
	TTL uint8
	// TOS of the outer header (DSCP/ECN); copying the inner DSCP here is
	// the caller's choice.
	TOS uint8
	// ID is written verbatim into the outer IPv4 identification. With DF
	// set the outer datagram is atomic and RFC 6864 section 4.2 lets its
	// ID be any value, so a caller may leave it 0 or pass a per-worker
	// counter to tell frames apart in captures.
	ID uint16
	// AllowFragment clears DF in the outer header. By default DF is set:
	// RFC 7637 section 4.4 asks that the provider network's MTU absorb
	// the overhead rather than fragment, fragment reassembly at the
	// decapsulating end is slow (DecapNVGRE refuses fragments), and with
	// DF a too-small provider path is reported (ICMP fragmentation
	// needed) instead of silently costing reassembly.
	AllowFragment bool
}

// EncapNVGRE prepends an NVGRE encapsulation, in place, to the inner
// Ethernet frame buf[off:off+n]: outer Ethernet (type IPv4), outer IPv4
// (protocol 47, DF unless p.AllowFragment, checksum) and the 8-byte GRE
// header with key p.VSID<<8|flowID, exactly NVGREOverhead bytes written at
// buf[off-NVGREOverhead:off]. It returns start = off-NVGREOverhead; the
// encapsulated frame is buf[start:off+n]. Errors: ErrNoHeadroom (off <
// NVGREOverhead), ErrTruncated (off+n beyond buf or the result longer than
// an IPv4 datagram may be), ErrNVGREReserved (p.VSID not valid). Only the
// headroom is written; the inner frame is not read, so computing flowID
// (see FlowID) is the caller's choice.
func EncapNVGRE(buf []byte, off, n int, p *NVGREParams, flowID uint8) (start int, err error) {
	if off < NVGREOverhead {
		return 0, ErrNoHeadroom
	}
	if n < 0 || off+n > len(buf) || n > 0xffff-IPv4MinHeaderLen-NVGREHeaderLen {
		return 0, ErrTruncated
	}
	if !ValidVSID(p.VSID) {
		return 0, ErrNVGREReserved
	}
	start = off - NVGREOverhead
	h := buf[start:off:off]
	Ethernet(h).Encode(p.DstMAC, p.SrcMAC, EtherTypeIPv4)
	f := IPv4Fields{
		TOS:         p.TOS,
		TotalLength: uint16(IPv4MinHeaderLen + NVGREHeaderLen + n),
		ID:          p.ID,
		DF:          !p.AllowFragment,
		TTL:         p.TTL,
		Protocol:    ProtocolGRE,
		Src:         p.SrcPA,
		Dst:         p.DstPA,
	}
	IPv4(h[EthernetHeaderLen:]).Encode(&f)
	GRE(h[EthernetHeaderLen+IPv4MinHeaderLen:]).EncodeNVGRE(p.VSID, flowID)
	return start, nil
}

// NVGREFrame describes a decapsulated NVGRE frame. Inner and InnerLen
// locate the inner Ethernet frame inside the buffer given to DecapNVGRE:
// frame[Inner:Inner+InnerLen].
type NVGREFrame struct {
	VSID   uint32
	FlowID uint8
	// SrcPA, DstPA are the outer (provider) addresses, IPv4 or IPv6.
	SrcPA, DstPA netip.Addr
	// OuterVLAN is the VLAN ID of an outer 802.1Q tag (provider
	// addresses may sit on a VLAN); 0 if untagged.
	OuterVLAN uint16
	Inner     int
	InnerLen  int
}

// DecapNVGRE parses an outer Ethernet (optionally with one 802.1Q tag),
// IPv4 or IPv6 and NVGRE header and locates the inner frame. It checks:
// the outer EtherType (ErrEtherType), the IPv4 header (version, lengths,
// checksum: ErrIPv4*), that the outer packet is not a fragment
// (ErrIPv4Fragment) and is GRE (ErrProtocol; IPv6 extension headers are
// not walked), the NVGRE header (see ParseNVGRE), that the inner frame
// holds an Ethernet header (ErrNVGREInnerLength) and is not VLAN tagged
// (ErrVLANTagged, RFC 7637 section 3.2). Whether DstPA is this host's is
// the caller's check. On error the returned NVGREFrame holds whatever was
// parsed before the failure (zero values otherwise).
func DecapNVGRE(frame []byte) (NVGREFrame, error) {
	var r NVGREFrame
	e := Ethernet(frame)
	if !e.IsValid() {
		return r, ErrTruncated
	}
	off := EthernetHeaderLen
	typ := e.Type()
	if typ == EtherTypeVLAN {
		if len(frame) < EthernetHeaderLen+VLANTagLen {
			return r, ErrTruncated
		}
		r.OuterVLAN = binary.BigEndian.Uint16(frame[14:16]) & 0x0fff
		typ = binary.BigEndian.Uint16(frame[16:18])
		off += VLANTagLen
	}
	var payload []byte
	switch typ {
	case EtherTypeIPv4:
		ip, err := ParseIPv4(frame[off:])
		if err != nil {
			return r, err
		}
		if !ip.ChecksumValid() {
			return r, ErrIPv4Checksum
		}
		if ip.IsFragment() {
			return r, ErrIPv4Fragment
		}
		if ip.Protocol() != ProtocolGRE {
			return r, ErrProtocol
		}
		r.SrcPA, r.DstPA = ip.SrcAddr(), ip.DstAddr()
		off += ip.HeaderLen()
		payload = ip.Payload()
	case EtherTypeIPv6:
		ip, err := ParseIPv6(frame[off:])
		if err != nil {
			return r, err
		}
		if ip.NextHeader() != ProtocolGRE {
			return r, ErrProtocol
		}
		r.SrcPA, r.DstPA = ip.SrcAddr(), ip.DstAddr()
		off += IPv6HeaderLen
		payload = ip.Payload()
	default:
		return r, ErrEtherType
	}
	vsid, flowID, err := ParseNVGRE(payload)
	if err != nil {
		return r, err
	}
	r.VSID, r.FlowID = vsid, flowID
	r.Inner = off + NVGREHeaderLen
	r.InnerLen = len(payload) - NVGREHeaderLen
	if r.InnerLen < EthernetHeaderLen {
		return r, ErrNVGREInnerLength
	}
	if Ethernet(frame[r.Inner:]).VLANTagged() {
		return r, ErrVLANTagged
	}
	return r, nil
}
