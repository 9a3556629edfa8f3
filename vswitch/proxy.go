package vswitch

import (
	"encoding/binary"
	"net/netip"

	"github.com/xvswitch/xvs/header"
	"github.com/xvswitch/xvs/ring"
	"github.com/xvswitch/xvs/wnv"
)

// proxy is the WNV ingress stage for ports whose VSID is a virtual subnet
// of the policy (the caller checks): it answers ARP
// requests and IPv6 Neighbor Solicitations from the policy's lookup
// records (and for each subnet's gateway with the gateway MAC), so that
// address resolution never floods and never reaches the provider network.
// A request for an address the policy does not know is dropped (no-policy);
// other ARP and ND messages from VMs (replies, announcements) are absorbed
// (proxied). Answers are built in the worker's spare buffers and queued on
// the ingress port; the buffers return to the pool after the batch is sent.
func (w *worker) proxy(v *portView, b *ring.Batch, snap *wnv.Snapshot) {
	vsid := v.dom.vsid
	kept := 0
	for i := range b.N {
		d := b.Data(i)
		switch binary.BigEndian.Uint16(d[12:14]) {
		case header.EtherTypeARP:
			w.proxyARP(v, snap, vsid, d[header.EthernetHeaderLen:])
			continue
		case header.EtherTypeIPv6:
			if w.proxyND(v, snap, vsid, d) {
				continue
			}
		}
		if i != kept {
			b.Frames[kept], b.Frames[i] = b.Frames[i], b.Frames[kept]
		}
		kept++
	}
	b.N = kept
}

func (w *worker) proxyARP(v *portView, snap *wnv.Snapshot, vsid uint32, pkt []byte) {
	arp, err := header.ParseARP(pkt)
	if err != nil {
		w.drops[DropMalformed]++
		return
	}
	if arp.Op() != header.ARPRequest || arp.IsGratuitous() {
		w.drops[DropProxied]++ // replies and announcements stop here
		return
	}
	mac, ok := resolve(snap, vsid, arp.TPAAddr())
	if !ok {
		w.miss(vsid, arp.TPAAddr())
		return
	}
	if buf, idx, ok := w.spare(); ok {
		n, err := header.WriteARPReply(buf, arp, mac)
		w.send(v, idx, n, err)
	}
}

// proxyND handles ICMPv6 Neighbor Discovery; it returns false for every
// other IPv6 frame, which goes on through the pipeline.
func (w *worker) proxyND(v *portView, snap *wnv.Snapshot, vsid uint32, d []byte) bool {
	ip, err := header.ParseIPv6(d[header.EthernetHeaderLen:])
	if err != nil || ip.NextHeader() != header.ProtocolICMPv6 {
		return false
	}
	p := ip.Payload()
	if len(p) < 1 {
		return false
	}
	switch p[0] {
	case icmpv6NeighborSolicit:
	case icmpv6RouterSolicit, icmpv6RouterAdvert, icmpv6NeighborAdvert, icmpv6Redirect:
		w.drops[DropProxied]++
		return true
	default:
		return false
	}
	ns, err := header.ParseNeighborSolicit(ip)
	if err != nil {
		w.drops[DropMalformed]++
		return true
	}
	mac, ok := resolve(snap, vsid, ns.TargetAddr())
	if !ok {
		w.miss(vsid, ns.TargetAddr())
		return true
	}
	if buf, idx, ok := w.spare(); ok {
		n, err := header.WriteNeighborAdvert(buf, [6]byte(d[6:12]), ip, ns, mac, false)
		w.send(v, idx, n, err)
	}
	return true
}

// ICMPv6 Neighbor Discovery message types (RFC 4861).
const (
	icmpv6RouterSolicit   = 133
	icmpv6RouterAdvert    = 134
	icmpv6NeighborSolicit = 135
	icmpv6NeighborAdvert  = 136
	icmpv6Redirect        = 137
)

// resolve answers "who has addr" in vsid: a lookup record's MAC, or the
// gateway MAC for the subnet's gateway address.
func resolve(snap *wnv.Snapshot, vsid uint32, addr netip.Addr) ([6]byte, bool) {
	if r, ok := snap.LookupCA(vsid, addr); ok {
		return r.MAC, true
	}
	if sub, ok := snap.Subnet(vsid); ok && (addr == sub.Gateway4() || (sub.IPv6Prefix.IsValid() && addr == sub.Gateway6())) {
		return snap.GatewayMAC(), true
	}
	return [6]byte{}, false
}

// spare takes a pool buffer for a frame the switch builds; the frame goes
// at the headroom offset.
func (w *worker) spare() (buf []byte, idx uint32, ok bool) {
	idx, ok = w.pool.Get()
	if !ok {
		w.drops[DropPoolEmpty]++
		return nil, 0, false
	}
	return w.arena.Buffer(idx)[w.arena.Headroom():], idx, true
}

// send queues the n-byte frame built in spare buffer idx on the port v,
// padded to the Ethernet minimum; the buffer returns to the pool after the
// batch is transmitted.
func (w *worker) send(v *portView, idx uint32, n int, err error) {
	if err != nil {
		w.pool.Put(idx)
		w.drops[DropMalformed]++
		return
	}
	buf := w.arena.Buffer(idx)[w.arena.Headroom():]
	for n < 60 {
		buf[n] = 0
		n++
	}
	w.borrowed = append(w.borrowed, idx)
	f := ring.Frame{Index: idx, Offset: uint16(w.arena.Headroom()), Len: uint16(n)}
	w.enqueue(v.st, &f)
}

// miss counts a request the policy cannot answer and tells the miss hook.
func (w *worker) miss(vsid uint32, addr netip.Addr) {
	w.drops[DropNoPolicy]++
	if m := w.sw.cfg.PolicyMiss; m != nil {
		m.Miss(vsid, addr)
	}
}
