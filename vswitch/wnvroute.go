package vswitch

import (
	"encoding/binary"
	"net/netip"

	"github.com/xvswitch/xvs/ring"
	"github.com/xvswitch/xvs/wnv"
	"github.com/xvswitch/xvs/wnv/header"
)

// route is the WNV forwarding stage for unicast IP frames from a port whose
// VSID is a virtual subnet of the policy (the caller checks). The policy, not MAC learning,
// decides where they go, and isolation is checked here, at the source:
//
//   - source check: the source address must be a customer address (CA)
//     whose lookup record has the frame's source MAC and names this port
//     (spoof);
//   - the destination is looked up in the source's routing domain only
//     (wnv.Snapshot.Route): not there is isolation, a known subnet without
//     the address is no-policy;
//   - same VSID: delivered as is to the record's port; another VSID of the
//     routing domain (or a next hop): routed - destination MAC set to the
//     record's, source MAC to the gateway MAC, TTL or hop limit decremented
//     (ttl at zero);
//   - a record on another host (its PA is not one of ours): NVGRE to that
//     host through the uplink (see encap).
//
// Group destinations and non-IP frames are left to the learning bridge of
// the VSID (after the proxy has taken ARP and ND).
func (w *worker) route(snap *snapshot, v *portView, b *ring.Batch, pol *wnv.Snapshot) {
	vsid := v.dom.vsid
	gw := pol.GatewayMAC()
	kept := 0
	for i := range b.N {
		d := b.Data(i)
		if d[0]&1 != 0 && w.sw.cfg.HeadEndReplication {
			w.replicate(snap, pol, &b.Frames[i], vsid) // and flood locally below
		}
		if d[0]&1 != 0 || !w.routeFrame(snap, v, pol, vsid, gw, &b.Frames[i], d) {
			if i != kept {
				b.Frames[kept], b.Frames[i] = b.Frames[i], b.Frames[kept]
			}
			kept++
		}
	}
	b.N = kept
}

// routeFrame returns false when the frame is not routable IP and should go
// on to the bridge; true when it was queued or dropped (and counted).
func (w *worker) routeFrame(snap *snapshot, v *portView, pol *wnv.Snapshot, vsid uint32, gw wnv.MAC, f *ring.Frame, d []byte) bool {
	var src, dst netip.Addr
	var ip4 header.IPv4
	var ip6 header.IPv6
	switch binary.BigEndian.Uint16(d[12:14]) {
	case header.EtherTypeIPv4:
		var err error
		if ip4, err = header.ParseIPv4(d[header.EthernetHeaderLen:]); err != nil {
			w.drops[DropMalformed]++
			return true
		}
		src, dst = ip4.SrcAddr(), ip4.DstAddr()
	case header.EtherTypeIPv6:
		var err error
		if ip6, err = header.ParseIPv6(d[header.EthernetHeaderLen:]); err != nil {
			w.drops[DropMalformed]++
			return true
		}
		src, dst = ip6.SrcAddr(), ip6.DstAddr()
		if src.IsLinkLocalUnicast() || dst.IsLinkLocalUnicast() {
			return false // link-local stays on the link: the bridge
		}
	default:
		return false
	}
	srcMAC := wnv.MAC(d[6:12])
	srcRec, ok := pol.LookupCA(vsid, src)
	if !ok || srcRec.MAC != srcMAC || srcRec.VMName != v.st.name {
		w.drops[DropSpoof]++
		return true
	}
	dec := pol.Route(vsid, dst)
	switch dec.Kind {
	case wnv.Deliver, wnv.Routed:
	case wnv.Gateway:
		w.drops[DropNoPolicy]++ // the switch does not answer the gateway address itself (yet)
		return true
	default:
		if dec.Reason == wnv.ReasonIsolation {
			w.drops[DropIsolation]++
		} else {
			w.drops[DropNoPolicy]++
		}
		return true
	}
	rec := dec.Record
	if !pol.IsLocalPA(rec.PA) {
		copy(d[0:6], rec.MAC[:])
		if dec.Kind == wnv.Routed {
			copy(d[6:12], gw[:])
			if (ip4 != nil && !ip4.DecTTL()) || (ip6 != nil && !ip6.DecHopLimit()) {
				w.drops[DropTTL]++
				return true
			}
		}
		if rec.Rule == wnv.RuleRewrite {
			w.rewriteOut(snap, pol, f, d, ip4, srcRec, rec)
			return true
		}
		if w.encap(snap, pol, f, rec.PA, dec.DstVSID) == encapTooBig && ip4 != nil && ip4.DF() {
			w.fragNeeded(snap, v, pol, vsid, srcMAC, ip4)
		}
		return true
	}
	out, ok := snap.byName[rec.VMName]
	if !ok || out.dom == nil || out.dom.vsid != dec.DstVSID {
		w.drops[DropNoPolicy]++ // the record names no port of this switch in its VSID
		return true
	}
	if out == v {
		w.drops[DropSamePort]++
		return true
	}
	copy(d[0:6], rec.MAC[:])
	if dec.Kind == wnv.Routed {
		copy(d[6:12], gw[:])
		if (ip4 != nil && !ip4.DecTTL()) || (ip6 != nil && !ip6.DecHopLimit()) {
			w.drops[DropTTL]++
			return true
		}
	}
	f.VSID = dec.DstVSID
	w.enqueue(out.st, f)
	return true
}

// fragNeeded answers a DF frame that no longer fits the provider network
// once encapsulated with ICMP "fragmentation needed", from the source
// subnet's gateway, carrying the MTU the VM must use (path MTU discovery
// does the rest; the provider network never fragments NVGRE).
func (w *worker) fragNeeded(snap *snapshot, v *portView, pol *wnv.Snapshot, vsid uint32, vmMAC wnv.MAC, orig header.IPv4) {
	sub, ok := pol.Subnet(vsid)
	if !ok {
		return
	}
	up := snap.byName[w.sw.uplinksFor(pol).port]
	if up == nil {
		return
	}
	mtu := up.st.port.MTU() - header.NVGREOverhead
	if buf, idx, ok := w.spare(); ok {
		n, err := header.WriteICMPv4FragNeeded(buf, vmMAC, orig, pol.GatewayMAC(), sub.Gateway4().As4(), uint16(mtu))
		if err == header.ErrICMPSuppressed {
			w.pool.Put(idx)
			return
		}
		w.send(v, idx, n, err)
	}
}
