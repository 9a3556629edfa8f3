package wnv

import (
	"net/netip"
	"testing"
)

func TestRoute(t *testing.T) {
	p := fixture(t)
	err := p.Apply(func(b *Builder) error {
		// RD A: everything unknown goes to the gateway VM 10.0.3.254, with
		// a cheaper backup for 8.8.0.0/16 via web2, and an appliance for
		// 10.0.2.128/25 (more specific than subnet 5002) from 5001 only.
		for _, r := range []CustomerRoute{
			{RoutingDomain: rdA, Destination: pfx("0.0.0.0/0"), NextHop: a("10.0.3.254"), Metric: 10},
			{RoutingDomain: rdA, VSID: 5001, Destination: pfx("8.8.0.0/16"), NextHop: a("10.0.3.254"), Metric: 20},
			{RoutingDomain: rdA, VSID: 5001, Destination: pfx("8.8.0.0/16"), NextHop: a("10.0.1.6"), Metric: 5},
			{RoutingDomain: rdA, VSID: 5001, Destination: pfx("10.0.2.128/25"), NextHop: a("10.0.3.254")},
			{RoutingDomain: rdA, VSID: 5001, Destination: pfx("10.7.0.0/16"), NextHop: a("10.0.3.77")}, // no record
			// HNV's explicit on-link route for a subnet: harmless.
			{RoutingDomain: rdA, VSID: 5001, Destination: pfx("10.0.1.0/24"), Metric: 255},
		} {
			if err := b.AddCustomerRoute(r); err != nil {
				return err
			}
		}
		return b.AddLookupRecord(LookupRecord{VSID: 5002, CA: a("10.0.2.200"), MAC: mac(0x2c), PA: a("192.168.0.3")})
	})
	if err != nil {
		t.Fatal(err)
	}
	s := p.Snapshot()
	tests := []struct {
		name    string
		vsid    uint32
		dst     string
		kind    DecisionKind
		dstVSID uint32
		ca      string // of the record
		reason  Reason
	}{
		{"same vsid known", 5001, "10.0.1.6", Deliver, 5001, "10.0.1.6", ""},
		{"same vsid ipv6", 5001, "fd00:1::5", Deliver, 5001, "fd00:1::5", ""},
		{"same vsid unknown", 5001, "10.0.1.99", Drop, 5001, "", ReasonNoPolicy},
		{"gateway", 5001, "10.0.1.1", Gateway, 5001, "", ""},
		{"gateway of another subnet", 5001, "10.0.2.1", Gateway, 5002, "", ""},
		{"gateway ipv6", 5001, "fd00:1::1", Gateway, 5001, "", ""},
		{"cross vsid same rd", 5001, "10.0.2.5", Routed, 5002, "10.0.2.5", ""},
		{"cross vsid back", 5002, "10.0.1.5", Routed, 5001, "10.0.1.5", ""},
		{"more specific route beats subnet", 5001, "10.0.2.200", Routed, 5003, "10.0.3.254", ""},
		{"...only for its vsid", 5003, "10.0.2.200", Routed, 5002, "10.0.2.200", ""},
		{"default route to gateway vm", 5001, "1.1.1.1", Routed, 5003, "10.0.3.254", ""},
		{"rd-wide route from another vsid", 5002, "1.1.1.1", Routed, 5003, "10.0.3.254", ""},
		{"gateway vm's own subnet uses it too", 5003, "1.1.1.1", Routed, 5003, "10.0.3.254", ""},
		{"longest prefix then metric", 5001, "8.8.8.8", Routed, 5001, "10.0.1.6", ""},
		{"next hop without record", 5001, "10.7.0.1", Drop, 5003, "", ReasonNextHop},
		{"ipv6 no route", 5001, "2001:db8::1", Drop, 0, "", ReasonIsolation},
		{"multicast", 5001, "224.0.0.5", Drop, 0, "", ReasonNotUnicast},
		{"broadcast", 5001, "255.255.255.255", Drop, 0, "", ReasonNotUnicast},
		{"unknown vsid", 4999, "10.0.1.5", Drop, 0, "", ReasonUnknownVSID},
		{"vsid 0", 0, "10.0.1.5", Drop, 0, "", ReasonUnknownVSID},
		// RD B has the same 10.0.1.0/24 and no routes.
		{"rd b same vsid", 6001, "10.0.1.5", Deliver, 6001, "10.0.1.5", ""},
		{"rd b never reaches rd a's 10.0.2.5", 6001, "10.0.2.5", Drop, 0, "", ReasonIsolation},
		{"rd b no default route", 6001, "1.1.1.1", Drop, 0, "", ReasonIsolation},
		{"rd b never reaches rd a's gateway vm", 6001, "10.0.3.254", Drop, 0, "", ReasonIsolation},
		{"rd a 10.0.1.7 is rd b's only", 5001, "10.0.1.7", Drop, 5001, "", ReasonNoPolicy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := s.Route(tt.vsid, a(tt.dst))
			if d.Kind != tt.kind || d.DstVSID != tt.dstVSID || d.Reason != tt.reason {
				t.Fatalf("Route(%d, %s) = %v (kind %v dst %d reason %q); want kind %v dst %d reason %q",
					tt.vsid, tt.dst, d, d.Kind, d.DstVSID, d.Reason, tt.kind, tt.dstVSID, tt.reason)
			}
			if tt.ca == "" {
				if d.Record != nil {
					t.Fatalf("record %+v; want none", d.Record)
				}
				return
			}
			if d.Record == nil || d.Record.CA != a(tt.ca) || d.Record.VSID != tt.dstVSID {
				t.Fatalf("record %+v; want vsid %d ca %s", d.Record, tt.dstVSID, tt.ca)
			}
		})
	}
}

// TestRouteOverlappingTenants: 10.0.0.0/24 in RD A and RD B, full records on
// both sides; every source and destination pair stays in its tenant.
func TestRouteOverlappingTenants(t *testing.T) {
	p := New()
	err := p.Apply(func(b *Builder) error {
		for i, rd := range []string{"A", "B"} {
			if err := b.AddRoutingDomain(RoutingDomain{ID: rd}); err != nil {
				return err
			}
			for j := range 2 {
				vsid := uint32(5000 + 100*i + j)
				if err := b.AddVirtualSubnet(VirtualSubnet{VSID: vsid, RoutingDomain: rd,
					IPv4Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(j), 0}), 24)}); err != nil {
					return err
				}
				for h := 2; h < 10; h++ {
					ca := netip.AddrFrom4([4]byte{10, 0, byte(j), byte(h)})
					r := LookupRecord{VSID: vsid, CA: ca, MAC: MAC{2, byte(i), 0, byte(j), 0, byte(h)}, PA: netip.AddrFrom4([4]byte{192, 168, byte(i), byte(h)})}
					if err := b.AddLookupRecord(r); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s := p.Snapshot()
	rdOf := func(vsid uint32) string { v, _ := s.Subnet(vsid); return v.RoutingDomain }
	for _, src := range []uint32{5000, 5001, 5100, 5101} {
		for j := range 2 {
			for h := 2; h < 10; h++ {
				dst := netip.AddrFrom4([4]byte{10, 0, byte(j), byte(h)})
				d := s.Route(src, dst)
				if d.Kind != Deliver && d.Kind != Routed {
					t.Fatalf("Route(%d, %s) = %v", src, dst, d)
				}
				if rdOf(d.Record.VSID) != rdOf(src) {
					t.Fatalf("Route(%d, %s) leaked to %v in routing domain %s", src, dst, d, rdOf(d.Record.VSID))
				}
				if d.Record.CA != dst {
					t.Fatalf("Route(%d, %s) = %v", src, dst, d)
				}
			}
		}
	}
}

func TestRouteGatewayWildcard(t *testing.T) {
	p := fixture(t)
	err := p.Apply(func(b *Builder) error {
		if err := b.AddLookupRecord(LookupRecord{VSID: 5001, CA: a("0.0.0.0"), MAC: mac(0xee), PA: a("192.168.0.200"), Type: TypeGatewayWildcard}); err != nil {
			return err
		}
		if err := b.AddLookupRecord(LookupRecord{VSID: 5001, CA: a("::"), MAC: mac(0xee), PA: a("192.168.0.200"), Type: TypeGatewayWildcard}); err != nil {
			return err
		}
		return b.AddCustomerRoute(CustomerRoute{RoutingDomain: rdA, VSID: 5002, Destination: pfx("172.16.0.0/12")})
	})
	if err != nil {
		t.Fatal(err)
	}
	s := p.Snapshot()
	w4, ok := s.GatewayWildcard(5001, false)
	if !ok || w4.PA != a("192.168.0.200") {
		t.Fatalf("GatewayWildcard v4 = %v %v", w4, ok)
	}
	w6, _ := s.GatewayWildcard(5001, true)
	if _, ok := s.LookupCA(5001, a("0.0.0.0")); ok {
		t.Error("LookupCA finds the wildcard by 0.0.0.0")
	}
	if r, ok := s.LookupMAC(5001, mac(0xee)); ok {
		t.Errorf("LookupMAC finds the wildcard: %v", r)
	}
	for _, tt := range []struct {
		vsid uint32
		dst  string
		want *LookupRecord
		kind DecisionKind
	}{
		{5001, "1.2.3.4", w4, Routed},        // no route: the wildcard
		{5001, "2001:db8::1", w6, Routed},    // per family
		{5001, "10.0.1.99", w4, Routed},      // unknown in its own subnet
		{5002, "10.0.1.99", w4, Routed},      // unknown in 5001, from 5002
		{5001, "10.0.1.5", nil, Deliver},     // known stays known
		{5002, "172.16.0.1", nil, Drop},      // on-link route in 5002: no record, no wildcard there
		{6001, "1.2.3.4", nil, Drop},         // not for other tenants
		{5001, "10.0.2.5", nil, Routed},      // other subnet known
		{5002, "1.2.3.4", nil, Drop},         // wildcard is per VSID
		{5001, "fd00:1::5", nil, Deliver},    // known v6
		{5001, "fd00:1::99", w6, Routed},     // unknown v6 in subnet
		{5003, "10.0.3.7", nil, Drop},        // 5003 has none
		{6001, "10.0.1.99", nil, Drop},       // RD B same prefix, no wildcard
		{5001, "10.0.2.99", nil, Drop},       // 5002 unknown: 5002 has no wildcard
		{5002, "172.16.0.1", nil, Drop},      // repeated on purpose: stable
		{5001, "255.255.255.255", nil, Drop}, // broadcast never routed
	} {
		d := s.Route(tt.vsid, a(tt.dst))
		if d.Kind != tt.kind || (tt.want != nil && d.Record != tt.want) {
			t.Errorf("Route(%d, %s) = %v; want %v %v", tt.vsid, tt.dst, d, tt.kind, tt.want)
		}
	}
	err = p.AddLookupRecord(LookupRecord{VSID: 5001, CA: a("0.0.0.0"), MAC: mac(0xef), PA: a("192.168.0.201"), Type: TypeGatewayWildcard})
	if want := "lookup record: ca 0.0.0.0: vsid 5001 already has a gateway wildcard (pa 192.168.0.200)"; err == nil || err.Error() != want {
		t.Errorf("second wildcard: %v", err)
	}
	if err := p.RemoveLookupRecord(5001, a("0.0.0.0"), MAC{}); err != nil {
		t.Fatal(err)
	}
	if d := p.Snapshot().Route(5001, a("1.2.3.4")); d.Kind != Drop || d.Reason != ReasonIsolation {
		t.Errorf("after removing the wildcard: %v", d)
	}
}
