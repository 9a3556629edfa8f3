package vswitch

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/xvswitch/xvs/header"
	"github.com/xvswitch/xvs/ports/porttest"
	"github.com/xvswitch/xvs/wnv"
	"github.com/xvswitch/xvs/wnv/datapath"
)

// host is one switch with a VM port "vm" in VSID 5001 and an uplink.
type host struct {
	sw     *Switch
	vm, up *porttest.Port
}

// twoHosts is two hosts of the policy on one provider network.
func twoHosts(t *testing.T) (h1, h2 *host) {
	return newHost(t, "192.168.50.1", net.HardwareAddr{2, 0xaa, 0, 0, 0, 1}), newHost(t, "192.168.50.2", net.HardwareAddr{2, 0xaa, 0, 0, 0, 2})
}

// sendAcross sends frame from h1's VM to host 2 and returns what h1 puts on
// its uplink once host 2's provider address is resolved.
func sendAcross(h1, h2 *host, frame []byte) [][]byte {
	h1.run(h1.vm, frame)           // held: host 2's MAC is asked for
	h2.run(h2.up, h1.up.Sent()...) // ARP request
	h1.run(h1.up, h2.up.Sent()...) // ARP reply
	h1.sw.RunOnce()                // the held frame goes
	return h1.up.Sent()
}

func newHost(t *testing.T, localPA string, upMAC net.HardwareAddr) *host {
	t.Helper()
	pol, err := wnv.LoadConfig(wnv.PolicyConfig{
		RoutingDomains:    []wnv.RoutingDomainConfig{{ID: "blue"}},
		VirtualSubnets:    []wnv.VirtualSubnetConfig{{VSID: 5001, RoutingDomain: "blue", IPv4Prefix: "10.0.1.0/24"}},
		ProviderAddresses: []wnv.ProviderAddressConfig{{Interface: "uplink", PA: localPA, PrefixLength: 24}},
		LookupRecords: []wnv.LookupRecordConfig{
			{VSID: 5001, CA: "10.0.1.10", MAC: "02:00:00:00:01:0a", PA: "192.168.50.1", VMName: "vm"},
			{VSID: 5001, CA: "10.0.1.20", MAC: "02:00:00:00:01:0b", PA: "192.168.50.2", VMName: "vm"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	sw, err := New(Config{Policy: pol, HeadEndReplication: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	h := &host{sw: sw, vm: porttest.New("vm", nil), up: porttest.New("uplink", upMAC)}
	if err := sw.AddPort(h.vm, 5001); err != nil {
		t.Fatal(err)
	}
	if err := sw.AddPort(h.up, VSIDNone); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *host) run(p *porttest.Port, frames ...[]byte) {
	p.Inject(frames...)
	for p.Pending() > 0 {
		h.sw.RunOnce()
	}
}

func hostDrops(t *testing.T, h *host, port string, r DropReason) uint64 {
	st, err := h.sw.Stats(port)
	if err != nil {
		t.Fatal(err)
	}
	return st[0].Drops[r.String()]
}

// TestNVGREBetweenHosts wires two switches' uplinks back to back: the
// first frame to the other host asks the provider network for its MAC (the
// other switch answers for its PA), the next crosses NVGRE-encapsulated
// with VSID 5001 in the key and arrives unchanged; decapsulation refuses
// what it must not accept.
func TestNVGREBetweenHosts(t *testing.T) {
	up1, up2 := net.HardwareAddr{2, 0xaa, 0, 0, 0, 1}, net.HardwareAddr{2, 0xaa, 0, 0, 0, 2}
	h1, h2 := newHost(t, "192.168.50.1", up1), newHost(t, "192.168.50.2", up2)
	f := udp4(mustMAC("02:00:00:00:01:0b"), mustMAC("02:00:00:00:01:0a"), "10.0.1.10", "10.0.1.20", 64)

	h1.run(h1.vm, f) // held while host 1 asks for host 2's MAC
	req := h1.up.Sent()
	if len(req) != 1 {
		t.Fatalf("host 1 sent %d frames on the uplink, want one ARP request", len(req))
	}
	h2.run(h2.up, req...) // host 2 answers for its PA
	rep := h2.up.Sent()
	if len(rep) != 1 {
		t.Fatalf("host 2 answered with %d frames, want one ARP reply", len(rep))
	}
	if a, err := header.ParseARP(rep[0][14:]); err != nil || a.SHA() != [6]byte(up2) {
		t.Fatalf("ARP reply %x: want host 2's uplink MAC", rep[0])
	}
	h1.run(h1.up, rep...)
	h1.sw.RunOnce() // the held frame goes now: the first frame is not lost
	wire := h1.up.Sent()
	if len(wire) != 1 {
		t.Fatalf("host 1 sent %d frames on the uplink, want 1 NVGRE frame", len(wire))
	}
	nf, err := header.DecapNVGRE(wire[0])
	if err != nil || nf.VSID != 5001 || nf.SrcPA.String() != "192.168.50.1" || nf.DstPA.String() != "192.168.50.2" || !bytes.Equal(wire[0][0:6], up2) {
		t.Fatalf("on the wire %x: %+v %v", wire[0][:50], nf, err)
	}
	if len(wire[0]) != len(f)+header.NVGREOverhead {
		t.Fatalf("encapsulated %d bytes, want %d", len(wire[0]), len(f)+header.NVGREOverhead)
	}
	h2.run(h2.up, wire[0])
	got := h2.vm.Sent()
	if len(got) != 1 || !bytes.Equal(got[0], f) {
		t.Fatalf("host 2's VM got %d frames, want the original frame", len(got))
	}

	// A DF frame that no longer fits the provider MTU (1500) once
	// encapsulated is refused with ICMP "fragmentation needed", MTU 1458.
	big := make([]byte, 14+1480)
	copy(big, f)
	ip := header.IPv4(big[14:])
	binary.BigEndian.PutUint16(ip[2:], 1480)
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
	binary.BigEndian.PutUint16(ip[24:], 1460)  // UDP length
	ip.SetChecksum(ip.ComputeChecksum())
	h1.run(h1.vm, big)
	if got := h1.up.Sent(); len(got) != 0 {
		t.Fatalf("a frame too big for the provider network was sent (%d bytes)", len(got[0]))
	}
	if n := hostDrops(t, h1, "vm", DropMTU); n != 1 {
		t.Fatalf("mtu drops %d, want 1", n)
	}
	icmp := h1.vm.Sent()
	if len(icmp) != 1 {
		t.Fatalf("the VM got %d frames, want one ICMP fragmentation needed", len(icmp))
	}
	if oip, err := header.ParseIPv4(icmp[0][14:]); err != nil || oip.Protocol() != 1 || oip.Payload()[0] != 3 || oip.Payload()[1] != 4 ||
		binary.BigEndian.Uint16(oip.Payload()[6:8]) != 1458 || oip.SrcAddr().String() != "10.0.1.1" {
		t.Fatalf("ICMP answer %x: want type 3 code 4, MTU 1458, from the gateway 10.0.1.1 (%v)", icmp[0][:42], err)
	}

	// What decapsulation must refuse.
	tamper := func(edit func([]byte)) []byte {
		c := append([]byte(nil), wire[0]...)
		edit(c)
		return c
	}
	setIPChecksum := func(b []byte) {
		ip := header.IPv4(b[14:34])
		ip.SetChecksum(ip.ComputeChecksum())
	}
	for _, tc := range []struct {
		name   string
		frame  []byte
		reason DropReason
	}{
		{"outer source is not the inner source's host", tamper(func(b []byte) { b[14+15] = 9; setIPChecksum(b) }), DropNVGRESrc},
		{"outer destination is not our PA", tamper(func(b []byte) { b[14+19] = 9; setIPChecksum(b) }), DropNVGRENotOurs},
		{"VSID not here", tamper(func(b []byte) { b[14+20+4+2] ^= 0x01 }), DropNVGREVSID},
		{"no key bit", tamper(func(b []byte) { b[14+20] = 0 }), DropNVGREInvalid},
		{"inner destination unknown", tamper(func(b []byte) { b[42+5] = 0x77 }), DropNVGRENoDst},
	} {
		before := hostDrops(t, h2, "uplink", tc.reason)
		h2.run(h2.up, tc.frame)
		if got := h2.vm.Sent(); len(got) != 0 {
			t.Errorf("%s: delivered", tc.name)
		}
		if hostDrops(t, h2, "uplink", tc.reason)-before != 1 {
			t.Errorf("%s: not counted as %s", tc.name, tc.reason)
		}
	}
}

// TestIPRewriteBetweenHosts: records with the rewrite rule cross the
// provider network as plain IPv4 between the VMs' own PAs (no
// encapsulation) and come out on the other host as they went in.
func TestIPRewriteBetweenHosts(t *testing.T) {
	mk := func(pas ...string) *host {
		var pa []wnv.ProviderAddressConfig
		for _, a := range pas {
			pa = append(pa, wnv.ProviderAddressConfig{Interface: "uplink", PA: a, PrefixLength: 24})
		}
		pol, err := wnv.LoadConfig(wnv.PolicyConfig{
			RoutingDomains:    []wnv.RoutingDomainConfig{{ID: "blue"}},
			VirtualSubnets:    []wnv.VirtualSubnetConfig{{VSID: 5001, RoutingDomain: "blue", IPv4Prefix: "10.0.1.0/24"}},
			ProviderAddresses: pa,
			LookupRecords: []wnv.LookupRecordConfig{
				{VSID: 5001, CA: "10.0.1.10", MAC: "02:00:00:00:01:0a", PA: "192.168.50.11", Rule: "rewrite", VMName: "vm"},
				{VSID: 5001, CA: "10.0.1.20", MAC: "02:00:00:00:01:0b", PA: "192.168.50.12", Rule: "rewrite", VMName: "vm"},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		sw, err := New(Config{Policy: pol})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sw.Close() })
		h := &host{sw: sw, vm: porttest.New("vm", nil), up: porttest.New("uplink", net.HardwareAddr{2, 0xaa, 0, 0, 0, byte(len(pas) + len(pas[0]))})}
		sw.AddPort(h.vm, 5001)
		sw.AddPort(h.up, VSIDNone)
		return h
	}
	h1, h2 := mk("192.168.50.1", "192.168.50.11"), mk("192.168.50.2", "192.168.50.12")
	f := udp4(mustMAC("02:00:00:00:01:0b"), mustMAC("02:00:00:00:01:0a"), "10.0.1.10", "10.0.1.20", 64)
	// a real UDP checksum, so the rewrite must update it
	udpSum, _ := header.IPv4(f[14:]).TransportChecksum()
	binary.BigEndian.PutUint16(f[14+20+6:], udpSum)
	h1.run(h1.vm, f)
	h2.run(h2.up, h1.up.Sent()...) // ARP for 192.168.50.12
	h1.run(h1.up, h2.up.Sent()...) // its answer
	h1.sw.RunOnce()                // sends the held frame
	wire := h1.up.Sent()
	if len(wire) != 1 || len(wire[0]) != len(f) {
		t.Fatalf("host 1 sent %d frames on the uplink, want 1 of %d bytes (no encapsulation)", len(wire), len(f))
	}
	ip, err := header.ParseIPv4(wire[0][14:])
	if err != nil || ip.SrcAddr().String() != "192.168.50.11" || ip.DstAddr().String() != "192.168.50.12" || !ip.ChecksumValid() {
		t.Fatalf("on the wire %x: want 192.168.50.11 -> 192.168.50.12 with valid checksums (%v)", wire[0][:42], err)
	}
	if sum, ok := ip.TransportChecksum(); !ok || sum != binary.BigEndian.Uint16(ip.Payload()[6:8]) {
		t.Fatalf("UDP checksum after rewrite is %#x, want %#x", binary.BigEndian.Uint16(ip.Payload()[6:8]), sum)
	}
	h2.run(h2.up, wire[0])
	got := h2.vm.Sent()
	if len(got) != 1 || !bytes.Equal(got[0], f) {
		t.Fatalf("host 2's VM got %d frames, want the original frame back\n got %x\nwant %x", len(got), got, f)
	}
	// A source PA the policy does not know is refused.
	bad := append([]byte(nil), wire[0]...)
	header.IPv4(bad[14:]).SetAddrs([4]byte{192, 168, 50, 99}, [4]byte{192, 168, 50, 12})
	h2.run(h2.up, bad)
	if len(h2.vm.Sent()) != 0 || hostDrops(t, h2, "uplink", DropRewriteSrc) != 1 {
		t.Fatal("a frame from an unknown PA was not refused as rewrite-src")
	}
}

// TestHeldFramesExpire: frames waiting for a provider next hop that never
// answers are dropped after a while and counted, and the queue is bounded.
func TestHeldFramesExpire(t *testing.T) {
	h1 := newHost(t, "192.168.50.1", net.HardwareAddr{2, 0xaa, 0, 0, 0, 1})
	f := udp4(mustMAC("02:00:00:00:01:0b"), mustMAC("02:00:00:00:01:0a"), "10.0.1.10", "10.0.1.20", 64)
	for range datapath.MaxPending + 5 {
		h1.vm.Inject(f)
	}
	for h1.vm.Pending() > 0 {
		h1.sw.RunOnce()
	}
	if n := hostDrops(t, h1, "vm", DropARPPending); n != 5 {
		t.Fatalf("%d frames dropped beyond the queue, want 5", n)
	}
	h1.sw.clock.Store(h1.sw.clock.Load() + datapath.PendingSeconds + 1)
	h1.sw.RunOnce()
	if n := hostDrops(t, h1, "uplink", DropARPPending); n != datapath.MaxPending {
		t.Fatalf("%d held frames expired, want %d", n, datapath.MaxPending)
	}
	if got := h1.sw.workers[0].pool.Len(); got != h1.sw.workers[0].arena.Frames()-64 {
		t.Fatalf("pool holds %d buffers after expiry: buffers leaked", got)
	}
}

// TestHeadEndReplication: a broadcast (other than ARP) in a virtual subnet
// reaches the other host's VM through one unicast NVGRE copy.
func TestHeadEndReplication(t *testing.T) {
	h1, h2 := twoHosts(t)
	b := make([]byte, 60)
	copy(b, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 1, 0x0a, 0x88, 0xb5})
	copy(b[14:], "hello, subnet")
	wire := sendAcross(h1, h2, b)
	if len(wire) != 1 {
		t.Fatalf("host 1 sent %d frames on the uplink, want 1 replicated copy", len(wire))
	}
	if nf, err := header.DecapNVGRE(wire[0]); err != nil || nf.VSID != 5001 || nf.DstPA.String() != "192.168.50.2" {
		t.Fatalf("replicated copy: %+v %v", nf, err)
	}
	h2.run(h2.up, wire[0])
	if got := h2.vm.Sent(); len(got) != 1 || !bytes.Equal(got[0], b) {
		t.Fatalf("host 2's VM got %d frames, want the broadcast", len(got))
	}
}

// TestRecordMoveRedirectsAtOnce: when a VM moves to this host (its lookup
// record changes PA and port), the very next frame follows the new record,
// although the old verdict and tunnel were cached.
func TestRecordMoveRedirectsAtOnce(t *testing.T) {
	h1, h2 := twoHosts(t)
	f := udp4(mustMAC("02:00:00:00:01:0b"), mustMAC("02:00:00:00:01:0a"), "10.0.1.10", "10.0.1.20", 64)
	if got := sendAcross(h1, h2, f); len(got) != 1 {
		t.Fatalf("before the move: %d frames on the uplink, want 1", len(got))
	}
	vm2 := porttest.New("vm2", nil)
	if err := h1.sw.AddPort(vm2, 5001); err != nil {
		t.Fatal(err)
	}
	err := h1.sw.cfg.Policy.Apply(func(b *wnv.Builder) error {
		ca := netip.MustParseAddr("10.0.1.20")
		if err := b.RemoveLookupRecord(5001, ca, wnv.MAC{}); err != nil {
			return err
		}
		return b.AddLookupRecord(wnv.LookupRecord{VSID: 5001, CA: ca, MAC: mustMAC("02:00:00:00:01:0b"), PA: netip.MustParseAddr("192.168.50.1"), VMName: "vm2"})
	})
	if err != nil {
		t.Fatal(err)
	}
	h1.run(h1.vm, f)
	if got := vm2.Sent(); len(got) != 1 || !bytes.Equal(got[0], f) {
		t.Fatalf("after the move: vm2 got %d frames, want the frame", len(got))
	}
	if got := h1.up.Sent(); len(got) != 0 {
		t.Fatalf("after the move: %d frames still tunnelled to the old host", len(got))
	}
}

// TestRoutedAcrossHosts: a frame routed to another virtual subnet of the
// tenant whose VM is on the other host arrives there from the gateway
// MAC, its source CA in another VSID: decapsulation must accept it (the
// source is checked across the routing domain, not only the VSID).
func TestRoutedAcrossHosts(t *testing.T) {
	mk := func(pa string, upMAC net.HardwareAddr) *host {
		pol, err := wnv.LoadConfig(wnv.PolicyConfig{
			RoutingDomains:    []wnv.RoutingDomainConfig{{ID: "blue"}},
			VirtualSubnets:    []wnv.VirtualSubnetConfig{{VSID: 5001, RoutingDomain: "blue", IPv4Prefix: "10.0.1.0/24"}, {VSID: 5002, RoutingDomain: "blue", IPv4Prefix: "10.0.2.0/24"}},
			ProviderAddresses: []wnv.ProviderAddressConfig{{Interface: "uplink", PA: pa, PrefixLength: 24}},
			LookupRecords: []wnv.LookupRecordConfig{
				{VSID: 5001, CA: "10.0.1.10", MAC: "02:00:00:00:01:0a", PA: "192.168.50.1", VMName: "vm"},
				{VSID: 5002, CA: "10.0.2.20", MAC: "02:00:00:00:02:0b", PA: "192.168.50.2", VMName: "vm"},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		sw, _ := New(Config{Policy: pol})
		t.Cleanup(func() { sw.Close() })
		h := &host{sw: sw, vm: porttest.New("vm", nil), up: porttest.New("uplink", upMAC)}
		vsid := uint32(5001)
		if pa == "192.168.50.2" {
			vsid = 5002
		}
		sw.AddPort(h.vm, vsid)
		sw.AddPort(h.up, VSIDNone)
		return h
	}
	h1, h2 := mk("192.168.50.1", net.HardwareAddr{2, 0xaa, 0, 0, 0, 1}), mk("192.168.50.2", net.HardwareAddr{2, 0xaa, 0, 0, 0, 2})
	gw := h1.sw.cfg.Policy.Snapshot().GatewayMAC()
	f := udp4(gw, mustMAC("02:00:00:00:01:0a"), "10.0.1.10", "10.0.2.20", 64)
	wire := sendAcross(h1, h2, f)
	if nf, err := header.DecapNVGRE(wire[0]); err != nil || nf.VSID != 5002 {
		t.Fatalf("routed frame on the wire: %+v %v, want VSID 5002 (the destination's)", nf, err)
	}
	h2.run(h2.up, wire...)
	got := h2.vm.Sent()
	if len(got) != 1 {
		t.Fatalf("host 2's VM got %d frames (drops: %+v)", len(got), func() any { st, _ := h2.sw.Stats("uplink"); return st[0].Drops }())
	}
	if [6]byte(got[0][0:6]) != mustMAC("02:00:00:00:02:0b") || [6]byte(got[0][6:12]) != gw {
		t.Fatalf("delivered %x: want to the VM from the gateway MAC", got[0][:12])
	}
}

// TestUplinkARPSpoofRefused: a host on the provider network claims, by an
// unasked ARP reply, that the other host's PA is at its MAC. The switch
// refuses it (dropped, counted as neighbor-changed on the uplink, not
// flooded to the VSID-0 bridge) and NVGRE keeps going to the real host.
func TestUplinkARPSpoofRefused(t *testing.T) {
	up2 := net.HardwareAddr{2, 0xaa, 0, 0, 0, 2}
	h1, h2 := newHost(t, "192.168.50.1", net.HardwareAddr{2, 0xaa, 0, 0, 0, 1}), newHost(t, "192.168.50.2", up2)
	f := udp4(mustMAC("02:00:00:00:01:0b"), mustMAC("02:00:00:00:01:0a"), "10.0.1.10", "10.0.1.20", 64)
	if wire := sendAcross(h1, h2, f); len(wire) != 1 {
		t.Fatalf("%d frames across, want 1", len(wire))
	}
	// The spoof: a reply "192.168.50.2 is at 02:ee:..", which nobody asked.
	req := make([]byte, 60)
	if _, err := header.WriteARPRequest(req, [6]byte(up2), [4]byte{192, 168, 50, 1}, [4]byte{192, 168, 50, 2}); err != nil {
		t.Fatal(err)
	}
	a, _ := header.ParseARP(req[14:])
	spoof := make([]byte, 60)
	if _, err := header.WriteARPReply(spoof, a, [6]byte{2, 0xee, 0, 0, 0, 0xee}); err != nil {
		t.Fatal(err)
	}
	h1.run(h1.up, spoof)
	if n := hostDrops(t, h1, "uplink", DropNeighborChanged); n != 1 {
		t.Fatalf("neighbor-changed on the uplink: %d, want 1", n)
	}
	h1.run(h1.vm, f)
	wire := h1.up.Sent()
	if len(wire) != 1 || !bytes.Equal(wire[0][0:6], up2) {
		t.Fatalf("after the spoof: %d frames, to %x; want NVGRE to the real host %s", len(wire), wire, up2)
	}
}
