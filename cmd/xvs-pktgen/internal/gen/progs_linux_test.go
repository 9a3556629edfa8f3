package gen

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/xvswitch/xvs/cmd/xvs-pktgen/internal/frame"
	"github.com/xvswitch/xvs/internal/testutil"
)

func testFrameConfig(flows int, vary frame.Fields) frame.Config {
	return frame.Config{
		Size:    64,
		SrcMAC:  net.HardwareAddr{0x02, 0, 0, 0, 0xff, 0xf0}, // low bits wrap after 16 flows
		DstMAC:  net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02},
		SrcIP:   netip.MustParseAddr("198.18.255.250"),
		DstIP:   netip.MustParseAddr("198.19.0.1"),
		SrcPort: 0xfff8,
		DstPort: 9,
		Flows:   flows,
		Vary:    vary,
	}
}

// runOnce runs prog once (not in live mode) on in and returns the verdict
// and the frame it left.
func runOnce(t *testing.T, prog *ebpf.Program, in []byte) (uint32, []byte) {
	t.Helper()
	out := make([]byte, len(in)+256)
	ret, err := prog.Run(&ebpf.RunOptions{Data: in, DataOut: out, Repeat: 1})
	if err != nil {
		t.Fatal(err)
	}
	return ret, out[:len(in)]
}

// TestTxProgramMatchesFrame checks the in-kernel rewrite against the Go
// reference, frame.Config.Frame, byte for byte: run i must produce flow
// i % flows, whatever frame the page held before (the kernel recycles
// pages without resetting them).
func TestTxProgramMatchesFrame(t *testing.T) {
	testutil.NeedRoot(t, "BPF programs, XDP, network namespaces")
	for _, tc := range []struct {
		flows int
		vary  frame.Fields
	}{
		{1, frame.VaryAll},
		{2, frame.VaryAll},
		{7, frame.VaryIP},
		{100, frame.VaryMAC | frame.VaryPort},
		{frame.MaxFlows, frame.VaryAll},
	} {
		t.Run(fmt.Sprintf("%d-%s", tc.flows, tc.vary), func(t *testing.T) {
			c := testFrameConfig(tc.flows, tc.vary)
			s, err := openLive(&net.Interface{Index: 1, Name: "lo"}, c)
			if err != nil {
				t.Fatal(err)
			}
			defer s.close()
			want := make([]byte, c.Size)
			for i := range 3*tc.flows + 5 {
				if i > 300 {
					break
				}
				// Start from frame 0, or from another flow's frame.
				in := c.Frame(make([]byte, c.Size), (i*31)%tc.flows)
				if i%2 == 0 {
					in = c.Frame(in, 0)
				}
				ret, out := runOnce(t, s.prog, in)
				if ret != xdpTX {
					t.Fatalf("run %d: verdict %d, want XDP_TX", i, ret)
				}
				if c.Frame(want, i%tc.flows); !bytes.Equal(out, want) {
					t.Fatalf("run %d: frame\n%x\nwant flow %d\n%x", i, out, i%tc.flows, want)
				}
			}
		})
	}
}

func TestSinkProgramCounts(t *testing.T) {
	testutil.NeedRoot(t, "BPF programs, XDP, network namespaces")
	stats, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: sinkStatsSize, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()
	flows, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: flowKeySize, ValueSize: 8, MaxEntries: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer flows.Close()
	prog, err := ebpf.NewProgram(sinkProgram(stats, flows, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	s := &Sink{dev: "test", stats: stats, flows: flows}

	c := testFrameConfig(3, frame.VaryAll)
	c.Size = 100
	var wantBytes uint64
	for i := range 9 {
		ret, _ := runOnce(t, prog, c.Frame(make([]byte, c.Size), i%3))
		if ret != xdpDrop {
			t.Fatalf("verdict %d, want XDP_DROP", ret)
		}
		wantBytes += uint64(c.Size)
	}
	// Foreign frames: counted as "all" only.
	arp := make([]byte, 60)
	arp[12], arp[13] = 0x08, 0x06
	noMagic := c.Frame(make([]byte, c.Size), 0)
	noMagic[frame.HeaderLen] = 'x'
	short := c.Frame(make([]byte, c.Size), 0)[:frame.HeaderLen+2]
	for _, f := range [][]byte{arp, noMagic, short} {
		if ret, _ := runOnce(t, prog, f); ret != xdpDrop {
			t.Fatalf("verdict %d, want XDP_DROP", ret)
		}
	}
	got, err := s.Counters()
	if err != nil {
		t.Fatal(err)
	}
	want := SinkCounters{
		Packets: 9, Bytes: wantBytes,
		AllPackets: 12, AllBytes: wantBytes + 60 + uint64(c.Size) + frame.HeaderLen + 2,
	}
	if got != want {
		t.Errorf("counters %+v, want %+v", got, want)
	}
	fc, ok, err := s.FlowCounts()
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if fc != (FlowCounts{Flows: 3, Min: 3, Max: 3}) {
		t.Errorf("flow counts %+v, want 3 flows of 3 frames", fc)
	}
}

// TestReflectorProgram: a reflector sends generator frames back with the
// Ethernet addresses swapped, passes other frames to the stack, and once
// stopped drops generator frames and counts them.
func TestReflectorProgram(t *testing.T) {
	testutil.NeedRoot(t, "BPF programs, XDP, network namespaces")
	stats, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: sinkStatsSize, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()
	ctl, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	prog, err := ebpf.NewProgram(sinkProgram(stats, nil, ctl))
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	s := &Sink{dev: "test", stats: stats, ctl: ctl}

	c := testFrameConfig(1, frame.VaryAll)
	in := c.Frame(make([]byte, c.Size), 0)
	ret, out := runOnce(t, prog, in)
	want := bytes.Clone(in)
	copy(want[0:6], in[6:12])
	copy(want[6:12], in[0:6])
	// BPF_PROG_RUN without a device runs the redirect's lookup in vain;
	// the verdict is XDP_REDIRECT all the same.
	if ret != xdpRedirect || !bytes.Equal(out, want) {
		t.Fatalf("generator frame: verdict %d, frame\n%x, want XDP_REDIRECT and\n%x", ret, out, want)
	}
	arp := make([]byte, 60)
	arp[12], arp[13] = 0x08, 0x06
	if ret, out := runOnce(t, prog, arp); ret != xdpPass || !bytes.Equal(out, arp) {
		t.Fatalf("ARP: verdict %d, frame %x, want XDP_PASS unchanged", ret, out)
	}
	if err := s.StopReflecting(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if ret, _ := runOnce(t, prog, in); ret != xdpDrop {
			t.Fatalf("stopped: verdict %d, want XDP_DROP", ret)
		}
	}
	got, err := s.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if want := (SinkCounters{Packets: 4, Bytes: 4 * 64, AllPackets: 5, AllBytes: 4*64 + 60, Stopped: 3}); got != want {
		t.Errorf("counters %+v, want %+v", got, want)
	}
}
