package wnv

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestConfigRoundTrip(t *testing.T) {
	p := fixture(t)
	if err := p.AddCustomerRoute(CustomerRoute{RoutingDomain: rdA, Destination: pfx("0.0.0.0/0"), NextHop: a("10.0.3.254"), Metric: 7}); err != nil {
		t.Fatal(err)
	}
	if err := p.SetGatewayMAC(MAC{2, 0xaa, 0, 0, 0, 1}); err != nil {
		t.Fatal(err)
	}
	c := p.Config()
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var c2 PolicyConfig
	if err := json.Unmarshal(j, &c2); err != nil {
		t.Fatal(err)
	}
	p2, err := LoadConfig(c2)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p2.Config(), c) {
		t.Fatalf("round trip:\n%+v\n%+v", p2.Config(), c)
	}
	if got := p2.Snapshot().GatewayMAC(); got != (MAC{2, 0xaa, 0, 0, 0, 1}) {
		t.Errorf("gateway mac %s", got)
	}
	for _, want := range []string{`"lookup_records"`, `"ca":"10.0.1.7","mac":"02:00:00:00:01:07","pa":"192.168.0.9","rule":"rewrite"`, `"next_hop":"10.0.3.254","metric":7`} {
		if !strings.Contains(string(j), want) {
			t.Errorf("json lacks %s:\n%s", want, j)
		}
	}
}

func TestLoadConfigErrors(t *testing.T) {
	base := func() PolicyConfig {
		return PolicyConfig{
			RoutingDomains:    []RoutingDomainConfig{{ID: "A"}},
			VirtualSubnets:    []VirtualSubnetConfig{{VSID: 5001, RoutingDomain: "A", IPv4Prefix: "10.0.1.0/24"}},
			ProviderAddresses: []ProviderAddressConfig{{Interface: "eth0", PA: "192.168.0.1", PrefixLength: 24}},
			LookupRecords: []LookupRecordConfig{
				{VSID: 5001, CA: "10.0.1.5", MAC: "02:00:00:00:00:05", PA: "192.168.0.1"},
				{VSID: 5001, CA: "10.0.1.6", MAC: "02:00:00:00:00:06", PA: "192.168.0.1"},
				{VSID: 5001, CA: "10.0.1.7", MAC: "02:00:00:00:00:07", PA: "192.168.0.1"},
				{VSID: 5001, CA: "10.0.1.8", MAC: "02:00:00:00:00:08", PA: "192.168.0.1"},
			},
		}
	}
	tests := []struct {
		name string
		mod  func(*PolicyConfig)
		want string
	}{
		{"ca syntax", func(c *PolicyConfig) { c.LookupRecords[3].CA = "10.0.1.x" }, `lookup_records[3].ca: "10.0.1.x": not an ip address`},
		{"ca missing", func(c *PolicyConfig) { c.LookupRecords[3].CA = "" }, `lookup_records[3].ca: missing`},
		{"ca outside", func(c *PolicyConfig) { c.LookupRecords[3].CA = "10.9.0.5" },
			`lookup_records[3]: lookup record: ca 10.9.0.5: outside virtual subnet 5001 (10.0.1.0/24)`},
		{"mac syntax", func(c *PolicyConfig) { c.LookupRecords[2].MAC = "02:00" }, `lookup_records[2].mac: "02:00": not a mac address`},
		{"pa syntax", func(c *PolicyConfig) { c.LookupRecords[0].PA = "" }, `lookup_records[0].pa: missing`},
		{"rule", func(c *PolicyConfig) { c.LookupRecords[1].Rule = "vxlan" }, `lookup_records[1].rule: "vxlan": want encap or rewrite`},
		{"type", func(c *PolicyConfig) { c.LookupRecords[1].Type = "dynamic" },
			`lookup_records[1].type: "dynamic": not supported (want static, l2only or gatewaywildcard)`},
		{"prefix syntax", func(c *PolicyConfig) { c.VirtualSubnets[0].IPv4Prefix = "10.0.1.0" },
			`virtual_subnets[0].ipv4_prefix: "10.0.1.0": not a prefix (want address/length)`},
		{"rd", func(c *PolicyConfig) { c.VirtualSubnets[0].RoutingDomain = "x" },
			`virtual_subnets[0]: virtual subnet 5001: routing domain "x": unknown`},
		{"rd id", func(c *PolicyConfig) { c.RoutingDomains = append(c.RoutingDomains, RoutingDomainConfig{}) },
			`routing_domains[1]: routing domain: id "": empty`},
		{"vlan", func(c *PolicyConfig) { c.ProviderAddresses[0].VLAN = -1 }, `provider_addresses[0].vlan: -1: want 0..4094`},
		{"gateway mac", func(c *PolicyConfig) { c.GatewayMAC = "ff:ff:ff:ff:ff:ff" }, `gateway_mac: gateway mac: mac ff:ff:ff:ff:ff:ff: broadcast`},
		{"route next hop", func(c *PolicyConfig) {
			c.CustomerRoutes = []CustomerRouteConfig{{RoutingDomain: "A", Destination: "0.0.0.0/0", NextHop: "10.2.0.1"}}
		}, `customer_routes[0]: customer route: next hop 10.2.0.1: outside every virtual subnet of routing domain "A"`},
		{"provider route", func(c *PolicyConfig) { c.ProviderRoutes = []ProviderRouteConfig{{Destination: "default"}} },
			`provider_routes[0].destination: "default": not a prefix (want address/length)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			if _, err := LoadConfig(c); err != nil {
				t.Fatalf("base config: %v", err)
			}
			tt.mod(&c)
			p, err := LoadConfig(c)
			if err == nil || p != nil {
				t.Fatalf("LoadConfig = %v, %v; want %s", p, err, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrExists) && !errors.Is(err, ErrInUse) {
				t.Errorf("%v wraps no sentinel", err)
			}
		})
	}
}
