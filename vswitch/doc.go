// Package vswitch is the switch: it owns its ports and runs the pipeline
// that every received batch goes through.
//
//	         one worker goroutine per OS thread, polling its ports in turn
//	┌──────────┐   ┌─────────┐   ┌────────────┐   ┌────────────┐   ┌────────┐   ┌──────────┐
//	│ Receive  │──▶│ ingress │──▶│ extensions │──▶│ forwarding │──▶│ egress │──▶│ Transmit │
//	│ (port)   │   │ tag VSID│   │ in chain   │   │ MAC learn, │   │ exten- │   │ (ports)  │
//	└──────────┘   │ check   │   │ order      │   │ lookup,    │   │ sions, │   └──────────┘
//	               └─────────┘   └────────────┘   │ flood      │   │reverse │
//	                                              └────────────┘   └────────┘
//
// Ingress tags every frame with its port's Virtual Subnet ID (VSID). A port
// whose VSID is [VSIDUnassigned] forwards nothing (drop reason no-vsid), so
// a port attached without a network is isolated rather than bridged into
// the non-virtualized network by accident. VSID 0 is non-virtualized
// traffic: those ports form a plain learning bridge.
//
// Forwarding keeps one learning domain per VSID: a MAC table with ageing
// and a cap on learned entries ([Config.MACLimit]) so that one VM flooding
// random source addresses cannot exhaust memory or evict the others; beyond
// the cap frames still forward but their sources are not learned (counted
// as learn-cap). Known unicast goes to its port; broadcast, multicast and
// unknown unicast flood to the other ports of the same VSID only. A frame
// never leaves on the port it came in on and never reaches another VSID.
//
// Every stage takes a whole batch; nothing allocates, locks or logs per
// frame. Drops are counted per port and reason ([DropReason]).
//
// With a WNV policy ([Config.Policy]), ports whose VSID is a virtual subnet
// get two more stages: a proxy after ingress answers ARP and Neighbor
// Discovery from the lookup records, and a route stage before forwarding
// checks the source (spoof), isolates routing domains and delivers or
// routes unicast IP by policy rather than by learning.
//
// An [Offload] (the AF_XDP ports' in-kernel fast path) may forward known
// unicast below the switch; the switch tells it every station it learns,
// moves or forgets and every port's VSID, so the offload never forwards
// what the switch would not.
//
// Extensions (LoadExtension) run in their own processes (package
// extensions). Ingress runs the chain in order after the proxy; egress in
// reverse order just before Transmit. Capture copies go to shared memory
// and are dropped (counted) when the extension cannot keep up. Filter and
// forwarding verdicts are cached per flow and per worker: a flow's first
// frame is parked in a spare buffer until its verdict comes back (polled
// at the start of each round), later frames of the flow wait for the same
// verdict, and once cached the extension is not asked again until the
// cache is invalidated (extension restart or rules change, policy change,
// port or chain change, TTL).
//
// Control-plane changes (ports added, removed or moved to another VSID)
// publish a new immutable snapshot that workers pick up at the start of
// their next poll round; a removed port is closed only after every worker
// has moved past the round that could still use it.
package vswitch
