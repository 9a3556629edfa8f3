package vhostuser

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/xvswitch/xvs/internal/testutil"
	"github.com/xvswitch/xvs/ring"
)

func TestQueueConfigErrors(t *testing.T) {
	g := newGuest(t, guestOpts{})
	for _, tc := range []struct {
		name string
		mod  func(*QueueConfig)
		want string
	}{
		{"size 0", func(c *QueueConfig) { c.Size = 0 }, "size 0"},
		{"size not a power of two", func(c *QueueConfig) { c.Size = 100 }, "size 100"},
		{"size too big", func(c *QueueConfig) { c.Size = 65535 }, "size 65535"},
		{"header 11", func(c *QueueConfig) { c.HdrLen = 11 }, "header length 11"},
		{"mergeable with legacy header", func(c *QueueConfig) { c.HdrLen, c.Mergeable = 10, true }, "mergeable"},
		{"call fd", func(c *QueueConfig) { c.Call = -2 }, "call fd -2"},
		{"desc alignment", func(c *QueueConfig) { c.Desc += 8 }, "descriptor table address"},
		{"avail alignment", func(c *QueueConfig) { c.Avail++ }, "avail ring address"},
		{"used alignment", func(c *QueueConfig) { c.Used += 2 }, "used ring address"},
		{"desc outside", func(c *QueueConfig) { c.Desc = 0x1000 }, "descriptor table"},
		{"avail outside", func(c *QueueConfig) { c.Avail = guestUVA1 + guestHalf - 4 }, "avail ring"},
		{"used outside", func(c *QueueConfig) { c.Used = guestUVA0 + guestHalf - 16 }, "used ring"},
		// 256*16 bytes from 64 bytes before the end of region 1.
		{"desc across the region end", func(c *QueueConfig) { c.Desc = guestUVA1 + guestHalf - 64 }, "descriptor table"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := g.config()
			tc.mod(&cfg)
			q, err := NewQueue(g.mem, cfg)
			if err == nil || q != nil {
				t.Fatalf("NewQueue: got %v, want an error", err)
			}
			if !errors.Is(err, ErrBadQueueConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q: want ErrBadQueueConfig mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := NewQueue(nil, g.config()); !errors.Is(err, ErrBadQueueConfig) {
		t.Fatalf("nil memory: %v", err)
	}
}

func TestQueueSetFeatures(t *testing.T) {
	// Golden bit numbers from the virtio 1.x specification.
	for _, tc := range []struct {
		mask uint64
		bit  int
	}{
		{virtioNetFMTU, 3}, {virtioNetFMAC, 5}, {virtioNetFMrgRxbuf, 15}, {virtioNetFStatus, 16},
		{virtioNetFCtrlVQ, 17}, {virtioNetFMQ, 22}, {virtioFAnyLayout, 27}, {virtioRingFIndirectDesc, 28},
		{virtioRingFEventIdx, 29}, {virtioFVersion1, 32},
	} {
		if tc.mask != 1<<tc.bit {
			t.Errorf("feature %#x: want bit %d", tc.mask, tc.bit)
		}
	}
	for _, tc := range []struct {
		features  uint64
		hdr       int
		mrg, evid bool
	}{
		{0, 10, false, false},
		{virtioFVersion1, 12, false, false},
		{virtioNetFMrgRxbuf, 12, true, false},
		{virtioQueueFeatures, 12, true, true},
		{virtioRingFEventIdx, 10, false, true},
	} {
		var c QueueConfig
		c.setFeatures(tc.features)
		if c.HdrLen != tc.hdr || c.Mergeable != tc.mrg || c.EventIdx != tc.evid {
			t.Errorf("features %#x: got %+v", tc.features, c)
		}
	}
}

// TestVirtqTxLayouts sends frames whose header and bytes are spread over
// descriptors in every way a driver may: header alone, header split,
// header with data, many pieces, both regions, indirect tables.
func TestVirtqTxLayouts(t *testing.T) {
	for _, hdrLen := range []int{10, 12} {
		for _, indirect := range []bool{false, true} {
			for _, pieces := range [][]int{
				nil,             // one descriptor
				{hdrLen},        // header alone, then the frame
				{hdrLen, 20},    // header, 20 bytes, the rest
				{4},             // header split over two descriptors
				{3, 3, 3, 3, 3}, // header and frame in small pieces
				{hdrLen + 14},   // header and Ethernet header together
				{hdrLen, 0, 30}, // a zero-length descriptor
			} {
				t.Run(fmt.Sprintf("hdr%d/indirect=%v/%v", hdrLen, indirect, pieces), func(t *testing.T) {
					g := newGuest(t, guestOpts{})
					cfg := g.config()
					cfg.HdrLen = hdrLen
					q := g.queue(cfg)
					_, b := newTestBatch(t)
					var want [][]byte
					var heads []uint16
					for i, n := range []int{60, 1514, 64, 300} {
						f := testFrame(n, byte(i))
						want = append(want, f)
						heads = append(heads, g.txChain(hdrLen, f, pieces, indirect))
					}
					g.post(heads...)
					if !q.Pending() {
						t.Fatal("Pending false with chains posted")
					}
					n, err := q.Dequeue(b)
					if err != nil || n != len(want) {
						t.Fatalf("Dequeue: %d, %v", n, err)
					}
					checkTestFrames(t, b, want)
					used := g.reap()
					if len(used) != len(heads) {
						t.Fatalf("%d used entries, want %d", len(used), len(heads))
					}
					for i, u := range used {
						if u.id != uint32(heads[i]) || u.len != 0 {
							t.Fatalf("used %d: %+v, want id %d len 0", i, u, heads[i])
						}
					}
					if q.LastAvail() != uint16(len(heads)) || q.Pending() {
						t.Fatalf("LastAvail %d Pending %v", q.LastAvail(), q.Pending())
					}
					st := q.Stats()
					if st.Frames != 4 || st.Bytes != 60+1514+64+300 {
						t.Fatalf("stats %+v", st)
					}
				})
			}
		}
	}
}

// TestVirtqTxBatchLimit: Dequeue stops at a full batch and appends after
// b.N.
func TestVirtqTxBatchLimit(t *testing.T) {
	g := newGuest(t, guestOpts{})
	q := g.queue(g.config())
	_, b := newTestBatch(t)
	for i := range 100 {
		g.putAvail(g.txChain(12, testFrame(64, byte(i)), nil, false))
	}
	g.publish()
	b.N = 10 // ten frames already in the batch
	n, err := q.Dequeue(b)
	if err != nil || n != ring.BatchSize-10 || b.N != ring.BatchSize {
		t.Fatalf("Dequeue: %d, %v, b.N %d", n, err, b.N)
	}
	if got := b.Data(10); !bytes.Equal(got, testFrame(64, 0)) {
		t.Fatalf("frame 10: % x", prefix16(got))
	}
	if n, _ := q.Dequeue(b); n != 0 {
		t.Fatalf("Dequeue into a full batch: %d", n)
	}
	testutil.ResetRx(b)
	n, err = q.Dequeue(b)
	if err != nil || n != 100-(ring.BatchSize-10) {
		t.Fatalf("second Dequeue: %d, %v", n, err)
	}
	if got := b.Data(0); !bytes.Equal(got, testFrame(64, byte(ring.BatchSize-10))) {
		t.Fatalf("second batch, frame 0: % x", prefix16(got))
	}
	if len(g.reap()) != 100 {
		t.Fatal("not every chain used")
	}
}

func TestVirtqTxDrops(t *testing.T) {
	g := newGuest(t, guestOpts{})
	q := g.queue(g.config())
	_, b := newTestBatch(t)
	room := len(b.Room(0))
	good := testFrame(100, 1)
	g.post(
		g.txChain(12, testFrame(room+1, 0), []int{12, 1000}, false), // too big
		g.txChain(12, good, nil, false),
		g.chainOf([][2]uint64{{g.alloc(8), 8}}, 0, false), // shorter than the header
		g.txChain(12, testFrame(room, 2), nil, false),     // exactly fits
	)
	n, err := q.Dequeue(b)
	if err != nil || n != 2 {
		t.Fatalf("Dequeue: %d, %v", n, err)
	}
	checkTestFrames(t, b, [][]byte{good, testFrame(room, 2)})
	if st := q.Stats(); st.TooBig != 1 || st.Malformed != 1 || st.Frames != 2 {
		t.Fatalf("stats %+v", st)
	}
	if len(g.reap()) != 4 {
		t.Fatal("dropped chains not used")
	}
}

// TestVirtqWrap runs the 16-bit indexes across 65535 -> 0 several times,
// and the ring slots around their end.
func TestVirtqWrap(t *testing.T) {
	for _, evid := range []bool{false, true} {
		t.Run(fmt.Sprintf("eventidx=%v", evid), func(t *testing.T) {
			g := newGuest(t, guestOpts{size: 128}) // chains of two descriptors
			g.setBase(65500)
			cfg := g.config()
			cfg.Base, cfg.EventIdx = 65500, evid
			q := g.queue(cfg)
			_, b := newTestBatch(t)
			seq := 0
			for round := range 5 {
				var want [][]byte
				for range 40 + round {
					f := testFrame(60+seq%50, byte(seq))
					seq++
					want = append(want, f)
					g.putAvail(g.txChain(12, f, []int{12}, false))
				}
				g.publish()
				testutil.ResetRx(b)
				n, err := q.Dequeue(b)
				if err != nil || n != len(want) {
					t.Fatalf("round %d: Dequeue %d, %v", round, n, err)
				}
				checkTestFrames(t, b, want)
				if u := g.reap(); len(u) != len(want) {
					t.Fatalf("round %d: %d used", round, len(u))
				}
				if q.LastAvail() != g.avail {
					t.Fatalf("LastAvail %d, guest avail %d", q.LastAvail(), g.avail)
				}
			}
			if g.avail > 1000 {
				t.Fatalf("index did not wrap: %d", g.avail)
			}
		})
	}
}

// TestVirtqResync: a used->idx other than Base wins (a back-end restart).
func TestVirtqResync(t *testing.T) {
	g := newGuest(t, guestOpts{})
	g.setBase(7)
	cfg := g.config()
	cfg.Base = 3
	q := g.queue(cfg)
	if q.LastAvail() != 7 {
		t.Fatalf("LastAvail %d, want used->idx 7", q.LastAvail())
	}
	cfg.Base = 7
	if q := g.queue(cfg); q.LastAvail() != 7 {
		t.Fatalf("LastAvail %d, want 7", q.LastAvail())
	}
}

// TestVirtqAvailMisaligned: an avail ring at 2 mod 4 (allowed by the
// specification) is read through the neighbouring word.
func TestVirtqAvailMisaligned(t *testing.T) {
	for _, evid := range []bool{false, true} {
		g := newGuest(t, guestOpts{availMis: true})
		cfg := g.config()
		cfg.EventIdx = evid
		q := g.queue(cfg)
		_, b := newTestBatch(t)
		f := testFrame(80, 3)
		g.post(g.txChain(12, f, nil, false))
		if n, err := q.Dequeue(b); n != 1 || err != nil {
			t.Fatalf("Dequeue: %d, %v", n, err)
		}
		checkTestFrames(t, b, [][]byte{f})
	}
}

func TestVirtqRxNonMergeable(t *testing.T) {
	for _, hdrLen := range []int{10, 12} {
		for _, tc := range []struct {
			name     string
			lens     []int
			indirect bool
		}{
			{"one buffer", []int{2048}, false},
			{"header buffer", []int{hdrLen, 2048}, false},
			{"header split", []int{5, 7, 2048}, false},
			{"pages", []int{100, 100, 4096}, false},
			{"indirect", []int{hdrLen, 1000, 1000}, true},
		} {
			t.Run(fmt.Sprintf("hdr%d/%s", hdrLen, tc.name), func(t *testing.T) {
				g := newGuest(t, guestOpts{})
				cfg := g.config()
				cfg.HdrLen = hdrLen
				q := g.queue(cfg)
				_, b := newTestBatch(t)
				frames := [][]byte{testFrame(60, 1), testFrame(1514, 2), testFrame(14, 3)}
				var bufs [][][2]uint64
				for range frames {
					h, bb := g.rxChain(tc.lens, tc.indirect)
					g.putAvail(h)
					bufs = append(bufs, bb)
				}
				g.publish()
				testutil.Load(b, frames...)
				n, err := q.Enqueue(b)
				if err != nil || n != len(frames) {
					t.Fatalf("Enqueue: %d, %v", n, err)
				}
				used := g.reap()
				if len(used) != len(frames) {
					t.Fatalf("%d used, want %d", len(used), len(frames))
				}
				for i, f := range frames {
					if int(used[i].len) != hdrLen+len(f) {
						t.Fatalf("frame %d: used len %d, want %d", i, used[i].len, hdrLen+len(f))
					}
					got := g.readChain(bufs[i], int(used[i].len))
					wantHdr := make([]byte, hdrLen)
					if hdrLen == 12 {
						wantHdr[10] = 1 // num_buffers is 1 without mergeable buffers
					}
					if !bytes.Equal(got[:hdrLen], wantHdr) {
						t.Fatalf("frame %d: header % x", i, got[:hdrLen])
					}
					if !bytes.Equal(got[hdrLen:], f) {
						t.Fatalf("frame %d: bytes differ", i)
					}
				}
				if st := q.Stats(); st.Frames != 3 || st.Bytes != 60+1514+14 || st.NoBuffers != 0 {
					t.Fatalf("stats %+v", st)
				}
				// No kicks wanted on a receive queue.
				if g.usedFlags()&virtqUsedFNoNotify == 0 {
					t.Fatal("NO_NOTIFY not set on the receive queue")
				}
			})
		}
	}
}

// TestVirtqRxTooSmall: without mergeable buffers a frame that does not fit
// the chain is dropped and the chain serves the next frame.
func TestVirtqRxTooSmall(t *testing.T) {
	g := newGuest(t, guestOpts{})
	q := g.queue(g.config())
	_, b := newTestBatch(t)
	h, bufs := g.rxChain([]int{12, 500}, false)
	g.post(h)
	small := testFrame(400, 9)
	testutil.Load(b, testFrame(1000, 8), small, testFrame(100, 7))
	n, err := q.Enqueue(b)
	if err != nil || n != 2 {
		t.Fatalf("Enqueue: %d, %v (want the big frame dropped, the small one delivered, the third without buffer)", n, err)
	}
	used := g.reap()
	if len(used) != 1 || used[0].id != uint32(h) || used[0].len != 412 {
		t.Fatalf("used %+v", used)
	}
	if got := g.readChain(bufs, 412); !bytes.Equal(got[12:], small) {
		t.Fatal("small frame bytes differ")
	}
	if st := q.Stats(); st.TooBig != 1 || st.Frames != 1 || st.NoBuffers != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestVirtqRxMergeable(t *testing.T) {
	for _, bufLen := range []int{256, 5, 12, 1526, 4096} {
		t.Run(fmt.Sprint(bufLen), func(t *testing.T) {
			g := newGuest(t, guestOpts{})
			cfg := g.config()
			cfg.Mergeable = true
			q := g.queue(cfg)
			_, b := newTestBatch(t)
			var bufs [][2]uint64
			for range 250 {
				h, bb := g.rxChain([]int{bufLen}, false)
				g.putAvail(h)
				bufs = append(bufs, bb...)
			}
			g.publish()
			frames := [][]byte{testFrame(1000, 1), testFrame(60, 2), testFrame(1514, 3)}
			if bufLen == 5 {
				frames = frames[:2] // 1000 bytes in 5-byte buffers takes 203 of them
			}
			testutil.Load(b, frames...)
			n, err := q.Enqueue(b)
			if err != nil || n != len(frames) {
				t.Fatalf("Enqueue: %d, %v", n, err)
			}
			used := g.reap()
			k := 0
			for i, f := range frames {
				need := 12 + len(f)
				nb := (need + bufLen - 1) / bufLen
				if k+nb > len(used) {
					t.Fatalf("frame %d: %d used entries, want %d more", i, len(used)-k, nb)
				}
				var got []byte
				for j := range nb {
					u := used[k+j]
					want := min(bufLen, need-j*bufLen)
					if int(u.len) != want {
						t.Fatalf("frame %d buffer %d: len %d, want %d", i, j, u.len, want)
					}
					got = append(got, g.readChain(bufs[k+j:k+j+1], want)...)
				}
				k += nb
				if numBuf := binary.LittleEndian.Uint16(got[10:]); int(numBuf) != nb {
					t.Fatalf("frame %d: num_buffers %d, want %d", i, numBuf, nb)
				}
				if !bytes.Equal(got[:10], make([]byte, 10)) || !bytes.Equal(got[12:], f) {
					t.Fatalf("frame %d: bytes differ", i)
				}
			}
			if k != len(used) {
				t.Fatalf("%d used entries, want %d", len(used), k)
			}
		})
	}
}

// TestVirtqRxNoBuffers: a frame that needs more buffers than available
// takes none; the rest of the batch is not accepted.
func TestVirtqRxNoBuffers(t *testing.T) {
	g := newGuest(t, guestOpts{})
	cfg := g.config()
	cfg.Mergeable = true
	q := g.queue(cfg)
	_, b := newTestBatch(t)
	for range 3 {
		h, _ := g.rxChain([]int{512}, false)
		g.putAvail(h)
	}
	g.publish()
	testutil.Load(b, testFrame(400, 1), testFrame(1500, 2), testFrame(60, 3))
	n, err := q.Enqueue(b)
	if err != nil || n != 1 {
		t.Fatalf("Enqueue: %d, %v", n, err)
	}
	if q.LastAvail() != 1 || len(g.reap()) != 1 {
		t.Fatalf("LastAvail %d: the second frame's buffers must be given back", q.LastAvail())
	}
	if st := q.Stats(); st.NoBuffers != 2 || st.Frames != 1 {
		t.Fatalf("stats %+v", st)
	}
	// With more buffers, the rest goes through.
	for range 3 {
		h, _ := g.rxChain([]int{512}, false)
		g.putAvail(h)
	}
	g.publish()
	testutil.Load(b, testFrame(1500, 2), testFrame(60, 3))
	if n, err := q.Enqueue(b); err != nil || n != 2 {
		t.Fatalf("Enqueue: %d, %v", n, err)
	}
	if u := g.reap(); len(u) != 4 {
		t.Fatalf("%d used, want 3+1", len(u))
	}
	// The last buffer, then nothing available at all.
	testutil.Load(b, testFrame(60, 4))
	if n, err := q.Enqueue(b); err != nil || n != 1 {
		t.Fatalf("Enqueue into the last buffer: %d, %v", n, err)
	}
	if n, err := q.Enqueue(b); err != nil || n != 0 {
		t.Fatalf("Enqueue without buffers: %d, %v", n, err)
	}
}

// TestVirtqNotify checks the kick suppression of a transmit queue: off
// while busy, on again (and rechecked) when Dequeue finds nothing.
func TestVirtqNotify(t *testing.T) {
	t.Run("flags", func(t *testing.T) {
		g := newGuest(t, guestOpts{})
		q := g.queue(g.config())
		_, b := newTestBatch(t)
		g.post(g.txChain(12, testFrame(64, 0), nil, false))
		q.Dequeue(b)
		if g.usedFlags()&virtqUsedFNoNotify == 0 {
			t.Fatal("busy queue: NO_NOTIFY not set")
		}
		testutil.ResetRx(b)
		if n, _ := q.Dequeue(b); n != 0 {
			t.Fatal("frames from nowhere")
		}
		if g.usedFlags()&virtqUsedFNoNotify != 0 {
			t.Fatal("idle queue: NO_NOTIFY still set")
		}
	})
	t.Run("event idx", func(t *testing.T) {
		g := newGuest(t, guestOpts{})
		cfg := g.config()
		cfg.EventIdx = true
		q := g.queue(cfg)
		_, b := newTestBatch(t)
		if n, _ := q.Dequeue(b); n != 0 || g.availEvent() != 0 {
			t.Fatalf("avail_event %d, want 0", g.availEvent())
		}
		for i := range 5 {
			g.putAvail(g.txChain(12, testFrame(64, byte(i)), nil, false))
		}
		g.publish()
		if n, _ := q.Dequeue(b); n != 5 || g.availEvent() != 0 {
			t.Fatalf("busy: avail_event %d, want left at 0", g.availEvent())
		}
		testutil.ResetRx(b)
		q.Dequeue(b)
		if g.availEvent() != 5 {
			t.Fatalf("idle: avail_event %d, want 5", g.availEvent())
		}
	})
}

// TestVirtqFaults feeds every kind of invalid ring the guest can make and
// checks that the queue stops with the right fault, without panicking.
func TestVirtqFaults(t *testing.T) {
	type env struct {
		g *guest
		b *ring.Batch
	}
	// A valid frame comes first; it must be delivered before the fault.
	for _, tc := range []struct {
		name  string
		rx    bool
		fault Fault
		bad   func(e env) uint16 // posts nothing, returns the bad head
	}{
		{"head out of range", false, FaultBadIndex, func(e env) uint16 { return 256 }},
		{"next out of range", false, FaultBadIndex, func(e env) uint16 {
			d := e.g.desc()
			e.g.putDesc(e.g.descOff, d, gpaOf(e.g.alloc(100)), 100, virtqDescFNext, 300)
			return d
		}},
		{"self loop", false, FaultLoop, func(e env) uint16 {
			d := e.g.desc()
			e.g.putDesc(e.g.descOff, d, gpaOf(e.g.alloc(100)), 100, virtqDescFNext, d)
			return d
		}},
		{"two-descriptor loop", true, FaultLoop, func(e env) uint16 {
			d1, d2 := e.g.desc(), e.g.desc()
			e.g.putDesc(e.g.descOff, d1, gpaOf(e.g.alloc(4)), 4, virtqDescFNext|virtqDescFWrite, d2)
			e.g.putDesc(e.g.descOff, d2, gpaOf(e.g.alloc(4)), 4, virtqDescFNext|virtqDescFWrite, d1)
			return d1
		}},
		{"zero-length loop", false, FaultLoop, func(e env) uint16 {
			d := e.g.desc()
			e.g.putDesc(e.g.descOff, d, 0, 0, virtqDescFNext, d)
			return d
		}},
		{"address outside memory", false, FaultOutOfMemory, func(e env) uint16 {
			return e.g.chainOfRaw([][3]uint64{{guestRAM + 4096, 100, 0}})
		}},
		{"address wraps", true, FaultOutOfMemory, func(e env) uint16 {
			return e.g.chainOfRaw([][3]uint64{{^uint64(0) - 10, 100, virtqDescFWrite}})
		}},
		{"buffer across two regions", false, FaultOutOfMemory, func(e env) uint16 {
			return e.g.chainOfRaw([][3]uint64{{guestGPA1 - 50, 100, 0}})
		}},
		{"buffer past the end", true, FaultOutOfMemory, func(e env) uint16 {
			return e.g.chainOfRaw([][3]uint64{{guestGPA1 + guestHalf - 50, 100, virtqDescFWrite}})
		}},
		{"writable buffer to transmit", false, FaultWriteFlag, func(e env) uint16 {
			return e.g.chainOfRaw([][3]uint64{{gpaOf(e.g.alloc(12)), 12, 0}, {gpaOf(e.g.alloc(100)), 100, virtqDescFWrite}})
		}},
		{"readable buffer to receive into", true, FaultWriteFlag, func(e env) uint16 {
			return e.g.chainOfRaw([][3]uint64{{gpaOf(e.g.alloc(2000)), 2000, 0}})
		}},
		{"transmit chain too long", false, FaultTooLong, func(e env) uint16 {
			return e.g.chainOfRaw([][3]uint64{{gpaOf(e.g.alloc(40000)), 40000, 0}, {gpaOf(e.g.alloc(40000)), 40000, 0}})
		}},
		{"too many descriptors", false, FaultTooLong, func(e env) uint16 {
			// an indirect table of 1100 one-byte buffers
			tab := e.g.indirect
			buf := gpaOf(e.g.alloc(1))
			for i := range 1100 {
				e.g.putDesc(tab, uint16(i), buf, 1, virtqDescFNext, uint16(i+1))
			}
			d := e.g.desc()
			e.g.putDesc(e.g.descOff, d, gpaOf(tab), 1100*16, virtqDescFIndirect, 0)
			return d
		}},
		{"nested indirect", false, FaultBadIndirect, func(e env) uint16 {
			tab := e.g.indirect
			e.g.putDesc(tab, 0, gpaOf(tab), 16, virtqDescFIndirect, 0)
			d := e.g.desc()
			e.g.putDesc(e.g.descOff, d, gpaOf(tab), 16, virtqDescFIndirect, 0)
			return d
		}},
		{"indirect with next", true, FaultBadIndirect, func(e env) uint16 {
			d := e.g.desc()
			e.g.putDesc(e.g.descOff, d, gpaOf(e.g.indirect), 16, virtqDescFIndirect|virtqDescFNext, d)
			return d
		}},
		{"indirect length", false, FaultBadIndirect, func(e env) uint16 {
			d := e.g.desc()
			e.g.putDesc(e.g.descOff, d, gpaOf(e.g.indirect), 24, virtqDescFIndirect, 0)
			return d
		}},
		{"indirect empty", true, FaultBadIndirect, func(e env) uint16 {
			d := e.g.desc()
			e.g.putDesc(e.g.descOff, d, gpaOf(e.g.indirect), 0, virtqDescFIndirect, 0)
			return d
		}},
		{"indirect table outside memory", false, FaultOutOfMemory, func(e env) uint16 {
			d := e.g.desc()
			e.g.putDesc(e.g.descOff, d, guestRAM-32, 64, virtqDescFIndirect, 0)
			return d
		}},
		{"loop in an indirect table", true, FaultLoop, func(e env) uint16 {
			tab := e.g.indirect
			e.g.putDesc(tab, 0, gpaOf(e.g.alloc(4)), 4, virtqDescFWrite|virtqDescFNext, 1)
			e.g.putDesc(tab, 1, gpaOf(e.g.alloc(4)), 4, virtqDescFWrite|virtqDescFNext, 0)
			d := e.g.desc()
			e.g.putDesc(e.g.descOff, d, gpaOf(tab), 32, virtqDescFIndirect, 0)
			return d
		}},
		{"next out of an indirect table", false, FaultBadIndex, func(e env) uint16 {
			tab := e.g.indirect
			e.g.putDesc(tab, 0, gpaOf(e.g.alloc(100)), 100, virtqDescFNext, 2)
			e.g.putDesc(tab, 1, gpaOf(e.g.alloc(100)), 100, 0, 0)
			d := e.g.desc()
			e.g.putDesc(e.g.descOff, d, gpaOf(tab), 32, virtqDescFIndirect, 0)
			return d
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGuest(t, guestOpts{})
			cfg := g.config()
			cfg.Mergeable = true
			q := g.queue(cfg)
			_, b := newTestBatch(t)
			e := env{g, b}
			good := testFrame(100, 1)
			var n int
			var err error
			if tc.rx {
				h, _ := g.rxChain([]int{2048}, false)
				g.post(h, tc.bad(e))
				testutil.Load(b, good, testFrame(1500, 2))
				n, err = q.Enqueue(b)
			} else {
				g.post(g.txChain(12, good, nil, false), tc.bad(e))
				n, err = q.Dequeue(b)
			}
			if n != 1 || err == nil {
				t.Fatalf("got %d, %v: want the good frame and an error", n, err)
			}
			checkStopped(t, q, err, tc.fault)
			if !tc.rx {
				checkTestFrames(t, b, [][]byte{good})
			}
			if u := g.reap(); len(u) != 1 {
				t.Fatalf("%d used entries, want only the good chain's", len(u))
			}
			if q.LastAvail() != 1 {
				t.Fatalf("LastAvail %d, want 1 (the bad chain)", q.LastAvail())
			}
		})
	}
}

// TestVirtqAvailJump: avail->idx more than the queue size ahead stops the
// queue before anything is read.
func TestVirtqAvailJump(t *testing.T) {
	for _, rx := range []bool{false, true} {
		g := newGuest(t, guestOpts{size: 16})
		g.setBase(65530)
		cfg := g.config()
		cfg.Base = 65530
		q := g.queue(cfg)
		_, b := newTestBatch(t)
		g.avail = 65530 - 65536 + 17 // 17 ahead: wraps to 11
		g.publish()
		var n int
		var err error
		if rx {
			testutil.Load(b, testFrame(60, 1))
			n, err = q.Enqueue(b)
		} else {
			n, err = q.Dequeue(b)
		}
		if n != 0 || err == nil {
			t.Fatalf("rx=%v: %d, %v", rx, n, err)
		}
		checkStopped(t, q, err, FaultAvailIdx)
		if q.LastAvail() != 65530 {
			t.Fatalf("LastAvail moved: %d", q.LastAvail())
		}
	}
	// Exactly the queue size ahead is fine.
	g := newGuest(t, guestOpts{size: 16})
	q := g.queue(g.config())
	_, b := newTestBatch(t)
	for i := range 16 {
		g.putAvail(g.txChain(12, testFrame(64, byte(i)), nil, false))
	}
	g.publish()
	if n, err := q.Dequeue(b); n != 16 || err != nil {
		t.Fatalf("full ring: %d, %v", n, err)
	}
}

// checkStopped checks that q stopped with fault f and stays stopped.
func checkStopped(t *testing.T, q *Queue, err error, f Fault) {
	t.Helper()
	if !errors.Is(err, ErrBadRing) || q.Err() != err {
		t.Fatalf("error %v, Err %v: want ErrBadRing from both", err, q.Err())
	}
	if !strings.Contains(err.Error(), f.String()) {
		t.Fatalf("error %q does not name %s", err, f)
	}
	st := q.Stats()
	for k, v := range st.Faults {
		if want := uint64(0); Fault(k) == f && v != 1 || Fault(k) != f && v != want {
			t.Fatalf("Faults %v: want one %s", st.Faults, f)
		}
	}
	if q.Pending() {
		t.Fatal("a stopped queue has something pending")
	}
	_, b := newTestBatch(t)
	if n, err2 := q.Dequeue(b); n != 0 || err2 != err {
		t.Fatalf("Dequeue after stop: %d, %v", n, err2)
	}
	testutil.Load(b, testFrame(60, 0))
	if n, err2 := q.Enqueue(b); n != 0 || err2 != err {
		t.Fatalf("Enqueue after stop: %d, %v", n, err2)
	}
}

// chainOfRaw writes descriptors {gpa, len, flags} as a chain in the main
// table.
func (g *guest) chainOfRaw(descs [][3]uint64) uint16 {
	ids := make([]uint16, len(descs))
	for i := range ids {
		ids[i] = g.desc()
	}
	for i, d := range descs {
		f, next := uint16(d[2]), uint16(0)
		if i < len(descs)-1 {
			f |= virtqDescFNext
			next = ids[i+1]
		}
		g.putDesc(g.descOff, ids[i], d[0], uint32(d[1]), f, next)
	}
	return ids[0]
}

func TestFaultString(t *testing.T) {
	want := []string{"none", "loop", "out-of-memory", "too-long", "bad-index", "write-flag", "bad-indirect", "avail-idx"}
	for i, w := range want {
		if got := Fault(i).String(); got != w {
			t.Errorf("Fault(%d) = %q, want %q", i, got, w)
		}
	}
	if got := Fault(NumFaults).String(); got != "fault(8)" {
		t.Errorf("unknown fault: %q", got)
	}
}
