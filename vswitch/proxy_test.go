package vswitch

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"

	"github.com/xvswitch/xvs/header"
	"github.com/xvswitch/xvs/wnv"
)

func testPolicy(t *testing.T) *wnv.Policy {
	t.Helper()
	p, err := wnv.LoadConfig(wnv.PolicyConfig{
		GatewayMAC:        "02:58:56:00:00:01",
		RoutingDomains:    []wnv.RoutingDomainConfig{{ID: "blue"}, {ID: "red"}},
		VirtualSubnets:    []wnv.VirtualSubnetConfig{{VSID: 5001, RoutingDomain: "blue", IPv4Prefix: "10.0.0.0/24", IPv6Prefix: "fd00:1::/64"}, {VSID: 5002, RoutingDomain: "red", IPv4Prefix: "10.0.0.0/24"}},
		ProviderAddresses: []wnv.ProviderAddressConfig{{Interface: "uplink", PA: "192.168.50.1", PrefixLength: 24}},
		LookupRecords: []wnv.LookupRecordConfig{
			{VSID: 5001, CA: "10.0.0.10", MAC: "02:00:00:00:00:0a", PA: "192.168.50.1", Rule: "encap", VMName: "a"},
			{VSID: 5001, CA: "10.0.0.20", MAC: "02:00:00:00:00:0b", PA: "192.168.50.1", Rule: "encap", VMName: "b"},
			{VSID: 5001, CA: "fd00:1::20", MAC: "02:00:00:00:00:0b", PA: "192.168.50.1", Rule: "encap", VMName: "b"},
			{VSID: 5002, CA: "10.0.0.20", MAC: "02:00:00:00:00:2b", PA: "192.168.50.1", Rule: "encap", VMName: "x"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func arpRequest(t *testing.T, from [6]byte, spa, tpa string) []byte {
	t.Helper()
	buf := make([]byte, 60)
	if _, err := header.WriteARPRequest(buf, from, netip.MustParseAddr(spa).As4(), netip.MustParseAddr(tpa).As4()); err != nil {
		t.Fatal(err)
	}
	return buf
}

// TestARPAnsweredFromPolicy: a VM's ARP request is answered by the switch
// with the record's MAC (per VSID: the same address in another tenant has
// another MAC), the gateway answered with the gateway MAC, and no request
// or unknown address ever floods to another port.
type missLog []string

func (m *missLog) Miss(vsid uint32, a netip.Addr) { *m = append(*m, fmt.Sprint(vsid, " ", a)) }

func TestARPAnsweredFromPolicy(t *testing.T) {
	misses := &missLog{}
	r := newRig(t, Config{Policy: testPolicy(t), PolicyMiss: misses}, map[string]uint32{"a": 5001, "b": 5001, "x": 5002, "y": 5002})
	vmA := [6]byte{2, 0, 0, 0, 0, 0x0a}
	own := map[string][6]byte{"a": vmA, "b": {2, 0, 0, 0, 0, 0x0b}, "x": {2, 0, 0, 0, 0, 0x2b}} // each port's MAC
	for _, tc := range []struct {
		port, tpa string
		want      [6]byte
	}{
		{"a", "10.0.0.20", [6]byte{2, 0, 0, 0, 0, 0x0b}},
		{"x", "10.0.0.20", [6]byte{2, 0, 0, 0, 0, 0x2b}}, // same CA, other tenant
		{"b", "10.0.0.10", [6]byte{2, 0, 0, 0, 0, 0x0a}},
		{"a", "10.0.0.1", [6]byte{2, 0x58, 0x56, 0, 0, 1}}, // the subnet's gateway
		{"x", "10.0.0.1", [6]byte{2, 0x58, 0x56, 0, 0, 1}},
	} {
		spa := "10.0.0.10"
		if tc.tpa == spa {
			spa = "10.0.0.20"
		}
		r.send(tc.port, arpRequest(t, own[tc.port], spa, tc.tpa))
		got := r.p[tc.port].Sent()
		if len(got) != 1 {
			t.Fatalf("%s asks for %s: %d answers, want 1", tc.port, tc.tpa, len(got))
		}
		arp, err := header.ParseARP(got[0][14:])
		if err != nil || arp.Op() != header.ARPReply || arp.SHA() != tc.want || arp.SPAAddr() != netip.MustParseAddr(tc.tpa) || [6]byte(got[0][0:6]) != own[tc.port] {
			t.Fatalf("%s asks for %s: reply %x, %v; want %x from %x", tc.port, tc.tpa, got[0], err, tc.want, tc.want)
		}
		r.expect(nil) // nobody else saw anything
	}
	// Unknown address: dropped, counted, not flooded.
	r.send("a", arpRequest(t, vmA, "10.0.0.10", "10.0.0.77"))
	r.expect(nil)
	if n := r.drops("a", DropNoPolicy); n != 1 {
		t.Fatalf("no-policy drops %d, want 1", n)
	}
	if len(*misses) != 1 || (*misses)[0] != "5001 10.0.0.77" {
		t.Fatalf("the miss hook heard %q, want [5001 10.0.0.77]", *misses)
	}
	// A VM's own reply or announcement stops at the switch.
	r.send("b", arpRequest(t, [6]byte{2, 0, 0, 0, 0, 0x0b}, "10.0.0.20", "10.0.0.20"))
	r.expect(nil)
	if n := r.drops("b", DropProxied); n != 1 {
		t.Fatalf("proxied on b %d, want 1", n)
	}
	// Non-virtualized ports, and VSIDs that are not virtual subnets of the
	// policy, are untouched: ARP floods as on any bridge.
	r2 := newRig(t, Config{Policy: testPolicy(t)}, map[string]uint32{"u": 0, "v": 0, "s": 5003, "t": 5003})
	req := arpRequest(t, vmA, "10.0.0.1", "10.0.0.2")
	r2.send("u", req)
	r2.expect(req, "v")
	r2.send("s", req)
	r2.expect(req, "t")
}

// TestNeighborSolicitationAnswered: the IPv6 twin of ARP.
func TestNeighborSolicitationAnswered(t *testing.T) {
	r := newRig(t, Config{Policy: testPolicy(t)}, map[string]uint32{"a": 5001, "b": 5001})
	vmA := [6]byte{2, 0, 0, 0, 0, 0x0a}
	src := netip.MustParseAddr("fd00:1::10").As16()
	target := netip.MustParseAddr("fd00:1::20")
	ns := neighborSolicit(vmA, src, target.As16())
	r.send("a", ns)
	got := r.p["a"].Sent()
	if len(got) != 1 {
		t.Fatalf("%d answers to a neighbor solicitation, want 1", len(got))
	}
	ip, err := header.ParseIPv6(got[0][14:])
	if err != nil || ip.NextHeader() != header.ProtocolICMPv6 || ip.Payload()[0] != header.ICMPv6NeighborAdvert || !header.ICMPv6ChecksumValid(ip) {
		t.Fatalf("answer %x: %v", got[0], err)
	}
	if !bytes.Equal(got[0][6:12], []byte{2, 0, 0, 0, 0, 0x0b}) {
		t.Fatalf("advertised from %x, want the record's MAC", got[0][6:12])
	}
	r.expect(nil)
	r.send("a", neighborSolicit(vmA, src, netip.MustParseAddr("fd00:1::99").As16()))
	r.expect(nil)
	if n := r.drops("a", DropNoPolicy); n != 1 {
		t.Fatalf("no-policy drops %d, want 1", n)
	}
}

// neighborSolicit builds an NS from (mac, src) for target, to the target's
// solicited-node multicast group, with a source link-layer option.
func neighborSolicit(mac [6]byte, src, target [16]byte) []byte {
	dstIP := header.SolicitedNodeMulticast(target)
	dstMAC := header.MulticastMAC6(dstIP)
	f := make([]byte, 14+40+32)
	copy(f[0:6], dstMAC[:])
	copy(f[6:12], mac[:])
	f[12], f[13] = 0x86, 0xdd
	ip := f[14:]
	ip[0] = 0x60
	ip[4], ip[5] = 0, 32
	ip[6] = 58
	ip[7] = 255
	copy(ip[8:24], src[:])
	copy(ip[24:40], dstIP[:])
	icmp := ip[40:]
	icmp[0] = header.ICMPv6NeighborSolicit
	copy(icmp[8:24], target[:])
	icmp[24], icmp[25] = 1, 1 // source link-layer address option
	copy(icmp[26:32], mac[:])
	c := header.ICMPv6Checksum(src, dstIP, icmp)
	icmp[2], icmp[3] = byte(c>>8), byte(c)
	return f
}

// TestProxyAllocatesNothing: answering ARP is on the data path too.
func TestProxyAllocatesNothing(t *testing.T) {
	r := newRig(t, Config{Policy: testPolicy(t)}, map[string]uint32{"a": 5001, "b": 5001})
	req := arpRequest(t, [6]byte{2, 0, 0, 0, 0, 0x0a}, "10.0.0.10", "10.0.0.20")
	v := r.sw.snap.Load().views[r.sw.ports["a"].idx]
	w := r.sw.workers[0]
	b := w.rx
	sw := r.sw.snap.Load()
	w.wnv.Begin(r.sw.cfg.Policy.Snapshot(), sw.wnvPorts, 0)
	n := testing.AllocsPerRun(100, func() {
		b.N = 1
		b.Frames[0].Offset = uint16(w.arena.Headroom())
		b.Frames[0].Len = uint16(copy(b.Room(0), req))
		w.applyWNV(sw, b, w.wnv.Resolve(v.wnvPort, b))
		w.queued[0].tx[0].N = 0
		w.marked[w.queued[0].idx] = false
		w.queued = w.queued[:0]
		w.wnv.Release()
	})
	if n != 0 {
		t.Fatalf("%v allocations per answered ARP request", n)
	}
}
