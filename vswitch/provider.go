package vswitch

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/xvswitch/xvs/header"
	"github.com/xvswitch/xvs/ring"
	"github.com/xvswitch/xvs/wnv"
)

// The provider side of WNV. A port whose name is the interface of one of
// the policy's provider addresses (PA) is an uplink: xvs answers ARP for
// its PAs there, learns the provider network's MACs from ARP, and takes
// NVGRE frames addressed to its PAs apart. Frames for records on other
// hosts leave through the uplink encapsulated (RFC 7637).

// uplinks maps uplink port names to the PA they carry, for one policy
// version. Rebuilt (rarely) when the policy changes.
type uplinks struct {
	version uint64
	byPort  map[string]netip.Addr
	port    string // the uplink encapsulated frames leave by ("" if none)
	pa      netip.Addr
}

// neighbors maps provider addresses to MACs, learned from ARP on uplinks.
// Copy on write: read per frame without a lock, written rarely.
type neighbors struct {
	mu  sync.Mutex
	m   atomic.Pointer[map[netip.Addr][6]byte]
	ver atomic.Uint64 // changes whenever an entry does, for caches
}

func (n *neighbors) lookup(a netip.Addr) ([6]byte, bool) {
	m := n.m.Load()
	if m == nil {
		return [6]byte{}, false
	}
	mac, ok := (*m)[a]
	return mac, ok
}

func (n *neighbors) learn(a netip.Addr, mac [6]byte) {
	if old, ok := n.lookup(a); ok && old == mac {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	next := map[netip.Addr][6]byte{a: mac}
	if m := n.m.Load(); m != nil {
		for k, v := range *m {
			if k != a {
				next[k] = v
			}
		}
	}
	n.m.Store(&next)
	n.ver.Add(1)
}

// uplinksFor returns the uplink view of policy snapshot ps.
func (s *Switch) uplinksFor(ps *wnv.Snapshot) *uplinks {
	if u := s.uplinks.Load(); u != nil && u.version == ps.Version() {
		return u
	}
	u := &uplinks{version: ps.Version(), byPort: map[string]netip.Addr{}}
	for _, a := range ps.ProviderAddresses() {
		u.byPort[a.Interface] = a.PA
		if u.port == "" || a.Interface < u.port {
			u.port, u.pa = a.Interface, a.PA
		}
	}
	s.uplinks.Store(u)
	return u
}

// provider handles what arrives on an uplink: ARP (answered for our PAs,
// learned from everyone) and NVGRE for our PAs (decapsulated and delivered).
// Everything else stays on the non-virtualized bridge.
func (w *worker) provider(snap *snapshot, v *portView, b *ring.Batch, ps *wnv.Snapshot, pa netip.Addr) {
	kept := 0
	for i := range b.N {
		d := b.Data(i)
		consumed := false
		switch binary.BigEndian.Uint16(d[12:14]) {
		case header.EtherTypeARP:
			consumed = w.providerARP(v, ps, d)
		case header.EtherTypeIPv4:
			consumed = w.decap(snap, ps, &b.Frames[i], d) || w.rewriteIn(snap, ps, &b.Frames[i], d)
		}
		if !consumed {
			if i != kept {
				b.Frames[kept], b.Frames[i] = b.Frames[i], b.Frames[kept]
			}
			kept++
		}
	}
	b.N = kept
}

func (w *worker) providerARP(v *portView, ps *wnv.Snapshot, d []byte) bool {
	arp, err := header.ParseARP(d[header.EthernetHeaderLen:])
	if err != nil {
		return false
	}
	if spa := arp.SPAAddr(); spa.IsValid() && !spa.IsUnspecified() {
		w.sw.neigh.learn(spa, arp.SHA())
	}
	if arp.Op() != header.ARPRequest || !ps.IsLocalPA(arp.TPAAddr()) {
		return false // not for us: the bridge floods it as before
	}
	mac := v.st.port.MAC()
	if len(mac) != 6 {
		return false
	}
	if buf, idx, ok := w.spare(); ok {
		n, err := header.WriteARPReply(buf, arp, [6]byte(mac))
		w.send(v, idx, n, err)
	}
	return true
}

// decap takes apart an NVGRE frame for one of our PAs and delivers the
// inner frame, after checking everything it is told: outer destination
// ours, a well-formed NVGRE header (key present, protocol 0x6558), a VSID
// that is a virtual subnet here, an inner destination with a local port in
// that VSID, and an outer source PA that is the one the policy gives the
// inner source CA. Returns false for frames that are not NVGRE.
func (w *worker) decap(snap *snapshot, ps *wnv.Snapshot, f *ring.Frame, d []byte) bool {
	if len(d) < header.EthernetHeaderLen+20 || d[header.EthernetHeaderLen+9] != 47 {
		return false
	}
	nf, err := header.DecapNVGRE(d)
	if err != nil {
		w.drops[DropNVGREInvalid]++
		return true
	}
	inner := d[nf.Inner : nf.Inner+nf.InnerLen]
	if inner[0]&1 != 0 { // head-end replicated broadcast or multicast
		if !ps.IsLocalPA(nf.DstPA) {
			w.drops[DropNVGRENotOurs]++
			return true
		}
		if _, ok := ps.Subnet(nf.VSID); !ok {
			w.drops[DropNVGREVSID]++
			return true
		}
		return w.decapFlood(snap, ps, f, &nf, inner)
	}
	de := w.decapVerdict(snap, ps, &nf, inner)
	if de.drop != NumDropReasons {
		w.drops[de.drop]++
		return true
	}
	out := de.out
	f.Offset += uint16(nf.Inner)
	f.Len = uint16(nf.InnerLen)
	f.VSID = nf.VSID
	w.enqueue(out.st, f)
	return true
}

// innerSourceFrom reports whether the inner frame's source is a CA the
// policy places behind pa (by IP for IP frames, by MAC otherwise).
func innerSourceFrom(ps *wnv.Snapshot, vsid uint32, inner []byte, pa netip.Addr) bool {
	var src netip.Addr
	switch binary.BigEndian.Uint16(inner[12:14]) {
	case header.EtherTypeIPv4:
		if ip, err := header.ParseIPv4(inner[header.EthernetHeaderLen:]); err == nil {
			src = ip.SrcAddr()
		}
	case header.EtherTypeIPv6:
		if ip, err := header.ParseIPv6(inner[header.EthernetHeaderLen:]); err == nil {
			src = ip.SrcAddr()
		}
	}
	if src.IsValid() && !src.IsLinkLocalUnicast() {
		if r, ok := ps.LookupCA(vsid, src); ok {
			return r.PA == pa && r.MAC == wnv.MAC(inner[6:12])
		}
		// Routed to us from another virtual subnet: the source must be a CA
		// of the same routing domain, sent by the gateway.
		dec := ps.Route(vsid, src)
		return (dec.Kind == wnv.Deliver || dec.Kind == wnv.Routed) && dec.Record != nil && dec.Record.CA == src &&
			dec.Record.PA == pa && wnv.MAC(inner[6:12]) == ps.GatewayMAC()
	}
	r, ok := ps.LookupMAC(vsid, wnv.MAC(inner[6:12]))
	return ok && r.PA == pa
}

// encap sends frame f (already routed to rec) to rec's host: NVGRE in the
// frame's headroom, out of the uplink, to the provider next hop's MAC.
// Without the next hop's MAC it asks for it (ARP on the uplink) and holds
// the frame until the answer comes (see hold). A frame too large for the uplink once
// encapsulated is counted (mtu); the caller answers it with ICMP.
func (w *worker) encap(snap *snapshot, ps *wnv.Snapshot, f *ring.Frame, pa netip.Addr, vsid uint32) encapResult {
	var route encapRoute
	if !w.encapRouteTo(snap, ps, pa, &route) {
		if route.uv != nil {
			w.hold(f, pa, nil, nil, vsid)
		}
		return encapDropped
	}
	return w.encapWith(f, &route, vsid)
}

// encapRoute is how to reach one remote PA: the uplink, the outer
// addresses and the MTU. Valid for one port snapshot, policy version and
// neighbor table version.
type encapRoute struct {
	uv       *portView
	mtu      int
	p        header.NVGREParams // without VSID
	neighVer uint64
}

// encapRouteTo fills r for pa. false with r.uv set: the next hop's MAC is
// being asked for (hold the frame); false with r.uv nil: dropped, counted.
func (w *worker) encapRouteTo(snap *snapshot, ps *wnv.Snapshot, pa netip.Addr, r *encapRoute) bool {
	up := w.sw.uplinksFor(ps)
	uv := snap.byName[up.port]
	if uv == nil || !up.pa.Is4() || !pa.Is4() || len(uv.st.port.MAC()) != 6 {
		w.drops[DropNoUplink]++
		return false
	}
	if _, ok := ps.ProviderNextHop(pa); !ok {
		w.drops[DropNoUplink]++
		return false
	}
	r.neighVer = w.sw.neigh.ver.Load()
	nhMAC, ok := w.nextHopMAC(ps, up, uv, pa)
	r.uv = uv
	if !ok {
		return false
	}
	r.mtu = uv.st.port.MTU()
	r.p = header.NVGREParams{SrcMAC: [6]byte(uv.st.port.MAC()), DstMAC: nhMAC, SrcPA: up.pa.As4(), DstPA: pa.As4()}
	return true
}

// encapWith encapsulates f in place along r and queues it on the uplink.
func (w *worker) encapWith(f *ring.Frame, r *encapRoute, vsid uint32) encapResult {
	if int(f.Len)-header.EthernetHeaderLen+header.NVGREOverhead > r.mtu {
		w.drops[DropMTU]++
		return encapTooBig
	}
	buf := w.arena.Buffer(f.Index)
	p := r.p
	p.VSID = vsid
	start, err := header.EncapNVGRE(buf, int(f.Offset), int(f.Len), &p, header.FlowID(buf[f.Offset:f.Offset+f.Len]))
	if err != nil {
		w.drops[DropMalformed]++
		return encapDropped
	}
	f.Len += uint16(int(f.Offset) - start)
	f.Offset = uint16(start)
	w.enqueue(r.uv.st, f)
	return encapSent
}

type encapResult uint8

const (
	encapSent encapResult = iota
	encapDropped
	encapTooBig
)

// nextHopMAC resolves the provider next hop toward pa, asking with ARP on
// the uplink when its MAC is not known yet (the caller then holds the
// frame until the answer comes).
func (w *worker) nextHopMAC(ps *wnv.Snapshot, up *uplinks, uv *portView, pa netip.Addr) ([6]byte, bool) {
	nh, ok := ps.ProviderNextHop(pa)
	if !ok {
		return [6]byte{}, false
	}
	if mac, ok := w.sw.neigh.lookup(nh); ok {
		return mac, true
	}
	if src := uv.st.port.MAC(); len(src) == 6 {
		if buf, idx, ok := w.spare(); ok {
			n, err := header.WriteARPRequest(buf, [6]byte(src), up.pa.As4(), nh.As4())
			w.send(uv, idx, n, err)
		}
	}
	return [6]byte{}, false
}

// rewriteOut sends a routed IPv4 frame to a record with the rewrite rule
// (HNV TranslationMethodNat): source CA -> the source VM's own PA,
// destination CA -> the destination's PA, checksums updated incrementally,
// no encapsulation. Both records must be rewrite records.
func (w *worker) rewriteOut(snap *snapshot, ps *wnv.Snapshot, f *ring.Frame, d []byte, ip header.IPv4, srcRec, dstRec *wnv.LookupRecord) {
	up := w.sw.uplinksFor(ps)
	uv := snap.byName[up.port]
	if ip == nil || srcRec.Rule != wnv.RuleRewrite || !srcRec.PA.Is4() || !dstRec.PA.Is4() {
		w.drops[DropNoPolicy]++ // rewrite needs IPv4 and rewrite records at both ends
		return
	}
	if uv == nil || len(uv.st.port.MAC()) != 6 {
		w.drops[DropNoUplink]++
		return
	}
	if int(f.Len)-header.EthernetHeaderLen > uv.st.port.MTU() {
		w.drops[DropMTU]++
		return
	}
	mac, ok := w.nextHopMAC(ps, up, uv, dstRec.PA)
	if !ok {
		w.hold(f, dstRec.PA, dstRec, srcRec, 0)
		return
	}
	ip.SetAddrs(srcRec.PA.As4(), dstRec.PA.As4())
	copy(d[0:6], mac[:])
	copy(d[6:12], uv.st.port.MAC())
	w.enqueue(uv.st, f)
}

// rewriteIn takes an IPv4 frame addressed to one of our rewrite PAs back
// into its virtual subnet: destination PA -> its CA, source PA -> the CA
// the policy gives that PA, which must be in the same routing domain
// (rewrite-src otherwise). Returns false for frames to no rewrite PA.
func (w *worker) rewriteIn(snap *snapshot, ps *wnv.Snapshot, f *ring.Frame, d []byte) bool {
	ip, err := header.ParseIPv4(d[header.EthernetHeaderLen:])
	if err != nil {
		return false
	}
	vsid, dstCA, ok := ps.VSIDForPA(ip.DstAddr())
	if !ok {
		return false
	}
	srcVSID, srcCA, ok := ps.VSIDForPA(ip.SrcAddr())
	dstRec, _ := ps.LookupCA(vsid, dstCA)
	if !ok || dstRec == nil {
		w.drops[DropRewriteSrc]++
		return true
	}
	if dec := ps.Route(srcVSID, dstCA); (dec.Kind != wnv.Deliver && dec.Kind != wnv.Routed) || dec.Record != dstRec {
		w.drops[DropRewriteSrc]++ // the source's routing domain does not lead here
		return true
	}
	out := snap.byName[dstRec.VMName]
	if out == nil || out.dom == nil || out.dom.vsid != vsid {
		w.drops[DropNVGRENoDst]++
		return true
	}
	ip.SetAddrs(srcCA.As4(), dstCA.As4())
	copy(d[0:6], dstRec.MAC[:])
	if srcVSID == vsid {
		if srcRec, ok := ps.LookupCA(srcVSID, srcCA); ok {
			copy(d[6:12], srcRec.MAC[:])
		}
	} else {
		gw := ps.GatewayMAC()
		copy(d[6:12], gw[:])
	}
	f.VSID = vsid
	w.enqueue(out.st, f)
	return true
}

// Frames waiting for a provider next hop's MAC: at most maxPending per
// worker, for at most pendingSeconds; beyond either they are dropped and
// counted (arp-pending) on the uplink.
const (
	maxPending     = ring.BatchSize
	pendingSeconds = 2
)

type pendingFrame struct {
	f         ring.Frame        // a copy, in a spare buffer
	pa        netip.Addr        // the destination host
	rec, src  *wnv.LookupRecord // IP rewrite: destination and source records
	vsid      uint32            // NVGRE: the destination VSID; rewrite: 0 (src set)
	heldSince uint32
}

// hold keeps a copy of f until the next hop toward pa answers. rec and src
// are set for IP rewrite (destination and source records), nil for NVGRE.
func (w *worker) hold(f *ring.Frame, pa netip.Addr, rec, src *wnv.LookupRecord, vsid uint32) {
	if len(w.pending) == maxPending {
		w.drops[DropARPPending]++
		return
	}
	buf, idx, ok := w.spare()
	if !ok {
		return
	}
	n := copy(buf, w.arena.Buffer(f.Index)[f.Offset:f.Offset+f.Len])
	held := *f
	held.Index, held.Offset, held.Len = idx, uint16(w.arena.Headroom()), uint16(n)
	w.pending = append(w.pending, pendingFrame{f: held, pa: pa, rec: rec, src: src, vsid: vsid, heldSince: w.sw.clock.Load()})
}

// retryPending sends the held frames whose next hop is now known, drops
// those held too long, and keeps the rest.
func (w *worker) retryPending(snap *snapshot, now uint32) {
	pol := w.sw.cfg.Policy
	if pol == nil {
		return
	}
	ps := pol.Snapshot()
	up := w.sw.uplinksFor(ps)
	uv := snap.byName[up.port]
	kept := w.pending[:0]
	for _, p := range w.pending {
		nh, _ := ps.ProviderNextHop(p.pa)
		_, known := w.sw.neigh.lookup(nh)
		switch {
		case known && uv != nil:
			f := p.f
			if p.src != nil {
				d := w.arena.Buffer(f.Index)[f.Offset : f.Offset+f.Len]
				ip, _ := header.ParseIPv4(d[header.EthernetHeaderLen:])
				w.rewriteOut(snap, ps, &f, d, ip, p.src, p.rec)
			} else {
				w.encap(snap, ps, &f, p.pa, p.vsid)
			}
			w.borrowed = append(w.borrowed, p.f.Index)
		case uv == nil || now-p.heldSince > pendingSeconds:
			w.drops[DropARPPending]++
			w.pool.Put(p.f.Index)
		default:
			kept = append(kept, p)
		}
	}
	w.pending = kept
	if uv != nil {
		w.drops.flush(&uv.st.ctr)
	}
	w.flush()
	w.freeBorrowed()
}

// decapFlood delivers a replicated broadcast or multicast to every local
// port of its VSID, once its source is checked like any decapsulated frame.
func (w *worker) decapFlood(snap *snapshot, ps *wnv.Snapshot, f *ring.Frame, nf *header.NVGREFrame, inner []byte) bool {
	if !innerSourceFrom(ps, nf.VSID, inner, nf.SrcPA) {
		w.drops[DropNVGRESrc]++
		return true
	}
	dom := snap.byVSID[nf.VSID]
	if dom == nil {
		w.drops[DropNVGRENoDst]++
		return true
	}
	f.Offset += uint16(nf.Inner)
	f.Len = uint16(nf.InnerLen)
	f.VSID = nf.VSID
	for _, m := range dom.members {
		w.enqueue(snap.views[m].st, f)
	}
	return true
}

// replicate sends a copy of a broadcast or multicast frame from a WNV port
// to every other host with records in its VSID (head-end replication: one
// unicast NVGRE frame per host; the provider network needs no multicast).
func (w *worker) replicate(snap *snapshot, ps *wnv.Snapshot, f *ring.Frame, vsid uint32) {
	for _, pa := range ps.HostsForVSID(vsid) {
		if ps.IsLocalPA(pa) {
			continue
		}
		buf, idx, ok := w.spare()
		if !ok {
			return
		}
		n := copy(buf, w.arena.Buffer(f.Index)[f.Offset:f.Offset+f.Len])
		c := *f
		c.Index, c.Offset, c.Len = idx, uint16(w.arena.Headroom()), uint16(n)
		w.borrowed = append(w.borrowed, idx)
		w.encap(snap, ps, &c, pa, vsid)
	}
}

// decapEntry memoises the checks on one tunnelled flow (outer PAs, VSID,
// inner MACs and source address) for one policy version and snapshot.
type decapEntry struct {
	ver            uint64
	snap           *snapshot
	srcPA, dstPA   netip.Addr
	vsid           uint32
	dstMAC, srcMAC wnv.MAC
	srcIP          netip.Addr
	drop           DropReason // NumDropReasons: deliver to out
	out            *portView
}

const decapCacheSize = 1024

// innerSrcIP is the inner frame's IP source, if it has one.
func innerSrcIP(inner []byte) netip.Addr {
	switch binary.BigEndian.Uint16(inner[12:14]) {
	case header.EtherTypeIPv4:
		if ip, err := header.ParseIPv4(inner[header.EthernetHeaderLen:]); err == nil {
			return ip.SrcAddr()
		}
	case header.EtherTypeIPv6:
		if ip, err := header.ParseIPv6(inner[header.EthernetHeaderLen:]); err == nil {
			return ip.SrcAddr()
		}
	}
	return netip.Addr{}
}

// decapVerdict checks a unicast tunnelled frame (see decap), from the
// cache when the same flow was checked under the same policy.
func (w *worker) decapVerdict(snap *snapshot, ps *wnv.Snapshot, nf *header.NVGREFrame, inner []byte) *decapEntry {
	dstMAC, srcMAC, srcIP := wnv.MAC(inner[0:6]), wnv.MAC(inner[6:12]), innerSrcIP(inner)
	h := (uint64(nf.VSID)<<16 ^ mac48(inner[0:6])*0x9E3779B97F4A7C15 ^ mac48(inner[6:12])*0xC2B2AE3D27D4EB4F) >> 40
	de := &w.decaps[h&(decapCacheSize-1)]
	if de.ver == ps.Version() && de.snap == snap && de.srcPA == nf.SrcPA && de.dstPA == nf.DstPA && de.vsid == nf.VSID &&
		de.dstMAC == dstMAC && de.srcMAC == srcMAC && de.srcIP == srcIP {
		return de
	}
	*de = decapEntry{ver: ps.Version(), snap: snap, srcPA: nf.SrcPA, dstPA: nf.DstPA, vsid: nf.VSID, dstMAC: dstMAC, srcMAC: srcMAC, srcIP: srcIP}
	de.drop = func() DropReason {
		if !ps.IsLocalPA(nf.DstPA) {
			return DropNVGRENotOurs
		}
		if _, ok := ps.Subnet(nf.VSID); !ok {
			return DropNVGREVSID
		}
		dst, ok := ps.LookupMAC(nf.VSID, dstMAC)
		if ok && ps.IsLocalPA(dst.PA) {
			de.out = snap.byName[dst.VMName]
		}
		if de.out == nil || de.out.dom == nil || de.out.dom.vsid != nf.VSID {
			return DropNVGRENoDst
		}
		if !innerSourceFrom(ps, nf.VSID, inner, nf.SrcPA) {
			return DropNVGRESrc
		}
		return NumDropReasons
	}()
	return de
}
