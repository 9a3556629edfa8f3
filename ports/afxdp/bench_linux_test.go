package afxdp

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/xvswitch/xvs/internal/testutil"
	"github.com/xvswitch/xvs/ring"
)

// BenchmarkTransmit sends batches of 64-byte frames to the namespace side
// of a veth, where either the stack drops them (unknown ethertype) or an
// XDP program does, which leaves mostly the cost of the AF_XDP transmit.
func BenchmarkTransmit(b *testing.B) {
	for _, peerXDP := range []bool{false, true} {
		name := "peer=stack"
		if peerXDP {
			name = "peer=xdp-drop"
		}
		b.Run(name, func(b *testing.B) { benchmarkTransmit(b, peerXDP) })
	}
}

func benchmarkTransmit(b *testing.B, peerXDP bool) {
	needRoot(b)
	v := newVethPair(b, pairOpt{})
	if peerXDP {
		drop := xdpProgram(b, "xvs_drop", 1 /* XDP_DROP */)
		v.withNS(b, func() {
			link, err := netlink.LinkByName(v.peer)
			if err != nil {
				b.Fatal(err)
			}
			if err := netlink.LinkSetXdpFdWithFlags(link, drop.FD(), nl.XDP_FLAGS_DRV_MODE); err != nil {
				b.Fatal(err)
			}
		})
	}
	p := openPort(b, Config{Dev: v.host})
	batch := testutil.RxBatch(b, ring.DefaultArenaConfig)
	frames := make([][]byte, ring.BatchSize)
	for i := range frames {
		frames[i] = testFrame(v.peerMAC, v.hostMAC, uint64(i), 64)
	}
	testutil.Load(batch, frames...)
	kicks := p.kicks()
	b.ReportAllocs()
	var sent uint64
	for b.Loop() {
		n, err := p.Transmit(batch)
		if err != nil {
			b.Fatal(err)
		}
		sent += uint64(n)
	}
	b.ReportMetric(float64(sent)/b.Elapsed().Seconds()/1e6, "Mpps")
	if k := p.kicks() - kicks; k > 0 {
		b.ReportMetric(float64(sent)/float64(k), "frames/kick")
	}
}

// xdpMD is struct xdp_md, the context of an XDP program run.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// BenchmarkReceive receives 64-byte frames generated in the namespace by
// running an XDP_TX program on the peer in live-frame mode (BPF_PROG_RUN
// with BPF_F_TEST_XDP_LIVE_FRAMES): the kernel transmits each run's frame
// to the port's side, so the generator is not a socket's sendto. One op
// is one full batch of ring.BatchSize frames.
func BenchmarkReceive(b *testing.B) {
	needRoot(b)
	v := newVethPair(b, pairOpt{})
	p := openPort(b, Config{Dev: v.host})
	gen := xdpProgram(b, "xvs_gen", 3 /* XDP_TX */)
	frame := testFrame(v.hostMAC, v.peerMAC, 1, 64)

	var stop atomic.Bool
	genErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := v.inNS(func() error {
			ifi, err := netInterface(v.peer)
			if err != nil {
				return err
			}
			for !stop.Load() {
				_, err := gen.Run(&ebpf.RunOptions{
					Data:    frame,
					Context: xdpMD{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ifi)},
					Repeat:  1 << 18, // fewer per run and the per-run setup limits the rate
					Flags:   unix.BPF_F_TEST_XDP_LIVE_FRAMES,
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
		genErr <- err
	}()
	defer func() { stop.Store(true); wg.Wait() }()

	batch := testutil.RxBatch(b, ring.DefaultArenaConfig)
	// Wait for the generator to run.
	for deadline := time.Now().Add(2 * time.Second); ; {
		if n, _ := p.Receive(batch); n > 0 {
			break
		}
		select {
		case err := <-genErr:
			b.Skipf("live-frame generator: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			b.Skip("live-frame generator sends nothing")
		}
	}
	before := p.Stats()
	// Allocations here include the generator's (cilium/ebpf allocates per
	// Run); TestNoAllocs checks Receive alone.
	b.ReportAllocs()
	var frames, stalls uint64
	last := time.Now()
	for b.Loop() {
		for got := 0; got < ring.BatchSize; {
			n, err := p.Receive(batch)
			now := time.Now()
			if now.Sub(last) > time.Millisecond {
				stalls++ // the receiver did not run for a while
			}
			last = now
			if err != nil {
				b.Fatal(err)
			}
			got += n
			frames += uint64(n)
		}
	}
	b.ReportMetric(float64(frames)/b.Elapsed().Seconds()/1e6, "Mpps")
	after := p.Stats()
	lost := after.Drops["rx-dropped"] + after.Drops["rx-ring-full"] - before.Drops["rx-dropped"] - before.Drops["rx-ring-full"]
	b.ReportMetric(float64(lost)/float64(frames+lost), "kernel-drop-ratio")
	b.ReportMetric(float64(stalls), "stalls>1ms")
}
