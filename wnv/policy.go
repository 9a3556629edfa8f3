package wnv

import (
	"net/netip"
	"sync"
	"sync/atomic"
)

// Policy holds the current [Snapshot] and serialises changes. Readers call
// [Policy.Snapshot] (one atomic load) and never wait; writers build a new
// snapshot under a mutex and publish it atomically, so a reader sees a
// change entirely or not at all.
//
// Each change copies the tables (O(size of the policy)); group many
// changes in one [Policy.Apply].
type Policy struct {
	mu   sync.Mutex // serialises writers
	snap atomic.Pointer[Snapshot]
}

// New returns an empty policy at version 1 with [DefaultGatewayMAC].
func New() *Policy {
	p := &Policy{}
	p.snap.Store(build(newTables(), 1))
	return p
}

// Snapshot returns the current snapshot. It never blocks.
func (p *Policy) Snapshot() *Snapshot { return p.snap.Load() }

// Version returns the current snapshot's version; it increases by one per
// published change, so a cache can compare it to detect any change.
func (p *Policy) Version() uint64 { return p.snap.Load().version }

// Apply runs fn on a [Builder] holding a copy of the current state and, if
// fn and every Builder call succeeded, publishes the result as one new
// snapshot: all the changes or none. A failed Builder call fails Apply even
// if fn ignores the error. Apply publishes nothing, and the version stays,
// when fn changed nothing.
func (p *Policy) Apply(fn func(*Builder) error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cur := p.snap.Load()
	b := &Builder{t: cur.t.clone()}
	err := fn(b)
	b.done = true
	if err == nil {
		err = b.err
	}
	if err != nil {
		return err
	}
	if !b.changed {
		return nil
	}
	p.snap.Store(build(b.t, cur.version+1))
	return nil
}

// SetGatewayMAC: see [Builder.SetGatewayMAC].
func (p *Policy) SetGatewayMAC(mac MAC) error {
	return p.Apply(func(b *Builder) error { return b.SetGatewayMAC(mac) })
}

// AddRoutingDomain: see [Builder.AddRoutingDomain].
func (p *Policy) AddRoutingDomain(rd RoutingDomain) error {
	return p.Apply(func(b *Builder) error { return b.AddRoutingDomain(rd) })
}

// RemoveRoutingDomain: see [Builder.RemoveRoutingDomain].
func (p *Policy) RemoveRoutingDomain(id string) error {
	return p.Apply(func(b *Builder) error { return b.RemoveRoutingDomain(id) })
}

// AddVirtualSubnet: see [Builder.AddVirtualSubnet].
func (p *Policy) AddVirtualSubnet(s VirtualSubnet) error {
	return p.Apply(func(b *Builder) error { return b.AddVirtualSubnet(s) })
}

// RemoveVirtualSubnet: see [Builder.RemoveVirtualSubnet].
func (p *Policy) RemoveVirtualSubnet(vsid uint32) error {
	return p.Apply(func(b *Builder) error { return b.RemoveVirtualSubnet(vsid) })
}

// AddLookupRecord: see [Builder.AddLookupRecord].
func (p *Policy) AddLookupRecord(r LookupRecord) error {
	return p.Apply(func(b *Builder) error { return b.AddLookupRecord(r) })
}

// RemoveLookupRecord: see [Builder.RemoveLookupRecord].
func (p *Policy) RemoveLookupRecord(vsid uint32, ca netip.Addr, mac MAC) error {
	return p.Apply(func(b *Builder) error { return b.RemoveLookupRecord(vsid, ca, mac) })
}

// AddCustomerRoute: see [Builder.AddCustomerRoute].
func (p *Policy) AddCustomerRoute(r CustomerRoute) error {
	return p.Apply(func(b *Builder) error { return b.AddCustomerRoute(r) })
}

// RemoveCustomerRoute: see [Builder.RemoveCustomerRoute].
func (p *Policy) RemoveCustomerRoute(rd string, vsid uint32, dst netip.Prefix, nexthop netip.Addr) error {
	return p.Apply(func(b *Builder) error { return b.RemoveCustomerRoute(rd, vsid, dst, nexthop) })
}

// AddProviderAddress: see [Builder.AddProviderAddress].
func (p *Policy) AddProviderAddress(a ProviderAddress) error {
	return p.Apply(func(b *Builder) error { return b.AddProviderAddress(a) })
}

// RemoveProviderAddress: see [Builder.RemoveProviderAddress].
func (p *Policy) RemoveProviderAddress(pa netip.Addr) error {
	return p.Apply(func(b *Builder) error { return b.RemoveProviderAddress(pa) })
}

// AddProviderRoute: see [Builder.AddProviderRoute].
func (p *Policy) AddProviderRoute(r ProviderRoute) error {
	return p.Apply(func(b *Builder) error { return b.AddProviderRoute(r) })
}

// RemoveProviderRoute: see [Builder.RemoveProviderRoute].
func (p *Policy) RemoveProviderRoute(dst netip.Prefix, nexthop netip.Addr) error {
	return p.Apply(func(b *Builder) error { return b.RemoveProviderRoute(dst, nexthop) })
}
