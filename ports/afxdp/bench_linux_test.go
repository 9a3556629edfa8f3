package afxdp

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/xvswitch/xvs/ring"
)

// BenchmarkTransmit sends batches of 64-byte frames to the namespace side
// of a veth, where the stack drops them (unknown ethertype).
func BenchmarkTransmit(b *testing.B) {
	needRoot(b)
	v := newVethPair(b, pairOpt{})
	p := openPort(b, Config{Dev: v.host})
	_, batch := newBatch(b)
	frames := make([][]byte, ring.BatchSize)
	for i := range frames {
		frames[i] = testFrame(v.peerMAC, v.hostMAC, uint64(i), 64)
	}
	fillBatch(batch, frames)
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
	gen, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "xvs_gen",
		Type:         ebpf.XDP,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 3 /* XDP_TX */), asm.Return()},
	})
	if err != nil {
		b.Skipf("load generator: %v", err)
	}
	defer gen.Close()
	frame := testFrame(v.hostMAC, v.peerMAC, 1, 64)

	var stop atomic.Bool
	var genErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		v.withNS(b, func() {
			ifi, err := netInterface(v.peer)
			if err != nil {
				genErr = err
				return
			}
			for !stop.Load() {
				_, err := gen.Run(&ebpf.RunOptions{
					Data:    frame,
					Context: xdpMD{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ifi)},
					Repeat:  1 << 16,
					Flags:   unix.BPF_F_TEST_XDP_LIVE_FRAMES,
				})
				if err != nil {
					genErr = err
					return
				}
			}
		})
	}()
	defer func() { stop.Store(true); wg.Wait() }()

	_, batch := newBatch(b)
	// Wait for the generator to run.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && genErr == nil {
		if n, _ := p.Receive(batch); n > 0 {
			break
		}
	}
	if genErr != nil {
		b.Skipf("live-frame generator: %v", genErr)
	}
	before := p.Stats()
	b.ReportAllocs()
	var frames, calls, empty uint64
	for b.Loop() {
		for got := 0; got < ring.BatchSize; {
			n, err := p.Receive(batch)
			calls++
			if n == 0 {
				empty++
			}
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
	b.ReportMetric(float64(empty)/float64(calls), "empty-ratio")
}
