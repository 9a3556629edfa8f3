package vswitch

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sort"

	"github.com/xvswitch/xvs/api"
	"github.com/xvswitch/xvs/header"
	"github.com/xvswitch/xvs/wnv"
)

// TraceStep is one stage's decision about a traced frame; it is the
// control API's type.
type TraceStep = api.TraceStep

// Trace shows what each stage of the pipeline would decide for frame
// arriving on port, without sending it, learning from it or counting it.
// It follows the same rules as the data path, on the current policy and
// MAC tables.
func (s *Switch) Trace(port string, frame []byte) ([]TraceStep, error) {
	snap := s.snap.Load()
	v, ok := snap.byName[port]
	if !ok {
		return nil, fmt.Errorf("trace: port %s: %w", port, ErrNoSuchPort)
	}
	var out []TraceStep
	step := func(stage, format string, a ...any) {
		out = append(out, TraceStep{Stage: stage, Decision: fmt.Sprintf(format, a...)})
	}
	if v.dom == nil {
		step("ingress", "drop (no-vsid): port %s has no VSID", port)
		return out, nil
	}
	if len(frame) < header.EthernetHeaderLen {
		step("ingress", "drop (malformed): %d bytes, shorter than an Ethernet header", len(frame))
		return out, nil
	}
	vsid := v.dom.vsid
	dst, src := [6]byte(frame[0:6]), [6]byte(frame[6:12])
	typ := binary.BigEndian.Uint16(frame[12:14])
	step("ingress", "port %s, VSID %d, %s -> %s, type %#04x, %d bytes", port, vsid, wnv.MAC(src), wnv.MAC(dst), typ, len(frame))
	if src[0]&1 != 0 {
		step("forwarding", "drop (malformed): multicast source MAC")
		return out, nil
	}
	var ps *wnv.Snapshot
	if pol := s.cfg.Policy; pol != nil && vsid != VSIDNone {
		ps = pol.Snapshot()
		if _, virtual := ps.Subnet(vsid); !virtual {
			ps = nil
		}
	}
	if ps != nil {
		if done := traceProxy(ps, vsid, frame, step); done {
			return out, nil
		}
	} else if vsid != VSIDNone {
		step("proxy", "none: VSID %d is not a virtual subnet of the policy (plain L2 segment)", vsid)
	}
	step("extensions", "none loaded")
	if ps != nil && dst[0]&1 == 0 {
		if done := s.traceRoute(snap, v, ps, vsid, frame, step); done {
			return out, nil
		}
	}
	// the learning bridge of the VSID
	var ports []string
	flood := func(why string) {
		for _, m := range v.dom.members {
			if pv := snap.views[m]; pv != v {
				ports = append(ports, pv.st.name)
			}
		}
		sort.Strings(ports)
		step("forwarding", "%s: flood in VSID %d to %v", why, vsid, ports)
	}
	switch {
	case dst[0]&1 != 0:
		flood("broadcast/multicast")
		if ps != nil && s.cfg.HeadEndReplication {
			var hosts []string
			for _, pa := range ps.HostsForVSID(vsid) {
				if !ps.IsLocalPA(pa) {
					hosts = append(hosts, pa.String())
				}
			}
			step("egress", "head-end replication to hosts %v", hosts)
		}
	default:
		if slot := v.dom.macs.lookup(mac48(dst[:])); slot != nil {
			outIdx := slot.port.Load()
			if int(outIdx) < len(snap.views) && snap.views[outIdx] != nil {
				if snap.views[outIdx] == v {
					step("forwarding", "drop (same-port): %s was learned on the ingress port", wnv.MAC(dst))
				} else {
					step("forwarding", "known unicast: to port %s", snap.views[outIdx].st.name)
				}
				return out, nil
			}
		}
		flood("unknown unicast")
	}
	return out, nil
}

// traceProxy explains the ARP/ND proxy; true when the frame stops there.
func traceProxy(ps *wnv.Snapshot, vsid uint32, frame []byte, step func(string, string, ...any)) bool {
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case header.EtherTypeARP:
		arp, err := header.ParseARP(frame[header.EthernetHeaderLen:])
		switch {
		case err != nil:
			step("proxy", "drop (malformed): %v", err)
		case arp.Op() != header.ARPRequest || arp.IsGratuitous():
			step("proxy", "absorbed (proxied): ARP replies and announcements from VMs stop at the switch")
		default:
			if mac, ok := resolve(ps, vsid, arp.TPAAddr()); ok {
				step("proxy", "answered (proxied): %s is at %s", arp.TPAAddr(), wnv.MAC(mac))
			} else {
				step("proxy", "drop (no-policy): no lookup record for %s in VSID %d", arp.TPAAddr(), vsid)
			}
		}
		return true
	case header.EtherTypeIPv6:
		ip, err := header.ParseIPv6(frame[header.EthernetHeaderLen:])
		if err == nil && ip.NextHeader() == header.ProtocolICMPv6 && len(ip.Payload()) > 0 && ip.Payload()[0] == icmpv6NeighborSolicit {
			if ns, err := header.ParseNeighborSolicit(ip); err == nil {
				if mac, ok := resolve(ps, vsid, ns.TargetAddr()); ok {
					step("proxy", "answered (proxied): %s is at %s", ns.TargetAddr(), wnv.MAC(mac))
				} else {
					step("proxy", "drop (no-policy): no lookup record for %s in VSID %d", ns.TargetAddr(), vsid)
				}
				return true
			}
		}
	}
	step("proxy", "not ARP or neighbor solicitation: passes")
	return false
}

// traceRoute explains the WNV route stage; true when it decides.
func (s *Switch) traceRoute(snap *snapshot, v *portView, ps *wnv.Snapshot, vsid uint32, frame []byte, step func(string, string, ...any)) bool {
	var srcIP, dstIP netip.Addr
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case header.EtherTypeIPv4:
		ip, err := header.ParseIPv4(frame[header.EthernetHeaderLen:])
		if err != nil {
			step("route", "drop (malformed): %v", err)
			return true
		}
		srcIP, dstIP = ip.SrcAddr(), ip.DstAddr()
	case header.EtherTypeIPv6:
		ip, err := header.ParseIPv6(frame[header.EthernetHeaderLen:])
		if err != nil {
			step("route", "drop (malformed): %v", err)
			return true
		}
		srcIP, dstIP = ip.SrcAddr(), ip.DstAddr()
		if srcIP.IsLinkLocalUnicast() || dstIP.IsLinkLocalUnicast() {
			step("route", "link-local: left to the bridge")
			return false
		}
	default:
		step("route", "not IP: left to the bridge")
		return false
	}
	fe := policyVerdict(snap, v, ps, vsid, srcIP, dstIP, wnv.MAC(frame[6:12]))
	switch fe.drop {
	case NumDropReasons:
	case DropSpoof:
		step("route", "drop (spoof): %s from %s is not a CA of port %s with that MAC", srcIP, wnv.MAC(frame[6:12]), v.st.name)
		return true
	default:
		step("route", "drop (%s): %s from VSID %d", fe.drop, dstIP, vsid)
		return true
	}
	how := "delivered in VSID"
	if fe.routed {
		how = "routed through the gateway to VSID"
	}
	r := fe.rec
	step("route", "%s %s %d: record %s (MAC %s, PA %s, rule %s)", dstIP, how, fe.dstVSID, r.CA, r.MAC, r.PA, r.Rule)
	if !fe.remote {
		step("egress", "local: to port %s", r.VMName)
		return true
	}
	up := s.uplinksFor(ps)
	nh, ok := ps.ProviderNextHop(r.PA)
	if !ok || snap.byName[up.port] == nil {
		step("egress", "drop (no-uplink): no uplink port or provider route toward %s", r.PA)
		return true
	}
	mac, known := s.neigh.lookup(nh)
	nhs := "unknown yet (would be held while xvs asks with ARP)"
	if known {
		nhs = wnv.MAC(mac).String()
	}
	if r.Rule == wnv.RuleRewrite {
		step("egress", "IP rewrite to %s out of %s, next hop %s (%s)", r.PA, up.port, nh, nhs)
	} else {
		step("egress", "NVGRE to %s (VSID %d) out of %s, next hop %s (%s)", r.PA, fe.dstVSID, up.port, nh, nhs)
	}
	return true
}
