package vswitch

import (
	"encoding/binary"
	"net/netip"

	"github.com/xvswitch/xvs/header"
	"github.com/xvswitch/xvs/ring"
	"github.com/xvswitch/xvs/wnv"
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
	fe := w.flow(snap, v, pol, vsid, src, dst, srcMAC)
	if fe.drop != NumDropReasons {
		w.drops[fe.drop]++
		return true
	}
	rec := fe.rec
	copy(d[0:6], rec.MAC[:])
	if fe.routed {
		copy(d[6:12], gw[:])
		if (ip4 != nil && !ip4.DecTTL()) || (ip6 != nil && !ip6.DecHopLimit()) {
			w.drops[DropTTL]++
			return true
		}
	}
	if !fe.remote {
		f.VSID = fe.dstVSID
		w.enqueue(fe.out.st, f)
		return true
	}
	if rec.Rule == wnv.RuleRewrite {
		w.rewriteOut(snap, pol, f, d, ip4, fe.srcRec, rec)
		return true
	}
	if !fe.encapOK || fe.encap.neighVer != w.sw.neigh.ver.Load() {
		if fe.encapOK = w.encapRouteTo(snap, pol, rec.PA, &fe.encap); !fe.encapOK {
			if fe.encap.uv != nil {
				w.hold(f, rec.PA, nil, nil, fe.dstVSID)
			}
			return true
		}
	}
	if w.encapWith(f, &fe.encap, fe.dstVSID) == encapTooBig && ip4 != nil && ip4.DF() {
		w.fragNeeded(snap, v, pol, vsid, srcMAC, ip4)
	}
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

// flowEntry memoises the policy's verdict on one flow (ingress port,
// source CA and MAC, destination) for one policy version and one port
// snapshot: the source check, Route and the output port cost a few
// hundred nanoseconds, the cache hit a few.
type flowEntry struct {
	ver     uint64
	snap    *snapshot
	in      *portView
	src     netip.Addr
	dst     netip.Addr
	srcMAC  wnv.MAC
	drop    DropReason // NumDropReasons: not dropped
	routed  bool
	remote  bool // rec is on another host
	srcRec  *wnv.LookupRecord
	rec     *wnv.LookupRecord
	dstVSID uint32
	out     *portView // local delivery
	encapOK bool      // encap holds the way to rec's host (NVGRE)
	encap   encapRoute
}

const flowCacheSize = 1024 // per worker, direct-mapped

func flowSlot(src, dst netip.Addr, in uint16) uint32 {
	a, b := dst.As16(), src.As16()
	h := binary.LittleEndian.Uint64(a[8:]) ^ binary.LittleEndian.Uint64(a[:8])*0x9E3779B97F4A7C15
	h ^= (binary.LittleEndian.Uint64(b[8:]) + uint64(in)) * 0xC2B2AE3D27D4EB4F
	return uint32(h>>40) & (flowCacheSize - 1)
}

// flow returns the policy's verdict for the flow, from the cache or
// computed and cached.
func (w *worker) flow(snap *snapshot, v *portView, pol *wnv.Snapshot, vsid uint32, src, dst netip.Addr, srcMAC wnv.MAC) *flowEntry {
	fe := &w.flows[flowSlot(src, dst, v.st.idx)]
	if fe.ver == pol.Version() && fe.snap == snap && fe.in == v && fe.src == src && fe.dst == dst && fe.srcMAC == srcMAC {
		return fe
	}
	*fe = policyVerdict(snap, v, pol, vsid, src, dst, srcMAC)
	return fe
}

// policyVerdict is the policy's decision on a flow, as the route stage
// applies it and xvsctl trace explains it.
func policyVerdict(snap *snapshot, v *portView, pol *wnv.Snapshot, vsid uint32, src, dst netip.Addr, srcMAC wnv.MAC) flowEntry {
	fe := flowEntry{ver: pol.Version(), snap: snap, in: v, src: src, dst: dst, srcMAC: srcMAC, drop: NumDropReasons}
	srcRec, ok := pol.LookupCA(vsid, src)
	if !ok || srcRec.MAC != srcMAC || srcRec.VMName != v.st.name {
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
	out, ok := snap.byName[dec.Record.VMName]
	switch {
	case !ok || out.dom == nil || out.dom.vsid != dec.DstVSID:
		fe.drop = DropNoPolicy // the record names no port of this switch in its VSID
	case out == v:
		fe.drop = DropSamePort
	default:
		fe.out = out
	}
	return fe
}
