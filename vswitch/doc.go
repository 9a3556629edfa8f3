// Package vswitch is the switch: it owns its ports, the per-VSID learning
// domains and the workers, and runs the pipeline every received batch
// goes through. The stages it calls have homes of their own: the WNV
// module (package wnv/datapath) and the extension stage (package
// extensions); vswitch owns ingress, the learning bridge, transmit, the
// counters and the order of the stages.
//
//	    one worker goroutine per OS thread, polling its ports in turn
//
//	VM port (VSID of a virtual subnet)          uplink (VSID 0, carries a PA)
//	       │ Receive                                   │ Receive
//	┌──────▼──────┐                             ┌──────▼───────────────────┐
//	│ ingress     │ tag port + VSID, count      │ ingress                  │
//	├─────────────┤                             ├──────────────────────────┤
//	│ WNV Resolve │ ARP/ND answered (proxied)   │ WNV FromUplink           │ provider ARP;
//	├─────────────┤                             │  NVGRE decap, rewrite in ├──▶ deliver to
//	│ extensions  │ ingress chain, in order     ├──────────────────────────┤    the VM's port
//	├─────────────┤                             │ extensions               │
//	│ WNV Route   │ spoof, isolation, routing,  ├──────────────────────────┤
//	│             │ NVGRE encap / IP rewrite ───┼──▶ uplink                │
//	├─────────────┤                             │ bridge (VSID 0)          │
//	│ bridge      │ learn; known unicast, flood └──────────────────────────┘
//	└──────┬──────┘ in the VSID
//	┌──────▼──────┐
//	│ egress      │ extensions in reverse order, per output port
//	├─────────────┤
//	│ Transmit    │ one batch per output port
//	└─────────────┘
//
// Ingress tags every frame with its port's Virtual Subnet ID (VSID). A port
// whose VSID is [VSIDUnassigned] forwards nothing (drop reason no-vsid), so
// a port attached without a network is isolated rather than bridged into
// the non-virtualized network by accident. VSID 0 is non-virtualized
// traffic: those ports form a plain learning bridge.
//
// The bridge keeps one learning domain per VSID: a MAC table with ageing
// and a cap on learned entries ([Config.MACLimit]) so that one VM flooding
// random source addresses cannot exhaust memory or evict the others; beyond
// the cap frames still forward but their sources are not learned (counted
// as learn-cap). Known unicast goes to its port; broadcast, multicast and
// unknown unicast flood to the other ports of the same VSID only. A frame
// never leaves on the port it came in on and never reaches another VSID.
//
// With a WNV policy ([Config.Policy]) the WNV module runs where Hyper-V's
// WNV filter sits. For a port whose VSID is a virtual subnet it answers
// ARP and Neighbor Discovery before the extensions, and after them decides
// every unicast IP frame by policy rather than by learning: checked at the
// source, delivered, routed inside the routing domain, or sent to another
// host encapsulated in NVGRE or rewritten, through the uplink. A port of
// VSID 0 named by one of the policy's provider addresses is an uplink:
// what arrives there for this host's PAs is checked, decapsulated and
// delivered. The module answers each batch with a verdict per frame, which
// the worker carries out; frames it leaves go on to the bridge. Drops of
// every stage are counted per port under the reasons of [DropReason].
//
// Extensions ([Switch.LoadExtension]) run in their own processes; each
// worker owns an extensions.Stage that runs the chain over its batches:
// on ingress after address resolution, on egress in reverse order just
// before Transmit. Capture copies go to shared memory and are dropped
// (counted) when the extension cannot keep up. Filter and forwarding
// verdicts are cached per flow and per worker; a flow's first frame waits
// in the stage for its verdict, and the stage hands the frames it releases
// back to the worker at the start of a round, with where they go on.
//
// An [Offload] (the AF_XDP ports' in-kernel fast path) may forward known
// unicast below the switch; the switch tells it every station it learns,
// moves or forgets and every port's VSID, so the offload never forwards
// what the switch would not. Frames the WNV module decides are never
// learned into it.
//
// Every stage takes a whole batch; nothing allocates, locks or logs per
// frame. Control-plane changes (ports added, removed or moved to another
// VSID, extensions loaded or reordered) publish a new immutable snapshot
// that workers pick up at the start of their next poll round; a removed
// port is closed only after every worker has moved past the round that
// could still use it.
package vswitch
