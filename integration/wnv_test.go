package integration

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestARPProxy: with a policy, VMs' ARP requests are answered by xvs from
// the lookup records (never flooded), an address without a record gets no
// answer, the gateway answers with the gateway MAC, and traffic flows.
func TestARPProxy(t *testing.T) {
	needRoot(t, "ping", "arping")
	tp := newTopo(t)
	vm1, vm2 := tp.vethVM("vm1", "10.0.0.10"), tp.vethVM("vm2", "10.0.0.20")
	macOf := func(v vm) string {
		return strings.TrimSpace(v.exec(t, "cat", "/sys/class/net/eth0/address"))
	}
	mac1, mac2 := macOf(vm1), macOf(vm2)
	d := startXVSD(t, portSpec{"vm1", "afxdp", vm1.Host, 5001}, portSpec{"vm2", "afxdp", vm2.Host, 5001})
	for _, args := range [][]string{
		{"routing-domain", "add", "--id", "blue"},
		{"virtual-subnet", "add", "--vsid", "5001", "--rd", "blue", "--prefix", "10.0.0.0/24"},
		{"provider-address", "add", "--interface", "uplink", "--pa", "192.168.50.1", "--prefix-length", "24"},
		{"lookup-record", "add", "--vsid", "5001", "--ca", "10.0.0.10", "--mac", mac1, "--pa", "192.168.50.1", "--port", "vm1"},
		{"lookup-record", "add", "--vsid", "5001", "--ca", "10.0.0.20", "--mac", mac2, "--pa", "192.168.50.1", "--port", "vm2"},
	} {
		d.ctl(args...)
	}
	out, err := vm1.try("arping", "-c", "2", "-W", "0.2", "-w", "3", "-i", "eth0", "10.0.0.20")
	if err != nil || !strings.Contains(strings.ToLower(out), mac2) {
		t.Fatalf("arping 10.0.0.20 from vm1: %v, want answers from %s:\n%s", err, mac2, out)
	}
	if out, err := vm1.try("arping", "-c", "2", "-W", "0.2", "-w", "2", "-i", "eth0", "10.0.0.99"); err == nil {
		t.Errorf("arping for an address without a lookup record was answered:\n%s", out)
	}
	out, err = vm1.try("arping", "-c", "1", "-w", "3", "-i", "eth0", "10.0.0.1")
	if err != nil || !strings.Contains(strings.ToLower(out), "02:") {
		t.Errorf("arping the gateway 10.0.0.1: %v\n%s", err, out)
	}
	// Nothing of that reached vm2: its port transmitted no ARP.
	stats := d.ctl("-o", "json", "stats", "vm1")
	if !strings.Contains(stats, `"proxied"`) || !strings.Contains(stats, `"no-policy": 2`) {
		t.Errorf("vm1 counters lack the answered and unanswered requests:\n%s", stats)
	}
	st2 := d.ctl("-o", "json", "stats", "vm2")
	if !strings.Contains(st2, `"tx_frames": 0`) {
		t.Errorf("vm2 received frames during vm1's ARP requests (they must not flood):\n%s", st2)
	}
	if out, err := vm1.try("ping", "-c", "3", "-i", "0.2", "-W", "2", vm2.IP); err != nil {
		t.Errorf("ping vm1 -> vm2 with proxied ARP: %v\n%s", err, out)
	}
	neigh := vm1.exec(t, "ip", "neigh", "show", "10.0.0.20")
	if !strings.Contains(strings.ToLower(neigh), mac2) {
		t.Errorf("vm1's neighbour entry for 10.0.0.20 is %q, want %s", neigh, mac2)
	}
}

// TestRoutingBetweenVirtualSubnets: two subnets of one tenant route to each
// other through the switch's virtual gateway (TTL decremented); a second
// tenant reusing the same addresses reaches neither.
func TestRoutingBetweenVirtualSubnets(t *testing.T) {
	needRoot(t, "ping")
	tp := newTopo(t)
	blue1, blue2 := tp.vethVM("b1", "10.0.1.10"), tp.vethVM("b2", "10.0.2.30")
	red1 := tp.vethVM("r1", "10.0.1.10") // the same CA as blue1, another tenant
	for _, v := range []vm{blue1, blue2, red1} {
		gw := "10.0.1.1"
		if v.IP == "10.0.2.30" {
			gw = "10.0.2.1"
		}
		v.exec(t, "ip", "route", "add", "default", "via", gw)
	}
	macOf := func(v vm) string { return strings.TrimSpace(v.exec(t, "cat", "/sys/class/net/eth0/address")) }
	d := startXVSD(t, portSpec{"b1", "afxdp", blue1.Host, 5001}, portSpec{"b2", "afxdp", blue2.Host, 5002}, portSpec{"r1", "afxdp", red1.Host, 6001})
	for _, args := range [][]string{
		{"routing-domain", "add", "--id", "blue"},
		{"routing-domain", "add", "--id", "red"},
		{"virtual-subnet", "add", "--vsid", "5001", "--rd", "blue", "--prefix", "10.0.1.0/24"},
		{"virtual-subnet", "add", "--vsid", "5002", "--rd", "blue", "--prefix", "10.0.2.0/24"},
		{"virtual-subnet", "add", "--vsid", "6001", "--rd", "red", "--prefix", "10.0.1.0/24"},
		{"provider-address", "add", "--interface", "uplink", "--pa", "192.168.50.1", "--prefix-length", "24"},
		{"lookup-record", "add", "--vsid", "5001", "--ca", "10.0.1.10", "--mac", macOf(blue1), "--pa", "192.168.50.1", "--port", "b1"},
		{"lookup-record", "add", "--vsid", "5002", "--ca", "10.0.2.30", "--mac", macOf(blue2), "--pa", "192.168.50.1", "--port", "b2"},
		{"lookup-record", "add", "--vsid", "6001", "--ca", "10.0.1.10", "--mac", macOf(red1), "--pa", "192.168.50.1", "--port", "r1"},
	} {
		d.ctl(args...)
	}
	out, err := blue1.try("ping", "-c", "3", "-i", "0.2", "-W", "2", blue2.IP)
	if err != nil {
		t.Fatalf("blue 10.0.1.10 -> blue 10.0.2.30 through the virtual gateway: %v\n%s\n%s", err, out, d.ctl("stats"))
	}
	if !strings.Contains(out, "ttl=63") {
		t.Errorf("routed echo replies should arrive with ttl=63 (one hop):\n%s", out)
	}
	if out, err := red1.try("ping", "-c", "2", "-i", "0.2", "-W", "1", blue2.IP); err == nil {
		t.Errorf("red reached blue's 10.0.2.30:\n%s", out)
	}
	if st := d.ctl("-o", "json", "stats", "r1"); !strings.Contains(st, `"isolation": 2`) {
		t.Errorf("r1's isolation drops should count both echoes:\n%s", st)
	}
}

// TestNVGREBetweenTwoHosts: two xvsd "hosts", each in its own namespace
// with one VM, joined by a provider network (a veth with room for the
// 42-byte NVGRE overhead). The VMs share VSID 5001 and reach each other
// only through NVGRE between the hosts' provider addresses.
func TestNVGREBetweenTwoHosts(t *testing.T) {
	needRoot(t, "ping")
	tp := newTopo(t)
	hosts := []string{tp.namespace("h1"), tp.namespace("h2")}
	// The provider network: a bridge in its own namespace (where tshark
	// watches), "uplink" in each host, MTU 1500 + 42 for NVGRE.
	prov := tp.namespace("pn")
	sh(t, "ip", "-n", prov, "link", "add", "br0", "type", "bridge")
	for i, h := range hosts {
		p := fmt.Sprintf("p%d", i+1)
		sh(t, "ip", "link", "add", "uplink", "netns", h, "mtu", "1542", "type", "veth", "peer", "name", p, "netns", prov, "mtu", "1542")
		sh(t, "ip", "-n", prov, "link", "set", p, "master", "br0")
		sh(t, "ip", "-n", prov, "link", "set", p, "up")
		// frames from xvs's AF_XDP transmit reach the bridge through NAPI
		sh(t, "ip", "netns", "exec", prov, "ethtool", "-K", p, "gro", "on")
	}
	sh(t, "ip", "-n", prov, "link", "set", "br0", "up")
	pcap := filepath.Join(t.TempDir(), "provider.pcap")
	var capture *exec.Cmd
	if _, err := exec.LookPath("tshark"); err == nil {
		capture = background(t, "ip", "netns", "exec", prov, "tshark", "-q", "-i", "br0", "-a", "duration:8", "-f", "ip proto 47", "-w", pcap)
		time.Sleep(2 * time.Second)
	}
	vms := []vm{tp.vethVM("v1", "10.0.1.10"), tp.vethVM("v2", "10.0.1.20")}
	macs := make([]string, 2)
	for i, v := range vms {
		macs[i] = strings.TrimSpace(v.exec(t, "cat", "/sys/class/net/eth0/address"))
		sh(t, "ip", "link", "set", v.Host, "netns", hosts[i])
		sh(t, "ip", "-n", hosts[i], "link", "set", v.Host, "up")
		sh(t, "ip", "-n", hosts[i], "link", "set", "uplink", "up")
		sh(t, "ip", "netns", "exec", hosts[i], "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
	}
	var ds []*xvsd
	for i := range hosts {
		policy := fmt.Sprintf(`policy:
  routing_domains: [{id: blue}]
  virtual_subnets: [{vsid: 5001, routing_domain: blue, ipv4_prefix: 10.0.1.0/24}]
  provider_addresses: [{interface: uplink, pa: 192.168.50.%d, prefix_length: 24}]
  lookup_records:
    - {vsid: 5001, ca: 10.0.1.10, mac: "%s", pa: 192.168.50.1, vm_name: vm}
    - {vsid: 5001, ca: 10.0.1.20, mac: "%s", pa: 192.168.50.2, vm_name: vm}
`, i+1, macs[0], macs[1])
		ports := fmt.Sprintf("  - {name: vm, type: afxdp, dev: %s, vsid: 5001}\n  - {name: uplink, type: afxdp, dev: uplink, vsid: 0}", vms[i].Host)
		ds = append(ds, startXVSDIn(t, hosts[i], ports, policy))
	}
	// The first echo may be spent resolving the other host's PA.
	vms[0].try("ping", "-c", "1", "-W", "1", vms[1].IP)
	out, err := vms[0].try("ping", "-c", "3", "-i", "0.2", "-W", "2", vms[1].IP)
	if err != nil {
		t.Fatalf("vm on host 1 -> vm on host 2 over NVGRE: %v\n%s\nhost 1:\n%s\nhost 2:\n%s", err, out, ds[0].ctl("stats"), ds[1].ctl("stats"))
	}
	if capture != nil {
		capture.Wait()
		// An independent decoder: tshark's GRE dissector (key = VSID<<8 | FlowID).
		out, err := exec.Command("tshark", "-r", pcap, "-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "gre.key", "-e", "gre.proto").Output()
		if err != nil {
			t.Fatalf("tshark -r: %v", err)
		}
		lines := strings.Fields(strings.TrimSpace(string(out)))
		if len(lines) < 6*4 {
			t.Fatalf("tshark saw %d NVGRE fields on the provider network, want at least 6 frames:\n%s", len(lines), out)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Fields(l)
			key, _ := strconv.ParseUint(strings.TrimPrefix(f[min(2, len(f)-1)], "0x"), 16, 32)
			if len(f) != 4 || key>>8 != 5001 || f[3] != "0x6558" || !strings.HasPrefix(f[0], "192.168.50.") || !strings.HasPrefix(f[1], "192.168.50.") {
				t.Errorf("provider network frame %q: want PA -> PA, GRE protocol 0x6558, key with VSID 5001", l)
			}
		}
	}
	st := ds[0].ctl("-o", "json", "stats", "uplink")
	if strings.Contains(st, `"tx_frames": 0,`) {
		t.Errorf("host 1 sent nothing on its uplink:\n%s", st)
	}
	t.Logf("host 1:\n%s", ds[0].ctl("stats"))
}
