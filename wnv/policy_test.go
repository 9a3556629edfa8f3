package wnv

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

const (
	rdA = "{11111111-2222-3333-4444-000000000000}"
	rdB = "{11111111-2222-3333-4444-00000000000b}"
)

var (
	a   = netip.MustParseAddr
	pfx = netip.MustParsePrefix
)

func mac(last byte) MAC { return MAC{0x02, 0, 0, 0, 1, last} }

// fixture: two tenants with the same 10.0.1.0/24.
//
//	RD A: 5001 10.0.1.0/24 + fd00:1::/64, 5002 10.0.2.0/24, 5003 10.0.3.0/24
//	RD B: 6001 10.0.1.0/24
//	this host: 192.168.0.1/24 on eth0; default route via 192.168.0.254
func fixture(t testing.TB) *Policy {
	t.Helper()
	p := New()
	err := p.Apply(func(b *Builder) error {
		must := func(err error) {
			if err != nil {
				t.Fatal(err)
			}
		}
		must(b.AddRoutingDomain(RoutingDomain{ID: rdA}))
		must(b.AddRoutingDomain(RoutingDomain{ID: rdB}))
		must(b.AddVirtualSubnet(VirtualSubnet{VSID: 5001, RoutingDomain: rdA, IPv4Prefix: pfx("10.0.1.0/24"), IPv6Prefix: pfx("fd00:1::/64")}))
		must(b.AddVirtualSubnet(VirtualSubnet{VSID: 5002, RoutingDomain: rdA, IPv4Prefix: pfx("10.0.2.0/24")}))
		must(b.AddVirtualSubnet(VirtualSubnet{VSID: 5003, RoutingDomain: rdA, IPv4Prefix: pfx("10.0.3.0/24")}))
		must(b.AddVirtualSubnet(VirtualSubnet{VSID: 6001, RoutingDomain: rdB, IPv4Prefix: pfx("10.0.1.0/24")}))
		must(b.AddProviderAddress(ProviderAddress{Interface: "eth0", PA: a("192.168.0.1"), PrefixLen: 24}))
		must(b.AddProviderRoute(ProviderRoute{Destination: pfx("0.0.0.0/0"), NextHop: a("192.168.0.254")}))
		must(b.AddLookupRecord(LookupRecord{VSID: 5001, CA: a("10.0.1.5"), MAC: mac(5), PA: a("192.168.0.1"), VMName: "web1"}))
		must(b.AddLookupRecord(LookupRecord{VSID: 5001, CA: a("fd00:1::5"), MAC: mac(5), PA: a("192.168.0.1"), VMName: "web1"}))
		must(b.AddLookupRecord(LookupRecord{VSID: 5001, CA: a("10.0.1.6"), MAC: mac(6), PA: a("192.168.0.2"), VMName: "web2"}))
		must(b.AddLookupRecord(LookupRecord{VSID: 5002, CA: a("10.0.2.5"), MAC: mac(0x25), PA: a("192.168.0.3"), VMName: "db"}))
		must(b.AddLookupRecord(LookupRecord{VSID: 5003, CA: a("10.0.3.254"), MAC: mac(0x3f), PA: a("192.168.0.4"), VMName: "gw"}))
		must(b.AddLookupRecord(LookupRecord{VSID: 6001, CA: a("10.0.1.5"), MAC: mac(5), PA: a("192.168.0.5"), VMName: "other-tenant"}))
		must(b.AddLookupRecord(LookupRecord{VSID: 6001, CA: a("10.0.1.7"), MAC: mac(7), PA: a("192.168.0.9"), Rule: RuleRewrite}))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidationErrors(t *testing.T) {
	rec := func(mod func(*LookupRecord)) func(*Builder) error {
		return func(b *Builder) error {
			r := LookupRecord{VSID: 5001, CA: a("10.0.1.50"), MAC: mac(50), PA: a("192.168.0.7")}
			mod(&r)
			return b.AddLookupRecord(r)
		}
	}
	sub := func(s VirtualSubnet) func(*Builder) error {
		return func(b *Builder) error { return b.AddVirtualSubnet(s) }
	}
	cr := func(r CustomerRoute) func(*Builder) error {
		return func(b *Builder) error { return b.AddCustomerRoute(r) }
	}
	pa := func(x ProviderAddress) func(*Builder) error {
		return func(b *Builder) error { return b.AddProviderAddress(x) }
	}
	pr := func(r ProviderRoute) func(*Builder) error {
		return func(b *Builder) error { return b.AddProviderRoute(r) }
	}
	tests := []struct {
		name string
		op   func(*Builder) error
		kind error
		want string // the whole message
	}{
		// routing domains
		{"rd empty id", func(b *Builder) error { return b.AddRoutingDomain(RoutingDomain{}) }, ErrInvalid,
			`routing domain: id "": empty`},
		{"rd space", func(b *Builder) error { return b.AddRoutingDomain(RoutingDomain{ID: "a b"}) }, ErrInvalid,
			`routing domain: id "a b": has space or unprintable character ' '`},
		{"rd long", func(b *Builder) error { return b.AddRoutingDomain(RoutingDomain{ID: strings.Repeat("x", 65)}) }, ErrInvalid,
			`routing domain: id "` + strings.Repeat("x", 65) + `": longer than 64 characters`},
		{"rd dup", func(b *Builder) error { return b.AddRoutingDomain(RoutingDomain{ID: rdA}) }, ErrExists,
			`routing domain "` + rdA + `": already defined`},
		{"rd remove unknown", func(b *Builder) error { return b.RemoveRoutingDomain("x") }, ErrNotFound,
			`routing domain "x": unknown`},
		{"rd remove with subnets", func(b *Builder) error { return b.RemoveRoutingDomain(rdB) }, ErrInUse,
			`routing domain "` + rdB + `": has virtual subnet 6001`},
		// virtual subnets
		{"vsid low", sub(VirtualSubnet{VSID: 12, RoutingDomain: rdA, IPv4Prefix: pfx("10.9.0.0/24")}), ErrInvalid,
			`virtual subnet: vsid: 12: want 4096..16777214`},
		{"vsid high", sub(VirtualSubnet{VSID: 16777215, RoutingDomain: rdA, IPv4Prefix: pfx("10.9.0.0/24")}), ErrInvalid,
			`virtual subnet: vsid: 16777215: want 4096..16777214`},
		{"vsid dup", sub(VirtualSubnet{VSID: 5001, RoutingDomain: rdB, IPv4Prefix: pfx("10.9.0.0/24")}), ErrExists,
			`virtual subnet 5001: already defined (routing domain "` + rdA + `")`},
		{"rd unknown", sub(VirtualSubnet{VSID: 7000, RoutingDomain: "x", IPv4Prefix: pfx("10.9.0.0/24")}), ErrNotFound,
			`virtual subnet 7000: routing domain "x": unknown`},
		{"prefix missing", sub(VirtualSubnet{VSID: 7000, RoutingDomain: rdA}), ErrInvalid,
			`virtual subnet 7000: ipv4 prefix: missing`},
		{"prefix host bits", sub(VirtualSubnet{VSID: 7000, RoutingDomain: rdA, IPv4Prefix: pfx("10.9.0.5/24")}), ErrInvalid,
			`virtual subnet 7000: ipv4 prefix 10.9.0.5/24: host bits set (want 10.9.0.0/24)`},
		{"prefix too long", sub(VirtualSubnet{VSID: 7000, RoutingDomain: rdA, IPv4Prefix: pfx("10.9.0.0/31")}), ErrInvalid,
			`virtual subnet 7000: ipv4 prefix 10.9.0.0/31: want /1../30`},
		{"prefix v6 in v4", sub(VirtualSubnet{VSID: 7000, RoutingDomain: rdA, IPv4Prefix: pfx("fd00::/64")}), ErrInvalid,
			`virtual subnet 7000: ipv4 prefix fd00::/64: want ipv4`},
		{"prefix multicast", sub(VirtualSubnet{VSID: 7000, RoutingDomain: rdA, IPv4Prefix: pfx("239.0.0.0/24")}), ErrInvalid,
			`virtual subnet 7000: ipv4 prefix 239.0.0.0/24: overlaps reserved 224.0.0.0/3`},
		{"prefix v6 multicast", sub(VirtualSubnet{VSID: 7000, RoutingDomain: rdA, IPv4Prefix: pfx("10.9.0.0/24"), IPv6Prefix: pfx("ff02::/64")}), ErrInvalid,
			`virtual subnet 7000: ipv6 prefix ff02::/64: overlaps reserved ff00::/8`},
		{"overlap same rd", sub(VirtualSubnet{VSID: 7000, RoutingDomain: rdA, IPv4Prefix: pfx("10.0.1.128/25")}), ErrInvalid,
			`virtual subnet 7000: ipv4 prefix 10.0.1.128/25: overlaps virtual subnet 5001 (10.0.1.0/24) in routing domain "` + rdA + `"`},
		{"overlap v6 same rd", sub(VirtualSubnet{VSID: 7000, RoutingDomain: rdA, IPv4Prefix: pfx("10.9.0.0/24"), IPv6Prefix: pfx("fd00::/16")}), ErrInvalid,
			`virtual subnet 7000: ipv6 prefix fd00::/16: overlaps virtual subnet 5001 (fd00:1::/64) in routing domain "` + rdA + `"`},
		{"remove subnet unknown", func(b *Builder) error { return b.RemoveVirtualSubnet(7000) }, ErrNotFound,
			`virtual subnet 7000: unknown`},
		{"remove subnet with records", func(b *Builder) error { return b.RemoveVirtualSubnet(5002) }, ErrInUse,
			`virtual subnet 5002: has 1 lookup records`},
		// lookup records
		{"record vsid range", rec(func(r *LookupRecord) { r.VSID = 12 }), ErrInvalid,
			`lookup record: vsid: 12: want 4096..16777214`},
		{"record vsid unknown", rec(func(r *LookupRecord) { r.VSID = 7000 }), ErrNotFound,
			`lookup record: vsid 7000: no such virtual subnet`},
		{"ca outside", rec(func(r *LookupRecord) { r.CA = a("10.9.0.5") }), ErrInvalid,
			`lookup record: ca 10.9.0.5: outside virtual subnet 5001 (10.0.1.0/24)`},
		{"ca outside v6", rec(func(r *LookupRecord) { r.CA = a("fd00:2::5") }), ErrInvalid,
			`lookup record: ca fd00:2::5: outside virtual subnet 5001 (fd00:1::/64)`},
		{"ca v6 no prefix", rec(func(r *LookupRecord) { r.VSID, r.CA = 5002, a("fd00:2::5") }), ErrInvalid,
			`lookup record: ca fd00:2::5: virtual subnet 5002 has no ipv6 prefix`},
		{"ca gateway", rec(func(r *LookupRecord) { r.CA = a("10.0.1.1") }), ErrInvalid,
			`lookup record: ca 10.0.1.1: is the default gateway of virtual subnet 5001 (10.0.1.0/24)`},
		{"ca network", rec(func(r *LookupRecord) { r.CA = a("10.0.1.0") }), ErrInvalid,
			`lookup record: ca 10.0.1.0: is the network address of virtual subnet 5001 (10.0.1.0/24)`},
		{"ca broadcast", rec(func(r *LookupRecord) { r.CA = a("10.0.1.255") }), ErrInvalid,
			`lookup record: ca 10.0.1.255: is the broadcast address of virtual subnet 5001 (10.0.1.0/24)`},
		{"ca missing", rec(func(r *LookupRecord) { r.CA = netip.Addr{} }), ErrInvalid,
			`lookup record: ca: missing (type static)`},
		{"ca mapped", rec(func(r *LookupRecord) { r.CA = a("::ffff:10.0.1.50") }), ErrInvalid,
			`lookup record: ca ::ffff:10.0.1.50: ipv4-mapped; want plain ipv4`},
		{"ca dup", rec(func(r *LookupRecord) { r.CA = a("10.0.1.5") }), ErrExists,
			`lookup record: ca 10.0.1.5: already in vsid 5001 (mac 02:00:00:00:01:05)`},
		{"mac dup other pa", rec(func(r *LookupRecord) { r.MAC = mac(6) }), ErrExists,
			`lookup record: mac 02:00:00:00:01:06: already in vsid 5001 (ca 10.0.1.6 mac 02:00:00:00:01:06) behind pa 192.168.0.2; one mac, one pa`},
		{"mac zero", rec(func(r *LookupRecord) { r.MAC = MAC{} }), ErrInvalid,
			`lookup record: mac 00:00:00:00:00:00: zero`},
		{"mac broadcast", rec(func(r *LookupRecord) { r.MAC = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff} }), ErrInvalid,
			`lookup record: mac ff:ff:ff:ff:ff:ff: broadcast`},
		{"mac multicast", rec(func(r *LookupRecord) { r.MAC = MAC{0x01, 0, 0x5e, 0, 0, 1} }), ErrInvalid,
			`lookup record: mac 01:00:5e:00:00:01: multicast`},
		{"mac gateway", rec(func(r *LookupRecord) { r.MAC = DefaultGatewayMAC }), ErrInvalid,
			`lookup record: mac 02:78:76:73:00:01: is the virtual gateway mac`},
		{"pa missing", rec(func(r *LookupRecord) { r.PA = netip.Addr{} }), ErrInvalid,
			`lookup record: pa: missing`},
		{"pa v6", rec(func(r *LookupRecord) { r.PA = a("2001:db8::1") }), ErrInvalid,
			`lookup record: pa 2001:db8::1: want ipv4`},
		{"pa multicast", rec(func(r *LookupRecord) { r.PA = a("224.0.0.1") }), ErrInvalid,
			`lookup record: pa 224.0.0.1: multicast`},
		{"pa broadcast", rec(func(r *LookupRecord) { r.PA = a("255.255.255.255") }), ErrInvalid,
			`lookup record: pa 255.255.255.255: broadcast`},
		{"pa zero", rec(func(r *LookupRecord) { r.PA = a("0.0.0.0") }), ErrInvalid,
			`lookup record: pa 0.0.0.0: unspecified`},
		{"rewrite shared pa", rec(func(r *LookupRecord) { r.Rule, r.PA = RuleRewrite, a("192.168.0.2") }), ErrInUse,
			`lookup record: rule rewrite: pa 192.168.0.2: already used by 1 lookup records; rewrite needs a pa per ca`},
		{"encap on rewrite pa", rec(func(r *LookupRecord) { r.PA = a("192.168.0.9") }), ErrInUse,
			`lookup record: pa 192.168.0.9: owned by rewrite record vsid 6001 ca 10.0.1.7`},
		{"rewrite v6", rec(func(r *LookupRecord) { r.Rule, r.CA = RuleRewrite, a("fd00:1::50") }), ErrInvalid,
			`lookup record: rule rewrite: ca fd00:1::50: rewrite translates ipv4 only`},
		{"rule bad", rec(func(r *LookupRecord) { r.Rule = 7 }), ErrInvalid,
			`lookup record: rule 7: want encap or rewrite`},
		{"type bad", rec(func(r *LookupRecord) { r.Type = 7 }), ErrInvalid,
			`lookup record: type 7: want static, l2only or gatewaywildcard`},
		{"vm name control", rec(func(r *LookupRecord) { r.VMName = "a\nb" }), ErrInvalid,
			`lookup record: vm name "a\nb": has control character '\n'`},
		{"l2only with ca", rec(func(r *LookupRecord) { r.Type = TypeL2Only }), ErrInvalid,
			`lookup record: ca 10.0.1.50: type l2only has no ca`},
		{"wildcard with ca", rec(func(r *LookupRecord) { r.Type = TypeGatewayWildcard }), ErrInvalid,
			`lookup record: ca 10.0.1.50: type gatewaywildcard wants 0.0.0.0 or ::`},
		{"wildcard v6 no prefix", rec(func(r *LookupRecord) { r.VSID, r.Type, r.CA = 5002, TypeGatewayWildcard, a("::") }), ErrInvalid,
			`lookup record: ca ::: virtual subnet 5002 has no ipv6 prefix`},
		{"static unspecified", rec(func(r *LookupRecord) { r.CA = a("0.0.0.0") }), ErrInvalid,
			`lookup record: ca 0.0.0.0: unspecified (a gateway wildcard record wants type gatewaywildcard)`},
		{"rewrite wildcard", rec(func(r *LookupRecord) { r.Type, r.CA, r.Rule = TypeGatewayWildcard, a("0.0.0.0"), RuleRewrite }), ErrInvalid,
			`lookup record: rule rewrite: type gatewaywildcard: only static records can be rewritten`},
		{"remove record unknown", func(b *Builder) error { return b.RemoveLookupRecord(5001, a("10.0.1.99"), MAC{}) }, ErrNotFound,
			`lookup record: ca 10.0.1.99: not in vsid 5001`},
		{"remove record wrong mac", func(b *Builder) error { return b.RemoveLookupRecord(5001, a("10.0.1.5"), mac(9)) }, ErrNotFound,
			`lookup record: ca 10.0.1.5 in vsid 5001: has mac 02:00:00:00:01:05, not 02:00:00:00:01:09`},
		{"remove record nothing", func(b *Builder) error { return b.RemoveLookupRecord(5001, netip.Addr{}, MAC{}) }, ErrInvalid,
			`lookup record: vsid 5001: want a ca or, for l2only, a mac`},
		// customer routes
		{"route rd unknown", cr(CustomerRoute{RoutingDomain: "x", Destination: pfx("0.0.0.0/0")}), ErrNotFound,
			`customer route: routing domain "x": unknown`},
		{"route vsid other rd", cr(CustomerRoute{RoutingDomain: rdA, VSID: 6001, Destination: pfx("0.0.0.0/0")}), ErrInvalid,
			`customer route: vsid 6001: in routing domain "` + rdB + `", not "` + rdA + `"`},
		{"route vsid range", cr(CustomerRoute{RoutingDomain: rdA, VSID: 99, Destination: pfx("0.0.0.0/0")}), ErrInvalid,
			`customer route: vsid: 99: want 4096..16777214`},
		{"route dst host bits", cr(CustomerRoute{RoutingDomain: rdA, VSID: 5001, Destination: pfx("10.8.0.1/16")}), ErrInvalid,
			`customer route: destination 10.8.0.1/16: host bits set (want 10.8.0.0/16)`},
		{"route next hop outside rd", cr(CustomerRoute{RoutingDomain: rdA, VSID: 5001, Destination: pfx("0.0.0.0/0"), NextHop: a("10.0.9.1")}), ErrInvalid,
			`customer route: next hop 10.0.9.1: outside every virtual subnet of routing domain "` + rdA + `"`},
		{"route next hop family", cr(CustomerRoute{RoutingDomain: rdA, VSID: 5001, Destination: pfx("::/0"), NextHop: a("10.0.3.254")}), ErrInvalid,
			`customer route: next hop 10.0.3.254: not the family of destination ::/0`},
		{"route next hop gateway", cr(CustomerRoute{RoutingDomain: rdA, VSID: 5001, Destination: pfx("0.0.0.0/0"), NextHop: a("10.0.3.1")}), ErrInvalid,
			`customer route: next hop: ca 10.0.3.1: is the default gateway of virtual subnet 5003 (10.0.3.0/24)`},
		{"route remove unknown", func(b *Builder) error { return b.RemoveCustomerRoute(rdA, 5001, pfx("0.0.0.0/0"), netip.Addr{}) }, ErrNotFound,
			`customer route 0.0.0.0/0 on-link (vsid 5001, routing domain "` + rdA + `"): unknown`},
		// provider addresses and routes
		{"pa interface", pa(ProviderAddress{PA: a("192.168.1.1"), PrefixLen: 24}), ErrInvalid,
			`provider address: interface: empty`},
		{"pa prefix length", pa(ProviderAddress{Interface: "eth1", PA: a("192.168.1.1"), PrefixLen: 33}), ErrInvalid,
			`provider address: pa 192.168.1.1: prefix length 33: want 1..32`},
		{"pa vlan", pa(ProviderAddress{Interface: "eth1", PA: a("192.168.1.1"), PrefixLen: 24, VLAN: 4095}), ErrInvalid,
			`provider address: pa 192.168.1.1: vlan 4095: want 0..4094`},
		{"pa v6", pa(ProviderAddress{Interface: "eth1", PA: a("fd00::1"), PrefixLen: 24}), ErrInvalid,
			`provider address: pa fd00::1: want ipv4`},
		{"pa dup", pa(ProviderAddress{Interface: "eth1", PA: a("192.168.0.1"), PrefixLen: 24}), ErrExists,
			`provider address: pa 192.168.0.1: already on interface "eth0"`},
		{"pa remove unknown", func(b *Builder) error { return b.RemoveProviderAddress(a("192.168.7.7")) }, ErrNotFound,
			`provider address 192.168.7.7: unknown`},
		{"pa remove used by records", func(b *Builder) error { return b.RemoveProviderAddress(a("192.168.0.1")) }, ErrInUse,
			`provider address 192.168.0.1: used by 2 lookup records`},
		{"proute off-link", pr(ProviderRoute{Destination: pfx("172.16.0.0/12"), NextHop: a("10.1.1.1")}), ErrInvalid,
			`provider route: next hop 10.1.1.1: not on-link (no provider address covers it)`},
		{"proute v6", pr(ProviderRoute{Destination: pfx("fd00::/8")}), ErrInvalid,
			`provider route: destination fd00::/8: want ipv4`},
		{"proute dup", pr(ProviderRoute{Destination: pfx("0.0.0.0/0"), NextHop: a("192.168.0.254")}), ErrExists,
			`provider route 0.0.0.0/0 via 192.168.0.254: already defined`},
		{"proute remove unknown", func(b *Builder) error { return b.RemoveProviderRoute(pfx("10.0.0.0/8"), netip.Addr{}) }, ErrNotFound,
			`provider route 10.0.0.0/8 via on-link: unknown`},
		{"gateway mac multicast", func(b *Builder) error { return b.SetGatewayMAC(MAC{1, 2, 3, 4, 5, 6}) }, ErrInvalid,
			`gateway mac: mac 01:02:03:04:05:06: multicast`},
		{"gateway mac in use", func(b *Builder) error { return b.SetGatewayMAC(mac(6)) }, ErrInUse,
			`gateway mac 02:00:00:00:01:06: used by lookup record vsid 5001 (ca 10.0.1.6 mac 02:00:00:00:01:06)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := fixture(t)
			v := p.Version()
			err := p.Apply(tt.op)
			if err == nil {
				t.Fatalf("no error; want %q", tt.want)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("error %q is not %v", err, tt.kind)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
			if p.Version() != v {
				t.Errorf("version moved from %d to %d on a failed change", v, p.Version())
			}
		})
	}
}

func TestRemoveInUseByRoute(t *testing.T) {
	p := fixture(t)
	if err := p.AddCustomerRoute(CustomerRoute{RoutingDomain: rdA, VSID: 5001, Destination: pfx("0.0.0.0/0"), NextHop: a("10.0.3.254")}); err != nil {
		t.Fatal(err)
	}
	if err := p.RemoveLookupRecord(5003, a("10.0.3.254"), MAC{}); err != nil {
		t.Fatal(err) // a route may outlive its next hop's record: Route drops no-next-hop
	}
	err := p.RemoveVirtualSubnet(5003)
	want := `virtual subnet 5003: used by customer route 0.0.0.0/0 via 10.0.3.254 (vsid 5001, routing domain "` + rdA + `")`
	if !errors.Is(err, ErrInUse) || err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if got := p.Snapshot().Route(5001, a("8.8.8.8")); got.Kind != Drop || got.Reason != ReasonNextHop {
		t.Errorf("route with a missing next hop record: %v", got)
	}
	if err := p.RemoveCustomerRoute(rdA, 5001, pfx("0.0.0.0/0"), a("10.0.3.254")); err != nil {
		t.Fatal(err)
	}
	if err := p.RemoveVirtualSubnet(5003); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Snapshot().Subnet(5003); ok {
		t.Error("subnet 5003 still there")
	}
}

func TestRemoveEverything(t *testing.T) {
	p := fixture(t)
	err := p.Apply(func(b *Builder) error {
		for _, r := range p.Snapshot().LookupRecords() {
			if err := b.RemoveLookupRecord(r.VSID, r.CA, r.MAC); err != nil {
				return err
			}
		}
		for _, s := range p.Snapshot().VirtualSubnets() {
			if err := b.RemoveVirtualSubnet(s.VSID); err != nil {
				return err
			}
		}
		for _, r := range p.Snapshot().ProviderRoutes() {
			if err := b.RemoveProviderRoute(r.Destination, r.NextHop); err != nil {
				return err
			}
		}
		for _, x := range p.Snapshot().ProviderAddresses() {
			if err := b.RemoveProviderAddress(x.PA); err != nil {
				return err
			}
		}
		if err := b.RemoveRoutingDomain(rdA); err != nil {
			return err
		}
		return b.RemoveRoutingDomain(rdB)
	})
	if err != nil {
		t.Fatal(err)
	}
	c := p.Config()
	if len(c.RoutingDomains)+len(c.VirtualSubnets)+len(c.LookupRecords)+len(c.ProviderAddresses)+len(c.ProviderRoutes) != 0 {
		t.Errorf("left over: %+v", c)
	}
	s := p.Snapshot()
	if _, ok := s.LookupMAC(5001, mac(5)); ok {
		t.Error("mac index kept a removed record")
	}
	if s.HostsForVSID(5001) != nil || s.IsLocalPA(a("192.168.0.1")) {
		t.Error("derived tables kept removed state")
	}
}

func TestLookups(t *testing.T) {
	s := fixture(t).Snapshot()
	if r, ok := s.LookupCA(5001, a("10.0.1.5")); !ok || r.VMName != "web1" || r.PA != a("192.168.0.1") {
		t.Errorf("LookupCA 5001 10.0.1.5 = %v, %v", r, ok)
	}
	if r, ok := s.LookupCA(6001, a("10.0.1.5")); !ok || r.VMName != "other-tenant" {
		t.Errorf("LookupCA 6001 10.0.1.5 = %v, %v", r, ok)
	}
	if _, ok := s.LookupCA(5002, a("10.0.1.5")); ok {
		t.Error("LookupCA found 10.0.1.5 in 5002")
	}
	// one station, two CAs: the MAC finds it, by its first record.
	if r, ok := s.LookupMAC(5001, mac(5)); !ok || r.CA != a("10.0.1.5") {
		t.Errorf("LookupMAC 5001 mac5 = %v, %v", r, ok)
	}
	if r, ok := s.LookupCA(5001, a("fd00:1::5")); !ok || r.MAC != mac(5) {
		t.Errorf("LookupCA fd00:1::5 = %v, %v", r, ok)
	}
	vs, ok := s.Subnet(5001)
	if !ok || vs.RoutingDomain != rdA || vs.Gateway4() != a("10.0.1.1") || vs.Gateway6() != a("fd00:1::1") {
		t.Errorf("Subnet 5001 = %+v", vs)
	}
	if vs, _ := s.Subnet(5002); vs.Gateway6().IsValid() {
		t.Errorf("5002 has an ipv6 gateway %s", vs.Gateway6())
	}
	if _, ok := s.Subnet(0); ok {
		t.Error("Subnet(0) found")
	}
	if !s.IsLocalPA(a("192.168.0.1")) || s.IsLocalPA(a("192.168.0.2")) {
		t.Error("IsLocalPA")
	}
	if vsid, ca, ok := s.VSIDForPA(a("192.168.0.9")); !ok || vsid != 6001 || ca != a("10.0.1.7") {
		t.Errorf("VSIDForPA = %d %s %v", vsid, ca, ok)
	}
	if _, _, ok := s.VSIDForPA(a("192.168.0.2")); ok {
		t.Error("VSIDForPA found an encap PA")
	}
	if got := s.HostsForVSID(5001); len(got) != 1 || got[0] != a("192.168.0.2") {
		t.Errorf("HostsForVSID(5001) = %v (the local PA must not be listed)", got)
	}
	if got := s.HostsForVSID(6001); len(got) != 1 || got[0] != a("192.168.0.5") {
		t.Errorf("HostsForVSID(6001) = %v (rewrite PAs are not NVGRE hosts)", got)
	}
	if got := s.RecordsByPA(a("192.168.0.1")); len(got) != 2 || got[0].CA != a("10.0.1.5") || got[1].CA != a("fd00:1::5") {
		t.Errorf("RecordsByPA = %v", got)
	}
	if s.GatewayMAC() != DefaultGatewayMAC {
		t.Errorf("gateway mac %s", s.GatewayMAC())
	}
	if r, ok := s.GetLookupRecord(5002, a("10.0.2.5")); !ok || r.VMName != "db" {
		t.Errorf("GetLookupRecord = %v %v", r, ok)
	}
}

func TestCopiesAreCopies(t *testing.T) {
	p := fixture(t)
	rs := p.Snapshot().LookupRecords()
	rs[0].PA = a("1.2.3.4")
	vs, _ := p.Snapshot().GetVirtualSubnet(5001)
	vs.RoutingDomain = "changed"
	if r, _ := p.Snapshot().LookupCA(rs[0].VSID, rs[0].CA); r.PA == a("1.2.3.4") {
		t.Error("LookupRecords returned the snapshot's own record")
	}
	if s, _ := p.Snapshot().Subnet(5001); s.RoutingDomain != rdA {
		t.Error("GetVirtualSubnet returned the snapshot's own subnet")
	}
}

func TestL2OnlyAndSharedMAC(t *testing.T) {
	p := fixture(t)
	l2 := LookupRecord{VSID: 5002, MAC: mac(0x77), PA: a("192.168.0.3"), Type: TypeL2Only, CA: a("0.0.0.0")}
	if err := p.AddLookupRecord(l2); err != nil {
		t.Fatal(err)
	}
	s := p.Snapshot()
	r, ok := s.LookupMAC(5002, mac(0x77))
	if !ok || r.CA.IsValid() || r.Type != TypeL2Only {
		t.Fatalf("LookupMAC l2only = %+v %v (ca 0.0.0.0 is stored empty)", r, ok)
	}
	err := p.AddLookupRecord(l2)
	if !errors.Is(err, ErrExists) || err.Error() != "lookup record: mac 02:00:00:00:01:77: already has an l2only record in vsid 5002" {
		t.Errorf("duplicate l2only: %v", err)
	}
	// the station gets an address: same MAC, same PA, allowed.
	if err := p.AddLookupRecord(LookupRecord{VSID: 5002, CA: a("10.0.2.77"), MAC: mac(0x77), PA: a("192.168.0.3")}); err != nil {
		t.Fatal(err)
	}
	if err := p.RemoveLookupRecord(5002, netip.Addr{}, mac(0x77)); err != nil {
		t.Fatal(err)
	}
	if r, ok := p.Snapshot().LookupMAC(5002, mac(0x77)); !ok || r.CA != a("10.0.2.77") {
		t.Errorf("after removing the l2only record the MAC finds %+v %v", r, ok)
	}
	if err := p.RemoveLookupRecord(5002, netip.Addr{}, mac(0x77)); !errors.Is(err, ErrNotFound) {
		t.Errorf("second removal: %v", err)
	}
}

func TestVersionAndApplyAllOrNothing(t *testing.T) {
	p := New()
	if p.Version() != 1 {
		t.Fatalf("new policy at version %d", p.Version())
	}
	if err := p.AddRoutingDomain(RoutingDomain{ID: "blue"}); err != nil {
		t.Fatal(err)
	}
	if p.Version() != 2 {
		t.Fatalf("version %d after one change", p.Version())
	}
	before := p.Snapshot()
	// the second subnet fails: nothing of the batch may show.
	err := p.Apply(func(b *Builder) error {
		if err := b.AddVirtualSubnet(VirtualSubnet{VSID: 5001, RoutingDomain: "blue", IPv4Prefix: pfx("10.0.1.0/24")}); err != nil {
			return err
		}
		_ = b.AddVirtualSubnet(VirtualSubnet{VSID: 5002, RoutingDomain: "blue", IPv4Prefix: pfx("10.0.1.0/25")}) // ignored error
		return nil
	})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Apply = %v, want the ignored overlap error", err)
	}
	if p.Snapshot() != before || p.Version() != 2 {
		t.Fatal("a failed batch was published")
	}
	if _, ok := p.Snapshot().Subnet(5001); ok {
		t.Fatal("half a batch is visible")
	}
	// fn's own error aborts too.
	boom := errors.New("boom")
	err = p.Apply(func(b *Builder) error {
		if err := b.AddVirtualSubnet(VirtualSubnet{VSID: 5001, RoutingDomain: "blue", IPv4Prefix: pfx("10.0.1.0/24")}); err != nil {
			return err
		}
		return boom
	})
	if err != boom || p.Version() != 2 {
		t.Fatalf("Apply = %v, version %d", err, p.Version())
	}
	// a batch that changes nothing publishes nothing.
	if err := p.Apply(func(*Builder) error { return nil }); err != nil || p.Version() != 2 {
		t.Fatalf("empty batch: %v, version %d", err, p.Version())
	}
	// a batch publishes once, however many changes it holds.
	var kept *Builder
	err = p.Apply(func(b *Builder) error {
		kept = b
		for i := range 10 {
			vsid := uint32(5001 + i)
			if err := b.AddVirtualSubnet(VirtualSubnet{VSID: vsid, RoutingDomain: "blue", IPv4Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || p.Version() != 3 || len(p.Snapshot().VirtualSubnets()) != 10 {
		t.Fatalf("batch: %v, version %d", err, p.Version())
	}
	if err := kept.AddRoutingDomain(RoutingDomain{ID: "late"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("builder used after Apply: %v", err)
	}
	if len(p.Snapshot().RoutingDomains()) != 1 {
		t.Error("a stale builder changed the policy")
	}
}

func TestApplyPanicUnlocks(t *testing.T) {
	p := New()
	func() {
		defer func() { _ = recover() }()
		_ = p.Apply(func(*Builder) error { panic("x") })
	}()
	if err := p.AddRoutingDomain(RoutingDomain{ID: "x"}); err != nil {
		t.Fatal(err)
	}
}

func TestParse(t *testing.T) {
	for _, s := range []string{"02:00:00:00:01:05", "02-00-00-00-01-05", "020000000105", "02:00:00:00:01:05"} {
		if m, err := ParseMAC(s); err != nil || m != mac(5) {
			t.Errorf("ParseMAC(%q) = %s, %v", s, m, err)
		}
	}
	for _, s := range []string{"", "02:00:00:00:01", "02:00-00:00:01:05", "0200000001zz", "02:00:00:00:01:05:06"} {
		if _, err := ParseMAC(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseMAC(%q) = %v", s, err)
		}
	}
	for s, want := range map[string]Rule{"": RuleEncap, "TranslationMethodEncap": RuleEncap, "NAT": RuleRewrite, "translationmethodnat": RuleRewrite} {
		if r, err := ParseRule(s); err != nil || r != want {
			t.Errorf("ParseRule(%q) = %v, %v", s, r, err)
		}
	}
	if _, err := ParseRecordType("Dynamic"); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("ParseRecordType(Dynamic) = %v", err)
	}
	if typ, err := ParseRecordType("GatewayWildcard"); err != nil || typ != TypeGatewayWildcard {
		t.Errorf("ParseRecordType(GatewayWildcard) = %v, %v", typ, err)
	}
}

func TestProviderNextHop(t *testing.T) {
	p := fixture(t)
	err := p.Apply(func(b *Builder) error {
		if err := b.AddProviderAddress(ProviderAddress{Interface: "eth1", PA: a("172.16.0.1"), PrefixLen: 16, VLAN: 100}); err != nil {
			return err
		}
		if err := b.AddProviderRoute(ProviderRoute{Destination: pfx("10.50.0.0/16"), NextHop: a("172.16.0.254"), Metric: 10}); err != nil {
			return err
		}
		if err := b.AddProviderRoute(ProviderRoute{Destination: pfx("10.50.0.0/16"), NextHop: a("192.168.0.253"), Metric: 5}); err != nil {
			return err
		}
		if err := b.AddProviderRoute(ProviderRoute{Destination: pfx("10.50.7.0/24"), NextHop: a("172.16.0.254"), Metric: 99}); err != nil {
			return err
		}
		return b.AddProviderRoute(ProviderRoute{Destination: pfx("10.60.0.0/16"), NextHop: a("0.0.0.0")})
	})
	if err != nil {
		t.Fatal(err)
	}
	s := p.Snapshot()
	for dst, want := range map[string]string{
		"192.168.0.77": "192.168.0.77",  // on-link eth0
		"172.16.3.3":   "172.16.3.3",    // on-link eth1
		"10.50.1.1":    "192.168.0.253", // /16: lowest metric
		"10.50.7.1":    "172.16.0.254",  // /24 beats /16 whatever the metric
		"10.60.0.9":    "10.60.0.9",     // on-link route
		"8.8.8.8":      "192.168.0.254", // default
	} {
		if got, ok := s.ProviderNextHop(a(dst)); !ok || got != a(want) {
			t.Errorf("ProviderNextHop(%s) = %s, %v; want %s", dst, got, ok, want)
		}
	}
	if _, ok := s.ProviderNextHop(a("fd00::1")); ok {
		t.Error("ProviderNextHop found an ipv6 next hop")
	}
	if x, ok := s.LocalPA(a("172.16.0.1")); !ok || x.VLAN != 100 || x.Interface != "eth1" {
		t.Errorf("LocalPA = %+v %v", x, ok)
	}
	if err := p.RemoveProviderRoute(pfx("0.0.0.0/0"), a("192.168.0.254")); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Snapshot().ProviderNextHop(a("8.8.8.8")); ok {
		t.Error("no default route, still a next hop")
	}
	err = p.RemoveProviderAddress(a("172.16.0.1"))
	if want := "provider address 172.16.0.1: route 10.50.0.0/16 via 172.16.0.254 needs it"; !errors.Is(err, ErrInUse) || err.Error() != want {
		t.Errorf("remove eth1 PA: %v\nwant %s", err, want)
	}
	if _, ok := p.Snapshot().LocalPA(a("172.16.0.1")); !ok {
		t.Error("a refused removal removed the PA")
	}
}
