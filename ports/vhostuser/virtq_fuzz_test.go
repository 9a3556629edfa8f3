//go:build linux

package vhostuser

import (
	"bytes"
	"encoding/binary"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/xvswitch/xvs/internal/testutil"
	"github.com/xvswitch/xvs/ring"
)

// The fuzzed guest: two 64 KiB regions, adjacent in guest physical space,
// each mapped between inaccessible guard pages. A read or write outside
// the regions faults and crashes the fuzz run.
const (
	fzRegion = 64 << 10
	fzGPA0   = 0x0
	fzGPA1   = fzGPA0 + fzRegion
	fzUVA0   = 0x7000_0000_0000
	fzUVA1   = 0x6000_0000_0000
	fzDesc   = 0x000 // ring offsets in region 0
	fzAvail  = 0x400
	fzUsed   = 0x800
	fzData0  = 0x1000 // region 0 data from here
	fzMaxQ   = 16     // largest queue size fuzzed
)

var fz struct {
	once    sync.Once
	r0, r1  []byte
	arena   *ring.Arena
	err     error
	pattern []byte
}

func fuzzMemory(t testing.TB) ([]byte, []byte) {
	fz.once.Do(func() {
		page := unix.Getpagesize()
		all, err := unix.Mmap(-1, 0, 3*page+2*fzRegion, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
		if err != nil {
			fz.err = err
			return
		}
		for _, off := range []int{0, page + fzRegion, 2*page + 2*fzRegion} {
			if err := unix.Mprotect(all[off:off+page], unix.PROT_NONE); err != nil {
				fz.err = err
				return
			}
		}
		fz.r0 = all[page : page+fzRegion : page+fzRegion]
		fz.r1 = all[2*page+fzRegion : 2*page+2*fzRegion : 2*page+2*fzRegion]
		fz.arena, fz.err = ring.NewArena(ring.ArenaConfig{Frames: ring.BatchSize, FrameSize: 512, Headroom: 128})
		fz.pattern = make([]byte, fzRegion)
		for i := range fz.pattern {
			fz.pattern[i] = byte(i*13 + i>>8)
		}
	})
	if fz.err != nil {
		t.Fatal(fz.err)
	}
	return fz.r0, fz.r1
}

// fuzzInput lays data out in guest memory: byte 0 configures the queue,
// bytes 1-4 are the base and how far avail->idx is ahead of it, then come
// the descriptor table, the avail ring entries, and the rest goes to the
// start of region 1 (indirect tables, buffers).
type fuzzInput struct {
	cfg   QueueConfig
	start int // frames already in the batch given to Dequeue
}

func loadFuzzInput(r0, r1, data []byte) (in fuzzInput, ok bool) {
	if len(data) < 6 {
		return in, false
	}
	c := data[0]
	size := uint16(1) << (c % 5)
	in.cfg = QueueConfig{
		Size:   size,
		Desc:   fzUVA0 + fzDesc,
		Avail:  fzUVA0 + fzAvail,
		Used:   fzUVA0 + fzUsed,
		HdrLen: 10,
		Call:   -1,
		Kick:   -1,
	}
	if c&0x08 != 0 {
		in.cfg.HdrLen = 12
		in.cfg.Mergeable = c&0x10 != 0
	}
	in.cfg.EventIdx = c&0x20 != 0
	in.start = int(data[5] % ring.BatchSize)
	base := binary.LittleEndian.Uint16(data[1:])
	ahead := binary.LittleEndian.Uint16(data[3:])
	in.cfg.Base = base
	data = data[6:]

	copy(r0, fz.pattern)
	copy(r1, fz.pattern)
	clear(r0[:fzData0])
	n := copy(r0[fzDesc:fzDesc+16*int(size)], data)
	data = data[n:]
	n = copy(r0[fzAvail+4:fzAvail+4+2*int(size)], data)
	data = data[n:]
	copy(r1, data)
	binary.LittleEndian.PutUint16(r0[fzAvail+2:], base+ahead)
	binary.LittleEndian.PutUint16(r0[fzUsed+2:], base)
	return in, true
}

func fuzzSeed(cfgByte byte, ahead uint16, descs [][4]uint64, avail []uint16, rest []byte) []byte {
	b := []byte{cfgByte, 0xf0, 0xff, byte(ahead), byte(ahead >> 8), 0}
	size := 1 << (cfgByte % 5)
	table := make([]byte, 16*size)
	for i, d := range descs {
		binary.LittleEndian.PutUint64(table[16*i:], d[0])
		binary.LittleEndian.PutUint32(table[16*i+8:], uint32(d[1]))
		binary.LittleEndian.PutUint16(table[16*i+12:], uint16(d[2]))
		binary.LittleEndian.PutUint16(table[16*i+14:], uint16(d[3]))
	}
	b = append(b, table...)
	ring := make([]byte, 2*size)
	for i, h := range avail {
		binary.LittleEndian.PutUint16(ring[2*i:], h)
	}
	b = append(b, ring...)
	return append(b, rest...)
}

// FuzzDescriptorChain fills the descriptor table, the avail ring and
// region 1 with arbitrary bytes and runs Dequeue (twice) and Enqueue over
// them. Neither may panic or touch memory outside the regions (guard
// pages), and both must do exactly what a plain reference model of the
// specification does: the same frames (so every byte reported came from a
// buffer inside guest memory), the same fault, the same bytes of guest
// memory written.
func FuzzDescriptorChain(f *testing.F) {
	const (
		N = virtqDescFNext
		W = virtqDescFWrite
		I = virtqDescFIndirect
	)
	// size 16 (cfg%5 == 4), 12-byte header (0x08), mergeable (0x10), event idx (0x20)
	f.Add(fuzzSeed(0x0c, 2, [][4]uint64{{fzGPA1, 12, N, 1}, {fzGPA1 + 12, 60, 0, 0}, {fzGPA1 + 100, 200, 0, 0}}, []uint16{0, 2}, nil))
	f.Add(fuzzSeed(0x2c, 1, [][4]uint64{{fzGPA1, 48, I, 0}}, []uint16{0},
		fuzzSeed(0x04, 0, [][4]uint64{{fzGPA1 + 512, 5, N, 1}, {fzGPA1 + 600, 7, N, 2}, {fzGPA1 + 700, 100, 0, 0}}, nil, nil)[6:]))
	f.Add(fuzzSeed(0x1c, 3, [][4]uint64{{fzGPA0 + fzData0, 100, W, 0}, {fzGPA1 + 1000, 20, W | N, 2}, {fzGPA1 + 2000, 2000, W, 0}, {fzGPA1 + 3000, 1, W, 0}}, []uint16{0, 1, 3}, nil))
	f.Add(fuzzSeed(0x0c, 2, [][4]uint64{{fzGPA1 - 8, 16, W, 0}, {fzGPA1 + 50, 1500, W, 0}}, []uint16{1, 0}, nil))
	f.Add(fuzzSeed(0x34, 2, [][4]uint64{{fzGPA0 + fzUsed, 64, W | N, 1}, {fzGPA0 + fzDesc, 64, W, 0}}, []uint16{0, 0}, nil))
	f.Add(fuzzSeed(0x04, 1, [][4]uint64{{fzGPA1, 10, 0, 0}}, []uint16{0}, nil))      // shorter than the header
	f.Add(fuzzSeed(0x01, 2, [][4]uint64{{fzGPA1, 1600, 0, 0}}, []uint16{0, 0}, nil)) // too big, twice
	f.Add(fuzzSeed(0x2c, 40, nil, nil, nil))                                         // avail idx jump
	// a receive buffer over the rings themselves (found by the fuzzer)
	f.Add([]byte("X00\b\x000\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x002"))
	// receive: mergeable buffers of 100 bytes; an indirect chain
	f.Add(fuzzSeed(0x18, 8, [][4]uint64{{fzGPA1, 100, W, 0}, {fzGPA1 + 100, 100, W, 0}, {fzGPA1 + 200, 100, W, 0}, {fzGPA1 + 300, 100, W, 0}, {fzGPA1 + 400, 100, W, 0}, {fzGPA1 + 500, 100, W, 0}, {fzGPA1 + 600, 100, W, 0}, {fzGPA1 + 700, 100, W, 0}}, []uint16{0, 1, 2, 3, 4, 5, 6, 7}, nil))
	f.Add(fuzzSeed(0x24, 2, [][4]uint64{{fzGPA1, 32, I, 0}, {fzGPA1 + 4096, 1600, W, 0}}, []uint16{0, 1},
		fuzzSeed(0x01, 0, [][4]uint64{{fzGPA1 + 1024, 10, W | N, 1}, {fzGPA1 + 2048, 1000, W, 0}}, nil, nil)[6:]))

	f.Fuzz(func(t *testing.T, data []byte) {
		r0, r1 := fuzzMemory(t)
		mem, err := NewMemory([]Region{
			{GuestPhys: fzGPA0, Size: fzRegion, UserAddr: fzUVA0, Mem: r0},
			{GuestPhys: fzGPA1, Size: fzRegion, UserAddr: fzUVA1, Mem: r1},
		})
		if err != nil {
			t.Fatal(err)
		}
		in, ok := loadFuzzInput(r0, r1, data)
		if !ok {
			return
		}

		// Transmit: two Dequeue calls.
		m := newRefQueue(r0, r1, in.cfg)
		q, err := NewQueue(mem, in.cfg)
		if err != nil {
			t.Fatal(err)
		}
		b := ring.NewBatch(fz.arena)
		room := fz.arena.FrameSize() - fz.arena.Headroom()
		for call, start := range []int{in.start, 0} {
			testutil.ResetRx(b)
			b.N = start
			n, err := q.Dequeue(b)
			want := m.dequeue(room, start)
			if n != len(want) || b.N != start+n {
				t.Fatalf("dequeue %d: %d frames (b.N %d), model %d", call, n, b.N, len(want))
			}
			for i, w := range want {
				if got := b.Data(start + i); !bytes.Equal(got, w) {
					t.Fatalf("dequeue %d: frame %d: % x, model % x", call, i, prefix16(got), prefix16(w))
				}
			}
			m.check(t, q, err, "dequeue")
		}

		// Receive: reload and run Enqueue on a fresh queue.
		loadFuzzInput(r0, r1, data)
		m = newRefQueue(r0, r1, in.cfg)
		if q, err = NewQueue(mem, in.cfg); err != nil {
			t.Fatal(err)
		}
		frames := [][]byte{testFrame(60, 1), testFrame(200, 2), testFrame(14, 3), testFrame(room, 4), testFrame(20, 5)}
		for call := range 2 {
			testutil.Load(b, frames[:len(frames)-call]...) // panics if one does not fit
			n, err := q.Enqueue(b)
			if want := m.enqueue(frames[:b.N]); n != want {
				t.Fatalf("enqueue %d: %d accepted, model %d", call, n, want)
			}
			m.check(t, q, err, "enqueue")
		}
	})
}

// refQueue is a reference model of a split virtqueue, written for clarity
// from the specification and Queue's documented rules: it works on its own
// copy of guest memory, and after each call the real guest memory must
// equal the copy.
type refQueue struct {
	r0, r1  []byte // the real regions, for comparison
	m0, m1  []byte // the model's copies
	cfg     QueueConfig
	last    uint16
	used    uint16
	flags   uint16
	notify  bool
	fault   Fault
	tooBig  uint64
	frames  uint64
	noBuf   uint64
	malform uint64
}

func newRefQueue(r0, r1 []byte, cfg QueueConfig) *refQueue {
	m := &refQueue{r0: r0, r1: r1, m0: bytes.Clone(r0), m1: bytes.Clone(r1), cfg: cfg}
	m.flags = m.u16(fzUsed)
	m.last, m.used = cfg.Base, cfg.Base
	if idx := m.u16(fzUsed + 2); idx != cfg.Base {
		m.last, m.used = idx, idx
	}
	m.notify = !cfg.EventIdx && m.flags&virtqUsedFNoNotify == 0
	return m
}

func (m *refQueue) u16(off int) uint16 { return binary.LittleEndian.Uint16(m.m0[off:]) }

func (m *refQueue) put16(off int, v uint16) { binary.LittleEndian.PutUint16(m.m0[off:], v) }

// guest translates a guest physical range in the model's memory.
func (m *refQueue) guest(gpa, n uint64) ([]byte, bool) {
	for _, r := range []struct {
		start uint64
		mem   []byte
	}{{fzGPA0, m.m0}, {fzGPA1, m.m1}} {
		if gpa >= r.start && gpa-r.start < fzRegion && n <= fzRegion-(gpa-r.start) {
			off := gpa - r.start
			return r.mem[off : off+n], true
		}
	}
	return nil, false
}

type refDesc struct {
	addr  uint64
	n     uint32
	flags uint16
	next  uint16
}

// walk calls visit for each buffer of the chain at head, until visit says
// stop or the chain ends; it returns the first fault.
func (m *refQueue) walk(head uint16, visit func(d refDesc, buf []byte) (stop bool, f Fault)) Fault {
	size := int(m.cfg.Size)
	if int(head) >= size {
		return FaultBadIndex
	}
	table, entries, i := m.m0[fzDesc:fzDesc+16*size], size, int(head)
	inIndirect, visited, buffers := false, 0, 0
	for {
		if visited == entries {
			return FaultLoop
		}
		visited++
		e := table[16*i:]
		d := refDesc{binary.LittleEndian.Uint64(e), binary.LittleEndian.Uint32(e[8:]), binary.LittleEndian.Uint16(e[12:]), binary.LittleEndian.Uint16(e[14:])}
		if d.flags&virtqDescFIndirect != 0 {
			if inIndirect || d.flags&virtqDescFNext != 0 || d.n == 0 || d.n%16 != 0 {
				return FaultBadIndirect
			}
			tab, ok := m.guest(d.addr, uint64(d.n))
			if !ok {
				return FaultOutOfMemory
			}
			table, entries, i, inIndirect, visited = tab, int(d.n/16), 0, true, 0
			continue
		}
		buffers++
		if buffers > 1024 {
			return FaultTooLong
		}
		more := d.flags&virtqDescFNext != 0
		if more && int(d.next) >= entries {
			return FaultBadIndex
		}
		var buf []byte
		if d.n > 0 {
			var ok bool
			if buf, ok = m.guest(d.addr, uint64(d.n)); !ok {
				return FaultOutOfMemory
			}
		}
		if stop, f := visit(d, buf); f != FaultNone || stop || !more {
			return f
		}
		i = int(d.next)
	}
}

func (m *refQueue) availCount() (uint16, bool) {
	n := m.u16(fzAvail+2) - m.last
	if n > m.cfg.Size {
		m.fault = FaultAvailIdx
		return 0, false
	}
	return n, true
}

func (m *refQueue) availHead() uint16 {
	return m.u16(fzAvail + 4 + 2*int(m.last&(m.cfg.Size-1)))
}

func (m *refQueue) putUsed(head uint16, n uint32) {
	off := fzUsed + 4 + 8*int(m.used&(m.cfg.Size-1))
	binary.LittleEndian.PutUint32(m.m0[off:], uint32(head))
	binary.LittleEndian.PutUint32(m.m0[off+4:], n)
	m.used++
}

func (m *refQueue) publish(old uint16) {
	if m.used != old {
		m.put16(fzUsed, m.flags)
		m.put16(fzUsed+2, m.used)
	}
}

// dequeue returns the frames Dequeue must return.
func (m *refQueue) dequeue(room, start int) [][]byte {
	if m.fault != FaultNone || start >= ring.BatchSize {
		return nil
	}
	n, ok := m.availCount()
	if !ok {
		return nil
	}
	if n == 0 {
		if !m.notify {
			if m.cfg.EventIdx {
				m.put16(fzUsed+4+8*int(m.cfg.Size), m.last)
			} else {
				m.flags &^= virtqUsedFNoNotify
				m.put16(fzUsed, m.flags)
				m.put16(fzUsed+2, m.used)
			}
			m.notify = true
		}
		return nil
	}
	old := m.used
	var out [][]byte
	for ; n > 0 && start+len(out) < ring.BatchSize; n-- {
		head := m.availHead()
		var frame []byte
		var total uint64
		skip, big := m.cfg.HdrLen, false
		f := m.walk(head, func(d refDesc, buf []byte) (bool, Fault) {
			if d.flags&virtqDescFWrite != 0 {
				return false, FaultWriteFlag
			}
			if total += uint64(d.n); total > uint64(m.cfg.HdrLen)+65536 {
				return false, FaultTooLong
			}
			k := min(skip, len(buf))
			skip -= k
			if len(frame)+len(buf)-k > room {
				big = true
			}
			if !big {
				frame = append(frame, buf[k:]...)
			}
			return false, FaultNone
		})
		if f != FaultNone {
			m.fault = f
			break
		}
		m.putUsed(head, 0)
		m.last++
		switch {
		case skip > 0:
			m.malform++
		case big:
			m.tooBig++
		default:
			out = append(out, append([]byte{}, frame...))
			m.frames++
		}
	}
	if m.notify && m.used != old {
		if !m.cfg.EventIdx {
			m.flags |= virtqUsedFNoNotify
		}
		m.notify = false
	}
	m.publish(old)
	return out
}

// enqueue returns how many of frames Enqueue must accept.
func (m *refQueue) enqueue(frames [][]byte) int {
	if m.fault != FaultNone {
		return 0
	}
	avail, ok := m.availCount()
	if !ok {
		return 0
	}
	old := m.used
	accepted := 0
	for _, frame := range frames {
		stream := append(make([]byte, m.cfg.HdrLen), frame...)
		markLast, markUsed := m.last, m.used
		var nb []*byte // where num_buffers went
		pos, bufs, small := 0, 0, false
		var f Fault
		for pos < len(stream) && avail > 0 {
			head := m.availHead()
			w := 0
			f = m.walk(head, func(d refDesc, buf []byte) (bool, Fault) {
				if d.flags&virtqDescFWrite == 0 {
					return false, FaultWriteFlag
				}
				for i := range buf {
					at := pos + w
					if at == len(stream) {
						break
					}
					buf[i] = stream[at]
					if m.cfg.HdrLen == 12 && (at == 10 || at == 11) {
						nb = append(nb, &buf[i])
					}
					w++
				}
				return pos+w == len(stream), FaultNone
			})
			if f != FaultNone {
				break
			}
			if !m.cfg.Mergeable && w < len(stream) {
				small = true
				break
			}
			m.putUsed(head, uint32(w))
			m.last++
			avail--
			bufs++
			pos += w
		}
		if f != FaultNone || (pos < len(stream) && !small) {
			m.last, m.used = markLast, markUsed
			m.fault = f
			break
		}
		accepted++
		if small {
			m.tooBig++
			continue
		}
		if len(nb) == 2 {
			*nb[0], *nb[1] = byte(bufs), byte(bufs>>8)
		}
		m.frames++
	}
	if f := m.fault; f == FaultNone {
		m.noBuf += uint64(len(frames) - accepted)
	}
	if !m.cfg.EventIdx {
		m.flags |= virtqUsedFNoNotify
	}
	m.publish(old)
	return accepted
}

// check compares the queue with the model after a call: error, counters,
// position and every byte of guest memory.
func (m *refQueue) check(t *testing.T, q *Queue, err error, op string) {
	t.Helper()
	st := q.Stats()
	if m.fault != FaultNone {
		if err == nil || st.Faults[m.fault] != 1 || q.Err() == nil {
			t.Fatalf("%s: model fault %v, queue error %v, faults %v", op, m.fault, err, st.Faults)
		}
	} else if err != nil || q.Err() != nil {
		t.Fatalf("%s: queue error %v, model none", op, err)
	}
	if st.TooBig != m.tooBig || st.Frames != m.frames || st.Malformed != m.malform || st.NoBuffers != m.noBuf {
		t.Fatalf("%s: stats %+v, model too-big %d frames %d malformed %d no-buffers %d", op, st, m.tooBig, m.frames, m.malform, m.noBuf)
	}
	if q.LastAvail() != m.last {
		t.Fatalf("%s: LastAvail %d, model %d", op, q.LastAvail(), m.last)
	}
	for i, pair := range [][2][]byte{{m.r0, m.m0}, {m.r1, m.m1}} {
		if !bytes.Equal(pair[0], pair[1]) {
			for j := range pair[0] {
				if pair[0][j] != pair[1][j] {
					t.Fatalf("%s: region %d differs from the model at %#x: %#x, model %#x", op, i, j, pair[0][j], pair[1][j])
				}
			}
		}
	}
}
