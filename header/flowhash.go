package header

import "encoding/binary"

// FlowHash returns a deterministic 32-bit hash of the flow an Ethernet
// frame belongs to, for ECMP and the NVGRE FlowID: the addresses,
// protocol and TCP/UDP/SCTP ports of an IPv4 or IPv6 packet, or the MAC
// addresses and EtherType of anything else. All fragments of an IPv4
// datagram hash alike (ports are used only for unfragmented packets); IPv6
// extension headers are not walked (their packets hash on addresses and
// next header). A VLAN-tagged frame hashes on its MACs and TPID. Any input
// is safe; it allocates nothing. The hash is not keyed: it spreads flows,
// it does not resist an adversary choosing them.
func FlowHash(frame []byte) uint32 {
	e := Ethernet(frame)
	if !e.IsValid() {
		return finish(mix(0, uint64(len(frame))))
	}
	switch e.Type() {
	case EtherTypeIPv4:
		ip, err := ParseIPv4(frame[EthernetHeaderLen:])
		if err != nil {
			break
		}
		h := mix(4, uint64(binary.BigEndian.Uint32(ip[12:16]))<<32|uint64(binary.BigEndian.Uint32(ip[16:20])))
		h = mix(h, uint64(ip.Protocol()))
		if !ip.IsFragment() {
			h = mix(h, ports(ip.Protocol(), ip.Payload()))
		}
		return finish(h)
	case EtherTypeIPv6:
		ip, err := ParseIPv6(frame[EthernetHeaderLen:])
		if err != nil {
			break
		}
		h := mix(6, binary.BigEndian.Uint64(ip[8:16]))
		h = mix(h, binary.BigEndian.Uint64(ip[16:24]))
		h = mix(h, binary.BigEndian.Uint64(ip[24:32]))
		h = mix(h, binary.BigEndian.Uint64(ip[32:40]))
		h = mix(h, uint64(ip.NextHeader()))
		h = mix(h, ports(ip.NextHeader(), ip.Payload()))
		return finish(h)
	}
	h := mix(2, uint64(binary.BigEndian.Uint16(frame[0:2]))<<32|uint64(binary.BigEndian.Uint32(frame[2:6])))
	h = mix(h, uint64(binary.BigEndian.Uint16(frame[6:8]))<<32|uint64(binary.BigEndian.Uint32(frame[8:12])))
	h = mix(h, uint64(e.Type()))
	return finish(h)
}

// FlowID returns an 8-bit NVGRE FlowID (RFC 7637 section 3.2) for an inner
// Ethernet frame, folded from FlowHash.
func FlowID(inner []byte) uint8 {
	h := FlowHash(inner)
	h ^= h >> 16
	return uint8(h ^ h>>8)
}

// ports returns the source and destination ports of a TCP, UDP or SCTP
// header at the start of p, or 0.
func ports(proto uint8, p []byte) uint64 {
	switch proto {
	case ProtocolTCP, ProtocolUDP, ProtocolSCTP:
		if len(p) >= 4 {
			return uint64(binary.BigEndian.Uint32(p[0:4]))
		}
	}
	return 0
}

// mix folds v into h (a multiply-xorshift step).
func mix(h, v uint64) uint64 {
	h ^= v
	h *= 0x9e3779b97f4a7c15
	return h ^ h>>29
}

// finish is the murmur3 64-bit finaliser, truncated to 32 bits.
func finish(h uint64) uint32 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return uint32(h)
}
