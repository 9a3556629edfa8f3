package wnv

import "testing"

func TestMACOwnedBy(t *testing.T) {
	p, err := LoadConfig(PolicyConfig{
		RoutingDomains: []RoutingDomainConfig{{ID: "blue"}},
		VirtualSubnets: []VirtualSubnetConfig{{VSID: 5001, RoutingDomain: "blue", IPv4Prefix: "10.0.1.0/24", IPv6Prefix: "fd00:1::/64"}},
		LookupRecords: []LookupRecordConfig{
			{VSID: 5001, CA: "10.0.1.10", MAC: "02:00:00:00:01:0a", PA: "192.168.50.1", VMName: "a"},
			{VSID: 5001, CA: "fd00:1::10", MAC: "02:00:00:00:01:0a", PA: "192.168.50.1", VMName: "a"},
			{VSID: 5001, MAC: "02:00:00:00:01:1a", PA: "192.168.50.1", VMName: "a", Type: "l2only"},
			{VSID: 5001, CA: "10.0.1.20", MAC: "02:00:00:00:01:0b", PA: "192.168.50.1", VMName: "b"},
			{VSID: 5001, CA: "10.0.1.30", MAC: "02:00:00:00:01:0c", PA: "192.168.50.1"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := p.Snapshot()
	mac := func(m string) MAC { x, _ := ParseMAC(m); return x }
	for _, tc := range []struct {
		vsid uint32
		mac  string
		name string
		want bool
	}{
		{5001, "02:00:00:00:01:0a", "a", true},
		{5001, "02:00:00:00:01:1a", "a", true}, // l2only
		{5001, "02:00:00:00:01:0b", "a", false},
		{5001, "02:00:00:00:01:0b", "b", true},
		{5002, "02:00:00:00:01:0a", "a", false},
		{5001, "02:00:00:00:01:0c", "", false}, // a record without a name owns nothing
		{5001, "02:00:00:00:01:ee", "a", false},
	} {
		if got := s.MACOwnedBy(tc.vsid, mac(tc.mac), tc.name); got != tc.want {
			t.Errorf("MACOwnedBy(%d, %s, %q) = %v, want %v", tc.vsid, tc.mac, tc.name, got, tc.want)
		}
	}
}
