package datapath

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/xvswitch/xvs/header"
	"github.com/xvswitch/xvs/ring"
	"github.com/xvswitch/xvs/wnv"
)

// device is an uplink's MAC and MTU.
type device struct {
	mac net.HardwareAddr
	mtu int
}

func (d device) MAC() net.HardwareAddr { return d.mac }
func (d device) MTU() int              { return d.mtu }

var (
	vmMAC   = [6]byte{2, 0, 0, 0, 1, 0x0a}
	peerMAC = [6]byte{2, 0, 0, 0, 1, 0x0b}
	gwMAC   = [6]byte{2, 0x58, 0x56, 0, 0, 1}
	nhMAC   = [6]byte{2, 0xaa, 0, 0, 0, 2}
)

// rig is one module over a VM port (index 1, VSID 5001) and an uplink
// (index 0, MTU 1500), with a local VM 10.0.1.10/fd00:1::10 and a remote
// one 10.0.1.20/fd00:1::20 behind 192.168.50.2.
type rig struct {
	t      *testing.T
	m      *Module
	arena  *ring.Arena
	pool   *ring.Pool
	b      *ring.Batch
	ports  *Ports
	vm, up *Port
}

func newRig(t *testing.T, cfg Config) *rig {
	t.Helper()
	pc := wnv.PolicyConfig{
		GatewayMAC:        "02:58:56:00:00:01",
		RoutingDomains:    []wnv.RoutingDomainConfig{{ID: "blue"}},
		VirtualSubnets:    []wnv.VirtualSubnetConfig{{VSID: 5001, RoutingDomain: "blue", IPv4Prefix: "10.0.1.0/24", IPv6Prefix: "fd00:1::/64"}},
		ProviderAddresses: []wnv.ProviderAddressConfig{{Interface: "uplink", PA: "192.168.50.1", PrefixLength: 24}},
	}
	for _, vm := range []struct{ name, mac, pa, v4, v6 string }{
		{"vm", "02:00:00:00:01:0a", "192.168.50.1", "10.0.1.10", "fd00:1::10"},
		{"peer", "02:00:00:00:01:0b", "192.168.50.2", "10.0.1.20", "fd00:1::20"},
	} {
		for _, ca := range []string{vm.v4, vm.v6} {
			pc.LookupRecords = append(pc.LookupRecords, wnv.LookupRecordConfig{VSID: 5001, CA: ca, MAC: vm.mac, PA: vm.pa, VMName: vm.name})
		}
	}
	pol, err := wnv.LoadConfig(pc)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ring.NewArena(ring.DefaultArenaConfig)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := ring.NewPool(a, ring.BatchSize, a.Frames()-ring.BatchSize)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, arena: a, pool: pool, b: ring.NewBatch(a)}
	for i := range ring.BatchSize {
		r.b.Frames[i].Index = uint32(i)
	}
	r.ports = NewPorts([]Port{
		{Index: 0, Name: "uplink", VSID: 0, Assigned: true, Dev: device{net.HardwareAddr{2, 0xaa, 0, 0, 0, 1}, 1500}},
		{Index: 1, Name: "vm", VSID: 5001, Assigned: true},
	})
	r.vm, r.up = r.ports.ByName("vm"), r.ports.ByName("uplink")
	r.m = New(cfg, NewProvider(), a, pool)
	r.m.Begin(pol.Snapshot(), r.ports, 100)
	return r
}

// batch loads frames into the rig's batch.
func (r *rig) batch(frames ...[]byte) *ring.Batch {
	r.b.N = len(frames)
	for i, f := range frames {
		r.b.Frames[i].Offset = uint16(r.arena.Headroom())
		r.b.Frames[i].Len = uint16(copy(r.b.Room(i), f))
		r.b.Frames[i].VSID = 5001
	}
	return r.b
}

// emitted returns the bytes of the frames emitted toward port, and
// releases every emitted frame.
func (r *rig) emitted(port uint16) [][]byte {
	var out [][]byte
	for _, e := range r.m.Emits {
		if e.Port == port {
			out = append(out, append([]byte(nil), r.arena.Buffer(e.Frame.Index)[e.Frame.Offset:e.Frame.Offset+e.Frame.Len]...))
		}
	}
	r.m.Release()
	return out
}

func (r *rig) drops() Tally {
	var t Tally
	r.m.TakeDrops(&t)
	return t
}

// learnNextHop tells the module 192.168.50.2's MAC, as the ARP reply to
// its request does.
func (r *rig) learnNextHop() {
	r.m.prov.neigh.want(netip.MustParseAddr("192.168.50.2"), r.m.now) // xvs asked
	req := make([]byte, 60)
	if _, err := header.WriteARPRequest(req, [6]byte(r.up.Dev.MAC()), [4]byte{192, 168, 50, 1}, [4]byte{192, 168, 50, 2}); err != nil {
		r.t.Fatal(err)
	}
	arp, _ := header.ParseARP(req[14:])
	reply := make([]byte, 60)
	if _, err := header.WriteARPReply(reply, arp, nhMAC); err != nil {
		r.t.Fatal(err)
	}
	if vs := r.m.FromUplink(r.up, r.batch(reply)); vs[0].Action != Continue {
		r.t.Fatalf("an ARP reply on the uplink: %v, want continue (the bridge floods it)", vs[0].Action)
	}
	if mac, ok := r.m.prov.Neighbor(netip.MustParseAddr("192.168.50.2")); !ok || mac != nhMAC {
		r.t.Fatalf("next hop MAC not learned from the ARP reply: %x %v", mac, ok)
	}
}

func udp6(src, dst string, hopLimit uint8, payload int) []byte {
	f := make([]byte, 14+40+8+payload)
	copy(f[0:6], peerMAC[:])
	copy(f[6:12], vmMAC[:])
	binary.BigEndian.PutUint16(f[12:], header.EtherTypeIPv6)
	header.IPv6(f[14:]).Encode(uint16(8+payload), header.ProtocolUDP, hopLimit, netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16())
	binary.BigEndian.PutUint16(f[54:], 5000)
	binary.BigEndian.PutUint16(f[56:], 6000)
	binary.BigEndian.PutUint16(f[58:], uint16(8+payload))
	return f
}

// TestEncapOrHoldOrTooBig: a frame to a remote VM is held while the next
// hop is asked for (ARP request emitted on the uplink), then encapsulated
// and sent on the uplink; an IPv6 frame too big once encapsulated is
// dropped as mtu and answered with ICMPv6 packet too big from the
// subnet's gateway, carrying the MTU that fits.
func TestEncapOrHoldOrTooBig(t *testing.T) {
	r := newRig(t, Config{})
	small := udp6("fd00:1::10", "fd00:1::20", 64, 100)
	vs := r.m.Route(r.vm, r.batch(small))
	if vs[0].Action != Taken || r.m.Pending() != 1 {
		t.Fatalf("first frame to an unresolved next hop: %+v, %d pending; want taken and held", vs[0], r.m.Pending())
	}
	if reqs := r.emitted(r.up.Index); len(reqs) != 1 || binary.BigEndian.Uint16(reqs[0][12:]) != header.EtherTypeARP {
		t.Fatalf("want one ARP request on the uplink, got %d frames", len(reqs))
	}
	r.learnNextHop()
	if up, ok := r.m.Retry(); !ok || up != r.up.Index || r.m.Pending() != 0 {
		t.Fatalf("retry: uplink %d %v, %d still pending", up, ok, r.m.Pending())
	}
	if sent := r.emitted(r.up.Index); len(sent) != 1 || len(sent[0]) != len(small)+header.NVGREOverhead || [6]byte(sent[0][0:6]) != nhMAC {
		t.Fatalf("held frame after the next hop answered: %d frames, want one NVGRE frame to %x", len(sent), nhMAC)
	}

	vs = r.m.Route(r.vm, r.batch(small))
	if vs[0].Action != Send || vs[0].Port != r.up.Index {
		t.Fatalf("second frame: %+v, want send on the uplink", vs[0])
	}
	// The inner flow's hash picks the FlowID and the uplink's queue.
	if h := r.b.Frames[0].Hash; h != header.FlowHash(small) {
		t.Fatalf("encapsulated frame's Meta.Hash %#x, want the inner frame's FlowHash %#x", h, header.FlowHash(small))
	}
	if nf, err := header.DecapNVGRE(r.b.Data(0)); err != nil || nf.FlowID != header.FlowID(small) {
		t.Fatalf("FlowID %d (%v), want %d", nf.FlowID, err, header.FlowID(small))
	}
	big := udp6("fd00:1::10", "fd00:1::20", 64, 1500-40-8-10) // fits 1500, not once encapsulated
	vs = r.m.Route(r.vm, r.batch(big))
	if vs[0].Action != Drop || vs[0].Reason != DropMTU {
		t.Fatalf("too big: %+v, want drop (mtu)", vs[0])
	}
	if d := r.drops(); d[DropMTU] != 1 {
		t.Fatalf("mtu drops %d, want 1", d[DropMTU])
	}
	back := r.emitted(r.vm.Index)
	if len(back) != 1 {
		t.Fatalf("%d frames back to the VM, want one packet too big", len(back))
	}
	ip, err := header.ParseIPv6(back[0][14:])
	if err != nil || ip.NextHeader() != header.ProtocolICMPv6 || ip.Payload()[0] != header.ICMPv6PacketTooBig ||
		binary.BigEndian.Uint32(ip.Payload()[4:]) != 1500-header.NVGREOverhead ||
		ip.SrcAddr() != netip.MustParseAddr("fd00:1::1") || [6]byte(back[0][6:12]) != gwMAC || [6]byte(back[0][0:6]) != vmMAC {
		t.Fatalf("packet too big %x (%v): want ICMPv6 type 2, MTU %d, from fd00:1::1 (gateway MAC) to the VM", back[0], err, 1500-header.NVGREOverhead)
	}
}

// TestICMPErrorsRateLimited: ICMP errors are bounded per second; every
// frame they answer is counted whether or not an error goes out, and the
// budget comes back the next second.
func TestICMPErrorsRateLimited(t *testing.T) {
	r := newRig(t, Config{ICMPPerSecond: 2})
	r.learnNextHop()
	big := udp6("fd00:1::10", "fd00:1::20", 64, 1500-40-8-10)
	frames := [][]byte{big, big, big, big, big}
	r.m.Route(r.vm, r.batch(frames...))
	if got := len(r.emitted(r.vm.Index)); got != 2 {
		t.Fatalf("%d packet too big errors for 5 frames in one second, want 2", got)
	}
	if d := r.drops(); d[DropMTU] != 5 {
		t.Fatalf("mtu drops %d, want 5", d[DropMTU])
	}
	r.m.Begin(r.m.pol, r.ports, 101)
	r.m.Route(r.vm, r.batch(frames...))
	if got := len(r.emitted(r.vm.Index)); got != 2 {
		t.Fatalf("next second: %d errors, want 2", got)
	}
}

// TestDecapChecks: NVGRE for a VM here is delivered decapsulated; from a PA
// the policy does not put the inner source behind, it is refused.
func TestDecapChecks(t *testing.T) {
	r := newRig(t, Config{})
	inner := udp6("fd00:1::20", "fd00:1::10", 64, 50)
	copy(inner[0:6], vmMAC[:])
	copy(inner[6:12], peerMAC[:])
	encap := func(srcPA [4]byte) []byte {
		buf := make([]byte, 256+len(inner))
		copy(buf[128:], inner)
		p := header.NVGREParams{SrcMAC: nhMAC, DstMAC: [6]byte(r.up.Dev.MAC()), SrcPA: srcPA, DstPA: [4]byte{192, 168, 50, 1}, VSID: 5001}
		start, err := header.EncapNVGRE(buf, 128, len(inner), &p, 7)
		if err != nil {
			t.Fatal(err)
		}
		return buf[start : 128+len(inner)]
	}
	vs := r.m.FromUplink(r.up, r.batch(encap([4]byte{192, 168, 50, 2}), encap([4]byte{192, 168, 50, 9})))
	if vs[0].Action != Deliver || vs[0].Port != r.vm.Index || r.b.Frames[0].Len != uint16(len(inner)) {
		t.Fatalf("NVGRE from the inner source's host: %+v, length %d; want delivered to vm, %d bytes", vs[0], r.b.Frames[0].Len, len(inner))
	}
	if vs[1].Action != Drop || vs[1].Reason != DropNVGRESrc {
		t.Fatalf("NVGRE from another PA: %+v, want drop (nvgre-src)", vs[1])
	}
}

// TestReasonNames: the names are the switch's drop reasons users see.
func TestReasonNames(t *testing.T) {
	seen := map[string]bool{}
	for r := range NumReasons {
		n := r.String()
		if n == "" || n == "unknown" || seen[n] {
			t.Fatalf("reason %d named %q", r, n)
		}
		seen[n] = true
	}
}

// byIndex finds a port of the table by index (tests only).
func (t *Ports) byIndex(i uint16) *Port {
	for _, p := range t.byName {
		if p.Index == i {
			return p
		}
	}
	return nil
}

// arpFrom builds an ARP message on the provider network: a reply (to our
// PA 192.168.50.1) or a request for tpa.
func arpFrom(t *testing.T, reply bool, sha [6]byte, spa, tpa string) []byte {
	t.Helper()
	req := make([]byte, 60)
	if _, err := header.WriteARPRequest(req, sha, netip.MustParseAddr(spa).As4(), netip.MustParseAddr(tpa).As4()); err != nil {
		t.Fatal(err)
	}
	if !reply {
		return req
	}
	// a reply from (sha, spa) to 192.168.50.1: answer a request of ours
	ours := make([]byte, 60)
	if _, err := header.WriteARPRequest(ours, [6]byte{2, 0xaa, 0, 0, 0, 1}, [4]byte{192, 168, 50, 1}, netip.MustParseAddr(spa).As4()); err != nil {
		t.Fatal(err)
	}
	a, _ := header.ParseARP(ours[14:])
	rep := make([]byte, 60)
	if _, err := header.WriteARPReply(rep, a, sha); err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestUplinkARPBelievesLittle plays hosts on the provider network: an
// unsolicited reply is not learned; a reply to our request is; a later
// unasked claim that the next hop is at another MAC is refused, dropped
// and counted (neighbor-changed) and traffic keeps going to the real
// host; requests to our PA from made-up addresses fill nothing; a next
// hop is asked for at most once a second however many frames wait; and a
// next hop that really changed its MAC is followed once its entry is
// stale and asked again, counted and reported.
func TestUplinkARPBelievesLittle(t *testing.T) {
	r := newRig(t, Config{})
	nh := netip.MustParseAddr("192.168.50.2")
	attacker := [6]byte{2, 0xee, 0, 0, 0, 0xee}

	r.m.FromUplink(r.up, r.batch(arpFrom(t, true, attacker, "192.168.50.2", "192.168.50.1")))
	if _, ok := r.m.prov.Neighbor(nh); ok {
		t.Fatal("an unsolicited ARP reply was learned")
	}

	// 20 frames to the remote VM: one ARP request, the frames held.
	small := udp6("fd00:1::10", "fd00:1::20", 64, 100)
	for range 20 {
		r.m.Route(r.vm, r.batch(small))
	}
	if reqs := r.emitted(r.up.Index); len(reqs) != 1 {
		t.Fatalf("%d ARP requests for one next hop within a second, want 1", len(reqs))
	}
	r.m.FromUplink(r.up, r.batch(arpFrom(t, true, nhMAC, "192.168.50.2", "192.168.50.1")))
	if mac, ok := r.m.prov.Neighbor(nh); !ok || mac != nhMAC {
		t.Fatalf("the reply to our request was not learned: %x %v", mac, ok)
	}
	r.drops()

	// The attacker claims the next hop's PA, by reply and by request.
	for _, f := range [][]byte{arpFrom(t, true, attacker, "192.168.50.2", "192.168.50.1"), arpFrom(t, false, attacker, "192.168.50.2", "192.168.50.1")} {
		vs := r.m.FromUplink(r.up, r.batch(f))
		if vs[0].Action != Drop || vs[0].Reason != DropNeighborChanged {
			t.Fatalf("a claim on the next hop's PA: %+v, want drop (neighbor-changed)", vs[0])
		}
	}
	r.emitted(r.up.Index)
	if d := r.drops(); d[DropNeighborChanged] != 2 {
		t.Fatalf("neighbor-changed %d, want 2", d[DropNeighborChanged])
	}
	if mac, _ := r.m.prov.Neighbor(nh); mac != nhMAC {
		t.Fatalf("next hop now at %x: redirected", mac)
	}
	vs := r.m.Route(r.vm, r.batch(small))
	if vs[0].Action != Send || [6]byte(r.b.Data(0)[0:6]) != nhMAC {
		t.Fatalf("traffic after the claim: %+v to %x, want sent to %x", vs[0], r.b.Data(0)[0:6], nhMAC)
	}
	if ev := r.m.prov.NeighborEvents(); len(ev) != 2 || !ev[0].Refused || ev[0].New != attacker {
		t.Fatalf("events %+v: want two refused claims", ev)
	}

	// Requests for our PA from addresses that are no host of the fabric.
	before := r.m.prov.neigh.n
	for i := range 1000 {
		r.m.FromUplink(r.up, r.batch(arpFrom(t, false, attacker, netip.AddrFrom4([4]byte{192, 168, 51, byte(i)}).String(), "192.168.50.1")))
		r.m.Release()
	}
	if n := r.m.prov.neigh.n; n != before {
		t.Fatalf("ARP from made-up addresses grew the table from %d to %d entries", before, n)
	}

	// The real host changed its NIC: once the entry is stale, xvs asks
	// again (still using the old MAC meanwhile) and believes the answer.
	newMAC := [6]byte{2, 0xaa, 0, 0, 0, 0x22}
	r.m.Begin(r.m.pol, r.ports, r.m.now+neighborStale+1)
	r.m.flows = new([flowCacheSize]flowEntry) // a new flow: the way is looked up again
	vs = r.m.Route(r.vm, r.batch(small))
	if vs[0].Action != Send {
		t.Fatalf("traffic on a stale entry: %+v, want still sent", vs[0])
	}
	if reqs := r.emitted(r.up.Index); len(reqs) != 1 {
		t.Fatalf("stale entry: %d frames on the uplink besides the traffic, want the ARP request", len(reqs))
	}
	r.m.FromUplink(r.up, r.batch(arpFrom(t, true, newMAC, "192.168.50.2", "192.168.50.1")))
	if mac, _ := r.m.prov.Neighbor(nh); mac != newMAC {
		t.Fatalf("after the solicited reply the next hop is at %x, want %x", mac, newMAC)
	}
	if d := r.drops(); d[DropNeighborChanged] != 1 {
		t.Fatalf("an accepted change counted %d times, want 1", d[DropNeighborChanged])
	}
	if ev := r.m.prov.NeighborEvents(); len(ev) != 1 || ev[0].Refused || ev[0].Old != nhMAC || ev[0].New != newMAC {
		t.Fatalf("events %+v: want one applied change", ev)
	}
}

// TestNeighborTableCapped: beyond maxNeighbors nothing new is learned.
func TestNeighborTableCapped(t *testing.T) {
	var n neighbors
	for i := range maxNeighbors + 10 {
		n.want(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 5)
	}
	if n.n != maxNeighbors {
		t.Fatalf("%d entries, want the cap %d", n.n, maxNeighbors)
	}
	const i = maxNeighbors + 5 // one of those refused
	last := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i & 0xff)})
	if n.observe(last, [6]byte{2}, false, true, 5) != learnIgnored {
		t.Fatal("an address beyond the cap was learned")
	}
}

// BenchmarkUplinkARPFlood: what a trickle (or flood) of ARP on the provider
// network costs the uplink's worker with a full neighbour table: per
// frame, independent of the table's size (it was a copy of the whole
// table per learned entry).
func BenchmarkUplinkARPFlood(b *testing.B) {
	r := newRig(&testing.T{}, Config{})
	for i := range maxNeighbors {
		r.m.prov.neigh.want(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 1)
	}
	frames := make([][]byte, ring.BatchSize)
	for i := range frames {
		frames[i] = arpFrom(&testing.T{}, i%2 == 0, [6]byte{2, 0xee, 0, 0, 0, byte(i)}, netip.AddrFrom4([4]byte{192, 168, 51, byte(i)}).String(), "192.168.50.1")
	}
	r.batch(frames...)
	b.ReportAllocs()
	for b.Loop() {
		r.m.FromUplink(r.up, r.b)
		r.m.Release()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(frames)), "ns/frame")
}
