package wnv

import (
	"net/netip"
	"testing"
)

// bigPolicy: 1000 subnets of /24 in 10 routing domains (100 each), 50 VMs
// per subnet, a default route to a gateway VM in each routing domain.
func bigPolicy(tb testing.TB) *Policy {
	tb.Helper()
	p := New()
	err := p.Apply(func(b *Builder) error {
		if err := b.AddProviderAddress(ProviderAddress{Interface: "eth0", PA: a("172.16.0.1"), PrefixLen: 16}); err != nil {
			return err
		}
		if err := b.AddProviderRoute(ProviderRoute{Destination: pfx("0.0.0.0/0"), NextHop: a("172.16.255.254")}); err != nil {
			return err
		}
		for rd := range 10 {
			id := "rd" + string(rune('0'+rd))
			if err := b.AddRoutingDomain(RoutingDomain{ID: id}); err != nil {
				return err
			}
			for sn := range 100 {
				vsid := uint32(5000 + rd*100 + sn)
				if err := b.AddVirtualSubnet(VirtualSubnet{VSID: vsid, RoutingDomain: id,
					IPv4Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(sn), 0}), 24),
					IPv6Prefix: netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0, 0, byte(sn)}), 64)}); err != nil {
					return err
				}
				for h := range 50 {
					r := LookupRecord{VSID: vsid, CA: netip.AddrFrom4([4]byte{10, 0, byte(sn), byte(10 + h)}),
						MAC: MAC{2, byte(rd), byte(sn), 0, 0, byte(h)}, PA: netip.AddrFrom4([4]byte{172, 16, byte(sn), byte(h + 2)})}
					if err := b.AddLookupRecord(r); err != nil {
						return err
					}
				}
			}
			if err := b.AddCustomerRoute(CustomerRoute{RoutingDomain: id, Destination: pfx("0.0.0.0/0"), NextHop: a("10.0.99.10")}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

type lookupCase struct {
	name string
	fn   func(s *Snapshot)
}

var sink struct {
	r   *LookupRecord
	ok  bool
	d   Decision
	a   netip.Addr
	as  []netip.Addr
	rs  []*LookupRecord
	vs  *VirtualSubnet
	u32 uint32
}

func lookupCases() []lookupCase {
	ca := a("10.0.42.20")
	v6 := a("fd00:0:0:2a::99")
	m := MAC{2, 3, 42, 0, 0, 10}
	return []lookupCase{
		{"LookupCA", func(s *Snapshot) { sink.r, sink.ok = s.LookupCA(5342, ca) }},
		{"LookupCAMiss", func(s *Snapshot) { sink.r, sink.ok = s.LookupCA(5342, v6) }},
		{"LookupMAC", func(s *Snapshot) { sink.r, sink.ok = s.LookupMAC(5342, m) }},
		{"Subnet", func(s *Snapshot) { sink.vs, sink.ok = s.Subnet(5342) }},
		{"RouteSameVSID", func(s *Snapshot) { sink.d = s.Route(5342, ca) }},
		{"RouteCrossVSID", func(s *Snapshot) { sink.d = s.Route(5301, ca) }},
		{"RouteDefault", func(s *Snapshot) { sink.d = s.Route(5342, a("8.8.8.8")) }},
		{"RouteIsolationV6", func(s *Snapshot) { sink.d = s.Route(5342, a("2001:db8::1")) }},
		{"RouteNoPolicyV6", func(s *Snapshot) { sink.d = s.Route(5342, v6) }},
		{"IsLocalPA", func(s *Snapshot) { sink.ok = s.IsLocalPA(a("172.16.0.1")) }},
		{"VSIDForPA", func(s *Snapshot) { sink.u32, sink.a, sink.ok = s.VSIDForPA(a("172.16.42.12")) }},
		{"RecordsByPA", func(s *Snapshot) { sink.rs = s.RecordsByPA(a("172.16.42.12")) }},
		{"HostsForVSID", func(s *Snapshot) { sink.as = s.HostsForVSID(5342) }},
		{"ProviderNextHop", func(s *Snapshot) { sink.a, sink.ok = s.ProviderNextHop(a("10.200.0.1")) }},
		{"ProviderNextHopOnLink", func(s *Snapshot) { sink.a, sink.ok = s.ProviderNextHop(a("172.16.42.12")) }},
	}
}

func TestLookupsDoNotAllocate(t *testing.T) {
	p := bigPolicy(t)
	s := p.Snapshot()
	if d := s.Route(5301, a("10.0.42.20")); d.Kind != Routed || d.DstVSID != 5342 {
		t.Fatalf("fixture: %v", d)
	}
	if d := s.Route(5342, a("8.8.8.8")); d.Kind != Routed || d.DstVSID != 5399 {
		t.Fatalf("fixture: %v", d)
	}
	for _, c := range lookupCases() {
		if n := testing.AllocsPerRun(100, func() { c.fn(s) }); n != 0 {
			t.Errorf("%s: %v allocs per run", c.name, n)
		}
	}
	if n := testing.AllocsPerRun(100, func() { sink.u32 = uint32(p.Snapshot().Version()) }); n != 0 {
		t.Errorf("Policy.Snapshot: %v allocs per run", n)
	}
}

func BenchmarkLookup(b *testing.B) {
	s := bigPolicy(b).Snapshot()
	for _, c := range lookupCases() {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.fn(s)
			}
		})
	}
}

func BenchmarkApplyOneRecord(b *testing.B) {
	p := bigPolicy(b)
	r := LookupRecord{VSID: 5000, CA: a("10.0.0.200"), MAC: mac(0xc8), PA: a("172.16.9.9")}
	b.ReportAllocs()
	for b.Loop() {
		if err := p.AddLookupRecord(r); err != nil {
			b.Fatal(err)
		}
		if err := p.RemoveLookupRecord(r.VSID, r.CA, r.MAC); err != nil {
			b.Fatal(err)
		}
	}
}
