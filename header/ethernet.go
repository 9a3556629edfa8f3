package header

import "encoding/binary"

// EtherTypes the WNV module handles.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeARP  = 0x0806
	EtherTypeIPv6 = 0x86DD
	// EtherTypeTEB is Transparent Ethernet Bridging, the GRE protocol of
	// NVGRE (an Ethernet frame follows the GRE header).
	EtherTypeTEB = 0x6558
	// EtherTypeVLAN is the 802.1Q customer VLAN tag.
	EtherTypeVLAN = 0x8100
	// EtherTypeQinQ is the 802.1ad service VLAN tag.
	EtherTypeQinQ = 0x88A8
	// EtherTypeQinQOld is the pre-standard double tag some switches send.
	EtherTypeQinQOld = 0x9100
)

const (
	// EthernetHeaderLen is the length of an untagged Ethernet header.
	EthernetHeaderLen = 14
	// VLANTagLen is the length of one 802.1Q tag.
	VLANTagLen = 4
	// EthernetMinFrameLen is the shortest Ethernet frame without FCS; a
	// NIC pads shorter ones.
	EthernetMinFrameLen = 60
)

// BroadcastMAC is ff:ff:ff:ff:ff:ff.
var BroadcastMAC = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// IsMulticastMAC reports whether m is a group address (broadcast included).
func IsMulticastMAC(m [6]byte) bool { return m[0]&1 != 0 }

// IsVLANType reports whether t is an EtherType that introduces a VLAN tag.
func IsVLANType(t uint16) bool {
	return t == EtherTypeVLAN || t == EtherTypeQinQ || t == EtherTypeQinQOld
}

// Ethernet is a view of an Ethernet II frame: destination, source,
// EtherType, payload. It aliases the caller's bytes. Check IsValid (or get
// it from a parser that did) before calling any other method.
type Ethernet []byte

// IsValid reports whether e is long enough to hold an Ethernet header.
func (e Ethernet) IsValid() bool { return len(e) >= EthernetHeaderLen }

// Dst returns the destination MAC address.
func (e Ethernet) Dst() [6]byte { return [6]byte(e[0:6]) }

// Src returns the source MAC address.
func (e Ethernet) Src() [6]byte { return [6]byte(e[6:12]) }

// Type returns the EtherType (or the TPID of a VLAN tag, see VLANTagged).
func (e Ethernet) Type() uint16 { return binary.BigEndian.Uint16(e[12:14]) }

// VLANTagged reports whether the frame carries an 802.1Q or 802.1ad tag.
// NVGRE forbids tags on inner frames (RFC 7637 section 3.2): callers drop
// them with ErrVLANTagged.
func (e Ethernet) VLANTagged() bool { return IsVLANType(e.Type()) }

// Payload returns the bytes after the 14-byte header.
func (e Ethernet) Payload() []byte { return e[EthernetHeaderLen:] }

// SetDst sets the destination MAC address.
func (e Ethernet) SetDst(m [6]byte) { copy(e[0:6], m[:]) }

// SetSrc sets the source MAC address.
func (e Ethernet) SetSrc(m [6]byte) { copy(e[6:12], m[:]) }

// SetType sets the EtherType.
func (e Ethernet) SetType(t uint16) { binary.BigEndian.PutUint16(e[12:14], t) }

// Encode writes a whole header.
func (e Ethernet) Encode(dst, src [6]byte, typ uint16) {
	_ = e[13]
	copy(e[0:6], dst[:])
	copy(e[6:12], src[:])
	binary.BigEndian.PutUint16(e[12:14], typ)
}

// ParseEthernet checks that b holds an untagged Ethernet header and returns
// it as a view. A tagged frame returns the view and ErrVLANTagged, so a
// caller that accepts tags can still use it.
func ParseEthernet(b []byte) (Ethernet, error) {
	e := Ethernet(b)
	if !e.IsValid() {
		return nil, ErrTruncated
	}
	if e.VLANTagged() {
		return e, ErrVLANTagged
	}
	return e, nil
}
