package bench

import (
	"fmt"
	"net"
	"testing"

	"github.com/xvswitch/xvs/ports/porttest"
	"github.com/xvswitch/xvs/ring"
	"github.com/xvswitch/xvs/vswitch"
)

const vsid = 5001

func stationMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0, 0, 0, byte(i >> 8), byte(i)}
}

// frame64 is a 64-byte frame (60 bytes without the FCS the wire adds).
func frame64(dst, src net.HardwareAddr) []byte {
	f := make([]byte, 60)
	copy(f, dst)
	copy(f[6:], src)
	f[12], f[13] = 0x08, 0x00
	return f
}

// topology is a switch of replay ports: port i receives, forever, frames
// to dst(i) from its own station.
type topology struct {
	sw    *vswitch.Switch
	ports []*porttest.Port
}

func newTopology(tb testing.TB, n int, dst func(i int) net.HardwareAddr) *topology {
	tb.Helper()
	sw, err := vswitch.New(vswitch.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sw.Close() })
	t := &topology{sw: sw}
	for i := range n {
		p := porttest.NewReplay(fmt.Sprint("p", i), [][]byte{frame64(dst(i), stationMAC(i))})
		if err := sw.AddPort(p, vsid); err != nil {
			tb.Fatal(err)
		}
		t.ports = append(t.ports, p)
	}
	// One round so every station is learned before measuring.
	sw.RunOnce()
	return t
}

var broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

var cases = []struct {
	name  string
	ports int
	dst   func(i int) net.HardwareAddr
}{
	{"unicast-2ports", 2, func(i int) net.HardwareAddr { return stationMAC(1 - i) }},
	{"unicast-64ports", 64, func(i int) net.HardwareAddr { return stationMAC((i + 1) % 64) }},
	{"broadcast-8ports", 8, func(int) net.HardwareAddr { return broadcast }},
}

// BenchmarkForward measures the whole pipeline (receive, ingress,
// forwarding, transmit) on one worker over in-memory ports with 64-byte
// frames. One op is one poll round: a 64-frame batch from every port.
// Mpps counts frames received by the switch; tx-Mpps counts frames it
// transmitted (7x for a broadcast in a VSID of 8 ports).
func BenchmarkForward(b *testing.B) {
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) { t := newTopology(b, c.ports, c.dst); t.measure(b) })
	}
}

// measure runs poll rounds for the benchmark and reports Mpps (frames
// received), tx-Mpps (frames transmitted) and ns/frame.
func (t *topology) measure(b *testing.B) {
	var tx0 uint64
	for _, p := range t.ports {
		tx0 += p.TxFrames()
	}
	b.ReportAllocs()
	rx := 0
	for b.Loop() {
		rx += t.sw.RunOnce()
	}
	var tx uint64
	for _, p := range t.ports {
		tx += p.TxFrames()
	}
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(rx)/sec/1e6, "Mpps")
	b.ReportMetric(float64(tx-tx0)/sec/1e6, "tx-Mpps")
	if rx > 0 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(rx), "ns/frame")
	}
}

// TestForwardAllocatesNothing is the guard behind the benchmarks' 0
// allocs/op: a forwarded batch must not allocate, in any topology.
func TestForwardAllocatesNothing(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			top := newTopology(t, c.ports, c.dst)
			if n := testing.AllocsPerRun(200, func() { top.sw.RunOnce() }); n != 0 {
				t.Fatalf("%v allocations per poll round, want 0", n)
			}
		})
	}
}

// TestForwardDelivers checks the benchmark topologies do what they claim,
// so a fast figure cannot come from frames going nowhere.
func TestForwardDelivers(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			top := newTopology(t, c.ports, c.dst)
			var before uint64
			for _, p := range top.ports {
				before += p.TxFrames()
			}
			rx := top.sw.RunOnce()
			var after uint64
			for _, p := range top.ports {
				after += p.TxFrames()
			}
			perFrame := 1
			if c.name == "broadcast-8ports" {
				perFrame = c.ports - 1
			}
			if rx != c.ports*ring.BatchSize || int(after-before) != rx*perFrame {
				t.Fatalf("received %d, transmitted %d; want %d and %d", rx, after-before, c.ports*ring.BatchSize, c.ports*ring.BatchSize*perFrame)
			}
		})
	}
}
