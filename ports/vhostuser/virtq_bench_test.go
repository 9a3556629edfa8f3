//go:build linux

package vhostuser

import (
	"testing"

	"github.com/xvswitch/xvs/internal/testutil"
	"github.com/xvswitch/xvs/ring"
)

// The benchmarks move batches of 64-byte frames through one queue. The
// guest side of each iteration only re-posts the same chains (64 avail
// entries and one index store), so the time is the device's. Each
// iteration is one full batch; ns/frame and Mpps are per frame.

func reportFrames(b *testing.B) {
	frames := float64(b.N) * ring.BatchSize
	b.ReportMetric(b.Elapsed().Seconds()*1e9/frames, "ns/frame")
	b.ReportMetric(frames/b.Elapsed().Seconds()/1e6, "Mpps")
}

// benchInterrupt is how a sub-benchmark asks for interrupts: not at all
// (a NAPI guest that is busy), or once per batch through an eventfd.
var benchInterrupt = []struct {
	name string
	intr bool
}{{"no-interrupt", false}, {"interrupt", true}}

func BenchmarkDequeue(b *testing.B) {
	for _, layout := range []struct {
		name     string
		pieces   []int
		indirect bool
	}{
		{"one-descriptor", nil, false},
		{"header-apart", []int{12}, false},
		{"indirect", []int{12}, true},
	} {
		for _, in := range benchInterrupt {
			b.Run(layout.name+"/"+in.name, func(b *testing.B) {
				g := newGuest(b, guestOpts{size: 256})
				cfg := g.config()
				cfg.EventIdx = true
				if in.intr {
					cfg.Call = newEventfd(b).fd
				} else {
					g.usedEvent(0x8000) // far behind: no interrupt
				}
				q := g.queue(cfg)
				_, bt := newTestBatch(b)
				var heads [ring.BatchSize]uint16
				for i := range heads {
					heads[i] = g.txChain(12, testFrame(64, byte(i)), layout.pieces, layout.indirect)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					for _, h := range heads {
						g.putAvail(h)
					}
					g.publish()
					if in.intr {
						g.usedEvent(g.usedSeen) // interrupt me at the next entry
					}
					bt.N = 0
					if n, err := q.Dequeue(bt); n != ring.BatchSize || err != nil {
						b.Fatalf("Dequeue: %d, %v", n, err)
					}
					g.usedSeen = g.avail
				}
				reportFrames(b)
			})
		}
	}
}

func BenchmarkEnqueue(b *testing.B) {
	for _, mode := range []struct {
		name      string
		mergeable bool
		lens      []int
	}{
		{"mergeable", true, []int{2048}},
		{"one-buffer", false, []int{2048}},
		{"header-apart", false, []int{12, 2048}},
	} {
		for _, in := range benchInterrupt {
			b.Run(mode.name+"/"+in.name, func(b *testing.B) {
				g := newGuest(b, guestOpts{size: 256})
				cfg := g.config()
				cfg.EventIdx, cfg.Mergeable = true, mode.mergeable
				if in.intr {
					cfg.Call = newEventfd(b).fd
				} else {
					g.usedEvent(0x8000)
				}
				q := g.queue(cfg)
				_, bt := newTestBatch(b)
				var heads [ring.BatchSize]uint16
				frames := make([][]byte, ring.BatchSize)
				for i := range heads {
					heads[i], _ = g.rxChain(mode.lens, false)
					frames[i] = testFrame(64, byte(i))
				}
				testutil.Load(bt, frames...)
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					for _, h := range heads {
						g.putAvail(h)
					}
					g.publish()
					if in.intr {
						g.usedEvent(g.usedSeen)
					}
					if n, err := q.Enqueue(bt); n != ring.BatchSize || err != nil {
						b.Fatalf("Enqueue: %d, %v", n, err)
					}
					g.usedSeen = g.avail
				}
				reportFrames(b)
			})
		}
	}
}
