package wnv_test

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/xvswitch/xvs/wnv"
)

// Two tenants use the same 10.0.1.0/24. Tenant A has a second subnet and a
// gateway VM that takes everything else; tenant B has nothing but its
// subnet. Route shows what the switch does with a frame at its source.
func Example() {
	p := wnv.New()
	addr, prefix := netip.MustParseAddr, netip.MustParsePrefix
	err := p.Apply(func(b *wnv.Builder) error {
		const a, bb = "{11111111-2222-3333-4444-00000000000a}", "{11111111-2222-3333-4444-00000000000b}"
		return errors.Join(
			b.AddRoutingDomain(wnv.RoutingDomain{ID: a}),
			b.AddRoutingDomain(wnv.RoutingDomain{ID: bb}),
			b.AddVirtualSubnet(wnv.VirtualSubnet{VSID: 5001, RoutingDomain: a, IPv4Prefix: prefix("10.0.1.0/24")}),
			b.AddVirtualSubnet(wnv.VirtualSubnet{VSID: 5002, RoutingDomain: a, IPv4Prefix: prefix("10.0.2.0/24")}),
			b.AddVirtualSubnet(wnv.VirtualSubnet{VSID: 6001, RoutingDomain: bb, IPv4Prefix: prefix("10.0.1.0/24")}),
			b.AddProviderAddress(wnv.ProviderAddress{Interface: "eth0", PA: addr("192.168.0.1"), PrefixLen: 24}),
			b.AddLookupRecord(wnv.LookupRecord{VSID: 5001, CA: addr("10.0.1.5"), MAC: wnv.MAC{2, 0, 0, 0, 0, 5}, PA: addr("192.168.0.1"), VMName: "web"}),
			b.AddLookupRecord(wnv.LookupRecord{VSID: 5002, CA: addr("10.0.2.5"), MAC: wnv.MAC{2, 0, 0, 0, 0, 6}, PA: addr("192.168.0.2"), VMName: "db"}),
			b.AddLookupRecord(wnv.LookupRecord{VSID: 5002, CA: addr("10.0.2.254"), MAC: wnv.MAC{2, 0, 0, 0, 0, 7}, PA: addr("192.168.0.3"), VMName: "gateway"}),
			b.AddLookupRecord(wnv.LookupRecord{VSID: 6001, CA: addr("10.0.1.6"), MAC: wnv.MAC{2, 0, 0, 0, 0, 5}, PA: addr("192.168.0.4")}),
			b.AddCustomerRoute(wnv.CustomerRoute{RoutingDomain: a, Destination: prefix("0.0.0.0/0"), NextHop: addr("10.0.2.254")}),
		)
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	s := p.Snapshot() // one atomic load; lookups on s never block or allocate
	for _, q := range []struct {
		vsid uint32
		dst  string
	}{
		{5001, "10.0.1.5"}, // same subnet
		{5001, "10.0.2.5"}, // another subnet of tenant A
		{5001, "8.8.8.8"},  // the default route: the gateway VM
		{5001, "10.0.1.1"}, // the subnet's default gateway
		{5001, "10.0.1.6"}, // tenant B's VM: unknown in tenant A
		{6001, "10.0.2.5"}, // tenant A's VM from tenant B
	} {
		fmt.Printf("%d -> %-9s %v\n", q.vsid, q.dst, s.Route(q.vsid, addr(q.dst)))
	}

	err = p.AddLookupRecord(wnv.LookupRecord{VSID: 5001, CA: addr("10.9.0.5"), MAC: wnv.MAC{2, 0, 0, 0, 0, 9}, PA: addr("192.168.0.2")})
	fmt.Println(err, errors.Is(err, wnv.ErrInvalid))
	// Output:
	// 5001 -> 10.0.1.5  deliver vsid 5001 ca 10.0.1.5 mac 02:00:00:00:00:05 pa 192.168.0.1
	// 5001 -> 10.0.2.5  routed vsid 5002 ca 10.0.2.5 mac 02:00:00:00:00:06 pa 192.168.0.2
	// 5001 -> 8.8.8.8   routed vsid 5002 ca 10.0.2.254 mac 02:00:00:00:00:07 pa 192.168.0.3
	// 5001 -> 10.0.1.1  gateway vsid 5001
	// 5001 -> 10.0.1.6  drop no-policy
	// 6001 -> 10.0.2.5  drop isolation
	// lookup record: ca 10.9.0.5: outside virtual subnet 5001 (10.0.1.0/24) true
}

// A policy comes from the daemon's configuration file as a PolicyConfig;
// errors name the element and the field.
func ExampleLoadConfig() {
	_, err := wnv.LoadConfig(wnv.PolicyConfig{
		RoutingDomains: []wnv.RoutingDomainConfig{{ID: "blue"}},
		VirtualSubnets: []wnv.VirtualSubnetConfig{{VSID: 5001, RoutingDomain: "blue", IPv4Prefix: "10.0.1.0/24"}},
		LookupRecords: []wnv.LookupRecordConfig{
			{VSID: 5001, CA: "10.0.1.5", MAC: "02-00-00-00-00-05", PA: "192.168.0.2", Rule: "TranslationMethodEncap"},
			{VSID: 5001, CA: "10.0.1.5", MAC: "02-00-00-00-00-06", PA: "192.168.0.3"},
		},
	})
	fmt.Println(err)
	// Output:
	// lookup_records[1]: lookup record: ca 10.0.1.5: already in vsid 5001 (mac 02:00:00:00:00:05)
}
