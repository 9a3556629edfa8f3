package wnv

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
)

// recKey identifies a lookup record inside its VSID: static records by CA,
// gateway wildcards by 0.0.0.0 or ::, l2only records by MAC (CA empty).
// Static and wildcard keys leave mac zero so a lookup by CA needs no MAC.
type recKey struct {
	vsid uint32
	ca   netip.Addr
	mac  MAC
}

type macKey struct {
	vsid uint32
	mac  MAC
}

type crKey struct {
	rd      string
	vsid    uint32
	dst     netip.Prefix
	nexthop netip.Addr
}

type prKey struct {
	dst     netip.Prefix
	nexthop netip.Addr
}

// tables is the policy's state. Objects behind the pointers are never
// modified once stored: a change replaces the pointer. So a clone shares
// them safely with the snapshot it came from, and the snapshot's lookup
// maps (records, macs) are these maps.
type tables struct {
	gwMAC   MAC
	rds     map[string]*RoutingDomain
	subnets map[uint32]*VirtualSubnet
	records map[recKey]*LookupRecord
	// macs holds the static and l2only records of each MAC, oldest first.
	// Several records share a MAC when one station has several CAs (dual
	// stack, secondary addresses); they then share its PA. The slices are
	// copied on change, never modified in place.
	macs      map[macKey][]*LookupRecord
	recCount  map[uint32]int     // records per VSID
	paUse     map[netip.Addr]int // records per PA
	rewritePA map[netip.Addr]*LookupRecord
	croutes   map[crKey]*CustomerRoute
	// byPA: the records of each PA, sorted by compareRecords. vsidPAs: the
	// PAs of each VSID's encap records, sorted, with their record counts in
	// encapUse; hosts: vsidPAs without this host's PAs. Slices are copied
	// on change, never modified in place (snapshots share them).
	byPA     map[netip.Addr][]*LookupRecord
	encapUse map[vsidPA]int
	vsidPAs  map[uint32][]netip.Addr
	hosts    map[uint32][]netip.Addr
	pas      map[netip.Addr]*ProviderAddress
	proutes  map[prKey]*ProviderRoute
}

func newTables() *tables {
	return &tables{
		gwMAC:     DefaultGatewayMAC,
		rds:       map[string]*RoutingDomain{},
		subnets:   map[uint32]*VirtualSubnet{},
		records:   map[recKey]*LookupRecord{},
		macs:      map[macKey][]*LookupRecord{},
		recCount:  map[uint32]int{},
		paUse:     map[netip.Addr]int{},
		rewritePA: map[netip.Addr]*LookupRecord{},
		croutes:   map[crKey]*CustomerRoute{},
		byPA:      map[netip.Addr][]*LookupRecord{},
		encapUse:  map[vsidPA]int{},
		vsidPAs:   map[uint32][]netip.Addr{},
		hosts:     map[uint32][]netip.Addr{},
		pas:       map[netip.Addr]*ProviderAddress{},
		proutes:   map[prKey]*ProviderRoute{},
	}
}

func (t *tables) clone() *tables {
	return &tables{
		gwMAC:     t.gwMAC,
		rds:       maps.Clone(t.rds),
		subnets:   maps.Clone(t.subnets),
		records:   maps.Clone(t.records),
		macs:      maps.Clone(t.macs),
		recCount:  maps.Clone(t.recCount),
		paUse:     maps.Clone(t.paUse),
		rewritePA: maps.Clone(t.rewritePA),
		croutes:   maps.Clone(t.croutes),
		byPA:      maps.Clone(t.byPA),
		encapUse:  maps.Clone(t.encapUse),
		vsidPAs:   maps.Clone(t.vsidPAs),
		hosts:     maps.Clone(t.hosts),
		pas:       maps.Clone(t.pas),
		proutes:   maps.Clone(t.proutes),
	}
}

// Builder stages changes for [Policy.Apply]. Each method validates against
// the state as changed by the earlier calls of the same batch, so a batch
// may remove a record and add its CA elsewhere. A Builder is only valid
// inside the function passed to Apply.
type Builder struct {
	t       *tables
	err     error // first failure; Apply fails with it
	changed bool
	done    bool
}

func (b *Builder) fail(err error) error {
	if b.err == nil {
		b.err = err
	}
	return err
}

func (b *Builder) usable() error {
	if b.done {
		return errorf(ErrInvalid, "builder: used after Apply returned")
	}
	return nil
}

// SetGatewayMAC sets the MAC with which the switch answers for every
// virtual subnet's default gateway.
func (b *Builder) SetGatewayMAC(mac MAC) error {
	if err := b.usable(); err != nil {
		return err
	}
	if err := mac.checkUnicast(); err != nil {
		return b.fail(wrap("gateway mac", err))
	}
	for k, rs := range b.t.macs {
		if k.mac == mac {
			return b.fail(errorf(ErrInUse, "gateway mac %s: used by lookup record vsid %d (%s)", mac, k.vsid, describe(rs[0])))
		}
	}
	if b.t.gwMAC != mac {
		b.t.gwMAC = mac
		b.changed = true
	}
	return nil
}

// AddRoutingDomain adds a routing domain.
func (b *Builder) AddRoutingDomain(rd RoutingDomain) error {
	if err := b.usable(); err != nil {
		return err
	}
	if err := checkID(rd.ID); err != nil {
		return b.fail(wrap("routing domain", err))
	}
	if _, ok := b.t.rds[rd.ID]; ok {
		return b.fail(errorf(ErrExists, "routing domain %q: already defined", rd.ID))
	}
	b.t.rds[rd.ID] = &rd
	b.changed = true
	return nil
}

// RemoveRoutingDomain removes a routing domain that has no virtual subnets
// and no customer routes left.
func (b *Builder) RemoveRoutingDomain(id string) error {
	if err := b.usable(); err != nil {
		return err
	}
	if _, ok := b.t.rds[id]; !ok {
		return b.fail(errorf(ErrNotFound, "routing domain %q: unknown", id))
	}
	for _, s := range sortedSubnets(b.t) {
		if s.RoutingDomain == id {
			return b.fail(errorf(ErrInUse, "routing domain %q: has virtual subnet %d", id, s.VSID))
		}
	}
	for _, r := range sortedCustomerRoutes(b.t) {
		if r.RoutingDomain == id {
			return b.fail(errorf(ErrInUse, "routing domain %q: has customer route %s", id, describeRoute(r)))
		}
	}
	delete(b.t.rds, id)
	b.changed = true
	return nil
}

// AddVirtualSubnet adds a VSID to an existing routing domain.
func (b *Builder) AddVirtualSubnet(s VirtualSubnet) error {
	if err := b.usable(); err != nil {
		return err
	}
	if err := checkVSID(s.VSID); err != nil {
		return b.fail(wrap("virtual subnet", err))
	}
	ctx := fmt.Sprintf("virtual subnet %d", s.VSID)
	if old, ok := b.t.subnets[s.VSID]; ok {
		return b.fail(errorf(ErrExists, "%s: already defined (routing domain %q)", ctx, old.RoutingDomain))
	}
	if _, ok := b.t.rds[s.RoutingDomain]; !ok {
		return b.fail(errorf(ErrNotFound, "%s: routing domain %q: unknown", ctx, s.RoutingDomain))
	}
	if err := checkSubnetPrefix("ipv4 prefix", s.IPv4Prefix, false); err != nil {
		return b.fail(wrap(ctx, err))
	}
	if s.IPv6Prefix.IsValid() {
		if err := checkSubnetPrefix("ipv6 prefix", s.IPv6Prefix, true); err != nil {
			return b.fail(wrap(ctx, err))
		}
	} else {
		s.IPv6Prefix = netip.Prefix{}
	}
	for _, o := range sortedSubnets(b.t) {
		if o.RoutingDomain != s.RoutingDomain {
			continue // overlapping address spaces across tenants: the point
		}
		if o.IPv4Prefix.Overlaps(s.IPv4Prefix) {
			return b.fail(errorf(ErrInvalid, "%s: ipv4 prefix %s: overlaps virtual subnet %d (%s) in routing domain %q",
				ctx, s.IPv4Prefix, o.VSID, o.IPv4Prefix, o.RoutingDomain))
		}
		if s.IPv6Prefix.IsValid() && o.IPv6Prefix.IsValid() && o.IPv6Prefix.Overlaps(s.IPv6Prefix) {
			return b.fail(errorf(ErrInvalid, "%s: ipv6 prefix %s: overlaps virtual subnet %d (%s) in routing domain %q",
				ctx, s.IPv6Prefix, o.VSID, o.IPv6Prefix, o.RoutingDomain))
		}
	}
	b.t.subnets[s.VSID] = &s
	b.changed = true
	return nil
}

// RemoveVirtualSubnet removes a VSID that has no lookup records and that
// no customer route uses (as its source or its next hop's subnet).
func (b *Builder) RemoveVirtualSubnet(vsid uint32) error {
	if err := b.usable(); err != nil {
		return err
	}
	s, ok := b.t.subnets[vsid]
	if !ok {
		return b.fail(errorf(ErrNotFound, "virtual subnet %d: unknown", vsid))
	}
	if n := b.t.recCount[vsid]; n > 0 {
		return b.fail(errorf(ErrInUse, "virtual subnet %d: has %d lookup records", vsid, n))
	}
	for _, r := range sortedCustomerRoutes(b.t) {
		if r.VSID == vsid || (r.RoutingDomain == s.RoutingDomain && r.NextHop.IsValid() && s.prefixFor(r.NextHop).Contains(r.NextHop)) {
			return b.fail(errorf(ErrInUse, "virtual subnet %d: used by customer route %s", vsid, describeRoute(r)))
		}
	}
	delete(b.t.subnets, vsid)
	b.changed = true
	return nil
}

func describe(r *LookupRecord) string {
	switch r.Type {
	case TypeL2Only:
		return "l2only mac " + r.MAC.String()
	case TypeGatewayWildcard:
		return "gatewaywildcard " + r.CA.String()
	}
	return fmt.Sprintf("ca %s mac %s", r.CA, r.MAC)
}

func keyOf(r *LookupRecord) recKey {
	if r.Type == TypeL2Only {
		return recKey{vsid: r.VSID, mac: r.MAC}
	}
	return recKey{vsid: r.VSID, ca: r.CA}
}

// AddLookupRecord adds a lookup record. See [LookupRecord] and
// [RecordType] for what each type requires.
func (b *Builder) AddLookupRecord(r LookupRecord) error {
	if err := b.usable(); err != nil {
		return err
	}
	if err := b.checkRecord(&r); err != nil {
		return b.fail(wrap("lookup record", err))
	}
	b.t.records[keyOf(&r)] = &r
	if r.Type != TypeGatewayWildcard {
		mk := macKey{r.VSID, r.MAC}
		b.t.macs[mk] = append(slices.Clip(b.t.macs[mk]), &r)
	}
	b.t.recCount[r.VSID]++
	b.t.paUse[r.PA]++
	b.t.indexPA(&r, true)
	if r.Rule == RuleRewrite {
		b.t.rewritePA[r.PA] = &r
	}
	b.changed = true
	return nil
}

// checkRecord validates r against the tables and normalises its CA.
func (b *Builder) checkRecord(r *LookupRecord) error {
	if err := checkVSID(r.VSID); err != nil {
		return err
	}
	s, ok := b.t.subnets[r.VSID]
	if !ok {
		return errorf(ErrNotFound, "vsid %d: no such virtual subnet", r.VSID)
	}
	if r.Type > TypeGatewayWildcard {
		return errorf(ErrInvalid, "type %d: want static, l2only or gatewaywildcard", r.Type)
	}
	if r.Rule > RuleRewrite {
		return errorf(ErrInvalid, "rule %d: want encap or rewrite", r.Rule)
	}
	if err := checkName("vm name", r.VMName); err != nil {
		return err
	}
	if err := r.MAC.checkUnicast(); err != nil {
		return err
	}
	if r.MAC == b.t.gwMAC {
		return errorf(ErrInvalid, "mac %s: is the virtual gateway mac", r.MAC)
	}
	if err := checkPA("pa", r.PA); err != nil {
		return err
	}
	if r.CA.Zone() != "" {
		return errorf(ErrInvalid, "ca %s: has a zone", r.CA)
	}
	if r.CA.Is4In6() {
		return errorf(ErrInvalid, "ca %s: ipv4-mapped; want plain ipv4", r.CA)
	}
	switch r.Type {
	case TypeStatic:
		if err := checkCA(s, r.CA); err != nil {
			return err
		}
	case TypeL2Only:
		if r.CA.IsValid() && !r.CA.IsUnspecified() {
			return errorf(ErrInvalid, "ca %s: type l2only has no ca", r.CA)
		}
		r.CA = netip.Addr{}
	case TypeGatewayWildcard:
		if !r.CA.IsValid() || !r.CA.IsUnspecified() {
			return errorf(ErrInvalid, "ca %s: type gatewaywildcard wants 0.0.0.0 or ::", fmtAddr(r.CA))
		}
		if r.CA.Is6() && !s.IPv6Prefix.IsValid() {
			return errorf(ErrInvalid, "ca %s: virtual subnet %d has no ipv6 prefix", r.CA, s.VSID)
		}
	}
	if r.Rule == RuleRewrite {
		if r.Type != TypeStatic {
			return errorf(ErrInvalid, "rule rewrite: type %s: only static records can be rewritten", r.Type)
		}
		if !r.CA.Is4() {
			return errorf(ErrInvalid, "rule rewrite: ca %s: rewrite translates ipv4 only", r.CA)
		}
		if n := b.t.paUse[r.PA]; n > 0 {
			return errorf(ErrInUse, "rule rewrite: pa %s: already used by %d lookup records; rewrite needs a pa per ca", r.PA, n)
		}
	}
	if o, ok := b.t.rewritePA[r.PA]; ok {
		return errorf(ErrInUse, "pa %s: owned by rewrite record vsid %d ca %s", r.PA, o.VSID, o.CA)
	}
	k := keyOf(r)
	if o, ok := b.t.records[k]; ok {
		switch r.Type {
		case TypeStatic:
			return errorf(ErrExists, "ca %s: already in vsid %d (mac %s)", r.CA, r.VSID, o.MAC)
		case TypeGatewayWildcard:
			return errorf(ErrExists, "ca %s: vsid %d already has a gateway wildcard (pa %s)", r.CA, r.VSID, o.PA)
		}
		return errorf(ErrExists, "mac %s: already has an l2only record in vsid %d", r.MAC, r.VSID)
	}
	if r.Type != TypeGatewayWildcard {
		if rs := b.t.macs[macKey{r.VSID, r.MAC}]; len(rs) > 0 && rs[0].PA != r.PA {
			return errorf(ErrExists, "mac %s: already in vsid %d (%s) behind pa %s; one mac, one pa", r.MAC, r.VSID, describe(rs[0]), rs[0].PA)
		}
	}
	return nil
}

func fmtAddr(a netip.Addr) string {
	if !a.IsValid() {
		return `""`
	}
	return a.String()
}

// checkCA validates a static record's CA against its subnet.
func checkCA(s *VirtualSubnet, ca netip.Addr) error {
	if !ca.IsValid() {
		return errorf(ErrInvalid, "ca: missing (type static)")
	}
	if ca.IsUnspecified() {
		return errorf(ErrInvalid, "ca %s: unspecified (a gateway wildcard record wants type gatewaywildcard)", ca)
	}
	p := s.prefixFor(ca)
	if !p.IsValid() {
		return errorf(ErrInvalid, "ca %s: virtual subnet %d has no ipv6 prefix", ca, s.VSID)
	}
	if !p.Contains(ca) {
		return errorf(ErrInvalid, "ca %s: outside virtual subnet %d (%s)", ca, s.VSID, p)
	}
	if ca == p.Addr() {
		return errorf(ErrInvalid, "ca %s: is the network address of virtual subnet %d (%s)", ca, s.VSID, p)
	}
	if ca == gatewayOf(p) {
		return errorf(ErrInvalid, "ca %s: is the default gateway of virtual subnet %d (%s)", ca, s.VSID, p)
	}
	if ca.Is4() && ca == lastAddr(p) {
		return errorf(ErrInvalid, "ca %s: is the broadcast address of virtual subnet %d (%s)", ca, s.VSID, p)
	}
	return nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// RemoveLookupRecord removes a record of vsid. A static record is chosen
// by ca, a gateway wildcard by ca 0.0.0.0 or ::, an l2only record by mac
// with ca empty. A non-zero mac must match the record's (a guard against
// removing a CA that has moved to another VM).
func (b *Builder) RemoveLookupRecord(vsid uint32, ca netip.Addr, mac MAC) error {
	if err := b.usable(); err != nil {
		return err
	}
	k := recKey{vsid: vsid, ca: ca}
	if !ca.IsValid() {
		if mac.IsZero() {
			return b.fail(errorf(ErrInvalid, "lookup record: vsid %d: want a ca or, for l2only, a mac", vsid))
		}
		k = recKey{vsid: vsid, mac: mac}
	}
	r, ok := b.t.records[k]
	if !ok {
		if !ca.IsValid() {
			return b.fail(errorf(ErrNotFound, "lookup record: mac %s: no l2only record in vsid %d", mac, vsid))
		}
		return b.fail(errorf(ErrNotFound, "lookup record: ca %s: not in vsid %d", ca, vsid))
	}
	if !mac.IsZero() && r.MAC != mac {
		return b.fail(errorf(ErrNotFound, "lookup record: ca %s in vsid %d: has mac %s, not %s", ca, vsid, r.MAC, mac))
	}
	delete(b.t.records, k)
	if r.Type != TypeGatewayWildcard {
		mk := macKey{vsid, r.MAC}
		rs := slices.DeleteFunc(slices.Clone(b.t.macs[mk]), func(x *LookupRecord) bool { return x == r })
		if len(rs) == 0 {
			delete(b.t.macs, mk)
		} else {
			b.t.macs[mk] = rs
		}
	}
	decr(b.t.recCount, vsid)
	decr(b.t.paUse, r.PA)
	b.t.indexPA(r, false)
	if r.Rule == RuleRewrite {
		delete(b.t.rewritePA, r.PA)
	}
	b.changed = true
	return nil
}

func decr[K comparable](m map[K]int, k K) {
	if m[k] <= 1 {
		delete(m, k)
	} else {
		m[k]--
	}
}

func describeRoute(r *CustomerRoute) string {
	nh := "on-link"
	if r.NextHop.IsValid() {
		nh = "via " + r.NextHop.String()
	}
	return fmt.Sprintf("%s %s (vsid %d, routing domain %q)", r.Destination, nh, r.VSID, r.RoutingDomain)
}

func normHop(a netip.Addr) netip.Addr {
	if a.IsValid() && a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}

// AddCustomerRoute adds a route inside a routing domain.
func (b *Builder) AddCustomerRoute(r CustomerRoute) error {
	if err := b.usable(); err != nil {
		return err
	}
	r.NextHop = normHop(r.NextHop)
	if err := b.checkCustomerRoute(&r); err != nil {
		return b.fail(wrap("customer route", err))
	}
	k := crKey{r.RoutingDomain, r.VSID, r.Destination, r.NextHop}
	if _, ok := b.t.croutes[k]; ok {
		return b.fail(errorf(ErrExists, "customer route %s: already defined", describeRoute(&r)))
	}
	b.t.croutes[k] = &r
	b.changed = true
	return nil
}

func (b *Builder) checkCustomerRoute(r *CustomerRoute) error {
	if _, ok := b.t.rds[r.RoutingDomain]; !ok {
		return errorf(ErrNotFound, "routing domain %q: unknown", r.RoutingDomain)
	}
	if r.VSID != 0 {
		if err := checkVSID(r.VSID); err != nil {
			return err
		}
		s, ok := b.t.subnets[r.VSID]
		if !ok {
			return errorf(ErrNotFound, "vsid %d: no such virtual subnet", r.VSID)
		}
		if s.RoutingDomain != r.RoutingDomain {
			return errorf(ErrInvalid, "vsid %d: in routing domain %q, not %q", r.VSID, s.RoutingDomain, r.RoutingDomain)
		}
	}
	if err := checkRoutePrefix("destination", r.Destination); err != nil {
		return err
	}
	nh := r.NextHop
	if !nh.IsValid() {
		return nil
	}
	if nh.Zone() != "" || nh.Is4In6() {
		return errorf(ErrInvalid, "next hop %s: want a plain address without zone", nh)
	}
	if nh.Is4() != r.Destination.Addr().Is4() {
		return errorf(ErrInvalid, "next hop %s: not the family of destination %s", nh, r.Destination)
	}
	for _, s := range sortedSubnets(b.t) {
		if s.RoutingDomain != r.RoutingDomain {
			continue
		}
		p := s.prefixFor(nh)
		if !p.Contains(nh) {
			continue
		}
		if err := checkCA(s, nh); err != nil {
			return wrap("next hop", err)
		}
		return nil
	}
	return errorf(ErrInvalid, "next hop %s: outside every virtual subnet of routing domain %q", nh, r.RoutingDomain)
}

// RemoveCustomerRoute removes the route with this routing domain, VSID,
// destination and next hop (the zero Addr or 0.0.0.0 for on-link).
func (b *Builder) RemoveCustomerRoute(rd string, vsid uint32, dst netip.Prefix, nexthop netip.Addr) error {
	if err := b.usable(); err != nil {
		return err
	}
	k := crKey{rd, vsid, dst, normHop(nexthop)}
	if _, ok := b.t.croutes[k]; !ok {
		tmp := CustomerRoute{RoutingDomain: rd, VSID: vsid, Destination: dst, NextHop: k.nexthop}
		return b.fail(errorf(ErrNotFound, "customer route %s: unknown", describeRoute(&tmp)))
	}
	delete(b.t.croutes, k)
	b.changed = true
	return nil
}

// AddProviderAddress adds one of this host's provider addresses.
func (b *Builder) AddProviderAddress(a ProviderAddress) error {
	if err := b.usable(); err != nil {
		return err
	}
	if err := b.checkProviderAddress(&a); err != nil {
		return b.fail(wrap("provider address", err))
	}
	b.t.pas[a.PA] = &a
	b.t.refreshHosts(a.PA)
	b.changed = true
	return nil
}

func (b *Builder) checkProviderAddress(a *ProviderAddress) error {
	if a.Interface == "" {
		return errorf(ErrInvalid, "interface: empty")
	}
	if err := checkID(a.Interface); err != nil {
		return errorf(ErrInvalid, "interface %q: want 1..64 printable characters without spaces", a.Interface)
	}
	if err := checkPA("pa", a.PA); err != nil {
		return err
	}
	if a.PrefixLen < 1 || a.PrefixLen > 32 {
		return errorf(ErrInvalid, "pa %s: prefix length %d: want 1..32", a.PA, a.PrefixLen)
	}
	if a.VLAN > 4094 {
		return errorf(ErrInvalid, "pa %s: vlan %d: want 0..4094", a.PA, a.VLAN)
	}
	if o, ok := b.t.pas[a.PA]; ok {
		return errorf(ErrExists, "pa %s: already on interface %q", a.PA, o.Interface)
	}
	return nil
}

// RemoveProviderAddress removes a provider address that no lookup record
// uses and that no provider route needs to reach its next hop.
func (b *Builder) RemoveProviderAddress(pa netip.Addr) error {
	if err := b.usable(); err != nil {
		return err
	}
	a, ok := b.t.pas[pa]
	if !ok {
		return b.fail(errorf(ErrNotFound, "provider address %s: unknown", fmtAddr(pa)))
	}
	if n := b.t.paUse[pa]; n > 0 {
		return b.fail(errorf(ErrInUse, "provider address %s: used by %d lookup records", pa, n))
	}
	delete(b.t.pas, pa)
	for _, r := range sortedProviderRoutes(b.t) {
		if r.NextHop.IsValid() && a.Prefix().Contains(r.NextHop) && !b.onLink(r.NextHop) {
			b.t.pas[pa] = a
			return b.fail(errorf(ErrInUse, "provider address %s: route %s via %s needs it", pa, r.Destination, r.NextHop))
		}
	}
	b.t.refreshHosts(pa)
	b.changed = true
	return nil
}

func (b *Builder) onLink(a netip.Addr) bool {
	for _, p := range b.t.pas {
		if p.Prefix().Contains(a) {
			return true
		}
	}
	return false
}

// AddProviderRoute adds a route on the physical network.
func (b *Builder) AddProviderRoute(r ProviderRoute) error {
	if err := b.usable(); err != nil {
		return err
	}
	r.NextHop = normHop(r.NextHop)
	if err := b.checkProviderRoute(&r); err != nil {
		return b.fail(wrap("provider route", err))
	}
	k := prKey{r.Destination, r.NextHop}
	if _, ok := b.t.proutes[k]; ok {
		return b.fail(errorf(ErrExists, "provider route %s via %s: already defined", r.Destination, hopString(r.NextHop)))
	}
	b.t.proutes[k] = &r
	b.changed = true
	return nil
}

func hopString(a netip.Addr) string {
	if !a.IsValid() {
		return "on-link"
	}
	return a.String()
}

func (b *Builder) checkProviderRoute(r *ProviderRoute) error {
	if err := checkRoutePrefix("destination", r.Destination); err != nil {
		return err
	}
	if !r.Destination.Addr().Is4() {
		return errorf(ErrInvalid, "destination %s: want ipv4", r.Destination)
	}
	if !r.NextHop.IsValid() {
		return nil
	}
	if err := checkPA("next hop", r.NextHop); err != nil {
		return err
	}
	if !b.onLink(r.NextHop) {
		return errorf(ErrInvalid, "next hop %s: not on-link (no provider address covers it)", r.NextHop)
	}
	if _, ok := b.t.pas[r.NextHop]; ok {
		return errorf(ErrInvalid, "next hop %s: is a provider address of this host", r.NextHop)
	}
	return nil
}

// RemoveProviderRoute removes the provider route with this destination and
// next hop (the zero Addr or 0.0.0.0 for on-link).
func (b *Builder) RemoveProviderRoute(dst netip.Prefix, nexthop netip.Addr) error {
	if err := b.usable(); err != nil {
		return err
	}
	k := prKey{dst, normHop(nexthop)}
	if _, ok := b.t.proutes[k]; !ok {
		return b.fail(errorf(ErrNotFound, "provider route %s via %s: unknown", dst, hopString(k.nexthop)))
	}
	delete(b.t.proutes, k)
	b.changed = true
	return nil
}

type vsidPA struct {
	vsid uint32
	pa   netip.Addr
}

// indexPA adds r to (add) or removes it from byPA, vsidPAs and hosts.
func (t *tables) indexPA(r *LookupRecord, add bool) {
	rs := slices.Clone(t.byPA[r.PA])
	i, found := slices.BinarySearchFunc(rs, r, compareRecords)
	switch {
	case add:
		rs = slices.Insert(rs, i, r)
	case found && rs[i] == r:
		rs = slices.Delete(rs, i, i+1)
	}
	if len(rs) == 0 {
		delete(t.byPA, r.PA)
	} else {
		t.byPA[r.PA] = slices.Clip(rs)
	}
	if r.Rule != RuleEncap {
		return
	}
	k := vsidPA{r.VSID, r.PA}
	if add {
		t.encapUse[k]++
		if t.encapUse[k] > 1 {
			return
		}
		ps := slices.Clone(t.vsidPAs[r.VSID])
		i, _ := slices.BinarySearchFunc(ps, r.PA, netip.Addr.Compare)
		t.vsidPAs[r.VSID] = slices.Clip(slices.Insert(ps, i, r.PA))
	} else {
		decr(t.encapUse, k)
		if t.encapUse[k] > 0 {
			return
		}
		ps := slices.DeleteFunc(slices.Clone(t.vsidPAs[r.VSID]), func(a netip.Addr) bool { return a == r.PA })
		if len(ps) == 0 {
			delete(t.vsidPAs, r.VSID)
		} else {
			t.vsidPAs[r.VSID] = ps
		}
	}
	t.refreshVSIDHosts(r.VSID)
}

// refreshVSIDHosts recomputes hosts[vsid]: its encap PAs that are not this
// host's.
func (t *tables) refreshVSIDHosts(vsid uint32) {
	var h []netip.Addr
	for _, pa := range t.vsidPAs[vsid] {
		if _, local := t.pas[pa]; !local {
			h = append(h, pa)
		}
	}
	if len(h) == 0 {
		delete(t.hosts, vsid)
	} else {
		t.hosts[vsid] = slices.Clip(h)
	}
}

// refreshHosts recomputes hosts for the VSIDs with records on pa, after pa
// became or stopped being this host's.
func (t *tables) refreshHosts(pa netip.Addr) {
	for _, r := range t.byPA[pa] {
		t.refreshVSIDHosts(r.VSID)
	}
}
