package datapath

import (
	"net/netip"

	"github.com/xvswitch/xvs/header"
	"github.com/xvswitch/xvs/ring"
	"github.com/xvswitch/xvs/wnv"
)

// The way out to other hosts: NVGRE encapsulation (RFC 7637) or IP
// rewrite, out of the uplink, to the provider next hop's MAC; frames whose
// next hop has not answered ARP yet wait (hold) until it does.

// encapRoute is how to reach one remote PA: the uplink, the outer
// addresses and the MTU. Valid for one port table, policy version and
// neighbor table version.
type encapRoute struct {
	up       *Port
	mtu      int
	p        header.NVGREParams // without VSID
	neighVer uint64
}

// uplinkPort returns the uplink encapsulated frames leave by, and its PA,
// if it is a port of the switch with a MAC.
func (m *Module) uplinkPort() (*Port, netip.Addr, *uplinks) {
	u := m.prov.uplinksFor(m.pol)
	p := m.ports.ByName(u.port)
	if p == nil || p.Dev == nil || len(p.Dev.MAC()) != 6 {
		return nil, u.pa, u
	}
	return p, u.pa, u
}

// encapRouteTo fills r for pa. false with r.up set: the next hop's MAC is
// being asked for (hold the frame); false with r.up nil: no way there.
func (m *Module) encapRouteTo(pa netip.Addr, r *encapRoute) bool {
	r.up = nil
	up, srcPA, _ := m.uplinkPort()
	if up == nil || !srcPA.Is4() || !pa.Is4() {
		return false
	}
	if _, ok := m.pol.ProviderNextHop(pa); !ok {
		return false
	}
	r.neighVer = m.prov.neigh.ver.Load()
	nhMAC, ok := m.nextHopMAC(up, srcPA, pa)
	r.up = up
	if !ok {
		return false
	}
	r.mtu = up.Dev.MTU()
	r.p = header.NVGREParams{SrcMAC: [6]byte(up.Dev.MAC()), DstMAC: nhMAC, SrcPA: srcPA.As4(), DstPA: pa.As4()}
	return true
}

type encapResult uint8

const (
	encapSent encapResult = iota
	encapDropped
	encapTooBig
)

// encap sends f (already routed to a record of vsid) to the host pa: see
// encapRouteTo and encapWith. A frame waiting for the next hop is Taken.
func (m *Module) encap(f *ring.Frame, pa netip.Addr, vsid uint32, v *Verdict) encapResult {
	var route encapRoute
	if !m.encapRouteTo(pa, &route) {
		if route.up != nil {
			m.hold(f, pa, nil, nil, vsid, v)
		} else {
			m.drop(v, DropNoUplink)
		}
		return encapDropped
	}
	return m.encapWith(f, &route, vsid, v)
}

// encapWith encapsulates f in place along r: Send on the uplink, or mtu
// when it would no longer fit (the caller answers with ICMP).
func (m *Module) encapWith(f *ring.Frame, r *encapRoute, vsid uint32, v *Verdict) encapResult {
	if int(f.Len)-header.EthernetHeaderLen+header.NVGREOverhead > r.mtu {
		m.drop(v, DropMTU)
		return encapTooBig
	}
	buf := m.arena.Buffer(f.Index)
	p := r.p
	p.VSID = vsid
	if f.Hash == 0 {
		// The inner flow's hash: the FlowID, and the uplink's transmit
		// queue (the outer headers of two hosts' traffic are all alike).
		f.Hash = header.FlowHash(buf[f.Offset : f.Offset+f.Len])
	}
	start, err := header.EncapNVGRE(buf, int(f.Offset), int(f.Len), &p, header.FlowIDOf(f.Hash))
	if err != nil {
		m.drop(v, DropMalformed)
		return encapDropped
	}
	f.Len += uint16(int(f.Offset) - start)
	f.Offset = uint16(start)
	v.Action, v.Port = Send, r.up.Index
	return encapSent
}

// nextHopMAC resolves the provider next hop toward pa, asking with ARP on
// the uplink when its MAC is not known yet (the caller then holds the
// frame until the answer comes).
func (m *Module) nextHopMAC(up *Port, srcPA, pa netip.Addr) ([6]byte, bool) {
	nh, ok := m.pol.ProviderNextHop(pa)
	if !ok {
		return [6]byte{}, false
	}
	mac, known := m.prov.neigh.lookup(nh)
	// Ask when the next hop is unknown or its entry is stale, at most once
	// a second whatever the traffic; a stale MAC is still used meanwhile.
	if m.prov.neigh.want(nh, m.now) {
		if buf, idx, ok := m.spare(); ok {
			n, err := header.WriteARPRequest(buf, [6]byte(up.Dev.MAC()), srcPA.As4(), nh.As4())
			m.emit(up.Index, idx, n, err)
		}
	}
	return mac, known
}

// rewriteOut sends a routed IPv4 frame to a record with the rewrite rule
// (HNV TranslationMethodNat): source CA -> the source VM's own PA,
// destination CA -> the destination's PA, checksums updated incrementally,
// no encapsulation. Both records must be rewrite records. A frame larger
// than the uplink's MTU is mtu (encapTooBig: the caller answers it).
func (m *Module) rewriteOut(f *ring.Frame, d []byte, ip header.IPv4, srcRec, dstRec *wnv.LookupRecord, v *Verdict) (encapResult, int) {
	if ip == nil || srcRec.Rule != wnv.RuleRewrite || !srcRec.PA.Is4() || !dstRec.PA.Is4() {
		m.drop(v, DropNoPolicy) // rewrite needs IPv4 and rewrite records at both ends
		return encapDropped, 0
	}
	up, srcPA, _ := m.uplinkPort()
	if up == nil {
		m.drop(v, DropNoUplink)
		return encapDropped, 0
	}
	if mtu := up.Dev.MTU(); int(f.Len)-header.EthernetHeaderLen > mtu {
		m.drop(v, DropMTU)
		return encapTooBig, mtu
	}
	mac, ok := m.nextHopMAC(up, srcPA, dstRec.PA)
	if !ok {
		m.hold(f, dstRec.PA, dstRec, srcRec, 0, v)
		return encapDropped, 0
	}
	ip.SetAddrs(srcRec.PA.As4(), dstRec.PA.As4())
	copy(d[0:6], mac[:])
	copy(d[6:12], up.Dev.MAC())
	v.Action, v.Port = Send, up.Index
	return encapSent, 0
}

// Frames waiting for a provider next hop's MAC: at most MaxPending per
// module, for at most PendingSeconds; beyond either they are dropped and
// counted (arp-pending).
const (
	MaxPending     = ring.BatchSize
	PendingSeconds = 2
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
func (m *Module) hold(f *ring.Frame, pa netip.Addr, rec, src *wnv.LookupRecord, vsid uint32, v *Verdict) {
	if len(m.pending) == MaxPending {
		m.drop(v, DropARPPending)
		return
	}
	held, ok := m.copyFrame(f)
	if !ok {
		v.Action, v.Reason = Drop, DropPoolEmpty // counted by spare
		return
	}
	v.Action = Taken
	m.pending = append(m.pending, pendingFrame{f: held, pa: pa, rec: rec, src: src, vsid: vsid, heldSince: m.now})
}

// Pending is how many frames wait for a next hop's MAC.
func (m *Module) Pending() int { return len(m.pending) }

// Retry sends the held frames whose next hop is now known (emitted toward
// the uplink), drops those held too long (arp-pending), and keeps the
// rest. It returns the uplink's index, for the caller to count the drops
// on, and false when there is no uplink.
func (m *Module) Retry() (uplink uint16, ok bool) {
	if m.pol == nil {
		return 0, false
	}
	up, _, _ := m.uplinkPort()
	kept := m.pending[:0]
	for _, p := range m.pending {
		nh, _ := m.pol.ProviderNextHop(p.pa)
		_, known := m.prov.neigh.lookup(nh)
		switch {
		case known && up != nil:
			f := p.f
			var v Verdict
			if p.src != nil {
				d := m.arena.Buffer(f.Index)[f.Offset : f.Offset+f.Len]
				ip, _ := header.ParseIPv4(d[header.EthernetHeaderLen:])
				m.rewriteOut(&f, d, ip, p.src, p.rec, &v)
			} else {
				m.encap(&f, p.pa, p.vsid, &v)
			}
			m.borrowed = append(m.borrowed, p.f.Index)
			if v.Action == Send {
				m.Emits = append(m.Emits, Emit{Frame: f, Port: v.Port})
			}
		case up == nil || m.now-p.heldSince > PendingSeconds:
			m.drops[DropARPPending]++
			m.pool.Put(p.f.Index)
		default:
			kept = append(kept, p)
		}
	}
	m.pending = kept
	if up == nil {
		return 0, false
	}
	return up.Index, true
}
