package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/xvswitch/xvs/wnv"
)

// policyField is one flag of a policy verb and the JSON field it fills.
type policyField struct {
	flag, json, help string
	number           bool
}

// policyKind is a kind of policy object, its verbs mirroring the HNV
// cmdlets (New-/Get-/Remove-NetVirtualization...).
type policyKind struct {
	name, cmdlet, help string
	fields             []policyField
	list               func(*wnv.PolicyConfig) any
}

var policyKinds = []policyKind{
	{name: "routing-domain", cmdlet: "RoutingDomain", help: "a tenant's network: its virtual subnets route to each other, never to another routing domain's",
		fields: []policyField{{flag: "id", json: "id", help: "routing domain ID (HNV uses a GUID such as {11111111-2222-3333-4444-000000000000})"}},
		list:   func(p *wnv.PolicyConfig) any { return p.RoutingDomains }},
	{name: "virtual-subnet", cmdlet: "VirtualSubnet", help: "a VSID in one routing domain with its prefixes; the first usable address is the gateway",
		fields: []policyField{
			{flag: "vsid", json: "vsid", help: "virtual subnet ID, " + vsidRange, number: true},
			{flag: "rd", json: "routing_domain", help: "routing domain ID"},
			{flag: "prefix", json: "ipv4_prefix", help: "IPv4 prefix, e.g. 10.0.1.0/24"},
			{flag: "prefix6", json: "ipv6_prefix", help: "IPv6 prefix (optional)"},
		},
		list: func(p *wnv.PolicyConfig) any { return p.VirtualSubnets }},
	{name: "lookup-record", cmdlet: "LookupRecord", help: "a VM's customer address (CA) and MAC in a VSID, and the provider address (PA) of its host",
		fields: []policyField{
			{flag: "vsid", json: "vsid", help: "virtual subnet ID", number: true},
			{flag: "ca", json: "ca", help: "customer address (IPv4 or IPv6)"},
			{flag: "mac", json: "mac", help: "the VM's MAC address"},
			{flag: "pa", json: "pa", help: "provider address of the VM's host"},
			{flag: "rule", json: "rule", help: "encap (NVGRE) or rewrite (IP rewrite)"},
			{flag: "port", json: "vm_name", help: "the VM or switch port the record belongs to"},
			{flag: "type", json: "type", help: "static (default), l2only or gatewaywildcard"},
		},
		list: func(p *wnv.PolicyConfig) any { return p.LookupRecords }},
	{name: "customer-route", cmdlet: "CustomerRoute", help: "a route inside a routing domain, e.g. 0.0.0.0/0 to a gateway VM",
		fields: []policyField{
			{flag: "rd", json: "routing_domain", help: "routing domain ID"},
			{flag: "vsid", json: "vsid", help: "virtual subnet ID (0: the whole routing domain)", number: true},
			{flag: "destination", json: "destination", help: "destination prefix"},
			{flag: "next-hop", json: "next_hop", help: "next hop customer address (empty: on-link)"},
			{flag: "metric", json: "metric", help: "metric, lower wins", number: true},
		},
		list: func(p *wnv.PolicyConfig) any { return p.CustomerRoutes }},
	{name: "provider-address", cmdlet: "ProviderAddress", help: "an address of this host on the provider network",
		fields: []policyField{
			{flag: "interface", json: "interface", help: "uplink the address is on"},
			{flag: "pa", json: "pa", help: "provider address (IPv4)"},
			{flag: "prefix-length", json: "prefix_length", help: "prefix length of the provider network", number: true},
			{flag: "vlan", json: "vlan", help: "VLAN ID on the uplink (0: none)", number: true},
		},
		list: func(p *wnv.PolicyConfig) any { return p.ProviderAddresses }},
	{name: "provider-route", cmdlet: "ProviderRoute", help: "a route on the provider network",
		fields: []policyField{
			{flag: "destination", json: "destination", help: "destination prefix"},
			{flag: "next-hop", json: "next_hop", help: "next hop provider address"},
			{flag: "metric", json: "metric", help: "metric, lower wins", number: true},
		},
		list: func(p *wnv.PolicyConfig) any { return p.ProviderRoutes }},
}

// policyVerbs adds "KIND add|get|remove" for every policy kind.
func policyVerbs(vs map[string]verb) {
	for _, k := range policyKinds {
		k := k
		var names []string
		for _, f := range k.fields {
			names = append(names, "--"+f.flag)
		}
		flags := func(fs *flag.FlagSet) {
			for _, f := range k.fields {
				fs.String(f.flag, "", f.help)
			}
		}
		vs[k.name+" add"] = verb{args: strings.Join(names, " "), setup: flags,
			help: fmt.Sprintf("Add a %s (New-NetVirtualization%s): %s.\nThe policy changes atomically; bad input is refused with the field named.", k.name, k.cmdlet, k.help),
			run:  func(c *cli, fs *flag.FlagSet) error { return c.policyChange("POST", k, fs) }}
		vs[k.name+" remove"] = verb{args: "KEY FLAGS", setup: flags,
			help: fmt.Sprintf("Remove a %s (Remove-NetVirtualization%s), named by its key fields.", k.name, k.cmdlet),
			run:  func(c *cli, fs *flag.FlagSet) error { return c.policyChange("DELETE", k, fs) }}
		vs[k.name+" get"] = verb{args: "[FILTER FLAGS]", setup: flags,
			help: fmt.Sprintf("List the %ss (Get-NetVirtualization%s); flags given filter the list.", k.name, k.cmdlet),
			run:  func(c *cli, fs *flag.FlagSet) error { return c.policyGet(k, fs) }}
	}
}

// body turns the flags that were set into the object's JSON.
func policyBody(k policyKind, fs *flag.FlagSet) (map[string]any, error) {
	body := map[string]any{}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, f := range k.fields {
		if !set[f.flag] {
			continue
		}
		v := fs.Lookup(f.flag).Value.String()
		if f.number {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return nil, usagef("--%s %q: want a number", f.flag, v)
			}
			body[f.json] = n
		} else {
			body[f.json] = v
		}
	}
	return body, nil
}

func (c *cli) policyChange(method string, k policyKind, fs *flag.FlagSet) error {
	body, err := policyBody(k, fs)
	if err != nil {
		return err
	}
	if len(body) == 0 {
		return usagef("%s: no fields given (see xvsctl %s --help)", k.name, k.name+" add")
	}
	if err := c.client.Do(method, "/policy/"+k.name, body, nil); err != nil {
		return err
	}
	if c.format != "json" {
		what := "added"
		if method == "DELETE" {
			what = "removed"
		}
		fmt.Fprintf(c.out, "%s %s\n", k.name, what)
	}
	return nil
}

func (c *cli) policyGet(k policyKind, fs *flag.FlagSet) error {
	var pc wnv.PolicyConfig
	if err := c.client.Do("GET", "/policy", nil, &pc); err != nil {
		return err
	}
	filter, err := policyBody(k, fs)
	if err != nil {
		return err
	}
	// Go through JSON so that filtering and the table use the API's names.
	raw, _ := json.Marshal(k.list(&pc))
	var items []map[string]any
	json.Unmarshal(raw, &items)
	out := []map[string]any{}
	for _, it := range items {
		ok := true
		for key, want := range filter {
			if fmt.Sprint(it[key]) != fmt.Sprint(want) {
				ok = false
			}
		}
		if ok {
			out = append(out, it)
		}
	}
	if c.format == "json" {
		return c.json(out)
	}
	tw := c.table()
	var head []string
	for _, f := range k.fields {
		head = append(head, strings.ToUpper(f.flag))
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, it := range out {
		var row []string
		for _, f := range k.fields {
			v, ok := it[f.json]
			if !ok || fmt.Sprint(v) == "" {
				row = append(row, "-")
				continue
			}
			row = append(row, fmt.Sprint(v))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}
