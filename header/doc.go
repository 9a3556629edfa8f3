// Package header reads and writes the headers of the frames the WNV module
// handles: Ethernet, ARP, IPv4, IPv6 with ICMPv6 Neighbor Discovery, GRE
// as NVGRE (RFC 7637), and ICMP errors. It uses the standard library only
// and allocates nothing on valid input.
//
// # Views
//
// A header is a named []byte type with accessor methods (Ethernet, ARP,
// IPv4, IPv6, GRE, NeighborSolicit), in the style of gVisor's
// pkg/tcpip/header. A view is validated once, by its Parse function (or
// IsValid for Ethernet), and its accessors then read fixed offsets without
// further checks: calling an accessor on a view that was not validated may
// panic. Parse functions never panic and never read outside their input,
// whatever it holds (each has a fuzz target); they return one of this
// package's constant Error values, each naming one drop reason, so the
// caller can count drops by reason without allocating.
//
//	e, err := header.ParseEthernet(frame)       // ErrVLANTagged: drop
//	ip, err := header.ParseIPv4(e.Payload())    // trims Ethernet padding
//	ip.SetAddrs(pa.As4(), peer.As4())           // IP and TCP/UDP checksums follow
//
// # Ownership
//
// A view aliases the caller's buffer: it copies nothing and keeps nothing.
// It is valid as long as the caller's frame is, and no longer: once a
// frame is handed to a port (Transmit) or its buffer returned to a pool,
// every view of it is dead. Setters (SetSrc, DecTTL, ...) write through to
// the frame. Nothing in this package retains a slice past the call that
// received it.
//
// # Builders
//
// Builders (WriteARPReply, WriteNeighborAdvert, WriteICMPv4FragNeeded,
// WriteICMPv6PacketTooBig, ...) write a complete Ethernet frame into a
// caller-provided buffer and return its length, or ErrBufferTooSmall. The
// destination must not overlap the request it answers.
//
// EncapNVGRE writes in place in front of a frame: the inner frame sits at
// an offset inside its buffer (the headroom of package ring), and the
// NVGREOverhead (42) bytes of outer Ethernet, IPv4 and GRE headers are
// written just before it. DecapNVGRE returns the offset and length of the
// inner frame inside the outer one, so decapsulation moves no bytes
// either.
//
// # Flows
//
// ReadFiveTuple is the one reader of a frame's flow in xvs: the IP
// addresses, the protocol and the TCP/UDP/SCTP ports (or ICMP type and
// code), behind at most one 802.1Q tag. FlowHash (ECMP, the NVGRE FlowID,
// a port's transmit queue), the extensions' flow key and the example ACL
// filter all start from it, so they agree on what a flow is. Its tuple
// aliases the frame, like a view.
//
// # Checksums
//
// Rewrites update checksums incrementally (RFC 1624): the IPv4 header
// checksum on SetSrc, SetDst, SetAddrs and DecTTL, and the TCP or UDP
// checksum, whose pseudo-header covers the addresses, on address rewrites.
// A UDP checksum of 0 (none) stays 0; ICMP carries no pseudo-header;
// fragments other than the first carry no transport header. Checksum,
// ComputeChecksum, TransportChecksum and ICMPv6Checksum compute from
// scratch.
package header
