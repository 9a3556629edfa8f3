package bench

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/xvswitch/xvs/header"
	"github.com/xvswitch/xvs/ports/porttest"
	"github.com/xvswitch/xvs/vswitch"
	"github.com/xvswitch/xvs/wnv"
)

// blueSwitch is a switch with tenant blue's policy on host 192.168.50.1
// (uplink "uplink"): subnets and records as given.
func blueSwitch(tb testing.TB, subnets []wnv.VirtualSubnetConfig, records ...wnv.LookupRecordConfig) (*vswitch.Switch, *wnv.Policy) {
	tb.Helper()
	pol, err := wnv.LoadConfig(wnv.PolicyConfig{
		RoutingDomains:    []wnv.RoutingDomainConfig{{ID: "blue"}},
		VirtualSubnets:    subnets,
		ProviderAddresses: []wnv.ProviderAddressConfig{{Interface: "uplink", PA: "192.168.50.1", PrefixLength: 24}},
		LookupRecords:     records,
	})
	if err != nil {
		tb.Fatal(err)
	}
	sw, err := vswitch.New(vswitch.Config{Policy: pol})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sw.Close() })
	return sw, pol
}

// wnvTopology: two VMs of one tenant in two virtual subnets on one host,
// each port replaying 64-byte UDP frames to the other through the virtual
// gateway, so every frame is proxied-free, source-checked, routed (MACs
// rewritten, TTL decremented with its checksum) by policy.
func wnvTopology(tb testing.TB) *vswitch.Switch {
	tb.Helper()
	sw, pol := blueSwitch(tb, []wnv.VirtualSubnetConfig{{VSID: 5001, RoutingDomain: "blue", IPv4Prefix: "10.0.1.0/24"}, {VSID: 5002, RoutingDomain: "blue", IPv4Prefix: "10.0.2.0/24"}},
		wnv.LookupRecordConfig{VSID: 5001, CA: "10.0.1.10", MAC: "02:00:00:00:01:0a", PA: "192.168.50.1", VMName: "a"},
		wnv.LookupRecordConfig{VSID: 5002, CA: "10.0.2.30", MAC: "02:00:00:00:02:0c", PA: "192.168.50.1", VMName: "b"})
	gw := pol.Snapshot().GatewayMAC()
	a := porttest.NewReplay("a", [][]byte{udp64(gw[:], net.HardwareAddr{2, 0, 0, 0, 1, 0x0a}, "10.0.1.10", "10.0.2.30")})
	b := porttest.NewReplay("b", [][]byte{udp64(gw[:], net.HardwareAddr{2, 0, 0, 0, 2, 0x0c}, "10.0.2.30", "10.0.1.10")})
	if err := sw.AddPort(a, 5001); err != nil {
		tb.Fatal(err)
	}
	if err := sw.AddPort(b, 5002); err != nil {
		tb.Fatal(err)
	}
	return sw
}

// BenchmarkForwardWNV measures the WNV path on one worker: 64-byte frames
// routed between two virtual subnets by policy (source check, Route,
// rewrite, TTL). Compare with BenchmarkForward/unicast-2ports in the same
// run.
func BenchmarkForwardWNV(b *testing.B) {
	sw := wnvTopology(b)
	b.ReportAllocs()
	rx := 0
	for b.Loop() {
		rx += sw.RunOnce()
	}
	b.ReportMetric(float64(rx)/b.Elapsed().Seconds()/1e6, "Mpps")
	if rx > 0 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(rx), "ns/frame")
	}
}

// TestForwardWNVDelivers: the benchmark's frames really are routed (not
// dropped), and routing allocates nothing.
func TestForwardWNVDelivers(t *testing.T) {
	sw := wnvTopology(t)
	rx := sw.RunOnce()
	st, _ := sw.Stats("")
	var tx uint64
	for _, s := range st {
		tx += s.TxFrames
	}
	if rx != 128 || tx != 128 {
		t.Fatalf("received %d, transmitted %d; want 128 routed both ways (stats %+v)", rx, tx, st)
	}
	if n := testing.AllocsPerRun(100, func() { sw.RunOnce() }); n != 0 {
		t.Fatalf("%v allocations per WNV poll round", n)
	}
}

// hostTopology is one host of a two-host virtual subnet: a VM port "vm"
// (10.0.1.10) and an uplink with PA 192.168.50.1; 10.0.1.20 lives on the
// host with PA 192.168.50.2, whose MAC the switch has learned.
func hostTopology(tb testing.TB, vmFrames, upFrames [][]byte) *vswitch.Switch {
	tb.Helper()
	sw, _ := blueSwitch(tb, []wnv.VirtualSubnetConfig{{VSID: 5001, RoutingDomain: "blue", IPv4Prefix: "10.0.1.0/24"}},
		wnv.LookupRecordConfig{VSID: 5001, CA: "10.0.1.10", MAC: "02:00:00:00:01:0a", PA: "192.168.50.1", VMName: "vm"},
		wnv.LookupRecordConfig{VSID: 5001, CA: "10.0.1.20", MAC: "02:00:00:00:01:0b", PA: "192.168.50.2", VMName: "vm2"})
	upMAC := net.HardwareAddr{2, 0xaa, 0, 0, 0, 1}
	// Learn the other host's MAC first, as xvs does: a frame for it makes
	// xvs ask, and the answer to that request is believed.
	learn, ask := porttest.New("uplink", upMAC), porttest.New("vm", nil)
	learn.SetCollect(false)
	ask.SetCollect(false)
	if err := sw.AddPort(learn, vswitch.VSIDNone); err != nil {
		tb.Fatal(err)
	}
	if err := sw.AddPort(ask, 5001); err != nil {
		tb.Fatal(err)
	}
	ask.Inject(vmToRemote())
	sw.RunOnce()
	rep := make([]byte, 60)
	req := make([]byte, 60)
	header.WriteARPRequest(req, [6]byte(upMAC), [4]byte{192, 168, 50, 1}, [4]byte{192, 168, 50, 2})
	arp, _ := header.ParseARP(req[14:])
	header.WriteARPReply(rep, arp, [6]byte{2, 0xaa, 0, 0, 0, 2})
	learn.Inject(rep)
	sw.RunOnce()
	sw.RunOnce() // the frame held while xvs asked goes out on the learning port
	for _, name := range []string{"uplink", "vm"} {
		if err := sw.RemovePort(name); err != nil {
			tb.Fatal(err)
		}
	}
	vm, up := porttest.NewReplay("vm", vmFrames), porttest.NewReplay("uplink", upFrames)
	if vmFrames == nil {
		vm = porttest.New("vm", nil)
		vm.SetCollect(false)
	}
	if upFrames == nil {
		up = porttest.New("uplink", upMAC)
		up.SetCollect(false)
	}
	if err := sw.AddPort(vm, 5001); err != nil {
		tb.Fatal(err)
	}
	if err := sw.AddPort(up, vswitch.VSIDNone); err != nil {
		tb.Fatal(err)
	}
	return sw
}

// udp64 is a 64-byte IPv4/UDP frame (UDP checksum 0) with a valid IP checksum.
func udp64(dst, src net.HardwareAddr, from, to string) []byte {
	f := frame64(dst, src)
	ip := f[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	ip[8], ip[9] = 64, 17
	s, d := netip.MustParseAddr(from).As4(), netip.MustParseAddr(to).As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	header.IPv4(ip).SetChecksum(header.IPv4(ip).ComputeChecksum())
	return f
}

func vmToRemote() []byte {
	return udp64([]byte{2, 0, 0, 0, 1, 0x0b}, []byte{2, 0, 0, 0, 1, 0x0a}, "10.0.1.10", "10.0.1.20")
}

// nvgreFromRemote is what host 192.168.50.2 sends for 10.0.1.20 -> 10.0.1.10.
func nvgreFromRemote() []byte {
	inner := udp64([]byte{2, 0, 0, 0, 1, 0x0a}, []byte{2, 0, 0, 0, 1, 0x0b}, "10.0.1.20", "10.0.1.10")
	buf := make([]byte, header.NVGREOverhead+len(inner))
	copy(buf[header.NVGREOverhead:], inner)
	p := header.NVGREParams{SrcMAC: [6]byte{2, 0xaa, 0, 0, 0, 2}, DstMAC: [6]byte{2, 0xaa, 0, 0, 0, 1}, SrcPA: [4]byte{192, 168, 50, 2}, DstPA: [4]byte{192, 168, 50, 1}, VSID: 5001}
	start, _ := header.EncapNVGRE(buf, header.NVGREOverhead, len(inner), &p, header.FlowID(inner))
	return buf[start:]
}

// BenchmarkNVGRE measures one worker, 64-byte inner frames: encap is a VM
// port's frames source-checked, decided, encapsulated and sent out the
// uplink; decap is NVGRE frames from the uplink checked, decapsulated and
// delivered to the VM port.
func BenchmarkNVGRE(b *testing.B) {
	for _, c := range []struct {
		name     string
		vm, up   [][]byte
		txOnPort string
	}{
		{"encap", [][]byte{vmToRemote()}, nil, "uplink"},
		{"decap", nil, [][]byte{nvgreFromRemote()}, "vm"},
	} {
		b.Run(c.name, func(b *testing.B) {
			sw := hostTopology(b, c.vm, c.up)
			b.ReportAllocs()
			rx := 0
			for b.Loop() {
				rx += sw.RunOnce()
			}
			st, _ := sw.Stats(c.txOnPort)
			b.ReportMetric(float64(rx)/b.Elapsed().Seconds()/1e6, "Mpps")
			b.ReportMetric(float64(st[0].TxFrames)/b.Elapsed().Seconds()/1e6, "tx-Mpps")
		})
	}
}

// TestNVGREBenchmarkDelivers: the benchmark's frames really go out
// encapsulated, and come in decapsulated, without allocating.
func TestNVGREBenchmarkDelivers(t *testing.T) {
	for _, c := range []struct {
		name   string
		vm, up [][]byte
		tx     string
	}{
		{"encap", [][]byte{vmToRemote()}, nil, "uplink"},
		{"decap", nil, [][]byte{nvgreFromRemote()}, "vm"},
	} {
		sw := hostTopology(t, c.vm, c.up)
		rx := sw.RunOnce()
		st, _ := sw.Stats(c.tx)
		if rx != 64 || st[0].TxFrames != 64 {
			t.Fatalf("%s: received %d, sent %d on %s; want 64 and 64 (%+v)", c.name, rx, st[0].TxFrames, c.tx, st)
		}
		if n := testing.AllocsPerRun(100, func() { sw.RunOnce() }); n != 0 {
			t.Fatalf("%s: %v allocations per round", c.name, n)
		}
	}
}
