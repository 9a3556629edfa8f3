package wnv

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"sync"
)

// Snapshot is one immutable version of the policy. The data path reads it
// without locks; nothing in it changes after [Policy] publishes it. The
// pointers and slices its lookups return point into the snapshot: treat
// them as read-only and do not keep them past the snapshot's use.
type Snapshot struct {
	version uint64
	t       *tables

	subnets  map[uint32]*subnetInfo
	routes   map[rtKey]rtEntry
	prt      map[netip.Prefix]prEntry
	plens    []uint8
	recOnce  sync.Once
	records  []*LookupRecord // sorted, for listing; built on first use
	subList  []*VirtualSubnet
	rdList   []*RoutingDomain
	crList   []*CustomerRoute
	paList   []*ProviderAddress
	prList   []*ProviderRoute
	rdScopes map[string]uint64
}

type subnetInfo struct {
	VirtualSubnet
	rdScope      uint64
	gw4, gw6     netip.Addr
	lens4, lens6 []plen // prefix lengths to try, longest first
}

// plen is a prefix length present in a subnet's route scopes: in its
// routing domain's (rd) and/or its own VSID's (vs).
type plen struct {
	bits   uint8
	rd, vs bool
}

// rtKey scopes a customer-side route: a VSID (routes of that source subnet)
// or rdScopeBit|routing domain index (connected subnets and routes for
// every subnet of the routing domain).
type rtKey struct {
	scope uint64
	p     netip.Prefix
}

const rdScopeBit = 1 << 32

type rtKind uint8

const (
	rtConnected rtKind = iota + 1 // a subnet of the routing domain
	rtOnLink                      // customer route without next hop
	rtNextHop                     // customer route via a CA
)

type rtEntry struct {
	kind   rtKind
	metric uint32
	vsid   uint32     // connected: the subnet; next hop: the subnet of addr
	addr   netip.Addr // connected: the subnet's gateway; next hop: the next hop
}

// better reports whether a is preferred to b for the same prefix:
// connected subnets first, then lowest metric, then on-link, then lowest
// next hop (so the choice never depends on map order).
func better(a, b rtEntry) bool {
	if (a.kind == rtConnected) != (b.kind == rtConnected) {
		return a.kind == rtConnected
	}
	if a.metric != b.metric {
		return a.metric < b.metric
	}
	if a.kind != b.kind {
		return a.kind < b.kind
	}
	return a.addr.Less(b.addr)
}

type prEntry struct {
	connected bool
	metric    uint32
	nexthop   netip.Addr // zero: on-link
}

func (a prEntry) better(b prEntry) bool {
	if a.connected != b.connected {
		return a.connected
	}
	if a.metric != b.metric {
		return a.metric < b.metric
	}
	if a.nexthop.IsValid() != b.nexthop.IsValid() {
		return !a.nexthop.IsValid()
	}
	return a.nexthop.Less(b.nexthop)
}

func sortedSubnets(t *tables) []*VirtualSubnet {
	return slices.SortedFunc(maps.Values(t.subnets), func(a, b *VirtualSubnet) int { return cmp.Compare(a.VSID, b.VSID) })
}

func sortedCustomerRoutes(t *tables) []*CustomerRoute {
	return slices.SortedFunc(maps.Values(t.croutes), func(a, b *CustomerRoute) int {
		if c := cmp.Compare(a.RoutingDomain, b.RoutingDomain); c != 0 {
			return c
		}
		if c := cmp.Compare(a.VSID, b.VSID); c != 0 {
			return c
		}
		if c := comparePrefix(a.Destination, b.Destination); c != 0 {
			return c
		}
		return a.NextHop.Compare(b.NextHop)
	})
}

func sortedProviderRoutes(t *tables) []*ProviderRoute {
	return slices.SortedFunc(maps.Values(t.proutes), func(a, b *ProviderRoute) int {
		if c := comparePrefix(a.Destination, b.Destination); c != 0 {
			return c
		}
		return a.NextHop.Compare(b.NextHop)
	})
}

func compareRecords(a, b *LookupRecord) int {
	if c := cmp.Compare(a.VSID, b.VSID); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Type, b.Type); c != 0 {
		return c
	}
	if c := a.CA.Compare(b.CA); c != 0 {
		return c
	}
	return slices.Compare(a.MAC[:], b.MAC[:])
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

// build derives the lookup structures from t. t is owned by the snapshot
// from now on.
func build(t *tables, version uint64) *Snapshot {
	s := &Snapshot{
		version:  version,
		t:        t,
		subnets:  make(map[uint32]*subnetInfo, len(t.subnets)),
		routes:   map[rtKey]rtEntry{},
		prt:      map[netip.Prefix]prEntry{},
		rdScopes: map[string]uint64{},
	}
	s.rdList = slices.SortedFunc(maps.Values(t.rds), func(a, b *RoutingDomain) int { return cmp.Compare(a.ID, b.ID) })
	for i, rd := range s.rdList {
		s.rdScopes[rd.ID] = rdScopeBit | uint64(i)
	}
	s.subList = sortedSubnets(t)

	put := func(k rtKey, e rtEntry) {
		if o, ok := s.routes[k]; !ok || better(e, o) {
			s.routes[k] = e
		}
	}
	// lens[scope] collects the prefix lengths present in a scope, per family.
	type lenSet struct{ v4, v6 [129]bool }
	lens := map[uint64]*lenSet{}
	mark := func(scope uint64, p netip.Prefix) {
		ls := lens[scope]
		if ls == nil {
			ls = &lenSet{}
			lens[scope] = ls
		}
		if p.Addr().Is4() {
			ls.v4[p.Bits()] = true
		} else {
			ls.v6[p.Bits()] = true
		}
	}
	for _, vs := range s.subList {
		scope := s.rdScopes[vs.RoutingDomain]
		for _, p := range []netip.Prefix{vs.IPv4Prefix, vs.IPv6Prefix} {
			if p.IsValid() {
				put(rtKey{scope, p}, rtEntry{kind: rtConnected, vsid: vs.VSID, addr: gatewayOf(p)})
				mark(scope, p)
			}
		}
	}
	for _, r := range t.croutes {
		scope := uint64(r.VSID)
		if r.VSID == 0 {
			scope = s.rdScopes[r.RoutingDomain]
		}
		e := rtEntry{kind: rtOnLink, metric: r.Metric}
		if r.NextHop.IsValid() {
			e.kind, e.addr = rtNextHop, r.NextHop
			for _, vs := range s.subList {
				if vs.RoutingDomain == r.RoutingDomain && vs.prefixFor(r.NextHop).Contains(r.NextHop) {
					e.vsid = vs.VSID
				}
			}
		}
		put(rtKey{scope, r.Destination}, e)
		mark(scope, r.Destination)
	}
	for _, vs := range s.subList {
		si := &subnetInfo{VirtualSubnet: *vs, rdScope: s.rdScopes[vs.RoutingDomain],
			gw4: gatewayOf(vs.IPv4Prefix), gw6: gatewayOf(vs.IPv6Prefix)}
		rdl, vsl := lens[si.rdScope], lens[uint64(vs.VSID)]
		if rdl == nil {
			rdl = &lenSet{}
		}
		if vsl == nil {
			vsl = &lenSet{}
		}
		for i := 128; i >= 0; i-- {
			if rdl.v4[i] || vsl.v4[i] {
				si.lens4 = append(si.lens4, plen{uint8(i), rdl.v4[i], vsl.v4[i]})
			}
			if rdl.v6[i] || vsl.v6[i] {
				si.lens6 = append(si.lens6, plen{uint8(i), rdl.v6[i], vsl.v6[i]})
			}
		}
		s.subnets[vs.VSID] = si
	}

	s.crList = sortedCustomerRoutes(t)
	s.paList = slices.SortedFunc(maps.Values(t.pas), func(a, b *ProviderAddress) int { return a.PA.Compare(b.PA) })
	s.prList = sortedProviderRoutes(t)

	var plen [33]bool
	pput := func(p netip.Prefix, e prEntry) {
		if o, ok := s.prt[p]; !ok || e.better(o) {
			s.prt[p] = e
		}
		plen[p.Bits()] = true
	}
	for _, a := range s.paList {
		pput(a.Prefix(), prEntry{connected: true})
	}
	for _, r := range s.prList {
		pput(r.Destination, prEntry{metric: r.Metric, nexthop: r.NextHop})
	}
	for i := 32; i >= 0; i-- {
		if plen[i] {
			s.plens = append(s.plens, uint8(i))
		}
	}
	return s
}

// Version increases by one with every published change.
func (s *Snapshot) Version() uint64 { return s.version }

// GatewayMAC is the MAC that answers for every subnet's default gateway.
func (s *Snapshot) GatewayMAC() MAC { return s.t.gwMAC }

// LookupCA finds the static record of ca in vsid.
func (s *Snapshot) LookupCA(vsid uint32, ca netip.Addr) (*LookupRecord, bool) {
	r, ok := s.t.records[recKey{vsid: vsid, ca: ca}]
	if !ok || r.Type != TypeStatic {
		return nil, false
	}
	return r, true
}

// LookupMAC finds the static or l2only record of mac in vsid (the oldest,
// when the station has several CAs: they share their PA).
func (s *Snapshot) LookupMAC(vsid uint32, mac MAC) (*LookupRecord, bool) {
	rs := s.t.macs[macKey{vsid, mac}]
	if len(rs) == 0 {
		return nil, false
	}
	return rs[0], true
}

// MACOwnedBy reports whether a static or l2only record of mac in vsid
// names vmName (the port the VM is on): the MACs a port may send from.
// No record owns a MAC for an empty name.
// It allocates nothing.
func (s *Snapshot) MACOwnedBy(vsid uint32, mac MAC, vmName string) bool {
	if vmName == "" {
		return false
	}
	for _, r := range s.t.macs[macKey{vsid, mac}] {
		if r.VMName == vmName {
			return true
		}
	}
	return false
}

// GatewayWildcard finds vsid's gateway wildcard record for IPv4 or, with
// ipv6, for IPv6.
func (s *Snapshot) GatewayWildcard(vsid uint32, ipv6 bool) (*LookupRecord, bool) {
	ca := netip.IPv4Unspecified()
	if ipv6 {
		ca = netip.IPv6Unspecified()
	}
	r, ok := s.t.records[recKey{vsid: vsid, ca: ca}]
	return r, ok
}

// Subnet returns the virtual subnet vsid: its routing domain, prefixes and
// (by its methods) gateway addresses.
func (s *Snapshot) Subnet(vsid uint32) (*VirtualSubnet, bool) {
	si, ok := s.subnets[vsid]
	if !ok {
		return nil, false
	}
	return &si.VirtualSubnet, true
}

// IsLocalPA reports whether pa is a provider address of this host.
func (s *Snapshot) IsLocalPA(pa netip.Addr) bool {
	_, ok := s.t.pas[pa]
	return ok
}

// LocalPA returns this host's provider address pa.
func (s *Snapshot) LocalPA(pa netip.Addr) (*ProviderAddress, bool) {
	a, ok := s.t.pas[pa]
	return a, ok
}

// VSIDForPA recovers, for IP rewrite, the VSID and CA that own pa.
func (s *Snapshot) VSIDForPA(pa netip.Addr) (vsid uint32, ca netip.Addr, ok bool) {
	r, ok := s.t.rewritePA[pa]
	if !ok {
		return 0, netip.Addr{}, false
	}
	return r.VSID, r.CA, true
}

// RecordsByPA lists the records whose PA is pa, sorted by VSID, type, CA
// and MAC. The slice is shared: do not modify it.
func (s *Snapshot) RecordsByPA(pa netip.Addr) []*LookupRecord { return s.t.byPA[pa] }

// HostsForVSID lists, sorted, the remote provider addresses (not this
// host's) that have encap records in vsid: where head-end replication
// sends a broadcast or multicast frame. The slice is shared: do not modify
// it.
func (s *Snapshot) HostsForVSID(vsid uint32) []netip.Addr { return s.t.hosts[vsid] }

// ProviderNextHop returns the next hop on the physical network for the
// provider address dst: dst itself when on-link (inside a provider
// address's prefix or an on-link route), else the next hop of the longest
// matching provider route (lowest metric among equals).
func (s *Snapshot) ProviderNextHop(dst netip.Addr) (nexthop netip.Addr, ok bool) {
	if !dst.Is4() {
		return netip.Addr{}, false
	}
	for _, l := range s.plens {
		p, _ := dst.Prefix(int(l))
		if e, ok := s.prt[p]; ok {
			if !e.nexthop.IsValid() {
				return dst, true
			}
			return e.nexthop, true
		}
	}
	return netip.Addr{}, false
}

// DecisionKind is what [Snapshot.Route] decided.
type DecisionKind uint8

const (
	// Drop: Reason says why. The zero Decision drops.
	Drop DecisionKind = iota
	// Deliver: Record is the destination itself, in the source VSID.
	Deliver
	// Routed: Record is in another VSID of the same routing domain, or is
	// a next hop (gateway or appliance VM, or a gateway wildcard) whose CA
	// is not the destination.
	Routed
	// Gateway: the destination is the default gateway address of a subnet
	// of the routing domain (DstVSID); the switch answers it itself.
	Gateway
)

func (k DecisionKind) String() string {
	switch k {
	case Drop:
		return "drop"
	case Deliver:
		return "deliver"
	case Routed:
		return "routed"
	case Gateway:
		return "gateway"
	}
	return "unknown"
}

// Reason names why a frame is dropped; the values are drop counter names.
type Reason string

const (
	ReasonNone Reason = ""
	// ReasonUnknownVSID: the source VSID is not a virtual subnet.
	ReasonUnknownVSID Reason = "unknown-vsid"
	// ReasonNotUnicast: the destination is not a unicast address.
	ReasonNotUnicast Reason = "not-unicast"
	// ReasonIsolation: the destination is in no subnet of the source's
	// routing domain and no route covers it (whatever other routing
	// domains may have).
	ReasonIsolation Reason = "isolation"
	// ReasonNoPolicy: the destination is in a subnet of the routing
	// domain (or an on-link route) but no lookup record has it.
	ReasonNoPolicy Reason = "no-policy"
	// ReasonNextHop: a route's next hop has no lookup record.
	ReasonNextHop Reason = "no-next-hop"
)

// Decision is the result of [Snapshot.Route].
type Decision struct {
	Kind DecisionKind
	// Record receives the frame (Deliver, Routed).
	Record *LookupRecord
	// DstVSID is the VSID of Record (or of the answering gateway).
	DstVSID uint32
	Reason  Reason
}

// Route decides, at the source, where a frame from vsid to the customer
// address dst goes. It looks only inside vsid's routing domain: the longest
// prefix among the routing domain's subnets and the customer routes for
// vsid wins (a subnet wins a tie, then the lowest metric). A subnet match
// delivers to (or routes to) the record of dst, or dst's subnet's gateway
// wildcard; a route via a next hop goes to the next hop's record; an on-link
// route looks dst up in vsid, then vsid's gateway wildcard. With no match
// the frame goes to vsid's gateway wildcard if any, else is dropped for
// isolation. Route does not allocate.
func (s *Snapshot) Route(vsid uint32, dst netip.Addr) Decision {
	si, ok := s.subnets[vsid]
	if !ok {
		return Decision{Reason: ReasonUnknownVSID}
	}
	if !dst.IsValid() || dst.IsUnspecified() || dst.IsMulticast() || dst.Zone() != "" ||
		dst == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return Decision{Reason: ReasonNotUnicast}
	}
	lens := si.lens4
	if !dst.Is4() {
		lens = si.lens6
	}
	for _, l := range lens {
		p, _ := dst.Prefix(int(l.bits))
		var e rtEntry
		ok := false
		if l.rd {
			e, ok = s.routes[rtKey{si.rdScope, p}]
		}
		if l.vs {
			if v, vok := s.routes[rtKey{uint64(vsid), p}]; vok && (!ok || better(v, e)) {
				e, ok = v, true
			}
		}
		if ok {
			return s.follow(vsid, e, dst)
		}
	}
	if w, ok := s.t.records[recKey{vsid: vsid, ca: unspecifiedLike(dst)}]; ok {
		return Decision{Kind: Routed, Record: w, DstVSID: vsid}
	}
	return Decision{Reason: ReasonIsolation}
}

func unspecifiedLike(a netip.Addr) netip.Addr {
	if a.Is4() {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

func (s *Snapshot) follow(src uint32, e rtEntry, dst netip.Addr) Decision {
	switch e.kind {
	case rtConnected:
		if dst == e.addr {
			return Decision{Kind: Gateway, DstVSID: e.vsid}
		}
		return s.deliverIn(src, e.vsid, dst)
	case rtOnLink:
		return s.deliverIn(src, src, dst)
	default:
		r, ok := s.LookupCA(e.vsid, e.addr)
		if !ok {
			return Decision{Reason: ReasonNextHop, DstVSID: e.vsid}
		}
		return Decision{Kind: Routed, Record: r, DstVSID: e.vsid}
	}
}

// deliverIn finds dst in vsid, falling back to vsid's gateway wildcard.
func (s *Snapshot) deliverIn(src, vsid uint32, dst netip.Addr) Decision {
	if r, ok := s.LookupCA(vsid, dst); ok {
		if vsid == src {
			return Decision{Kind: Deliver, Record: r, DstVSID: vsid}
		}
		return Decision{Kind: Routed, Record: r, DstVSID: vsid}
	}
	if w, ok := s.t.records[recKey{vsid: vsid, ca: unspecifiedLike(dst)}]; ok {
		return Decision{Kind: Routed, Record: w, DstVSID: vsid}
	}
	return Decision{Reason: ReasonNoPolicy, DstVSID: vsid}
}

// ---- copies for the CLI and the daemon ----

// RoutingDomains lists the routing domains by ID.
func (s *Snapshot) RoutingDomains() []RoutingDomain { return copies(s.rdList) }

// VirtualSubnets lists the virtual subnets by VSID.
func (s *Snapshot) VirtualSubnets() []VirtualSubnet { return copies(s.subList) }

// LookupRecords lists the records by VSID, type, CA and MAC.
func (s *Snapshot) LookupRecords() []LookupRecord { return copies(s.sortedRecords()) }

func (s *Snapshot) sortedRecords() []*LookupRecord {
	s.recOnce.Do(func() { s.records = slices.SortedFunc(maps.Values(s.t.records), compareRecords) })
	return s.records
}

// CustomerRoutes lists the customer routes by routing domain, VSID,
// destination and next hop.
func (s *Snapshot) CustomerRoutes() []CustomerRoute { return copies(s.crList) }

// ProviderAddresses lists this host's provider addresses.
func (s *Snapshot) ProviderAddresses() []ProviderAddress { return copies(s.paList) }

// ProviderRoutes lists the provider routes by destination and next hop.
func (s *Snapshot) ProviderRoutes() []ProviderRoute { return copies(s.prList) }

// GetVirtualSubnet returns a copy of virtual subnet vsid.
func (s *Snapshot) GetVirtualSubnet(vsid uint32) (VirtualSubnet, bool) {
	v, ok := s.t.subnets[vsid]
	if !ok {
		return VirtualSubnet{}, false
	}
	return *v, true
}

// GetLookupRecord returns a copy of the static record of ca in vsid.
func (s *Snapshot) GetLookupRecord(vsid uint32, ca netip.Addr) (LookupRecord, bool) {
	r, ok := s.LookupCA(vsid, ca)
	if !ok {
		return LookupRecord{}, false
	}
	return *r, true
}

func copies[T any](in []*T) []T {
	out := make([]T, len(in))
	for i, p := range in {
		out[i] = *p
	}
	return out
}
