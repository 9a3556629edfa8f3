package wnv

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"testing"
)

// checkInvariants verifies what validation promises, on a published
// snapshot.
func checkInvariants(t *testing.T, s *Snapshot) {
	t.Helper()
	rds := map[string]bool{}
	for _, rd := range s.RoutingDomains() {
		rds[rd.ID] = true
	}
	subs := s.VirtualSubnets()
	for i, x := range subs {
		if !rds[x.RoutingDomain] {
			t.Fatalf("subnet %d in unknown routing domain %q", x.VSID, x.RoutingDomain)
		}
		if x.VSID < MinVSID || x.VSID > MaxVSID {
			t.Fatalf("subnet vsid %d", x.VSID)
		}
		for _, y := range subs[i+1:] {
			if x.RoutingDomain == y.RoutingDomain && (x.IPv4Prefix.Overlaps(y.IPv4Prefix) ||
				x.IPv6Prefix.IsValid() && y.IPv6Prefix.IsValid() && x.IPv6Prefix.Overlaps(y.IPv6Prefix)) {
				t.Fatalf("subnets %d and %d overlap in %q", x.VSID, y.VSID, x.RoutingDomain)
			}
		}
	}
	type vca struct {
		vsid uint32
		ca   netip.Addr
	}
	seenCA := map[vca]bool{}
	macPA := map[macKey]netip.Addr{}
	paUsers := map[netip.Addr]int{}
	rewrite := map[netip.Addr]bool{}
	for _, r := range s.LookupRecords() {
		vs, ok := s.Subnet(r.VSID)
		if !ok {
			t.Fatalf("record %+v in unknown vsid", r)
		}
		paUsers[r.PA]++
		if r.Rule == RuleRewrite {
			rewrite[r.PA] = true
		}
		if r.Type != TypeGatewayWildcard {
			k := macKey{r.VSID, r.MAC}
			if pa, ok := macPA[k]; ok && pa != r.PA {
				t.Fatalf("mac %s in vsid %d behind %s and %s", r.MAC, r.VSID, pa, r.PA)
			}
			macPA[k] = r.PA
			if got, ok := s.LookupMAC(r.VSID, r.MAC); !ok || got.PA != r.PA {
				t.Fatalf("LookupMAC(%d, %s) = %v %v", r.VSID, r.MAC, got, ok)
			}
		}
		if r.Type != TypeStatic {
			continue
		}
		if seenCA[vca{r.VSID, r.CA}] {
			t.Fatalf("ca %s twice in vsid %d", r.CA, r.VSID)
		}
		seenCA[vca{r.VSID, r.CA}] = true
		if !vs.prefixFor(r.CA).Contains(r.CA) {
			t.Fatalf("record %+v outside its subnet %+v", r, vs)
		}
		if got, ok := s.LookupCA(r.VSID, r.CA); !ok || *got != r {
			t.Fatalf("LookupCA(%d, %s) = %v %v", r.VSID, r.CA, got, ok)
		}
	}
	// the incrementally kept PA indexes agree with a recomputation.
	byPA := map[netip.Addr][]LookupRecord{}
	hosts := map[uint32][]netip.Addr{}
	for _, r := range s.LookupRecords() {
		byPA[r.PA] = append(byPA[r.PA], r)
		if r.Rule == RuleEncap && !s.IsLocalPA(r.PA) && !slices.Contains(hosts[r.VSID], r.PA) {
			hosts[r.VSID] = append(hosts[r.VSID], r.PA)
		}
	}
	for pa, want := range byPA {
		got := s.RecordsByPA(pa)
		if len(got) != len(want) {
			t.Fatalf("RecordsByPA(%s) = %v, want %v", pa, got, want)
		}
		for i := range got {
			if *got[i] != want[i] {
				t.Fatalf("RecordsByPA(%s) = %v, want %v", pa, got, want)
			}
		}
	}
	for _, vs := range subs {
		want := hosts[vs.VSID]
		slices.SortFunc(want, netip.Addr.Compare)
		if got := s.HostsForVSID(vs.VSID); !slices.Equal(got, want) {
			t.Fatalf("HostsForVSID(%d) = %v, want %v", vs.VSID, got, want)
		}
	}
	for pa := range rewrite {
		if paUsers[pa] != 1 {
			t.Fatalf("rewrite pa %s used by %d records", pa, paUsers[pa])
		}
	}
	// every decision stays in the source's routing domain.
	for _, src := range subs {
		for _, r := range s.LookupRecords() {
			if !r.CA.IsValid() {
				continue
			}
			d := s.Route(src.VSID, r.CA)
			if d.Record != nil {
				dvs, _ := s.Subnet(d.Record.VSID)
				if dvs.RoutingDomain != src.RoutingDomain {
					t.Fatalf("Route(%d, %s) = %v: crosses routing domains", src.VSID, r.CA, d)
				}
			}
		}
	}
	// the dump loads back into the same policy.
	c := s.Config()
	p2, err := LoadConfig(c)
	if err != nil {
		t.Fatalf("LoadConfig(Config()) = %v\n%+v", err, c)
	}
	if c2 := p2.Config(); !reflect.DeepEqual(c, c2) {
		t.Fatalf("round trip changed the config:\n%+v\n%+v", c, c2)
	}
}

// fuzzOp applies one operation chosen by op from a small universe, so that
// random bytes hit collisions (same CA, same MAC, overlapping prefixes).
func fuzzOp(b *Builder, op, x, y byte) error {
	rdsIDs := []string{"A", "B", "C"}
	vsids := []uint32{5001, 5002, 5003, 6001, 12, 16777215}
	prefixes4 := []string{"10.0.1.0/24", "10.0.2.0/24", "10.0.0.0/16", "10.0.1.128/25", "192.168.5.0/30"}
	prefixes6 := []string{"", "fd00:1::/64", "fd00:2::/64", "fd00::/16"}
	addrs := []string{"10.0.1.5", "10.0.1.6", "10.0.2.5", "10.0.1.130", "0.0.0.0", "::", "fd00:1::5", "fd00:2::5", "192.168.5.2", "10.0.1.1"}
	pas := []string{"192.168.0.1", "192.168.0.2", "192.168.0.3", "192.168.1.1", "10.1.1.1"}
	rd := rdsIDs[int(x)%len(rdsIDs)]
	vsid := vsids[int(x>>2)%len(vsids)]
	ca := netip.MustParseAddr(addrs[int(y)%len(addrs)])
	m := MAC{2, 0, 0, 0, 0, y >> 4 & 3}
	pa := netip.MustParseAddr(pas[int(y>>2)%len(pas)])
	switch op % 12 {
	case 0:
		return b.AddRoutingDomain(RoutingDomain{ID: rd})
	case 1:
		return b.RemoveRoutingDomain(rd)
	case 2:
		vs := VirtualSubnet{VSID: vsid, RoutingDomain: rd, IPv4Prefix: netip.MustParsePrefix(prefixes4[int(y)%len(prefixes4)])}
		if p6 := prefixes6[int(y>>3)%len(prefixes6)]; p6 != "" {
			vs.IPv6Prefix = netip.MustParsePrefix(p6)
		}
		return b.AddVirtualSubnet(vs)
	case 3:
		return b.RemoveVirtualSubnet(vsid)
	case 4, 5:
		r := LookupRecord{VSID: vsid, CA: ca, MAC: m, PA: pa, Rule: Rule(x >> 5 & 1), Type: RecordType(x >> 6 % 3)}
		return b.AddLookupRecord(r)
	case 6:
		if x&1 == 1 {
			return b.RemoveLookupRecord(vsid, netip.Addr{}, m)
		}
		return b.RemoveLookupRecord(vsid, ca, MAC{})
	case 7:
		dst := netip.MustParsePrefix([]string{"0.0.0.0/0", "8.8.0.0/16", "10.0.1.0/25", "::/0"}[int(x>>4)%4])
		nh := ca
		if y&0x80 != 0 {
			nh = netip.Addr{}
		}
		return b.AddCustomerRoute(CustomerRoute{RoutingDomain: rd, VSID: vsid * uint32(y>>6&1), Destination: dst, NextHop: nh, Metric: uint32(y & 3)})
	case 8:
		for _, r := range sortedCustomerRoutes(b.t) {
			if r.RoutingDomain == rd {
				return b.RemoveCustomerRoute(r.RoutingDomain, r.VSID, r.Destination, r.NextHop)
			}
		}
		return b.RemoveCustomerRoute(rd, vsid, netip.MustParsePrefix("0.0.0.0/0"), netip.Addr{})
	case 9:
		return b.AddProviderAddress(ProviderAddress{Interface: "eth0", PA: pa, PrefixLen: 16 + int(x%17), VLAN: uint16(y) * 20})
	case 10:
		return b.RemoveProviderAddress(pa)
	default:
		if x&1 == 0 {
			return b.RemoveProviderRoute(netip.MustParsePrefix("0.0.0.0/0"), pa)
		}
		return b.AddProviderRoute(ProviderRoute{Destination: netip.MustParsePrefix("0.0.0.0/0"), NextHop: pa, Metric: uint32(y)})
	}
}

func FuzzApply(f *testing.F) {
	f.Add([]byte{0, 0, 0, 2, 0, 0, 4, 0, 0, 4, 0, 1, 0xff, 4, 0, 0})
	f.Add([]byte{0, 0, 0, 0, 1, 0, 2, 0, 0, 2, 1, 0, 4, 0, 0, 4, 1, 0, 0xff, 6, 0, 0, 4, 1, 0, 7, 0, 1})
	f.Add([]byte{0, 0, 0, 2, 0, 0, 9, 0, 0, 11, 1, 0, 4, 0x20, 0, 4, 0x20, 4, 10, 0, 0, 0xff, 3, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		p := New()
		for len(data) >= 3 {
			// a batch runs until a 0xff byte: all or nothing.
			before := p.Snapshot()
			err := p.Apply(func(b *Builder) error {
				for len(data) >= 3 && data[0] != 0xff {
					op, x, y := data[0], data[1], data[2]
					data = data[3:]
					if err := fuzzOp(b, op, x, y); err != nil && op&0x80 != 0 {
						return fmt.Errorf("stop: %w", err)
					}
				}
				return nil
			})
			if len(data) > 0 && data[0] == 0xff {
				data = data[1:]
			}
			if err != nil && p.Snapshot() != before {
				t.Fatalf("failed batch published: %v", err)
			}
			checkInvariants(t, p.Snapshot())
		}
	})
}

func FuzzLoadConfig(f *testing.F) {
	seed, err := json.Marshal(fixtureConfig(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"routing_domains":[{"id":"A"}],"virtual_subnets":[{"vsid":5001,"routing_domain":"A","ipv4_prefix":"10.0.0.0/24"}],"lookup_records":[{"vsid":5001,"ca":"10.0.0.5","mac":"02-00-00-00-00-05","pa":"192.168.0.1","rule":"TranslationMethodNat"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c PolicyConfig
		if json.Unmarshal(data, &c) != nil {
			return
		}
		p, err := LoadConfig(c)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		checkInvariants(t, p.Snapshot())
	})
}

func fixtureConfig(tb testing.TB) PolicyConfig {
	return fixture(tb).Config()
}
