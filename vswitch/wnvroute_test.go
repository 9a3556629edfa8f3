package vswitch

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/xvswitch/xvs/header"
	"github.com/xvswitch/xvs/wnv"
)

// Two tenants on one host. blue: VSID 5001 (10.0.1.0/24) and 5002
// (10.0.2.0/24); red: VSID 6001 reusing 10.0.1.0/24.
func routePolicy(t *testing.T) *wnv.Policy {
	t.Helper()
	rec := func(vsid uint32, ca, mac, port string) wnv.LookupRecordConfig {
		return wnv.LookupRecordConfig{VSID: vsid, CA: ca, MAC: mac, PA: "192.168.50.1", Rule: "encap", VMName: port}
	}
	p, err := wnv.LoadConfig(wnv.PolicyConfig{
		GatewayMAC:     "02:58:56:00:00:01",
		RoutingDomains: []wnv.RoutingDomainConfig{{ID: "blue"}, {ID: "red"}},
		VirtualSubnets: []wnv.VirtualSubnetConfig{
			{VSID: 5001, RoutingDomain: "blue", IPv4Prefix: "10.0.1.0/24"},
			{VSID: 5002, RoutingDomain: "blue", IPv4Prefix: "10.0.2.0/24"},
			{VSID: 6001, RoutingDomain: "red", IPv4Prefix: "10.0.1.0/24"},
		},
		ProviderAddresses: []wnv.ProviderAddressConfig{{Interface: "uplink", PA: "192.168.50.1", PrefixLength: 24}},
		LookupRecords: []wnv.LookupRecordConfig{
			rec(5001, "10.0.1.10", "02:00:00:00:01:0a", "a"),
			rec(5001, "10.0.1.20", "02:00:00:00:01:0b", "b"),
			rec(5002, "10.0.2.30", "02:00:00:00:02:0c", "c"),
			rec(6001, "10.0.1.20", "02:00:00:00:06:0b", "x"),
			rec(6001, "10.0.1.10", "02:00:00:00:06:0a", "y"),
			{VSID: 5001, CA: "10.0.1.40", MAC: "02:00:00:00:01:0d", PA: "192.168.60.7", Rule: "encap", VMName: "remote"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustMAC(s string) [6]byte { m, _ := wnv.ParseMAC(s); return m }

// udp4 builds an Ethernet/IPv4/UDP frame with a valid IP checksum.
func udp4(dstMAC, srcMAC [6]byte, src, dst string, ttl byte) []byte {
	f := make([]byte, 14+20+8+18)
	copy(f[0:6], dstMAC[:])
	copy(f[6:12], srcMAC[:])
	f[12], f[13] = 0x08, 0x00
	ip := f[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	ip[8], ip[9] = ttl, 17
	s4, d4 := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	header.IPv4(ip).SetChecksum(header.IPv4(ip).ComputeChecksum())
	binary.BigEndian.PutUint16(ip[20:], 5000)
	binary.BigEndian.PutUint16(ip[22:], 6000)
	binary.BigEndian.PutUint16(ip[24:], 26)
	return f
}

// sendOne sends f on port in and returns the one frame that arrived on
// port out (what), failing unless exactly one did and none arrived
// elsewhere.
func (r *rig) sendOne(in string, f []byte, out, what string) []byte {
	r.t.Helper()
	r.send(in, f)
	got := r.p[out].Sent()
	r.expect(nil)
	if len(got) != 1 {
		r.t.Fatalf("%s: %s got %d frames, want 1", what, out, len(got))
	}
	return got[0]
}

func TestRouteDeliversRoutesAndIsolates(t *testing.T) {
	r := newRig(t, Config{Policy: routePolicy(t)}, map[string]uint32{"a": 5001, "b": 5001, "c": 5002, "x": 6001, "y": 6001})
	macA, macB, macC := mustMAC("02:00:00:00:01:0a"), mustMAC("02:00:00:00:01:0b"), mustMAC("02:00:00:00:02:0c")
	gw := mustMAC("02:58:56:00:00:01")

	// Same VSID: delivered unchanged, to b only (not to red's 10.0.1.20).
	f := udp4(macB, macA, "10.0.1.10", "10.0.1.20", 64)
	r.send("a", f)
	r.expect(f, "b")

	// Other VSID of the same routing domain: routed through the gateway.
	got := r.sendOne("a", udp4(gw, macA, "10.0.1.10", "10.0.2.30", 64), "c", "routed frame")
	ip, _ := header.ParseIPv4(got[14:])
	if [6]byte(got[0:6]) != macC || [6]byte(got[6:12]) != gw || ip.TTL() != 63 || !ip.ChecksumValid() {
		t.Fatalf("routed frame %x: want dst %x, src gateway, TTL 63, valid checksum", got[:34], macC)
	}

	// red's VM reuses 10.0.1.10 and asks for 10.0.2.30 (blue only): isolation.
	r.send("y", udp4(gw, mustMAC("02:00:00:00:06:0a"), "10.0.1.10", "10.0.2.30", 64))
	r.expect(nil)
	if n := r.drops("y", DropIsolation); n != 1 {
		t.Fatalf("isolation drops on y: %d, want 1", n)
	}
	// ...and its 10.0.1.20 is its own tenant's, never blue's b.
	g := udp4(mustMAC("02:00:00:00:06:0b"), mustMAC("02:00:00:00:06:0a"), "10.0.1.10", "10.0.1.20", 64)
	r.send("y", g)
	r.expect(g, "x")

	// Spoofing: a claims b's address, or sends from a MAC it does not own.
	r.send("a", udp4(macB, macA, "10.0.1.20", "10.0.1.20", 64))
	r.send("a", udp4(macB, mustMAC("02:00:00:00:01:ee"), "10.0.1.10", "10.0.1.20", 64))
	r.expect(nil)
	if n := r.drops("a", DropSpoof); n != 2 {
		t.Fatalf("spoof drops on a: %d, want 2", n)
	}

	// TTL exhausted while routing: dropped, counted, and answered with
	// ICMP time exceeded from the source subnet's gateway, to a only.
	back := r.sendOne("a", udp4(gw, macA, "10.0.1.10", "10.0.2.30", 1), "a", "ICMP time exceeded for an exhausted TTL")
	icmp, err := header.ParseIPv4(back[14:])
	if err != nil || icmp.Protocol() != header.ProtocolICMP || icmp.Payload()[0] != header.ICMPv4TimeExceeded ||
		icmp.SrcAddr() != netip.MustParseAddr("10.0.1.1") || icmp.DstAddr() != netip.MustParseAddr("10.0.1.10") ||
		[6]byte(back[0:6]) != macA || [6]byte(back[6:12]) != gw {
		t.Fatalf("TTL exhausted: answer %x (%v), want ICMP time exceeded from 10.0.1.1 (gateway MAC) to 10.0.1.10", back, err)
	}
	// Unknown address in a known subnet; a destination on another host
	// (no uplink).
	r.send("a", udp4(macB, macA, "10.0.1.10", "10.0.1.99", 64))
	r.send("a", udp4(mustMAC("02:00:00:00:01:0d"), macA, "10.0.1.10", "10.0.1.40", 64))
	r.expect(nil)
	for reason, want := range map[DropReason]uint64{DropTTL: 1, DropNoPolicy: 1, DropNoUplink: 1} {
		if n := r.drops("a", reason); n != want {
			t.Errorf("%s drops on a: %d, want %d", reason, n, want)
		}
	}
}

// TestRouteAllocatesNothing: the WNV stage is on the hot path.
func TestRouteAllocatesNothing(t *testing.T) {
	r := newRig(t, Config{Policy: routePolicy(t)}, map[string]uint32{"a": 5001, "b": 5001, "c": 5002})
	gw := mustMAC("02:58:56:00:00:01")
	frames := [][]byte{
		udp4(mustMAC("02:00:00:00:01:0b"), mustMAC("02:00:00:00:01:0a"), "10.0.1.10", "10.0.1.20", 64),
		udp4(gw, mustMAC("02:00:00:00:01:0a"), "10.0.1.10", "10.0.2.30", 64),
	}
	r.p["b"].SetTxLimit(0)
	r.p["c"].SetTxLimit(0)
	for _, f := range frames {
		r.send("a", f)
	}
	// The queue port reuses its buffers once received, so the whole
	// inject-and-route round must allocate nothing.
	all := testing.AllocsPerRun(100, func() {
		for _, f := range frames {
			r.p["a"].Inject(f)
		}
		r.sw.RunOnce()
	})
	if all != 0 {
		t.Fatalf("%v allocations per batch in the WNV stage", all)
	}
}
