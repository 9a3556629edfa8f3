package datapath

import (
	"encoding/binary"
	"net/netip"

	"github.com/xvswitch/xvs/header"
	"github.com/xvswitch/xvs/ring"
	"github.com/xvswitch/xvs/wnv"
)

// Resolve is the address resolution step for a batch from a VM port whose
// VSID is a virtual subnet (IsVirtual; the caller checks): it answers ARP
// requests and IPv6 Neighbor Solicitations from the policy's lookup
// records (and for each subnet's gateway with the gateway MAC), so that
// address resolution never floods and never reaches the provider network.
// A request for an address the policy does not know is dropped
// (no-policy) and told to Config.Miss; other ARP and ND messages from VMs
// (replies, announcements, router messages) are absorbed (proxied).
// Answers are emitted toward the VM's port; every other frame is Continue.
func (m *Module) Resolve(in *Port, b *ring.Batch) []Verdict {
	vs := m.verdictsFor(b.N)
	for i := range b.N {
		d := b.Data(i)
		switch binary.BigEndian.Uint16(d[12:14]) {
		case header.EtherTypeARP:
			m.resolveARP(in, d[header.EthernetHeaderLen:], &vs[i])
		case header.EtherTypeIPv6:
			m.resolveND(in, d, &vs[i])
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

// resolveND handles ICMPv6 Neighbor Discovery; every other IPv6 frame is
// left as Continue.
func (m *Module) resolveND(in *Port, d []byte, v *Verdict) {
	ip, err := header.ParseIPv6(d[header.EthernetHeaderLen:])
	if err != nil || ip.NextHeader() != header.ProtocolICMPv6 {
		return
	}
	p := ip.Payload()
	if len(p) < 1 {
		return
	}
	switch p[0] {
	case header.ICMPv6NeighborSolicit:
	case header.ICMPv6RouterSolicit, header.ICMPv6RouterAdvert, header.ICMPv6NeighborAdvert, header.ICMPv6Redirect:
		m.drop(v, DropProxied)
		return
	default:
		return
	}
	ns, err := header.ParseNeighborSolicit(ip)
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
