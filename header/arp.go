package header

import (
	"encoding/binary"
	"net/netip"
)

const (
	// ARPLen is the length of an Ethernet/IPv4 ARP packet (RFC 826).
	ARPLen = 28
	// ARPFrameLen is an Ethernet header plus an ARP packet, what
	// WriteARPReply writes (a NIC pads it to 60 bytes on the wire).
	ARPFrameLen = EthernetHeaderLen + ARPLen

	ARPRequest = 1
	ARPReply   = 2
)

// ARP is a view of an Ethernet/IPv4 ARP packet (the Ethernet payload). It
// aliases the caller's bytes; get it from ParseARP, which checks every
// fixed field once, before calling its methods.
type ARP []byte

// ParseARP checks that b starts with a 28-byte Ethernet/IPv4 ARP packet
// (htype 1, ptype 0x0800, hlen 6, plen 4, op 1 or 2) and returns it as a
// view of exactly those 28 bytes.
func ParseARP(b []byte) (ARP, error) {
	if len(b) < ARPLen {
		return nil, ErrTruncated
	}
	if binary.BigEndian.Uint16(b[0:2]) != 1 || binary.BigEndian.Uint16(b[2:4]) != EtherTypeIPv4 ||
		b[4] != 6 || b[5] != 4 {
		return nil, ErrARPFormat
	}
	if op := binary.BigEndian.Uint16(b[6:8]); op != ARPRequest && op != ARPReply {
		return nil, ErrARPOp
	}
	return ARP(b[:ARPLen]), nil
}

// Op returns the operation: ARPRequest or ARPReply.
func (a ARP) Op() uint16 { return binary.BigEndian.Uint16(a[6:8]) }

// SHA returns the sender hardware address.
func (a ARP) SHA() [6]byte { return [6]byte(a[8:14]) }

// SPA returns the sender protocol (IPv4) address.
func (a ARP) SPA() [4]byte { return [4]byte(a[14:18]) }

// THA returns the target hardware address.
func (a ARP) THA() [6]byte { return [6]byte(a[18:24]) }

// TPA returns the target protocol (IPv4) address.
func (a ARP) TPA() [4]byte { return [4]byte(a[24:28]) }

// SPAAddr returns SPA as a netip.Addr.
func (a ARP) SPAAddr() netip.Addr { return netip.AddrFrom4(a.SPA()) }

// TPAAddr returns TPA as a netip.Addr.
func (a ARP) TPAAddr() netip.Addr { return netip.AddrFrom4(a.TPA()) }

// IsProbe reports whether a is an ARP probe (RFC 5227 section 2.1.1): a
// request with sender address 0.0.0.0, asking whether TPA is in use.
func (a ARP) IsProbe() bool {
	return a.Op() == ARPRequest && a.SPA() == [4]byte{}
}

// IsGratuitous reports whether a is a gratuitous ARP / announcement
// (RFC 5227 section 2.3, RFC 5944 section 4.6): request or reply whose
// sender and target protocol addresses are the same, non-zero address. A
// switch answering from policy should not reply to it (the sender is
// announcing itself) but may check it against the policy.
func (a ARP) IsGratuitous() bool {
	spa := a.SPA()
	return spa != [4]byte{} && spa == a.TPA()
}

// encodeARP writes an Ethernet/IPv4 ARP packet into b[:28].
func encodeARP(b []byte, op uint16, sha [6]byte, spa [4]byte, tha [6]byte, tpa [4]byte) {
	_ = b[ARPLen-1]
	binary.BigEndian.PutUint16(b[0:2], 1)
	binary.BigEndian.PutUint16(b[2:4], EtherTypeIPv4)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:8], op)
	copy(b[8:14], sha[:])
	copy(b[14:18], spa[:])
	copy(b[18:24], tha[:])
	copy(b[24:28], tpa[:])
}

// WriteARPReply writes into dst a complete Ethernet+ARP frame that answers
// the request req ("who has TPA?") with "TPA is at mac": sent from mac to
// the requester's SHA, op 2, SHA mac, SPA req.TPA, THA req.SHA, TPA
// req.SPA. It returns ARPFrameLen, or ErrARPOp if req is not a request and
// ErrBufferTooSmall if dst is shorter than ARPFrameLen. dst must not
// overlap req. Deciding whether to answer (policy, probes, gratuitous
// requests) is the caller's business.
func WriteARPReply(dst []byte, req ARP, mac [6]byte) (int, error) {
	if req.Op() != ARPRequest {
		return 0, ErrARPOp
	}
	if len(dst) < ARPFrameLen {
		return 0, ErrBufferTooSmall
	}
	sha := req.SHA()
	Ethernet(dst).Encode(sha, mac, EtherTypeARP)
	encodeARP(dst[EthernetHeaderLen:], ARPReply, mac, req.TPA(), sha, req.SPA())
	return ARPFrameLen, nil
}

// WriteARPRequest writes into dst a broadcast Ethernet+ARP request from
// (mac, spa) asking for tpa and returns ARPFrameLen. With spa == tpa it is
// a gratuitous ARP announcement.
func WriteARPRequest(dst []byte, mac [6]byte, spa, tpa [4]byte) (int, error) {
	if len(dst) < ARPFrameLen {
		return 0, ErrBufferTooSmall
	}
	Ethernet(dst).Encode(BroadcastMAC, mac, EtherTypeARP)
	encodeARP(dst[EthernetHeaderLen:], ARPRequest, mac, spa, [6]byte{}, tpa)
	return ARPFrameLen, nil
}
