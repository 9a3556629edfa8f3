package datapath

import (
	"encoding/binary"
	"net/netip"

	"github.com/xvswitch/xvs/header"
	"github.com/xvswitch/xvs/ring"
	"github.com/xvswitch/xvs/wnv"
)

// FromUplink is the WNV step for a batch that arrived on an uplink (a port
// of VSID 0 carrying one of this host's PAs: IsUplink). ARP is learned
// from everyone (the provider next hops' MACs) and answered for our PAs;
// NVGRE for our PAs is taken apart and delivered (decap); IPv4 to one of
// our rewrite PAs is rewritten back to its CA (rewriteIn). Everything else
// is Continue: the non-virtualized bridge forwards it as before.
func (m *Module) FromUplink(in *Port, b *ring.Batch) []Verdict {
	vs := m.verdictsFor(b.N)
	for i := range b.N {
		d := b.Data(i)
		switch binary.BigEndian.Uint16(d[12:14]) {
		case header.EtherTypeARP:
			m.providerARP(in, d, &vs[i])
		case header.EtherTypeIPv4:
			if !m.decap(&b.Frames[i], d, &vs[i]) {
				m.rewriteIn(&b.Frames[i], d, &vs[i])
			}
		}
	}
	return vs
}

func (m *Module) providerARP(in *Port, d []byte, v *Verdict) {
	arp, err := header.ParseARP(d[header.EthernetHeaderLen:])
	if err != nil {
		return
	}
	spa := arp.SPAAddr()
	forUs := arp.Op() == header.ARPRequest && m.pol.IsLocalPA(arp.TPAAddr())
	// A host asking for one of our PAs is learned only if it is a host of
	// the fabric (it has records), so that requests from made-up
	// addresses cannot fill the table.
	hostForUs := forUs && len(m.pol.RecordsByPA(spa)) > 0
	switch m.prov.neigh.observe(spa, arp.SHA(), arp.Op() == header.ARPReply, hostForUs, m.now) {
	case learnRefused:
		m.drop(v, DropNeighborChanged) // a claim on a next hop's address: not flooded either
		return
	case learnChanged:
		m.drops[DropNeighborChanged]++ // believed (we asked), counted and logged
	}
	if !forUs {
		return // not for us: the bridge floods it as before
	}
	if in.Dev == nil || len(in.Dev.MAC()) != 6 {
		return
	}
	v.Action = Taken
	if buf, idx, ok := m.spare(); ok {
		n, err := header.WriteARPReply(buf, arp, [6]byte(in.Dev.MAC()))
		m.emit(in.Index, idx, n, err)
	}
}

// decap takes apart an NVGRE frame for one of our PAs and delivers the
// inner frame, after checking everything it is told: outer destination
// ours, a well-formed NVGRE header (key present, protocol 0x6558), a VSID
// that is a virtual subnet here, an inner destination with a local port in
// that VSID, and an outer source PA that is the one the policy gives the
// inner source CA. Returns false for frames that are not GRE.
func (m *Module) decap(f *ring.Frame, d []byte, v *Verdict) bool {
	if len(d) < header.EthernetHeaderLen+20 || d[header.EthernetHeaderLen+9] != header.ProtocolGRE {
		return false
	}
	nf, err := header.DecapNVGRE(d)
	if err != nil {
		m.drop(v, DropNVGREInvalid)
		return true
	}
	inner := d[nf.Inner : nf.Inner+nf.InnerLen]
	if inner[0]&1 != 0 { // head-end replicated broadcast or multicast
		if r := decapFloodCheck(m.pol, &nf, inner); r != NumReasons {
			m.drop(v, r)
			return true
		}
		f.Offset += uint16(nf.Inner)
		f.Len = uint16(nf.InnerLen)
		f.VSID = nf.VSID
		v.Action = Flood
		return true
	}
	de := m.decapVerdict(&nf, inner)
	if de.drop != NumReasons {
		m.drop(v, de.drop)
		return true
	}
	f.Offset += uint16(nf.Inner)
	f.Len = uint16(nf.InnerLen)
	f.VSID = nf.VSID
	v.Action, v.Port = Deliver, de.out.Index
	return true
}

// decapFloodCheck checks a replicated broadcast or multicast like any
// decapsulated frame; NumReasons: flood it in its VSID.
func decapFloodCheck(ps *wnv.Snapshot, nf *header.NVGREFrame, inner []byte) Reason {
	if !ps.IsLocalPA(nf.DstPA) {
		return DropNVGRENotOurs
	}
	if _, ok := ps.Subnet(nf.VSID); !ok {
		return DropNVGREVSID
	}
	switch {
	case !innerSourceFrom(ps, nf.VSID, inner, nf.SrcPA):
		return DropNVGRESrc
	}
	return NumReasons
}

// innerSourceFrom reports whether the inner frame's source is a CA the
// policy places behind pa (by IP for IP frames, by MAC otherwise).
func innerSourceFrom(ps *wnv.Snapshot, vsid uint32, inner []byte, pa netip.Addr) bool {
	src := innerSrcIP(inner)
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

// decapEntry memoises the checks on one tunnelled flow (outer PAs, VSID,
// inner MACs and source address) for one policy version and port table.
type decapEntry struct {
	ver            uint64
	ports          *Ports
	srcPA, dstPA   netip.Addr
	vsid           uint32
	dstMAC, srcMAC wnv.MAC
	srcIP          netip.Addr
	drop           Reason // NumReasons: deliver to out
	out            *Port
}

const decapCacheSize = 1024

func mac48(b []byte) uint64 {
	return uint64(binary.BigEndian.Uint32(b))<<16 | uint64(binary.BigEndian.Uint16(b[4:]))
}

// decapVerdict checks a unicast tunnelled frame (see decap), from the
// cache when the same flow was checked under the same policy.
func (m *Module) decapVerdict(nf *header.NVGREFrame, inner []byte) *decapEntry {
	dstMAC, srcMAC, srcIP := wnv.MAC(inner[0:6]), wnv.MAC(inner[6:12]), innerSrcIP(inner)
	h := (uint64(nf.VSID)<<16 ^ mac48(inner[0:6])*0x9E3779B97F4A7C15 ^ mac48(inner[6:12])*0xC2B2AE3D27D4EB4F) >> 40
	de := &m.decaps[h&(decapCacheSize-1)]
	ps := m.pol
	if de.ver == ps.Version() && de.ports == m.ports && de.srcPA == nf.SrcPA && de.dstPA == nf.DstPA && de.vsid == nf.VSID &&
		de.dstMAC == dstMAC && de.srcMAC == srcMAC && de.srcIP == srcIP {
		return de
	}
	*de = decapEntry{ver: ps.Version(), ports: m.ports, srcPA: nf.SrcPA, dstPA: nf.DstPA, vsid: nf.VSID, dstMAC: dstMAC, srcMAC: srcMAC, srcIP: srcIP}
	de.out, de.drop = decapCheck(ps, m.ports, nf, inner)
	return de
}

// decapCheck is the decision on a unicast tunnelled frame, as decap
// applies it and Explain tells it.
func decapCheck(ps *wnv.Snapshot, ports *Ports, nf *header.NVGREFrame, inner []byte) (*Port, Reason) {
	if !ps.IsLocalPA(nf.DstPA) {
		return nil, DropNVGRENotOurs
	}
	if _, ok := ps.Subnet(nf.VSID); !ok {
		return nil, DropNVGREVSID
	}
	var out *Port
	if dst, ok := ps.LookupMAC(nf.VSID, wnv.MAC(inner[0:6])); ok && ps.IsLocalPA(dst.PA) {
		out = ports.inVSID(dst.VMName, nf.VSID)
	}
	if out == nil {
		return nil, DropNVGRENoDst
	}
	if !innerSourceFrom(ps, nf.VSID, inner, nf.SrcPA) {
		return nil, DropNVGRESrc
	}
	return out, NumReasons
}

// rewriteIn takes an IPv4 frame addressed to one of our rewrite PAs back
// into its virtual subnet: destination PA -> its CA, source PA -> the CA
// the policy gives that PA, which must be in the same routing domain
// (rewrite-src otherwise). Frames to no rewrite PA stay Continue.
func (m *Module) rewriteIn(f *ring.Frame, d []byte, v *Verdict) {
	ps := m.pol
	ip, err := header.ParseIPv4(d[header.EthernetHeaderLen:])
	if err != nil {
		return
	}
	vsid, dstCA, ok := ps.VSIDForPA(ip.DstAddr())
	if !ok {
		return
	}
	srcVSID, srcCA, ok := ps.VSIDForPA(ip.SrcAddr())
	dstRec, _ := ps.LookupCA(vsid, dstCA)
	if !ok || dstRec == nil {
		m.drop(v, DropRewriteSrc)
		return
	}
	if dec := ps.Route(srcVSID, dstCA); (dec.Kind != wnv.Deliver && dec.Kind != wnv.Routed) || dec.Record != dstRec {
		m.drop(v, DropRewriteSrc) // the source's routing domain does not lead here
		return
	}
	out := m.ports.inVSID(dstRec.VMName, vsid)
	if out == nil {
		m.drop(v, DropNVGRENoDst)
		return
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
	v.Action, v.Port = Deliver, out.Index
}
