//go:build linux

package vhostuser

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/xvswitch/xvs/internal/testutil"
	"github.com/xvswitch/xvs/ring"
)

// testEventfd is a non-blocking eventfd for the Call side of a queue.
type testEventfd struct {
	t  testing.TB
	fd int
}

func newEventfd(t testing.TB) *testEventfd {
	t.Helper()
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatalf("eventfd: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &testEventfd{t: t, fd: fd}
}

// read returns the counter and resets it: the number of signals since the
// last read.
func (e *testEventfd) read() uint64 {
	var b [8]byte
	n, err := unix.Read(e.fd, b[:])
	if err == unix.EAGAIN {
		return 0
	}
	if err != nil || n != 8 {
		e.t.Fatalf("read eventfd: %d, %v", n, err)
	}
	return binary.NativeEndian.Uint64(b[:])
}

// TestVirtqInterrupts checks the Call eventfd: once per batch, and only
// when the guest wants it.
func TestVirtqInterrupts(t *testing.T) {
	call := newEventfd(t)
	for _, tc := range []struct {
		name      string
		eventIdx  bool
		noIntr    bool
		usedEvent uint16 // with eventIdx
		want      uint64
	}{
		{"flags: interrupt", false, false, 0, 1},
		{"flags: NO_INTERRUPT", false, true, 0, 0},
		{"event idx: crossed", true, false, 3, 1},    // used 0 -> 10 passes 3
		{"event idx: last entry", true, false, 9, 1}, // used 0 -> 10 passes 9
		{"event idx: not yet", true, false, 10, 0},   // 10 not passed
		{"event idx: behind", true, false, 65000, 0}, // long passed before
		{"event idx: NO_INTERRUPT ignored", true, true, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, dir := range []string{"tx", "rx"} {
				g := newGuest(t, guestOpts{})
				cfg := g.config()
				cfg.EventIdx, cfg.Call = tc.eventIdx, call.fd
				q := g.queue(cfg)
				_, b := newTestBatch(t)
				if tc.noIntr {
					g.availFlags(virtqAvailFNoInterrupt)
				}
				g.usedEvent(tc.usedEvent)
				for i := range 10 {
					if dir == "tx" {
						g.putAvail(g.txChain(12, testFrame(64, byte(i)), nil, false))
					} else {
						h, _ := g.rxChain([]int{2048}, false)
						g.putAvail(h)
					}
				}
				g.publish()
				var n int
				var err error
				if dir == "tx" {
					n, err = q.Dequeue(b)
				} else {
					frames := make([][]byte, 10)
					for i := range frames {
						frames[i] = testFrame(64, byte(i))
					}
					testutil.Load(b, frames...)
					n, err = q.Enqueue(b)
				}
				if n != 10 || err != nil {
					t.Fatalf("%s: %d, %v", dir, n, err)
				}
				if got := call.read(); got != tc.want {
					t.Fatalf("%s: %d signals, want %d", dir, got, tc.want)
				}
				if st := q.Stats(); st.Interrupts != tc.want {
					t.Fatalf("%s: Interrupts %d, want %d", dir, st.Interrupts, tc.want)
				}
				// Nothing used: no signal. Nothing is left to dequeue, and
				// no receive buffer to enqueue into.
				if dir == "tx" {
					testutil.ResetRx(b)
					n, err = q.Dequeue(b)
				} else {
					testutil.Load(b, testFrame(64, 10))
					n, err = q.Enqueue(b)
				}
				if n != 0 || err != nil {
					t.Fatalf("%s with nothing available: %d, %v; want 0, nil", dir, n, err)
				}
				if got := call.read(); got != 0 {
					t.Fatalf("%s: %d signals for an empty call", dir, got)
				}
			}
		})
	}
}

// TestVirtqAllocs: a full batch through Dequeue and through Enqueue,
// signalling included, allocates nothing.
func TestVirtqAllocs(t *testing.T) {
	call := newEventfd(t)
	for _, mrg := range []bool{false, true} {
		g := newGuest(t, guestOpts{size: 256})
		cfg := g.config()
		cfg.Call, cfg.Mergeable, cfg.EventIdx = call.fd, mrg, mrg
		tx := g.queue(cfg)
		rx := struct {
			g *guest
			q *Queue
		}{g: newGuest(t, guestOpts{size: 256})}
		rcfg := rx.g.config()
		rcfg.Call, rcfg.Mergeable, rcfg.EventIdx = call.fd, mrg, mrg
		rx.q = rx.g.queue(rcfg)
		_, b := newTestBatch(t)
		var txHeads, rxHeads [ring.BatchSize]uint16
		for i := range txHeads {
			txHeads[i] = g.txChain(12, testFrame(64, byte(i)), []int{12}, false)
		}
		frames := make([][]byte, ring.BatchSize)
		for i := range rxHeads {
			rxHeads[i], _ = rx.g.rxChain([]int{2048}, false)
			frames[i] = testFrame(64, byte(i))
		}
		deq := func() {
			for _, h := range txHeads {
				g.putAvail(h)
			}
			g.publish()
			b.N = 0
			if n, err := tx.Dequeue(b); n != ring.BatchSize || err != nil {
				t.Fatalf("Dequeue: %d, %v", n, err)
			}
			g.usedSeen = g.avail
		}
		testutil.Load(b, frames...)
		enq := func() {
			for _, h := range rxHeads {
				rx.g.putAvail(h)
			}
			rx.g.publish()
			if n, err := rx.q.Enqueue(b); n != ring.BatchSize || err != nil {
				t.Fatalf("Enqueue: %d, %v", n, err)
			}
			rx.g.usedSeen = rx.g.avail
		}
		if a := testing.AllocsPerRun(100, enq); a != 0 {
			t.Errorf("mergeable=%v: Enqueue: %v allocations per batch", mrg, a)
		}
		testutil.ResetRx(b)
		if a := testing.AllocsPerRun(100, deq); a != 0 {
			t.Errorf("mergeable=%v: Dequeue: %v allocations per batch", mrg, a)
		}
		if tx.Stats().Interrupts == 0 || rx.q.Stats().Interrupts == 0 {
			t.Error("no interrupts: the signal path was not measured")
		}
	}
}

// TestVirtqConcurrent runs the guest and the device in two goroutines, as
// they are in two processes: every frame arrives, in order, intact. Run
// with -race, it checks that the ring indexes order the plain accesses.
func TestVirtqConcurrent(t *testing.T) {
	const total = 20000
	for _, evid := range []bool{false, true} {
		t.Run(fmt.Sprintf("tx/eventidx=%v", evid), func(t *testing.T) {
			g := newGuest(t, guestOpts{size: 64})
			cfg := g.config()
			cfg.EventIdx = evid
			q := g.queue(cfg)
			var wg sync.WaitGroup
			var quit atomic.Bool
			// If the device side fails, the guest would wait forever for
			// its chains; stop it before its memory goes (cleanups run
			// last first).
			t.Cleanup(func() {
				quit.Store(true)
				wg.Wait()
			})
			wg.Add(1)
			go func() { // the guest
				defer wg.Done()
				inflight := 0
				for sent := 0; sent < total && !quit.Load(); {
					inflight -= len(g.reap())
					k := 0
					for ; inflight < int(g.size)/2 && sent < total && k < 20; k++ { // two descriptors a chain
						g.putAvail(g.txChain(12, testFrame(60+sent%400, byte(sent)), []int{12}, false))
						inflight++
						sent++
					}
					if k > 0 {
						g.publish()
					}
				}
			}()
			_, b := newTestBatch(t)
			for got := 0; got < total; {
				testutil.ResetRx(b)
				n, err := q.Dequeue(b)
				if err != nil {
					t.Fatal(err)
				}
				for i := range n {
					if want := testFrame(60+got%400, byte(got)); !bytes.Equal(b.Data(i), want) {
						t.Fatalf("frame %d differs", got)
					}
					got++
				}
			}
			wg.Wait()
		})
		t.Run(fmt.Sprintf("rx/eventidx=%v", evid), func(t *testing.T) {
			g := newGuest(t, guestOpts{size: 64})
			cfg := g.config()
			cfg.EventIdx, cfg.Mergeable = evid, true
			q := g.queue(cfg)
			errc := make(chan error, 1)
			var wg sync.WaitGroup
			var quit atomic.Bool
			t.Cleanup(func() { // as in the tx case
				quit.Store(true)
				wg.Wait()
			})
			wg.Add(1)
			go func() { // the guest: buffers of 256 bytes, frames of up to 3
				defer wg.Done()
				var bufs [][2]uint64
				got := 0
				for got < total {
					if quit.Load() {
						return
					}
					for {
						if _, idx := g.usedHd.load(); idx == g.usedSeen {
							break
						}
						u, ok := waitUsed(g, &quit)
						if !ok {
							return
						}
						buf := bufs[0]
						bufs = bufs[1:]
						if u.len > 256 {
							errc <- fmt.Errorf("used len %d", u.len)
							return
						}
						hdr := g.ram[buf[0] : buf[0]+12]
						nb := int(binary.LittleEndian.Uint16(hdr[10:]))
						data := append([]byte(nil), g.ram[buf[0]+12:buf[0]+uint64(u.len)]...)
						for range nb - 1 {
							u2, ok := waitUsed(g, &quit)
							if !ok {
								return
							}
							b2 := bufs[0]
							bufs = bufs[1:]
							data = append(data, g.ram[b2[0]:b2[0]+uint64(u2.len)]...)
						}
						if want := testFrame(60+got%600, byte(got)); !bytes.Equal(data, want) {
							errc <- fmt.Errorf("frame %d differs (%d bytes, want %d)", got, len(data), len(want))
							return
						}
						got++
					}
					k := 0
					for ; len(bufs) < int(g.size) && k < 16; k++ {
						h, bb := g.rxChain([]int{256}, false)
						g.putAvail(h)
						bufs = append(bufs, bb...)
					}
					if k > 0 {
						g.publish()
					}
				}
				errc <- nil
			}()
			_, b := newTestBatch(t)
			for sent := 0; sent < total; {
				var frames [][]byte
				for i := 0; i < 8 && sent+i < total; i++ {
					frames = append(frames, testFrame(60+(sent+i)%600, byte(sent+i)))
				}
				testutil.Load(b, frames...)
				n, err := q.Enqueue(b)
				if err != nil {
					t.Fatal(err)
				}
				sent += n
				select {
				case err := <-errc:
					if err != nil {
						t.Fatalf("guest: %v", err)
					}
					errc <- nil // done; for the receive below
				default:
				}
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// waitUsed spins until the next used entry is published and consumes it,
// or until quit is set (ok false).
func waitUsed(g *guest, quit *atomic.Bool) (u usedElem, ok bool) {
	for !quit.Load() {
		_, idx := g.usedHd.load()
		if idx != g.usedSeen {
			off := g.usedOff + 4 + 8*uint64(g.usedSeen&(g.size-1))
			g.usedSeen++
			return usedElem{
				id:  binary.LittleEndian.Uint32(g.ram[off:]),
				len: binary.LittleEndian.Uint32(g.ram[off+4:]),
			}, true
		}
	}
	return usedElem{}, false
}
