package vswitch

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/xvswitch/xvs/header"
	"github.com/xvswitch/xvs/ports/porttest"
	"github.com/xvswitch/xvs/ring"
	"github.com/xvswitch/xvs/wnv"
)

// fuzzPolicy: blue (VSIDs 5001, 5002) and red (6001, reusing blue's
// prefix) on this host (PA 192.168.50.1), each with a VM on another host
// (192.168.50.2).
func fuzzPolicy(t testing.TB) *wnv.Policy {
	t.Helper()
	rec := func(vsid uint32, ca, mac, pa, vm string) wnv.LookupRecordConfig {
		return wnv.LookupRecordConfig{VSID: vsid, CA: ca, MAC: mac, PA: pa, Rule: "encap", VMName: vm}
	}
	p, err := wnv.LoadConfig(wnv.PolicyConfig{
		GatewayMAC:     "02:58:56:00:00:01",
		RoutingDomains: []wnv.RoutingDomainConfig{{ID: "blue"}, {ID: "red"}},
		VirtualSubnets: []wnv.VirtualSubnetConfig{
			{VSID: 5001, RoutingDomain: "blue", IPv4Prefix: "10.0.1.0/24", IPv6Prefix: "fd00:1::/64"},
			{VSID: 5002, RoutingDomain: "blue", IPv4Prefix: "10.0.2.0/24"},
			{VSID: 6001, RoutingDomain: "red", IPv4Prefix: "10.0.1.0/24"},
		},
		ProviderAddresses: []wnv.ProviderAddressConfig{{Interface: "uplink", PA: "192.168.50.1", PrefixLength: 24}},
		LookupRecords: []wnv.LookupRecordConfig{
			rec(5001, "10.0.1.10", "02:00:00:00:01:0a", "192.168.50.1", "a"),
			rec(5001, "fd00:1::10", "02:00:00:00:01:0a", "192.168.50.1", "a"),
			rec(5001, "10.0.1.20", "02:00:00:00:01:0b", "192.168.50.1", "b"),
			rec(5001, "10.0.1.40", "02:00:00:00:01:0d", "192.168.50.2", "remote1"),
			rec(5002, "10.0.2.30", "02:00:00:00:02:0c", "192.168.50.1", "c"),
			rec(6001, "10.0.1.10", "02:00:00:00:06:0a", "192.168.50.1", "x"),
			rec(6001, "10.0.1.20", "02:00:00:00:06:0b", "192.168.50.2", "remote2"),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fuzzTrailer ends every injected frame: a magic word and the frame's id,
// so that copies (delivered, routed, encapsulated) can be traced.
const fuzzMagic = 0x78767346

// FuzzPipelineWNV feeds arbitrary frames from VM ports of virtual subnets
// and from the uplink through the switch with a WNV policy, and checks
// every frame that comes out:
//
//   - a frame from a VM port leaves only ports of its routing domain;
//   - a frame from a VM port leaves the uplink only as NVGRE from this
//     host's PA to a PA of the policy (or rewritten between PAs): nothing
//     of a virtual subnet reaches the provider network as it is;
//   - a frame delivered to a VM port carries a source MAC of the port it
//     came from (or the gateway MAC, routed): no VM can pass as another.
func FuzzPipelineWNV(f *testing.F) {
	seed := func(port byte, frames ...[]byte) []byte {
		var b []byte
		for _, fr := range frames {
			b = append(append(b, port, byte(len(fr))), fr...)
		}
		return b
	}
	macA, macB := mustMAC("02:00:00:00:01:0a"), mustMAC("02:00:00:00:01:0b")
	f.Add(seed(0, udp4(macB, macA, "10.0.1.10", "10.0.1.20", 64)))
	f.Add(seed(0, udp4(mustMAC("02:58:56:00:00:01"), macA, "10.0.1.10", "10.0.2.30", 64)))
	f.Add(seed(0, udp4(mustMAC("02:00:00:00:01:0d"), macA, "10.0.1.10", "10.0.1.40", 64)))
	f.Add(seed(0, frame(bcast, mac("02:00:00:00:01:0b"), "spoofed broadcast")))
	f.Add(seed(0, ipv6Frame(mac("33:33:00:00:00:01"), mac("02:00:00:00:01:0a"), "fe80::a", "ff02::1",
		header.ProtocolIPv6HopByHop, hopByHop(header.ProtocolICMPv6, routerAdvert))))
	f.Add(seed(0, udp4From(mac("02:00:00:00:01:0a"), "10.0.1.10", 67, 68, 2)))
	f.Add(seed(3, frame(bcast, mac("02:00:00:00:06:0a"), "red broadcast")))
	inner := udp4(macA, mustMAC("02:00:00:00:01:0d"), "10.0.1.40", "10.0.1.10", 64)
	nv := make([]byte, header.NVGREOverhead+len(inner))
	copy(nv[header.NVGREOverhead:], inner)
	p := header.NVGREParams{VSID: 5001, SrcMAC: [6]byte{2, 0, 0, 0, 0, 0x22}, DstMAC: [6]byte{2, 0, 0, 0, 0, 0x11},
		SrcPA: netip.MustParseAddr("192.168.50.2").As4(), DstPA: netip.MustParseAddr("192.168.50.1").As4(), TTL: 64}
	if start, err := header.EncapNVGRE(nv, header.NVGREOverhead, len(inner), &p, 0); err == nil {
		f.Add(seed(4, nv[start:]))
	}
	pol := fuzzPolicy(f)
	names := []string{"a", "b", "c", "x", "uplink"}
	vsids := []uint32{5001, 5001, 5002, 6001, VSIDNone}
	rd := map[uint32]string{5001: "blue", 5002: "blue", 6001: "red"}
	const uplink = 4
	s := pol.Snapshot()
	pas := map[netip.Addr]bool{}
	for _, r := range s.LookupRecords() {
		pas[r.PA] = true
	}
	localPA := netip.MustParseAddr("192.168.50.1")
	f.Fuzz(func(t *testing.T, data []byte) {
		sw, err := New(Config{Policy: pol, HeadEndReplication: true, MACLimit: 8,
			Arena: ring.ArenaConfig{Frames: 256, FrameSize: 2048, Headroom: 256}})
		if err != nil {
			t.Fatal(err)
		}
		defer sw.Close()
		ps := make([]*porttest.Port, len(names))
		for i, n := range names {
			var m []byte
			if i == uplink {
				m = []byte{2, 0, 0, 0, 0, 0x11}
			}
			ps[i] = porttest.New(n, m)
			if err := sw.AddPort(ps[i], vsids[i]); err != nil {
				t.Fatal(err)
			}
		}
		// data: repeated [port byte][len byte][len bytes of frame]
		origin := map[uint32]int{}
		for id := uint32(0); len(data) >= 2; id++ {
			in := int(data[0]) % len(ps)
			n := min(int(data[1]), len(data)-2)
			fr := append(append([]byte(nil), data[2:2+n]...), 0, 0, 0, 0, 0, 0, 0, 0)
			binary.BigEndian.PutUint32(fr[len(fr)-8:], fuzzMagic)
			binary.BigEndian.PutUint32(fr[len(fr)-4:], id)
			data = data[2+n:]
			origin[id] = in
			ps[in].Inject(fr)
			sw.RunOnce()
		}
		for range 4 {
			sw.RunOnce() // held frames, retries
		}
		for out, p := range ps {
			for _, fr := range p.Sent() {
				if len(fr) < 8 || binary.BigEndian.Uint32(fr[len(fr)-8:]) != fuzzMagic {
					continue // built by the switch (an answer, an ARP request)
				}
				in, ok := origin[binary.BigEndian.Uint32(fr[len(fr)-4:])]
				if !ok || in == uplink || len(fr) < header.EthernetHeaderLen {
					continue
				}
				if out == uplink {
					checkUplinkFrame(t, fr, localPA, pas)
					continue
				}
				if rd[vsids[in]] != rd[vsids[out]] {
					t.Fatalf("a frame from %s (%s) left %s (%s): %x", names[in], rd[vsids[in]], names[out], rd[vsids[out]], fr)
				}
				src := wnv.MAC(fr[6:12])
				if !s.MACOwnedBy(vsids[in], src, names[in]) && src != s.GatewayMAC() {
					t.Fatalf("a frame from %s reached %s with source MAC %s, not %s's: %x", names[in], names[out], src, names[in], fr)
				}
			}
		}
	})
}

// checkUplinkFrame fails unless a frame from a VM port that left the
// uplink is NVGRE from localPA to a PA of the policy, or IPv4 between PAs
// (rewritten).
func checkUplinkFrame(t *testing.T, fr []byte, localPA netip.Addr, pas map[netip.Addr]bool) {
	t.Helper()
	if binary.BigEndian.Uint16(fr[12:14]) != header.EtherTypeIPv4 {
		t.Fatalf("a VM's frame left the uplink as ethertype %#x: %x", binary.BigEndian.Uint16(fr[12:14]), fr)
	}
	ip, err := header.ParseIPv4(fr[header.EthernetHeaderLen:])
	if err != nil {
		t.Fatalf("a VM's frame left the uplink with a bad IPv4 header (%v): %x", err, fr)
	}
	if ip.Protocol() == header.ProtocolGRE {
		if _, err := header.DecapNVGRE(fr); err != nil || ip.SrcAddr() != localPA || !pas[ip.DstAddr()] {
			t.Fatalf("a VM's frame left the uplink as GRE that is not NVGRE from %s to a PA (%v): %x", localPA, err, fr)
		}
		return
	}
	if !pas[ip.SrcAddr()] || !pas[ip.DstAddr()] {
		t.Fatalf("a VM's frame left the uplink unencapsulated (%s to %s): %x", ip.SrcAddr(), ip.DstAddr(), fr)
	}
}
