package header

import (
	"encoding/binary"
	"net/netip"
)

// FiveTuple is the flow an Ethernet frame belongs to, as ReadFiveTuple
// read it: the IP version, the addresses and the protocol, and the start
// of the transport header (TCP, UDP and SCTP ports; ICMP type and code).
// It is the one reader of a frame's flow in xvs: FlowHash, the extensions'
// flow key and the example ACL filter all start from it.
//
// The addresses alias the frame (see Addrs): a FiveTuple is valid as long
// as the frame's bytes are, and no longer. The zero value is a frame that
// is not IP.
type FiveTuple struct {
	addrs []byte // source then destination address, 8 or 32 bytes of the frame; nil: not IP
	l4    uint32 // the first four bytes of the transport header, big-endian (tupleL4)
	// info packs the EtherType (behind the 802.1Q tag if there is one),
	// the IPv4 protocol or IPv6 next header, and the flags below:
	// etype<<16 | proto<<8 | flags. Three fields of at most 32 bytes
	// travel in registers: a caller that reads a tuple for every frame
	// neither stores nor loads it.
	info uint32
}

// FiveTuple flags.
const (
	tupleTagged   = 1 << iota // one 802.1Q tag precedes the EtherType
	tupleFragment             // IPv4 fragment: MF set or a non-zero offset
	tupleLater                // IPv4 fragment other than the first: no transport header
	tupleL4                   // l4 holds four bytes that follow the IP header in the frame
	tupleL4Packet             // ... and the packet's length field covers them
)

// ReadFiveTuple reads the flow of an Ethernet frame. It reads behind one
// 802.1Q tag (TPID 0x8100; Tagged reports it), then an IPv4 or IPv6
// header; any other EtherType (ARP, an 802.1ad tag, a second 802.1Q tag,
// ...) is read as not IP, which is no error. It never reads outside
// frame, never panics and allocates nothing; the tuple travels in
// registers.
//
// IPv4: the version, the header length and, with options, that the frame
// holds the whole header are checked; the ports are read after the
// options. A fragment other than the first has no transport header; the
// first has one (Fragment reports both).
//
// IPv6: only the fixed 40-byte header is read. Extension headers are not
// walked: the protocol is the first Next Header (0 hop-by-hop, 43 routing,
// 44 fragment, 60 destination options, ...), whose header is not a
// transport header that Ports would read. The flow of such a packet is
// its addresses and that Next Header.
//
// The error, and what the tuple t holds:
//
//   - nil: t is a non-IP frame (Version 0), or an IP frame whose headers
//     hold together.
//   - ErrTruncated (the frame ends inside the Ethernet header, the tag or
//     the IP header), ErrIPv4Version, ErrIPv4HeaderLength or
//     ErrIPv6Version: t is not IP; EtherType and Tagged say how far the
//     reader came.
//   - ErrIPv4TotalLength or ErrIPv6PayloadLength: the packet's length
//     field disagrees with the frame. t still holds the addresses, the
//     protocol and (TransportWord) what follows the IP header in the
//     frame, but Ports reports none. A caller that keys flows by what the
//     frame holds (extensions.MakeFlowKey) uses it; one that needs a
//     well-formed packet (FlowHash) treats the frame as malformed.
//
// A length field of 0 is taken at its word: an IPv4 total length of 0 is
// an error, an IPv6 payload length of 0 an empty payload with no ports.
func ReadFiveTuple(frame []byte) (FiveTuple, error) { return readFiveTuple(frame, true) }

// QuickIPv4 reads the commonest frame at fixed offsets: untagged IPv4
// without options, not a fragment, whose total length fits the frame and
// covers four bytes of transport header. addrs is the source and
// destination address bytes as one little-endian word, l4 the first four
// bytes of the transport header (big-endian). For any other frame ok is
// false and ReadFiveTuple reads it; for this one ReadFiveTuple reports the
// same. It is small enough to be inlined into the callers that read a
// tuple per frame (the extensions' flow key, FlowHash).
func QuickIPv4(frame []byte) (addrs uint64, proto uint8, l4 uint32, ok bool) {
	const l4At = EthernetHeaderLen + IPv4MinHeaderLen
	if len(frame) < l4At+4 || binary.LittleEndian.Uint32(frame[12:16])&0xffffff != 0x450008 ||
		binary.BigEndian.Uint16(frame[20:22])&0x3fff != 0 {
		return 0, 0, 0, false
	}
	if end := EthernetHeaderLen + int(binary.BigEndian.Uint16(frame[16:18])); end < l4At+4 || end > len(frame) {
		return 0, 0, 0, false
	}
	return binary.LittleEndian.Uint64(frame[26:34]), frame[23], binary.BigEndian.Uint32(frame[34:38]), true
}

// readFiveTuple is ReadFiveTuple; fast false skips the fast path, so that
// tests can check one path against the other.
//
// The extensions' flow key and FlowHash call this for every frame. The
// common frame, untagged IPv4 without options and with four bytes after
// the header, takes a fast path at constant offsets (EtherType, version
// and header length checked by one compare); the general path reads the
// rest. It calls nothing: a leaf function needs no stack check.
func readFiveTuple(frame []byte, fast bool) (FiveTuple, error) {
	if fast && len(frame) >= EthernetHeaderLen+IPv4MinHeaderLen+4 {
		if w := binary.LittleEndian.Uint32(frame[12:16]); w&0xffffff == 0x450008 {
			const l4 = EthernetHeaderLen + IPv4MinHeaderLen
			info := uint32(EtherTypeIPv4)<<16 | uint32(frame[23])<<8 | tupleL4
			var err error
			end := EthernetHeaderLen + int(binary.BigEndian.Uint16(frame[16:18]))
			switch {
			case uint(end-l4) > uint(len(frame)-l4):
				err = ErrIPv4TotalLength
			case end-l4 >= 4:
				info |= tupleL4Packet
			}
			switch frag := binary.BigEndian.Uint16(frame[20:22]); {
			case frag&0x1fff != 0:
				return FiveTuple{addrs: frame[26:34:34], info: info&^(tupleL4|tupleL4Packet) | tupleFragment | tupleLater}, err
			case frag&ipv4FlagMF != 0:
				info |= tupleFragment
			}
			return FiveTuple{addrs: frame[26:34:34], l4: binary.BigEndian.Uint32(frame[34:38]), info: info}, err
		}
	}
	if len(frame) < EthernetHeaderLen {
		return FiveTuple{}, ErrTruncated
	}
	etype := binary.BigEndian.Uint16(frame[12:14])
	l3 := EthernetHeaderLen // the IP header starts at frame[l3:]
	var flags uint32
	if etype == EtherTypeVLAN {
		if len(frame) < EthernetHeaderLen+VLANTagLen {
			return notIP(etype, 0), ErrTruncated
		}
		etype = binary.BigEndian.Uint16(frame[16:18])
		flags = tupleTagged
		l3 += VLANTagLen
	}
	var (
		addrs []byte
		proto uint8
		l4    int // the transport header starts at frame[l4:]
		end   int // and the packet ends at frame[end]
		err   error
	)
	switch etype {
	case EtherTypeIPv4:
		if len(frame)-l3 < IPv4MinHeaderLen {
			return notIP(etype, flags), ErrTruncated
		}
		ip := frame[l3 : l3+IPv4MinHeaderLen : l3+IPv4MinHeaderLen]
		if ip[0]>>4 != 4 {
			return notIP(etype, flags), ErrIPv4Version
		}
		l4 = l3 + int(ip[0]&0x0f)*4
		if l4 < l3+IPv4MinHeaderLen {
			return notIP(etype, flags), ErrIPv4HeaderLength
		}
		if l4 > len(frame) {
			return notIP(etype, flags), ErrTruncated
		}
		addrs, proto = ip[12:20:20], ip[9]
		end = l3 + int(binary.BigEndian.Uint16(ip[2:4]))
		if uint(end-l4) > uint(len(frame)-l4) { // end < l4 || end > len(frame)
			err = ErrIPv4TotalLength
			end = l4 // no transport bytes inside the packet
		}
		switch frag := binary.BigEndian.Uint16(ip[6:8]); {
		case frag&0x1fff != 0:
			return FiveTuple{addrs: addrs, info: info(etype, proto, flags|tupleFragment|tupleLater)}, err
		case frag&ipv4FlagMF != 0:
			flags |= tupleFragment
		}
	case EtherTypeIPv6:
		if len(frame)-l3 < IPv6HeaderLen {
			return notIP(etype, flags), ErrTruncated
		}
		ip := frame[l3 : l3+IPv6HeaderLen : l3+IPv6HeaderLen]
		if ip[0]>>4 != 6 {
			return notIP(etype, flags), ErrIPv6Version
		}
		addrs, proto = ip[8:40:40], ip[6]
		l4 = l3 + IPv6HeaderLen
		end = l4 + int(binary.BigEndian.Uint16(ip[4:6]))
		if end > len(frame) {
			err = ErrIPv6PayloadLength
			end = l4
		}
	default:
		return notIP(etype, flags), nil
	}
	var w uint32
	if len(frame)-l4 >= 4 {
		w = binary.BigEndian.Uint32(frame[l4 : l4+4])
		flags |= tupleL4
		if end-l4 >= 4 {
			flags |= tupleL4Packet
		}
	}
	return FiveTuple{addrs: addrs, l4: w, info: info(etype, proto, flags)}, err
}

func info(etype uint16, proto uint8, flags uint32) uint32 {
	return uint32(etype)<<16 | uint32(proto)<<8 | flags
}

// notIP is the tuple of a frame that is not IP.
func notIP(etype uint16, flags uint32) FiveTuple {
	return FiveTuple{info: info(etype, 0, flags)}
}

// Version returns 4 or 6 for an IP frame, 0 for any other.
func (t FiveTuple) Version() uint8 {
	switch len(t.addrs) {
	case 8:
		return 4
	case 32:
		return 6
	}
	return 0
}

// EtherType returns the frame's EtherType, the one behind the 802.1Q tag
// if Tagged; 0x8100 if the frame ends inside the tag.
func (t FiveTuple) EtherType() uint16 { return uint16(t.info >> 16) }

// Tagged reports whether an 802.1Q tag precedes the EtherType.
func (t FiveTuple) Tagged() bool { return t.info&tupleTagged != 0 }

// Protocol returns the IPv4 protocol or the IPv6 next header; 0 if not IP.
func (t FiveTuple) Protocol() uint8 { return uint8(t.info >> 8) }

// Addrs returns the source address followed by the destination address,
// 8 bytes for IPv4 or 32 for IPv6, or nil if the frame is not IP. The
// bytes are the frame's: the caller must not write to them.
func (t FiveTuple) Addrs() []byte { return t.addrs }

// Src returns the source address; the zero Addr if the frame is not IP.
func (t FiveTuple) Src() netip.Addr { return t.addr(0) }

// Dst returns the destination address; the zero Addr if the frame is not
// IP.
func (t FiveTuple) Dst() netip.Addr { return t.addr(1) }

// addr returns the source (i 0) or destination (i 1) address.
func (t FiveTuple) addr(i int) netip.Addr {
	switch n := len(t.addrs) / 2; n {
	case 4:
		return netip.AddrFrom4([4]byte(t.addrs[i*n : i*n+n]))
	case 16:
		return netip.AddrFrom16([16]byte(t.addrs[i*n : i*n+n]))
	}
	return netip.Addr{}
}

// Fragment reports whether the packet is an IPv4 fragment, the first
// (more-fragments set) or a later one (non-zero offset). IPv6 packets are
// never reported as fragments: their fragment header is an extension
// header, and Protocol is then 44.
func (t FiveTuple) Fragment() bool { return t.info&tupleFragment != 0 }

// HasTransportHeader reports whether the packet is IP and starts with its
// transport header: true unless it is an IPv4 fragment other than the
// first.
func (t FiveTuple) HasTransportHeader() bool {
	return t.addrs != nil && t.info&tupleLater == 0
}

// HasPorts reports whether the header of IP protocol proto starts with a
// source and a destination port: TCP, UDP and SCTP.
func HasPorts(proto uint8) bool {
	return proto == ProtocolTCP || proto == ProtocolUDP || proto == ProtocolSCTP
}

// Ports returns the source and destination ports of a TCP, UDP or SCTP
// packet. ok is false for any other protocol, a fragment other than the
// first, and a packet whose length field leaves fewer than four bytes of
// transport header.
func (t FiveTuple) Ports() (src, dst uint16, ok bool) {
	if t.info&tupleL4Packet == 0 || !HasPorts(t.Protocol()) {
		return 0, 0, false
	}
	return uint16(t.l4 >> 16), uint16(t.l4), true
}

// TransportWord returns the first four bytes that follow the IP header in
// the frame, big-endian: the ports of TCP, UDP and SCTP, the type, code and
// checksum of ICMP. ok is false if the frame holds fewer than four, or the
// packet is a fragment other than the first. Unlike Ports it reads what
// the frame holds, whatever the packet's length field says and whatever the
// protocol.
func (t FiveTuple) TransportWord() (w uint32, ok bool) {
	return t.l4, t.info&tupleL4 != 0
}
