// Package wnv is the network virtualization policy of xvs, shaped after
// Hyper-V Network Virtualization (HNV): lookup records (customer address
// to provider address per VSID), customer routes, routing domains,
// virtual subnets, provider addresses and routes, how they are validated,
// changed and read. It uses the standard library and package header only,
// and knows nothing of ports, workers or extensions.
//
// The data path that applies the policy to frames - the ARP/ND proxy,
// isolation, routing, NVGRE (RFC 7637), IP rewrite, the uplink - is the
// WNV module in package wnv/datapath; it reads the [Snapshot] this
// package publishes.
//
// # The policy model
//
// The objects follow HNV's NetVirtualization cmdlets.
//
// A VM sees customer addresses (CA). The hosts that run the VMs have
// provider addresses (PA) on the physical network. The policy says which
// host has which CA, and who may talk to whom:
//
//   - A [RoutingDomain] is a tenant's network, named by an ID kept as given
//     (HNV uses a GUID such as "{11111111-2222-3333-4444-000000000000}").
//     Nothing ever routes from one routing domain to another, so two
//     tenants may both use 10.0.0.0/24.
//   - A [VirtualSubnet] is a VSID (4096..16777214; 0 is non-virtualized) in
//     one routing domain, with an IPv4 prefix and optionally an IPv6 prefix
//     that do not overlap other subnets of that routing domain. The subnets
//     of a routing domain route to each other. Each subnet's default gateway
//     is the first address of its prefix (10.0.1.1 in 10.0.1.0/24, prefix::1
//     for IPv6), answered by the switch with one virtual gateway MAC
//     ([DefaultGatewayMAC], 02:78:76:73:00:01, unless changed).
//   - A [LookupRecord] says that CA (with MAC) in a VSID lives behind a PA,
//     and how to get there: [RuleEncap] (NVGRE; many CAs share a host's PA)
//     or [RuleRewrite] (the IPv4 CA is rewritten to a PA of its own, so a
//     PA recovers its VSID and CA: [Snapshot.VSIDForPA]). Records are
//     [TypeStatic], [TypeL2Only] (a MAC without a CA) or
//     [TypeGatewayWildcard] (CA 0.0.0.0 or ::: whatever in the VSID is not
//     otherwise known goes to that gateway's PA).
//   - A [CustomerRoute] sends a destination prefix of a routing domain to a
//     next hop CA (a gateway or appliance VM), or on-link. It applies to the
//     source subnet it names, or to all subnets of its routing domain with
//     VSID 0. For example 0.0.0.0/0 via a gateway VM.
//   - A [ProviderAddress] is this host's PA on an uplink (interface, prefix
//     length, VLAN) and a [ProviderRoute] a route on the physical network;
//     [Snapshot.ProviderNextHop] picks the next hop for an outer header.
//
// Every change is validated: an error names the object, the field and the
// value ("lookup record: ca 10.9.0.5: outside virtual subnet 5001
// (10.0.1.0/24)") and wraps one of [ErrInvalid], [ErrNotFound], [ErrExists]
// or [ErrInUse].
//
// # Reading and changing
//
// The data path reads an immutable [Snapshot] without locks:
// [Policy.Snapshot] is one atomic load, and every lookup on it
// ([Snapshot.LookupCA], [Snapshot.LookupMAC], [Snapshot.Subnet],
// [Snapshot.Route], [Snapshot.IsLocalPA], [Snapshot.VSIDForPA],
// [Snapshot.HostsForVSID], [Snapshot.ProviderNextHop]) is a few map
// look-ups on precomputed tables, without allocation. Writers go through
// [Policy]: each Add/Remove method, or [Policy.Apply] for a batch that
// succeeds or fails as a whole, builds a new snapshot under a mutex and
// publishes it atomically. Traffic never pauses for a change and never sees
// half of one; [Policy.Version] grows by one per published change, for
// caches that must notice.
//
// # The isolation decision
//
// [Snapshot.Route] decides at the source where a frame from a VSID to a
// destination CA goes, looking only inside the source's routing domain:
// the longest prefix among the routing domain's subnets and the customer
// routes wins. A destination in the source's own subnet is delivered to
// its record; in another subnet of the routing domain it is routed to that
// record; a customer route sends it to the next hop's record; anything
// else is dropped for isolation (or sent to the VSID's gateway wildcard).
// A destination that only another routing domain has is never found.
//
// The daemon keeps the policy in its configuration as a [PolicyConfig]
// (plain strings with yaml and json tags), loaded by [LoadConfig] and
// dumped by [Policy.Config].
package wnv
