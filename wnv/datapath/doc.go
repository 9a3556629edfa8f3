// Package datapath is the WNV module: everything the switch does for
// virtual subnets, in the shape of Hyper-V's WNV filter. It owns address
// resolution (ARP and Neighbor Discovery answered from the lookup
// records), the source check, isolation by routing domain, routing inside
// a routing domain, NVGRE encapsulation and decapsulation (RFC 7637), IP
// rewrite, the uplink (provider ARP, next-hop MACs, frames waiting for
// them), head-end replication of broadcasts, and the MTU and TTL rules
// with their ICMP errors.
//
// A [Module] belongs to one switch worker. The switch calls it at the two
// points where the WNV filter sits: for a batch from a VM port whose VSID
// is a virtual subnet ([Module.Resolve] before the extensions,
// [Module.Route] after them) and for a batch from an uplink
// ([Module.FromUplink]). Each call takes the batch, the policy snapshot and
// port table given to [Module.Begin], and returns one [Verdict] per frame:
//
//	Continue  not the module's: the VSID's learning bridge forwards it
//	Deliver   to a local port (decapsulated, routed or rewritten back)
//	Send      out of the uplink, already encapsulated or rewritten
//	Flood     to every local port of its VSID (a replicated broadcast)
//	Drop      counted under a Reason (the switch's drop reasons)
//	Taken     answered, or held until the next hop's MAC is known
//
// Frames the module builds (answers, ARP requests on the uplink, ICMP
// errors, replicated copies, held frames released by [Module.Retry]) are
// in [Module.Emits], in spare buffers of the worker's pool that
// [Module.Release] returns once they are sent. Frames are changed in
// place: encapsulation uses the headroom in front of each frame.
//
// The module knows nothing of workers, port implementations or
// extensions: a port is a [Port] (index, name, VSID, and for the uplink a
// [Device] with a MAC and an MTU) in an immutable [Ports] table the switch
// rebuilds on every change. What the workers' modules share - the uplink
// of each policy version and the provider MACs learned from ARP - is a
// [Provider]. Per-flow decisions are cached per module for one policy
// version and one port table, so a policy change is followed from the
// next frame on; nothing allocates, locks or logs per frame.
//
// [Explainer] tells the same decisions in words, for xvsctl trace.
package datapath
