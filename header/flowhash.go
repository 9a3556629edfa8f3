package header

import "encoding/binary"

// FlowHash returns a deterministic 32-bit hash of the flow an Ethernet
// frame belongs to, for ECMP, the NVGRE FlowID and the choice of a port's
// transmit queue (ring.Meta.Hash): the addresses, protocol and TCP/UDP/SCTP
// ports of an IPv4 or IPv6 packet (as ReadFiveTuple reads them), or the MAC
// addresses and EtherType of anything else. All fragments of an IPv4
// datagram hash alike (ports are used only for unfragmented packets); IPv6
// extension headers are not walked (their packets hash on addresses and
// next header). A VLAN-tagged frame, and a frame whose IP headers do not
// hold together, hashes on its MACs and EtherType (the TPID if tagged). Any
// input is safe; it allocates nothing. It never returns 0, so that 0 can
// mean "not computed yet". The hash is not keyed: it spreads flows, it does
// not resist an adversary choosing them.
func FlowHash(frame []byte) uint32 {
	if len(frame) < EthernetHeaderLen {
		return finish(mix(0, uint64(len(frame))))
	}
	if t, err := ReadFiveTuple(frame); err == nil && !t.Tagged() {
		switch a := t.addrs; len(a) {
		case 8:
			h := mix(4, binary.BigEndian.Uint64(a))
			h = mix(h, uint64(t.Protocol()))
			if !t.Fragment() {
				h = mix(h, t.ports())
			}
			return finish(h)
		case 32:
			h := mix(6, binary.BigEndian.Uint64(a[0:8]))
			h = mix(h, binary.BigEndian.Uint64(a[8:16]))
			h = mix(h, binary.BigEndian.Uint64(a[16:24]))
			h = mix(h, binary.BigEndian.Uint64(a[24:32]))
			h = mix(h, uint64(t.Protocol()))
			h = mix(h, t.ports())
			return finish(h)
		}
	}
	h := mix(2, uint64(binary.BigEndian.Uint16(frame[0:2]))<<32|uint64(binary.BigEndian.Uint32(frame[2:6])))
	h = mix(h, uint64(binary.BigEndian.Uint16(frame[6:8]))<<32|uint64(binary.BigEndian.Uint32(frame[8:12])))
	h = mix(h, uint64(binary.BigEndian.Uint16(frame[12:14])))
	return finish(h)
}

// FlowID returns an 8-bit NVGRE FlowID (RFC 7637 section 3.2) for an inner
// Ethernet frame, folded from FlowHash.
func FlowID(inner []byte) uint8 { return FlowIDOf(FlowHash(inner)) }

// FlowIDOf folds a FlowHash into an NVGRE FlowID, for a frame whose hash
// is already known (ring.Meta.Hash).
func FlowIDOf(h uint32) uint8 {
	h ^= h >> 16
	return uint8(h ^ h>>8)
}

// ports returns the source and destination ports of a TCP, UDP or SCTP
// packet as one word, or 0.
func (t FiveTuple) ports() uint64 {
	if t.info&tupleL4Packet != 0 && HasPorts(t.Protocol()) {
		return uint64(t.l4)
	}
	return 0
}

// mix folds v into h (a multiply-xorshift step).
func mix(h, v uint64) uint64 {
	h ^= v
	h *= 0x9e3779b97f4a7c15
	return h ^ h>>29
}

// finish is the murmur3 64-bit finaliser, truncated to 32 bits, with 0
// mapped to 1: FlowHash never returns 0.
func finish(h uint64) uint32 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	if uint32(h) == 0 {
		return 1
	}
	return uint32(h)
}
