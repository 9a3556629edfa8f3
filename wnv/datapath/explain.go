package datapath

import (
	"encoding/binary"

	"github.com/xvswitch/xvs/header"
	"github.com/xvswitch/xvs/wnv"
)

// Step records one decision of an explanation: the stage that made it
// and what it decided, printf-style.
type Step func(stage, format string, args ...any)

// Explainer tells what the module would do with one frame, by the same
// rules as the data path, without sending, learning, holding or counting
// anything: the WNV part of xvsctl trace.
type Explainer struct {
	Policy             *wnv.Snapshot
	Ports              *Ports
	Provider           *Provider
	HeadEndReplication bool
}

// Resolve explains Resolve for a frame from in; true when the frame stops
// there.
func (e *Explainer) Resolve(in *Port, frame []byte, step Step) bool {
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case header.EtherTypeARP:
		arp, err := header.ParseARP(frame[header.EthernetHeaderLen:])
		switch {
		case err != nil:
			step("proxy", "drop (malformed): %v", err)
		case arp.Op() != header.ARPRequest || arp.IsGratuitous():
			step("proxy", "absorbed (proxied): ARP replies and announcements from VMs stop at the switch")
		default:
			if mac, ok := Resolve(e.Policy, in.VSID, arp.TPAAddr()); ok {
				step("proxy", "answered (proxied): %s is at %s", arp.TPAAddr(), wnv.MAC(mac))
			} else {
				step("proxy", "drop (no-policy): no lookup record for %s in VSID %d", arp.TPAAddr(), in.VSID)
			}
		}
		return true
	case header.EtherTypeIPv6:
		ip, err := header.ParseIPv6(frame[header.EthernetHeaderLen:])
		if err == nil && ip.NextHeader() == header.ProtocolICMPv6 && len(ip.Payload()) > 0 && ip.Payload()[0] == header.ICMPv6NeighborSolicit {
			if ns, err := header.ParseNeighborSolicit(ip); err == nil {
				if mac, ok := Resolve(e.Policy, in.VSID, ns.TargetAddr()); ok {
					step("proxy", "answered (proxied): %s is at %s", ns.TargetAddr(), wnv.MAC(mac))
				} else {
					step("proxy", "drop (no-policy): no lookup record for %s in VSID %d", ns.TargetAddr(), in.VSID)
				}
				return true
			}
		}
	}
	step("proxy", "not ARP or neighbor solicitation: passes")
	return false
}

// Route explains Route for a unicast frame from in; true when it decides
// (false: the bridge does).
func (e *Explainer) Route(in *Port, frame []byte, step Step) bool {
	var r routable
	bridge, err := readRoutable(frame, &r)
	switch {
	case err != nil:
		step("route", "drop (malformed): %v", err)
		return true
	case bridge && r.ip6 != nil:
		step("route", "link-local: left to the bridge")
		return false
	case bridge:
		step("route", "not IP: left to the bridge")
		return false
	}
	srcIP, dstIP, ttl := r.src, r.dst, r.hops
	fe := flowVerdict(e.Policy, e.Ports, in, srcIP, dstIP, wnv.MAC(frame[6:12]))
	switch fe.drop {
	case NumReasons:
	case DropSpoof:
		step("route", "drop (spoof): %s from %s is not a CA of port %s with that MAC", srcIP, wnv.MAC(frame[6:12]), in.Name)
		return true
	default:
		step("route", "drop (%s): %s from VSID %d", fe.drop, dstIP, in.VSID)
		return true
	}
	how := "delivered in VSID"
	if fe.routed {
		how = "routed through the gateway to VSID"
	}
	rec := fe.rec
	step("route", "%s %s %d: record %s (MAC %s, PA %s, rule %s)", dstIP, how, fe.dstVSID, rec.CA, rec.MAC, rec.PA, rec.Rule)
	if fe.routed && ttl <= 1 {
		step("route", "drop (ttl): hop limit %d runs out here; ICMP time exceeded back to %s", ttl, in.Name)
		return true
	}
	if !fe.remote {
		step("egress", "local: to port %s", rec.VMName)
		return true
	}
	port, _ := e.Provider.Uplink(e.Policy)
	nh, ok := e.Policy.ProviderNextHop(rec.PA)
	if !ok || e.Ports.ByName(port) == nil {
		step("egress", "drop (no-uplink): no uplink port or provider route toward %s", rec.PA)
		return true
	}
	mac, known := e.Provider.Neighbor(nh)
	nhs := "unknown yet (would be held while xvs asks with ARP)"
	if known {
		nhs = wnv.MAC(mac).String()
	}
	if rec.Rule == wnv.RuleRewrite {
		step("egress", "IP rewrite to %s out of %s, next hop %s (%s)", rec.PA, port, nh, nhs)
	} else {
		step("egress", "NVGRE to %s (VSID %d) out of %s, next hop %s (%s)", rec.PA, fe.dstVSID, port, nh, nhs)
	}
	return true
}

// Replication explains head-end replication of a broadcast or multicast
// frame from vsid.
func (e *Explainer) Replication(vsid uint32, step Step) {
	if !e.HeadEndReplication {
		return
	}
	var hosts []string
	for _, pa := range e.Policy.HostsForVSID(vsid) {
		if !e.Policy.IsLocalPA(pa) {
			hosts = append(hosts, pa.String())
		}
	}
	step("egress", "head-end replication to hosts %v", hosts)
}

// Uplink explains FromUplink for a frame that arrived on the uplink in;
// true when the module decides (false: the non-virtualized bridge does).
// flood, when it returns true with a VSID, asks the caller to tell the
// flood of a replicated broadcast in that VSID.
func (e *Explainer) Uplink(in *Port, frame []byte, step Step) (done bool, flood uint32) {
	ps := e.Policy
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case header.EtherTypeARP:
		arp, err := header.ParseARP(frame[header.EthernetHeaderLen:])
		if err != nil {
			step("uplink", "ARP that does not parse (%v): left to the bridge", err)
			return false, 0
		}
		if arp.Op() == header.ARPRequest && ps.IsLocalPA(arp.TPAAddr()) {
			step("uplink", "ARP for our PA %s: answered with %s's MAC (and %s learned at %s)", arp.TPAAddr(), in.Name, arp.SPAAddr(), wnv.MAC(arp.SHA()))
			return true, 0
		}
		step("uplink", "ARP: %s learned at %s; not for one of our PAs: left to the bridge", arp.SPAAddr(), wnv.MAC(arp.SHA()))
		return false, 0
	case header.EtherTypeIPv4:
	default:
		step("uplink", "not IPv4 or ARP: left to the bridge")
		return false, 0
	}
	if len(frame) >= header.EthernetHeaderLen+20 && frame[header.EthernetHeaderLen+9] == header.ProtocolGRE {
		nf, err := header.DecapNVGRE(frame)
		if err != nil {
			step("decap", "drop (nvgre-invalid): %v", err)
			return true, 0
		}
		inner := frame[nf.Inner : nf.Inner+nf.InnerLen]
		step("decap", "NVGRE from %s to %s, VSID %d, FlowID %d: inner %s -> %s", nf.SrcPA, nf.DstPA, nf.VSID, nf.FlowID, wnv.MAC(inner[6:12]), wnv.MAC(inner[0:6]))
		if inner[0]&1 != 0 {
			if r := decapFloodCheck(ps, &nf, inner); r != NumReasons {
				step("decap", "drop (%s): %s", r, decapWhy(r, &nf))
				return true, 0
			}
			return true, nf.VSID
		}
		out, r := decapCheck(ps, e.Ports, &nf, inner)
		if r != NumReasons {
			step("decap", "drop (%s): %s", r, decapWhy(r, &nf))
			return true, 0
		}
		step("decap", "delivered: to port %s in VSID %d", out.Name, nf.VSID)
		return true, 0
	}
	ip, err := header.ParseIPv4(frame[header.EthernetHeaderLen:])
	if err != nil {
		step("uplink", "IPv4 that does not parse (%v): left to the bridge", err)
		return false, 0
	}
	vsid, dstCA, ok := ps.VSIDForPA(ip.DstAddr())
	if !ok {
		step("uplink", "not NVGRE and not to a rewrite PA of ours: left to the bridge")
		return false, 0
	}
	step("rewrite", "to rewrite PA %s: CA %s in VSID %d", ip.DstAddr(), dstCA, vsid)
	return true, 0
}

// decapWhy says in words what a decap drop reason means for nf.
func decapWhy(r Reason, nf *header.NVGREFrame) string {
	switch r {
	case DropNVGRENotOurs:
		return nf.DstPA.String() + " is not one of our provider addresses"
	case DropNVGREVSID:
		return "VSID is not a virtual subnet of this host's policy"
	case DropNVGRENoDst:
		return "the inner destination has no port here in the VSID"
	case DropNVGRESrc:
		return "the policy does not place the inner source behind " + nf.SrcPA.String()
	}
	return r.String()
}
