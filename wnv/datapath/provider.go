package datapath

import (
	"net/netip"
	"sync/atomic"

	"github.com/xvswitch/xvs/wnv"
)

// Provider is the provider network as this host knows it, shared by the
// modules of every worker: which ports are uplinks (per policy version)
// and the MACs of the provider addresses it has heard ARP from.
type Provider struct {
	uplinks atomic.Pointer[uplinks]
	neigh   neighbors
}

// NewProvider returns an empty provider view.
func NewProvider() *Provider { return &Provider{} }

// uplinks maps uplink port names to the PA they carry, for one policy
// version. Rebuilt (rarely) when the policy changes.
type uplinks struct {
	version uint64
	byPort  map[string]netip.Addr
	port    string // the uplink encapsulated frames leave by ("" if none)
	pa      netip.Addr
}

// uplinksFor returns the uplink view of policy snapshot ps.
func (p *Provider) uplinksFor(ps *wnv.Snapshot) *uplinks {
	if u := p.uplinks.Load(); u != nil && u.version == ps.Version() {
		return u
	}
	u := &uplinks{version: ps.Version(), byPort: map[string]netip.Addr{}}
	for _, a := range ps.ProviderAddresses() {
		u.byPort[a.Interface] = a.PA
		if u.port == "" || a.Interface < u.port {
			u.port, u.pa = a.Interface, a.PA
		}
	}
	p.uplinks.Store(u)
	return u
}

// Uplink names the port encapsulated frames leave by under ps, and the PA
// they leave from ("" if the policy gives this host none).
func (p *Provider) Uplink(ps *wnv.Snapshot) (port string, pa netip.Addr) {
	u := p.uplinksFor(ps)
	return u.port, u.pa
}

// Neighbor returns the MAC learned for a provider address.
func (p *Provider) Neighbor(a netip.Addr) ([6]byte, bool) { return p.neigh.lookup(a) }

// NeighborEvents returns the next hops whose MAC changed, or that claimed
// another MAC and were refused, since the last call (at most
// maxNeighborEvents; the switch logs them).
func (p *Provider) NeighborEvents() []NeighborEvent { return p.neigh.takeEvents() }
