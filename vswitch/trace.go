package vswitch

import (
	"encoding/binary"
	"fmt"
	"sort"

	ctlapi "github.com/xvswitch/xvs/api"
	"github.com/xvswitch/xvs/extensions/api"
	"github.com/xvswitch/xvs/header"
	"github.com/xvswitch/xvs/wnv"
	"github.com/xvswitch/xvs/wnv/datapath"
)

// TraceStep is one stage's decision about a traced frame; it is the
// control API's type.
type TraceStep = ctlapi.TraceStep

// Trace shows what each stage of the pipeline would decide for frame
// arriving on port, without sending it, learning from it or counting it.
// It follows the same rules as the data path, on the current policy,
// extension chain and MAC tables.
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
	var ex *datapath.Explainer
	if pol := s.cfg.Policy; pol != nil {
		ex = &datapath.Explainer{Policy: pol.Snapshot(), Ports: snap.wnvPorts, Provider: s.provider, HeadEndReplication: s.cfg.HeadEndReplication}
	}
	virtual := false
	if ex != nil && vsid != VSIDNone {
		_, virtual = ex.Policy.Subnet(vsid)
	}
	if ex != nil && vsid == VSIDNone && uplinkPA(ex.Policy, port) {
		done, flood := ex.Uplink(v.wnvPort, frame, step)
		if flood != 0 {
			s.traceFlood(snap, snap.byVSID[flood], nil, flood, "replicated broadcast/multicast", step)
		}
		if done {
			return out, nil
		}
	}
	if src[0]&1 != 0 {
		step("forwarding", "drop (malformed): multicast source MAC")
		return out, nil
	}
	if virtual {
		if ex.Resolve(v.wnvPort, frame, step) {
			return out, nil
		}
	} else if vsid != VSIDNone {
		step("proxy", "none: VSID %d is not a virtual subnet of the policy (plain L2 segment)", vsid)
	}
	s.traceExtensions(snap, api.Ingress, v.st.idx, vsid, step)
	if virtual && dst[0]&1 == 0 {
		if ex.Route(v.wnvPort, frame, step) {
			return out, nil
		}
	}
	// the learning bridge of the VSID
	switch {
	case dst[0]&1 != 0:
		s.traceFlood(snap, v.dom, v, vsid, "broadcast/multicast", step)
		if virtual {
			ex.Replication(vsid, step)
		}
	default:
		if slot := v.dom.macs.lookup(mac48(dst[:])); slot != nil {
			outIdx := slot.port.Load()
			if int(outIdx) < len(snap.views) && snap.views[outIdx] != nil {
				if snap.views[outIdx] == v {
					step("forwarding", "drop (same-port): %s was learned on the ingress port", wnv.MAC(dst))
				} else {
					step("forwarding", "known unicast: to port %s", snap.views[outIdx].st.name)
					s.traceExtensions(snap, api.Egress, snap.views[outIdx].st.idx, snap.views[outIdx].st.vsid, step)
				}
				return out, nil
			}
		}
		s.traceFlood(snap, v.dom, v, vsid, "unknown unicast", step)
	}
	return out, nil
}

// uplinkPA reports whether the policy puts a PA of this host on port.
func uplinkPA(ps *wnv.Snapshot, port string) bool {
	for _, a := range ps.ProviderAddresses() {
		if a.Interface == port {
			return true
		}
	}
	return false
}

// traceFlood tells a flood in a VSID to every port of dom but from.
func (s *Switch) traceFlood(snap *snapshot, dom *domView, from *portView, vsid uint32, why string, step func(string, string, ...any)) {
	var ports []string
	if dom != nil {
		for _, m := range dom.members {
			if pv := snap.views[m]; pv != from {
				ports = append(ports, pv.st.name)
			}
		}
	}
	sort.Strings(ports)
	step("forwarding", "%s: flood in VSID %d to %v", why, vsid, ports)
}

// traceExtensions tells the extension chain a frame from (ingress) or to
// (egress) port would meet.
func (s *Switch) traceExtensions(snap *snapshot, dir api.Direction, port uint16, vsid uint32, step func(string, string, ...any)) {
	stage := "extensions"
	if dir == api.Egress {
		stage = "egress extensions"
	}
	if snap.chain.Len() == 0 {
		if dir == api.Ingress {
			step(stage, "none loaded")
		}
		return
	}
	for _, d := range snap.chain.Explain(dir, port, vsid) {
		step(stage, "%s", d)
	}
}
