package datapath

import (
	"encoding/binary"
	"net/netip"

	"github.com/xvswitch/xvs/header"
	"github.com/xvswitch/xvs/ring"
	"github.com/xvswitch/xvs/wnv"
)

// Frames from VMs, in the order the switch calls the module for them:
// Resolve before the extensions, Route after.

// Resolve is the first step for a batch from a VM port whose VSID is a
// virtual subnet (IsVirtual; the caller checks), before the extensions:
//
//   - source MAC: every frame (IP or not, unicast or not, tagged or not)
//     must come from a MAC that a lookup record of the port's VSID gives
//     the port (VMName is the port's name; static and l2only records):
//     any other is spoof, so that no VM can claim another's MAC and have
//     the VSID's learning bridge send it that VM's traffic;
//   - guards: an IPv6 Router Advertisement is ra-guard, a DHCP server
//     message (UDP 67 to 68, or to a relay; DHCPv6 from 547 to a client or
//     a relay-reply) is dhcp-guard - the policy names no VM a router or a
//     DHCP server. IPv6 extension headers are walked first; a chain that
//     cannot be walked is malformed; so is an 802.1Q or 802.1ad tagged
//     frame (a virtual subnet carries no tags, RFC 7637), whose tag - a
//     priority tag too - would hide what is behind it from the guards;
//   - address resolution: ARP requests and IPv6 Neighbor Solicitations
//     are answered from the policy's lookup records (and for each
//     subnet's gateway with the gateway MAC), so that address resolution
//     never floods and never reaches the provider network. A request for
//     an address the policy does not know is dropped (no-policy) and told
//     to Config.Miss; other ARP and ND messages from VMs (replies,
//     announcements, router solicitations, redirects) are absorbed
//     (proxied).
//
// Answers are emitted toward the VM's port; every other frame is Continue.
func (m *Module) Resolve(in *Port, b *ring.Batch) []Verdict {
	vs := m.verdictsFor(b.N)
	// A batch comes from one VM, nearly always from one MAC: the policy is
	// asked once per MAC change, not once per frame.
	var last wnv.MAC
	lastOK, asked := false, false
	for i := range b.N {
		d := b.Data(i)
		if src := wnv.MAC(d[6:12]); !asked || src != last {
			last, lastOK, asked = src, m.pol.MACOwnedBy(in.VSID, src, in.Name), true
		}
		if !lastOK {
			m.drop(&vs[i], DropSpoof)
			continue
		}
		switch binary.BigEndian.Uint16(d[12:14]) {
		case header.EtherTypeARP:
			m.resolveARP(in, d[header.EthernetHeaderLen:], &vs[i])
		case header.EtherTypeIPv4:
			if dhcpServer4(d[header.EthernetHeaderLen:]) {
				m.drop(&vs[i], DropDHCPGuard)
			}
		case header.EtherTypeIPv6:
			m.resolveIPv6(in, d, &vs[i])
		case header.EtherTypeVLAN, header.EtherTypeQinQ:
			// A virtual subnet carries no 802.1Q tags (RFC 7637: no inner
			// tag), and a tag (a priority tag too) would hide an RA or a
			// DHCP reply from the guards above.
			m.drop(&vs[i], DropMalformed)
		}
	}
	return vs
}

func (m *Module) resolveARP(in *Port, pkt []byte, v *Verdict) {
	arp, err := header.ParseARP(pkt)
	if err != nil {
		m.drop(v, DropMalformed)
		return
	}
	if arp.Op() != header.ARPRequest || arp.IsGratuitous() {
		m.drop(v, DropProxied) // replies and announcements stop here
		return
	}
	mac, buf, idx, ok := m.answer(in, arp.TPAAddr(), v)
	if ok {
		n, err := header.WriteARPReply(buf, arp, mac)
		m.emit(in.Index, idx, n, err)
	}
}

// DHCP and DHCPv6 ports.
const (
	dhcpServerPort   = 67
	dhcpClientPort   = 68
	dhcp6ClientPort  = 546
	dhcp6ServerPort  = 547
	bootReply        = 2  // BOOTP op of a server's (or relay's) answer
	dhcp6RelayReply  = 13 // DHCPv6 msg-type a server sends to a relay
	udpHeaderLen     = 8
	ipv4FragOffset   = 0x1fff
	ipv4MinHeaderLen = 20
)

// dhcpServer4 reports whether an IPv4 packet is a DHCP server's message:
// UDP from port 67 to a client (68), or a BOOTREPLY to a relay (67).
// Later fragments have no UDP header and are not looked at.
func dhcpServer4(ip []byte) bool {
	if len(ip) < ipv4MinHeaderLen || ip[9] != header.ProtocolUDP || binary.BigEndian.Uint16(ip[6:8])&ipv4FragOffset != 0 {
		return false
	}
	u := ip[min(int(ip[0]&0x0f)*4, len(ip)):]
	if len(u) < udpHeaderLen || binary.BigEndian.Uint16(u[0:2]) != dhcpServerPort {
		return false
	}
	switch binary.BigEndian.Uint16(u[2:4]) {
	case dhcpClientPort:
		return true
	case dhcpServerPort:
		return len(u) > udpHeaderLen && u[udpHeaderLen] == bootReply
	}
	return false
}

// dhcpServer6 reports whether a UDP datagram u is a DHCPv6 server's
// message: from port 547 to a client (546), or a relay-reply to a relay
// (547).
func dhcpServer6(u []byte) bool {
	if len(u) < udpHeaderLen || binary.BigEndian.Uint16(u[0:2]) != dhcp6ServerPort {
		return false
	}
	switch binary.BigEndian.Uint16(u[2:4]) {
	case dhcp6ClientPort:
		return true
	case dhcp6ServerPort:
		return len(u) > udpHeaderLen && u[udpHeaderLen] == dhcp6RelayReply
	}
	return false
}

// resolveIPv6 applies the guards to an IPv6 frame behind its extension
// headers and answers Neighbor Solicitations; every other IPv6 frame is
// left as Continue.
func (m *Module) resolveIPv6(in *Port, d []byte, v *Verdict) {
	ip, err := header.ParseIPv6(d[header.EthernetHeaderLen:])
	if err != nil {
		m.drop(v, DropMalformed)
		return
	}
	proto, p, later, err := ip.Transport()
	switch {
	case err != nil:
		m.drop(v, DropMalformed)
		return
	case later:
		return // no transport header to look at (RFC 6980: ND is never fragmented)
	case proto == header.ProtocolUDP:
		if dhcpServer6(p) {
			m.drop(v, DropDHCPGuard)
		}
		return
	case proto != header.ProtocolICMPv6 || len(p) < 1:
		return
	}
	switch p[0] {
	case header.ICMPv6RouterAdvert:
		m.drop(v, DropRAGuard)
		return
	case header.ICMPv6NeighborSolicit:
	case header.ICMPv6RouterSolicit, header.ICMPv6NeighborAdvert, header.ICMPv6Redirect:
		m.drop(v, DropProxied)
		return
	default:
		return
	}
	ns, err := header.ParseNeighborSolicit(ip) // behind extension headers: ErrProtocol
	if err != nil {
		m.drop(v, DropMalformed)
		return
	}
	mac, buf, idx, ok := m.answer(in, ns.TargetAddr(), v)
	if ok {
		n, err := header.WriteNeighborAdvert(buf, [6]byte(d[6:12]), ip, ns, mac, false)
		m.emit(in.Index, idx, n, err)
	}
}

// answer resolves addr for a request from in: with its MAC and a spare
// buffer to write the answer into (the request is Taken), or false when
// the policy does not know addr (no-policy, told to Config.Miss) or no
// buffer is left (pool-empty).
func (m *Module) answer(in *Port, addr netip.Addr, v *Verdict) (mac [6]byte, buf []byte, idx uint32, ok bool) {
	mac, ok = Resolve(m.pol, in.VSID, addr)
	if !ok {
		v.Action, v.Reason = Drop, DropNoPolicy
		m.miss(in.VSID, addr)
		return mac, nil, 0, false
	}
	v.Action = Taken
	buf, idx, ok = m.spare()
	return mac, buf, idx, ok
}

// Resolve answers "who has addr" in vsid: a lookup record's MAC, or the
// gateway MAC for the subnet's gateway address.
func Resolve(pol *wnv.Snapshot, vsid uint32, addr netip.Addr) ([6]byte, bool) {
	if r, ok := pol.LookupCA(vsid, addr); ok {
		return r.MAC, true
	}
	if sub, ok := pol.Subnet(vsid); ok && (addr == sub.Gateway4() || (sub.IPv6Prefix.IsValid() && addr == sub.Gateway6())) {
		return pol.GatewayMAC(), true
	}
	return [6]byte{}, false
}

// Route is the WNV step for a batch from a VM port whose VSID is a virtual
// subnet (IsVirtual; the caller checks), after the extensions have seen it.
// The policy, not MAC learning, decides where unicast IP goes, and
// isolation is checked here, at the source:
//
//   - source check: the source address must be a customer address (CA)
//     whose lookup record has the frame's source MAC and names this port
//     (spoof; Resolve has already checked the MAC of every frame);
//   - the destination is looked up in the source's routing domain only
//     (wnv.Snapshot.Route): not there is isolation, a known subnet without
//     the address is no-policy;
//   - same VSID: delivered as is to the record's port; another VSID of the
//     routing domain (or a next hop): routed - destination MAC set to the
//     record's, source MAC to the gateway MAC, TTL or hop limit
//     decremented (ttl at zero, answered with ICMP time exceeded);
//   - a record on another host: NVGRE to that host through the uplink, or
//     IP rewrite for rewrite records (Send); too big once encapsulated is
//     mtu, answered with ICMP fragmentation needed (DF) or packet too big.
//
// Group destinations, non-IP and link-local frames are Continue: the
// VSID's learning bridge floods them (and, with head-end replication,
// a copy of each broadcast or multicast goes to every other host of the
// VSID).
func (m *Module) Route(in *Port, b *ring.Batch) []Verdict {
	vs := m.verdictsFor(b.N)
	gw := m.pol.GatewayMAC()
	for i := range b.N {
		d := b.Data(i)
		if d[0]&1 != 0 {
			if m.cfg.HeadEndReplication {
				m.replicate(&b.Frames[i], in.VSID) // and flooded locally
			}
			continue
		}
		m.routeFrame(in, gw, &b.Frames[i], d, &vs[i])
	}
	return vs
}

// routeFrame decides one unicast frame; it leaves v Continue for frames
// that are not routable IP.
func (m *Module) routeFrame(in *Port, gw wnv.MAC, f *ring.Frame, d []byte, v *Verdict) {
	var r routable
	bridge, err := readRoutable(d, &r)
	switch {
	case err != nil:
		m.drop(v, DropMalformed)
		return
	case bridge:
		return
	}
	src, dst, ip4, ip6 := r.src, r.dst, r.ip4, r.ip6
	srcMAC := wnv.MAC(d[6:12])
	fe := m.flow(in, r.key, src, dst, srcMAC)
	if fe.drop != NumReasons {
		m.drop(v, fe.drop)
		return
	}
	rec := fe.rec
	if fe.routed {
		// DecTTL and DecHopLimit change nothing when the limit is spent, so
		// the ICMP error quotes the frame as the VM sent it.
		if (ip4 != nil && !ip4.DecTTL()) || (ip6 != nil && !ip6.DecHopLimit()) {
			m.drop(v, DropTTL)
			m.timeExceeded(in, srcMAC, ip4, ip6)
			return
		}
		copy(d[6:12], gw[:])
	}
	copy(d[0:6], rec.MAC[:])
	if !fe.remote {
		f.VSID = fe.dstVSID
		v.Action, v.Port = Deliver, fe.out.Index
		return
	}
	if rec.Rule == wnv.RuleRewrite {
		if r, mtu := m.rewriteOut(f, d, ip4, fe.srcRec, rec, v); r == encapTooBig {
			m.tooBig(in, srcMAC, ip4, nil, mtu)
		}
		return
	}
	if !fe.encapOK || fe.encap.neighVer != m.prov.neigh.ver.Load() {
		if fe.encapOK = m.encapRouteTo(rec.PA, &fe.encap); !fe.encapOK {
			if fe.encap.up != nil {
				m.hold(f, rec.PA, nil, nil, fe.dstVSID, v)
			} else {
				m.drop(v, DropNoUplink)
			}
			return
		}
	}
	if m.encapWith(f, &fe.encap, fe.dstVSID, v) == encapTooBig {
		m.tooBig(in, srcMAC, ip4, ip6, fe.encap.mtu-header.NVGREOverhead)
	}
}

// routable is what Route reads of a unicast frame: its IP header (ip4 or
// ip6) and addresses.
type routable struct {
	ip4      header.IPv4
	ip6      header.IPv6
	src, dst netip.Addr
	hops     uint8  // TTL or hop limit
	key      uint64 // the addresses folded, read from the header: the flow cache's slot
}

// readRoutable reads a frame's IP header into r. bridge: not IPv4 or
// IPv6, or IPv6 to or from a link-local address (it stays on the link):
// the learning bridge's to forward. err: an IP header that does not parse.
func readRoutable(d []byte, r *routable) (bridge bool, err error) {
	switch binary.BigEndian.Uint16(d[12:14]) {
	case header.EtherTypeIPv4:
		if r.ip4, err = header.ParseIPv4(d[header.EthernetHeaderLen:]); err != nil {
			return false, err
		}
		r.src, r.dst, r.hops = r.ip4.SrcAddr(), r.ip4.DstAddr(), r.ip4.TTL()
		r.key = binary.LittleEndian.Uint64(r.ip4[12:20])
	case header.EtherTypeIPv6:
		if r.ip6, err = header.ParseIPv6(d[header.EthernetHeaderLen:]); err != nil {
			return false, err
		}
		r.src, r.dst, r.hops = r.ip6.SrcAddr(), r.ip6.DstAddr(), r.ip6.HopLimit()
		a := r.ip6[8:40]
		r.key = binary.LittleEndian.Uint64(a[8:16]) ^ binary.LittleEndian.Uint64(a[24:32])*0x9E3779B97F4A7C15 ^
			binary.LittleEndian.Uint64(a[0:8])<<1 ^ binary.LittleEndian.Uint64(a[16:24])>>1
		return r.src.IsLinkLocalUnicast() || r.dst.IsLinkLocalUnicast(), nil
	default:
		return true, nil
	}
	return false, nil
}

// flowEntry memoises the policy's verdict on one flow (ingress port,
// source CA and MAC, destination) for one policy version and one port
// table: the source check, Route and the output port cost a few hundred
// nanoseconds, the cache hit a few.
type flowEntry struct {
	ver     uint64
	ports   *Ports
	in      *Port
	src     netip.Addr
	dst     netip.Addr
	srcMAC  wnv.MAC
	drop    Reason // NumReasons: not dropped
	routed  bool
	remote  bool // rec is on another host
	srcRec  *wnv.LookupRecord
	rec     *wnv.LookupRecord
	dstVSID uint32
	out     *Port // local delivery
	encapOK bool  // encap holds the way to rec's host (NVGRE)
	encap   encapRoute
}

const flowCacheSize = 1024 // per module, direct-mapped

func flowSlot(key uint64, in uint16) uint32 {
	h := (key ^ uint64(in)<<48) * 0x9E3779B97F4A7C15
	h ^= h >> 29
	return uint32(h>>40) & (flowCacheSize - 1)
}

// flow returns the policy's verdict for the flow, from the cache or
// computed and cached.
func (m *Module) flow(in *Port, key uint64, src, dst netip.Addr, srcMAC wnv.MAC) *flowEntry {
	fe := &m.flows[flowSlot(key, in.Index)]
	if fe.ver == m.pol.Version() && fe.ports == m.ports && fe.in == in && fe.src == src && fe.dst == dst && fe.srcMAC == srcMAC {
		return fe
	}
	*fe = flowVerdict(m.pol, m.ports, in, src, dst, srcMAC)
	return fe
}

// flowVerdict is the policy's decision on a flow, as Route applies it and
// Explain tells it.
func flowVerdict(pol *wnv.Snapshot, ports *Ports, in *Port, src, dst netip.Addr, srcMAC wnv.MAC) flowEntry {
	fe := flowEntry{ver: pol.Version(), ports: ports, in: in, src: src, dst: dst, srcMAC: srcMAC, drop: NumReasons}
	vsid := in.VSID
	srcRec, ok := pol.LookupCA(vsid, src)
	if !ok || srcRec.MAC != srcMAC || srcRec.VMName != in.Name {
		fe.drop = DropSpoof
		return fe
	}
	dec := pol.Route(vsid, dst)
	switch dec.Kind {
	case wnv.Deliver, wnv.Routed:
	case wnv.Gateway:
		fe.drop = DropNoPolicy // the switch does not answer the gateway address itself (yet)
		return fe
	default:
		fe.drop = DropNoPolicy
		if dec.Reason == wnv.ReasonIsolation {
			fe.drop = DropIsolation
		}
		return fe
	}
	fe.srcRec, fe.rec, fe.dstVSID, fe.routed = srcRec, dec.Record, dec.DstVSID, dec.Kind == wnv.Routed
	if !pol.IsLocalPA(dec.Record.PA) {
		fe.remote = true
		return fe
	}
	out := ports.inVSID(dec.Record.VMName, dec.DstVSID)
	switch {
	case out == nil:
		fe.drop = DropNoPolicy // the record names no port of this switch in its VSID
	case out == in:
		fe.drop = DropSamePort
	default:
		fe.out = out
	}
	return fe
}

// replicate sends a copy of a broadcast or multicast frame from a VM port
// to every other host with records in its VSID (head-end replication: one
// unicast NVGRE frame per host; the provider network needs no multicast).
func (m *Module) replicate(f *ring.Frame, vsid uint32) {
	for _, pa := range m.pol.HostsForVSID(vsid) {
		if m.pol.IsLocalPA(pa) {
			continue
		}
		c, ok := m.copyFrame(f)
		if !ok {
			return
		}
		m.borrowed = append(m.borrowed, c.Index)
		var v Verdict
		if m.encap(&c, pa, vsid, &v) == encapSent {
			m.Emits = append(m.Emits, Emit{Frame: c, Port: v.Port})
		}
	}
}
