package wnv

import (
	"fmt"
	"net/netip"
	"strings"
)

// PolicyConfig is the policy as plain data for the daemon's configuration
// file (YAML) and API (JSON): addresses, prefixes and MACs are strings.
// [LoadConfig] validates it; [Policy.Config] produces it, sorted.
type PolicyConfig struct {
	// GatewayMAC answers for every subnet's default gateway; empty means
	// DefaultGatewayMAC.
	GatewayMAC        string                  `yaml:"gateway_mac,omitempty" json:"gateway_mac,omitempty"`
	RoutingDomains    []RoutingDomainConfig   `yaml:"routing_domains,omitempty" json:"routing_domains,omitempty"`
	VirtualSubnets    []VirtualSubnetConfig   `yaml:"virtual_subnets,omitempty" json:"virtual_subnets,omitempty"`
	LookupRecords     []LookupRecordConfig    `yaml:"lookup_records,omitempty" json:"lookup_records,omitempty"`
	CustomerRoutes    []CustomerRouteConfig   `yaml:"customer_routes,omitempty" json:"customer_routes,omitempty"`
	ProviderAddresses []ProviderAddressConfig `yaml:"provider_addresses,omitempty" json:"provider_addresses,omitempty"`
	ProviderRoutes    []ProviderRouteConfig   `yaml:"provider_routes,omitempty" json:"provider_routes,omitempty"`
}

// RoutingDomainConfig is a [RoutingDomain].
type RoutingDomainConfig struct {
	ID string `yaml:"id" json:"id"`
}

// VirtualSubnetConfig is a [VirtualSubnet].
type VirtualSubnetConfig struct {
	VSID          uint32 `yaml:"vsid" json:"vsid"`
	RoutingDomain string `yaml:"routing_domain" json:"routing_domain"`
	IPv4Prefix    string `yaml:"ipv4_prefix" json:"ipv4_prefix"`
	IPv6Prefix    string `yaml:"ipv6_prefix,omitempty" json:"ipv6_prefix,omitempty"`
}

// LookupRecordConfig is a [LookupRecord]. Rule: encap (default) or
// rewrite (also TranslationMethodEncap, TranslationMethodNat); Type: static
// (default), l2only or gatewaywildcard.
type LookupRecordConfig struct {
	VSID   uint32 `yaml:"vsid" json:"vsid"`
	CA     string `yaml:"ca,omitempty" json:"ca,omitempty"`
	MAC    string `yaml:"mac" json:"mac"`
	PA     string `yaml:"pa" json:"pa"`
	Rule   string `yaml:"rule,omitempty" json:"rule,omitempty"`
	VMName string `yaml:"vm_name,omitempty" json:"vm_name,omitempty"`
	Type   string `yaml:"type,omitempty" json:"type,omitempty"`
}

// CustomerRouteConfig is a [CustomerRoute]; an empty next hop (or 0.0.0.0,
// ::) is on-link.
type CustomerRouteConfig struct {
	RoutingDomain string `yaml:"routing_domain" json:"routing_domain"`
	VSID          uint32 `yaml:"vsid,omitempty" json:"vsid,omitempty"`
	Destination   string `yaml:"destination" json:"destination"`
	NextHop       string `yaml:"next_hop,omitempty" json:"next_hop,omitempty"`
	Metric        uint32 `yaml:"metric,omitempty" json:"metric,omitempty"`
}

// ProviderAddressConfig is a [ProviderAddress].
type ProviderAddressConfig struct {
	Interface    string `yaml:"interface" json:"interface"`
	PA           string `yaml:"pa" json:"pa"`
	PrefixLength int    `yaml:"prefix_length" json:"prefix_length"`
	VLAN         int    `yaml:"vlan,omitempty" json:"vlan,omitempty"`
}

// ProviderRouteConfig is a [ProviderRoute]; an empty next hop is on-link.
type ProviderRouteConfig struct {
	Destination string `yaml:"destination" json:"destination"`
	NextHop     string `yaml:"next_hop,omitempty" json:"next_hop,omitempty"`
	Metric      uint32 `yaml:"metric,omitempty" json:"metric,omitempty"`
}

func parseAddr(field, s string, optional bool) (netip.Addr, error) {
	if s == "" {
		if optional {
			return netip.Addr{}, nil
		}
		return netip.Addr{}, errorf(ErrInvalid, "%s: missing", field)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, errorf(ErrInvalid, "%s: %q: not an ip address", field, s)
	}
	return a, nil
}

func parsePrefix(field, s string, optional bool) (netip.Prefix, error) {
	if s == "" {
		if optional {
			return netip.Prefix{}, nil
		}
		return netip.Prefix{}, errorf(ErrInvalid, "%s: missing", field)
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, errorf(ErrInvalid, "%s: %q: not a prefix (want address/length)", field, s)
	}
	return p, nil
}

// Apply adds everything in c to the batch, in dependency order. Errors name
// the element and field, e.g. "lookup_records[3].ca: ...".
func (c *PolicyConfig) Apply(b *Builder) error {
	if c.GatewayMAC != "" {
		m, err := ParseMAC(c.GatewayMAC)
		if err != nil {
			return wrap("gateway_mac", err)
		}
		if err := b.SetGatewayMAC(m); err != nil {
			return wrap("gateway_mac", err)
		}
	}
	for i, rc := range c.RoutingDomains {
		if err := b.AddRoutingDomain(RoutingDomain(rc)); err != nil {
			return wrap(fmt.Sprintf("routing_domains[%d]", i), err)
		}
	}
	for i, sc := range c.VirtualSubnets {
		el := fmt.Sprintf("virtual_subnets[%d]", i)
		p4, err := parsePrefix(el+".ipv4_prefix", sc.IPv4Prefix, false)
		if err != nil {
			return err
		}
		p6, err := parsePrefix(el+".ipv6_prefix", sc.IPv6Prefix, true)
		if err != nil {
			return err
		}
		vs := VirtualSubnet{VSID: sc.VSID, RoutingDomain: sc.RoutingDomain, IPv4Prefix: p4, IPv6Prefix: p6}
		if err := b.AddVirtualSubnet(vs); err != nil {
			return wrap(el, err)
		}
	}
	for i, ac := range c.ProviderAddresses {
		el := fmt.Sprintf("provider_addresses[%d]", i)
		pa, err := parseAddr(el+".pa", ac.PA, false)
		if err != nil {
			return err
		}
		if ac.VLAN < 0 || ac.VLAN > 4094 {
			return errorf(ErrInvalid, "%s.vlan: %d: want 0..4094", el, ac.VLAN)
		}
		a := ProviderAddress{Interface: ac.Interface, PA: pa, PrefixLen: ac.PrefixLength, VLAN: uint16(ac.VLAN)}
		if err := b.AddProviderAddress(a); err != nil {
			return wrap(el, err)
		}
	}
	for i, rc := range c.ProviderRoutes {
		el := fmt.Sprintf("provider_routes[%d]", i)
		dst, err := parsePrefix(el+".destination", rc.Destination, false)
		if err != nil {
			return err
		}
		nh, err := parseAddr(el+".next_hop", rc.NextHop, true)
		if err != nil {
			return err
		}
		if err := b.AddProviderRoute(ProviderRoute{Destination: dst, NextHop: nh, Metric: rc.Metric}); err != nil {
			return wrap(el, err)
		}
	}
	for i, lc := range c.LookupRecords {
		el := fmt.Sprintf("lookup_records[%d]", i)
		typ, err := ParseRecordType(lc.Type)
		if err != nil {
			return wrap(el+".type", err)
		}
		rule, err := ParseRule(lc.Rule)
		if err != nil {
			return wrap(el+".rule", err)
		}
		ca, err := parseAddr(el+".ca", lc.CA, typ == TypeL2Only)
		if err != nil {
			return err
		}
		mac, err := ParseMAC(lc.MAC)
		if err != nil {
			return wrap(el+".mac", err)
		}
		pa, err := parseAddr(el+".pa", lc.PA, false)
		if err != nil {
			return err
		}
		r := LookupRecord{VSID: lc.VSID, CA: ca, MAC: mac, PA: pa, Rule: rule, VMName: lc.VMName, Type: typ}
		if err := b.AddLookupRecord(r); err != nil {
			return wrap(el, err)
		}
	}
	for i, rc := range c.CustomerRoutes {
		el := fmt.Sprintf("customer_routes[%d]", i)
		dst, err := parsePrefix(el+".destination", rc.Destination, false)
		if err != nil {
			return err
		}
		nh, err := parseAddr(el+".next_hop", rc.NextHop, true)
		if err != nil {
			return err
		}
		r := CustomerRoute{RoutingDomain: rc.RoutingDomain, VSID: rc.VSID, Destination: dst, NextHop: nh, Metric: rc.Metric}
		if err := b.AddCustomerRoute(r); err != nil {
			return wrap(el, err)
		}
	}
	return nil
}

// LoadConfig builds a policy from c, or returns the first error, naming the
// element and field ("lookup_records[3].ca: ...").
func LoadConfig(c PolicyConfig) (*Policy, error) {
	p := New()
	if err := p.Apply(c.Apply); err != nil {
		return nil, err
	}
	return p, nil
}

// Config returns the current policy as a [PolicyConfig] that LoadConfig
// turns back into the same policy.
func (p *Policy) Config() PolicyConfig { return p.Snapshot().Config() }

// Config returns the snapshot as a [PolicyConfig], sorted.
func (s *Snapshot) Config() PolicyConfig {
	var c PolicyConfig
	c.GatewayMAC = s.t.gwMAC.String()
	for _, rd := range s.rdList {
		c.RoutingDomains = append(c.RoutingDomains, RoutingDomainConfig(*rd))
	}
	for _, vs := range s.subList {
		sc := VirtualSubnetConfig{VSID: vs.VSID, RoutingDomain: vs.RoutingDomain, IPv4Prefix: vs.IPv4Prefix.String()}
		if vs.IPv6Prefix.IsValid() {
			sc.IPv6Prefix = vs.IPv6Prefix.String()
		}
		c.VirtualSubnets = append(c.VirtualSubnets, sc)
	}
	for _, r := range s.sortedRecords() {
		lc := LookupRecordConfig{VSID: r.VSID, MAC: r.MAC.String(), PA: r.PA.String(), Rule: r.Rule.String(), VMName: r.VMName}
		if r.CA.IsValid() {
			lc.CA = r.CA.String()
		}
		if r.Type != TypeStatic {
			lc.Type = r.Type.String()
		}
		c.LookupRecords = append(c.LookupRecords, lc)
	}
	for _, r := range s.crList {
		rc := CustomerRouteConfig{RoutingDomain: r.RoutingDomain, VSID: r.VSID, Destination: r.Destination.String(), Metric: r.Metric}
		if r.NextHop.IsValid() {
			rc.NextHop = r.NextHop.String()
		}
		c.CustomerRoutes = append(c.CustomerRoutes, rc)
	}
	for _, a := range s.paList {
		c.ProviderAddresses = append(c.ProviderAddresses, ProviderAddressConfig{
			Interface: a.Interface, PA: a.PA.String(), PrefixLength: a.PrefixLen, VLAN: int(a.VLAN)})
	}
	for _, r := range s.prList {
		rc := ProviderRouteConfig{Destination: r.Destination.String(), Metric: r.Metric}
		if r.NextHop.IsValid() {
			rc.NextHop = r.NextHop.String()
		}
		c.ProviderRoutes = append(c.ProviderRoutes, rc)
	}
	return c
}

// String formats a decision for logs and tests: "routed vsid 5002 ca
// 10.0.2.5 pa 192.168.0.2" or "drop isolation".
func (d Decision) String() string {
	var b strings.Builder
	b.WriteString(d.Kind.String())
	switch d.Kind {
	case Drop:
		b.WriteString(" " + string(d.Reason))
	case Gateway:
		fmt.Fprintf(&b, " vsid %d", d.DstVSID)
	default:
		fmt.Fprintf(&b, " vsid %d %s pa %s", d.DstVSID, describe(d.Record), d.Record.PA)
	}
	return b.String()
}
