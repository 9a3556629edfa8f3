package vswitch

import (
	"sync/atomic"

	"github.com/xvswitch/xvs/extensions"
	"github.com/xvswitch/xvs/wnv/datapath"
)

// DropReason names why a frame was dropped (or, for learn-cap, why its
// source was not learned).
type DropReason uint8

// Drop reasons. Their String forms are the names users see in xvsctl and
// Prometheus; scripts rely on them.
const (
	DropMalformed        DropReason = iota // too short, or a multicast source MAC
	DropNoVSID                             // port has no VSID assigned
	DropLearnCap                           // source not learned: the VSID's MAC table is full (frame still forwarded)
	DropRingFull                           // the output port did not accept the frame
	DropSamePort                           // destination is behind the port the frame came in on
	DropPortError                          // the port's Transmit failed (link down, closed)
	DropNoPolicy                           // WNV: no lookup record answers the frame (ARP/ND for an unknown address)
	DropProxied                            // WNV: ARP/ND consumed by the switch's proxy (a request answered, or a VM's reply or announcement absorbed)
	DropPoolEmpty                          // no spare buffer for a frame the switch had to build
	DropSpoof                              // WNV: source MAC/CA not owned by the ingress port
	DropIsolation                          // WNV: destination outside the source's routing domain
	DropTTL                                // WNV: TTL or hop limit exhausted while routing
	DropNoUplink                           // WNV: destination on another host but no uplink or provider route to it
	DropARPPending                         // WNV: provider next hop did not answer ARP in time, or too many frames waited for it
	DropMTU                                // WNV: frame too large for the uplink once encapsulated
	DropNVGREInvalid                       // NVGRE: malformed, or a header RFC 7637 forbids (no key, checksum, ...)
	DropNVGRENotOurs                       // NVGRE: outer destination is not one of our PAs
	DropNVGREVSID                          // NVGRE: VSID is not a virtual subnet here
	DropNVGRENoDst                         // NVGRE: inner destination has no local port in the VSID
	DropNVGRESrc                           // NVGRE: outer source PA is not the inner source's host per the policy
	DropRewriteSrc                         // IP rewrite: the source PA maps to no CA that may reach the destination
	DropExtension                          // an extension's verdict (filter drop, or forwarding to nowhere)
	DropExtensionFailed                    // a fail-closed extension is failed or restarting
	DropExtensionBusy                      // an extension's ring or the frames waiting for verdicts are full
	DropExtensionInvalid                   // an extension answered with a descriptor that failed validation
	DropNeighborChanged                    // uplink ARP: a provider next hop's MAC changed (counted), or an unasked claim to another MAC (dropped)
	DropExtensionScope                     // an extension injected or forwarded a frame outside its scope or VSID
	DropRAGuard                            // WNV: an IPv6 Router Advertisement from a VM
	DropDHCPGuard                          // WNV: a DHCP or DHCPv6 server message from a VM
	NumDropReasons
)

var dropNames = [NumDropReasons]string{
	DropMalformed:        datapath.DropMalformed.String(),
	DropNoVSID:           "no-vsid",
	DropLearnCap:         "learn-cap",
	DropRingFull:         "ring-full",
	DropSamePort:         datapath.DropSamePort.String(),
	DropPortError:        "port-error",
	DropNoPolicy:         datapath.DropNoPolicy.String(),
	DropProxied:          datapath.DropProxied.String(),
	DropPoolEmpty:        datapath.DropPoolEmpty.String(),
	DropSpoof:            datapath.DropSpoof.String(),
	DropIsolation:        datapath.DropIsolation.String(),
	DropTTL:              datapath.DropTTL.String(),
	DropNoUplink:         datapath.DropNoUplink.String(),
	DropARPPending:       datapath.DropARPPending.String(),
	DropMTU:              datapath.DropMTU.String(),
	DropNVGREInvalid:     datapath.DropNVGREInvalid.String(),
	DropNVGRENotOurs:     datapath.DropNVGRENotOurs.String(),
	DropNVGREVSID:        datapath.DropNVGREVSID.String(),
	DropNVGRENoDst:       datapath.DropNVGRENoDst.String(),
	DropNVGRESrc:         datapath.DropNVGRESrc.String(),
	DropRewriteSrc:       datapath.DropRewriteSrc.String(),
	DropExtension:        extensions.DropVerdict.String(),
	DropExtensionFailed:  extensions.DropFailed.String(),
	DropExtensionBusy:    extensions.DropBusy.String(),
	DropExtensionInvalid: extensions.DropInvalid.String(),
	DropNeighborChanged:  datapath.DropNeighborChanged.String(),
	DropExtensionScope:   extensions.DropScope.String(),
	DropRAGuard:          datapath.DropRAGuard.String(),
	DropDHCPGuard:        datapath.DropDHCPGuard.String(),
}

func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropNames[r]
	}
	return "unknown"
}

// DropReasons lists every reason in order.
func DropReasons() []DropReason {
	rs := make([]DropReason, NumDropReasons)
	for i := range rs {
		rs[i] = DropReason(i)
	}
	return rs
}

// counters of one port. Updated once per batch, never per frame.
type counters struct {
	rxFrames, rxBytes atomic.Uint64
	txFrames, txBytes atomic.Uint64
	drops             [NumDropReasons]atomic.Uint64
}

// dropTally collects a batch's drops before they are added to counters.
type dropTally [NumDropReasons]uint32

func (t *dropTally) flush(c *counters) {
	for r, n := range t {
		if n != 0 {
			c.drops[r].Add(uint64(n))
			t[r] = 0
		}
	}
}

// wnvDropReasons and extDropReasons count the WNV module's and the
// extension stage's drop reasons as the switch's: the switch's names of
// those reasons are the stages' own, so that users see one list.
var (
	wnvDropReasons = func() (m [datapath.NumReasons]DropReason) {
		for r := range datapath.NumReasons {
			m[r] = dropReasonNamed(r.String())
		}
		return m
	}()
	extDropReasons = func() (m [extensions.NumDrops]DropReason) {
		for r := range extensions.NumDrops {
			m[r] = dropReasonNamed(r.String())
		}
		return m
	}()
)

// dropReasonNamed is the reason with that name. A stage's reason without
// one of the switch's names is a programming error that every test run
// reveals at once.
func dropReasonNamed(name string) DropReason {
	for r, n := range dropNames {
		if n == name {
			return DropReason(r)
		}
	}
	panic("vswitch: a stage drops for a reason the switch does not count: " + name)
}
