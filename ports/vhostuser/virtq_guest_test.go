package vhostuser

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/xvswitch/xvs/internal/testutil"
	"github.com/xvswitch/xvs/ring"
)

// The fake guest: 1 MiB of RAM in two regions of 512 KiB. In guest
// physical space they are adjacent (a buffer across the boundary is
// contiguous for the guest but not for us: it must be refused); in the
// front-end's virtual space they are far apart and in the other order.
// The rings live at the start of region 0; data buffers are handed out
// from both regions.
const (
	guestRAM     = 1 << 20
	guestHalf    = guestRAM / 2
	guestGPA0    = 0x0
	guestGPA1    = guestGPA0 + guestHalf
	guestUVA0    = 0x7f00_0000_0000
	guestUVA1    = 0x7e00_0000_0000
	guestRingEnd = 0x40000 // rings below this offset in region 0; data above
)

// guest plays the driver side of one virtqueue.
type guest struct {
	t       testing.TB
	ram     []byte
	mem     *Memory
	size    uint16
	descOff uint64 // offsets of the rings in ram (region 0)
	availOff,
	usedOff uint64

	availIdx ring16
	usedHd   usedHead
	avail    uint16 // the guest's avail idx
	usedSeen uint16 // used entries the guest consumed

	nextDesc uint16 // next free descriptor (round robin)
	bump     uint64 // next free data offset, over both regions
	indirect uint64 // next free offset for indirect tables (region 1 front)
}

type guestOpts struct {
	size     uint16
	availMis bool // put the avail ring at 2 mod 4
}

func newGuest(t testing.TB, o guestOpts) *guest {
	t.Helper()
	if o.size == 0 {
		o.size = 256
	}
	g := &guest{t: t, ram: make([]byte, guestRAM), size: o.size}
	n := uint64(o.size)
	g.descOff = 0x1000
	g.availOff = alignUp(g.descOff+16*n, 4)
	if o.availMis {
		g.availOff += 2
	}
	g.usedOff = alignUp(g.availOff+virtqAvailBytes(n), 4096)
	if g.usedOff+virtqUsedBytes(n) > guestRingEnd {
		t.Fatalf("rings do not fit")
	}
	var err error
	g.mem, err = NewMemory([]Region{
		{GuestPhys: guestGPA0, Size: guestHalf, UserAddr: guestUVA0, Mem: g.ram[:guestHalf:guestHalf]},
		{GuestPhys: guestGPA1, Size: guestHalf, UserAddr: guestUVA1, Mem: g.ram[guestHalf:]},
	})
	if err != nil {
		t.Fatal(err)
	}
	var ok bool
	if g.availIdx, ok = newRing16(g.ram[:guestHalf], g.availOff+2); !ok {
		t.Fatal("avail idx")
	}
	if g.usedHd, ok = newUsedHead(g.ram[:guestHalf], g.usedOff); !ok {
		t.Fatal("used head")
	}
	g.bump = guestRingEnd
	g.indirect = guestHalf
	return g
}

func alignUp(v, a uint64) uint64 { return (v + a - 1) &^ (a - 1) }

// config returns a queue configuration for the guest's rings.
func (g *guest) config() QueueConfig {
	return QueueConfig{
		Size:   g.size,
		Desc:   guestUVA0 + g.descOff,
		Avail:  guestUVA0 + g.availOff,
		Used:   guestUVA0 + g.usedOff,
		HdrLen: 12,
		Call:   -1,
		Kick:   -1,
	}
}

func (g *guest) queue(cfg QueueConfig) *Queue {
	g.t.Helper()
	q, err := NewQueue(g.mem, cfg)
	if err != nil {
		g.t.Fatal(err)
	}
	return q
}

// setBase starts both the guest's and the device's indexes at base.
func (g *guest) setBase(base uint16) {
	g.avail, g.usedSeen = base, base
	g.availIdx.store(base)
	g.usedHd.store(0, base)
}

// gpaOf is the guest physical address of ram[off].
func gpaOf(off uint64) uint64 { return guestGPA0 + off }

// alloc returns the offset of n fresh bytes of data memory, never across
// the region boundary; the allocator wraps around.
func (g *guest) alloc(n int) uint64 {
	if g.bump < guestHalf && g.bump+uint64(n) > guestHalf {
		g.bump = guestHalf + 0x10000 // region 1, after the indirect tables
	}
	if g.bump+uint64(n) > guestRAM {
		g.bump = guestRingEnd
	}
	off := g.bump
	g.bump = alignUp(off+uint64(n), 64)
	return off
}

// putDesc writes descriptor i of table (at ram offset tab).
func (g *guest) putDesc(tab uint64, i uint16, addr uint64, n uint32, flags, next uint16) {
	b := g.ram[tab+16*uint64(i):]
	binary.LittleEndian.PutUint64(b, addr)
	binary.LittleEndian.PutUint32(b[8:], n)
	binary.LittleEndian.PutUint16(b[12:], flags)
	binary.LittleEndian.PutUint16(b[14:], next)
}

// desc allocates a descriptor of the main table.
func (g *guest) desc() uint16 {
	i := g.nextDesc
	g.nextDesc = (g.nextDesc + 1) & (g.size - 1)
	return i
}

// chainOf writes bufs (offsets and lengths in ram) as a chain and returns
// its head. With indirect, the main table gets one descriptor pointing to
// a table holding the chain.
func (g *guest) chainOf(bufs [][2]uint64, flags uint16, indirect bool) uint16 {
	if indirect {
		tab := g.indirect
		g.indirect += alignUp(16*uint64(len(bufs)), 64)
		if g.indirect > guestHalf+0x10000 {
			g.indirect = guestHalf
			tab = g.indirect
			g.indirect += alignUp(16*uint64(len(bufs)), 64)
		}
		for i, b := range bufs {
			f, next := flags, uint16(0)
			if i < len(bufs)-1 {
				f |= virtqDescFNext
				next = uint16(i + 1)
			}
			g.putDesc(tab, uint16(i), gpaOf(b[0]), uint32(b[1]), f, next)
		}
		head := g.desc()
		g.putDesc(g.descOff, head, gpaOf(tab), uint32(16*len(bufs)), virtqDescFIndirect, 0)
		return head
	}
	ids := make([]uint16, len(bufs))
	for i := range ids {
		ids[i] = g.desc()
	}
	for i, b := range bufs {
		f, next := flags, uint16(0)
		if i < len(bufs)-1 {
			f |= virtqDescFNext
			next = ids[i+1]
		}
		g.putDesc(g.descOff, ids[i], gpaOf(b[0]), uint32(b[1]), f, next)
	}
	return ids[0]
}

// txChain lays out hdr+frame in pieces of the given lengths (the last
// piece takes the rest) and returns the chain's head.
func (g *guest) txChain(hdrLen int, frame []byte, pieces []int, indirect bool) uint16 {
	stream := append(make([]byte, hdrLen), frame...)
	var bufs [][2]uint64
	for i := 0; len(stream) > 0; i++ {
		n := len(stream)
		if i < len(pieces) && pieces[i] < n {
			n = pieces[i]
		}
		off := g.alloc(n)
		copy(g.ram[off:], stream[:n])
		bufs = append(bufs, [2]uint64{off, uint64(n)})
		stream = stream[n:]
	}
	return g.chainOf(bufs, 0, indirect)
}

// rxChain posts write-only buffers of the given lengths as one chain and
// returns its head and the buffers. The buffers are filled with 0xee.
func (g *guest) rxChain(lens []int, indirect bool) (uint16, [][2]uint64) {
	var bufs [][2]uint64
	for _, n := range lens {
		off := g.alloc(n)
		for i := range n {
			g.ram[off+uint64(i)] = 0xee
		}
		bufs = append(bufs, [2]uint64{off, uint64(n)})
	}
	return g.chainOf(bufs, virtqDescFWrite, indirect), bufs
}

// post makes heads available and publishes avail->idx.
func (g *guest) post(heads ...uint16) {
	for _, h := range heads {
		g.putAvail(h)
	}
	g.publish()
}

func (g *guest) putAvail(h uint16) {
	off := g.availOff + 4 + 2*uint64(g.avail&(g.size-1))
	binary.LittleEndian.PutUint16(g.ram[off:], h)
	g.avail++
}

func (g *guest) publish() {
	if !g.availIdx.store(g.avail) {
		g.t.Fatal("store avail idx")
	}
}

// usedElem is one used ring entry.
type usedElem struct {
	id, len uint32
}

// reap returns the used entries published since the last reap.
func (g *guest) reap() []usedElem {
	_, idx := g.usedHd.load()
	var out []usedElem
	for ; g.usedSeen != idx; g.usedSeen++ {
		off := g.usedOff + 4 + 8*uint64(g.usedSeen&(g.size-1))
		out = append(out, usedElem{
			id:  binary.LittleEndian.Uint32(g.ram[off:]),
			len: binary.LittleEndian.Uint32(g.ram[off+4:]),
		})
	}
	return out
}

func (g *guest) usedFlags() uint16 { f, _ := g.usedHd.load(); return f }

func (g *guest) availFlags(f uint16) {
	binary.LittleEndian.PutUint16(g.ram[g.availOff:], f)
}

// usedEvent sets avail->used_event.
func (g *guest) usedEvent(v uint16) {
	binary.LittleEndian.PutUint16(g.ram[g.availOff+4+2*uint64(g.size):], v)
}

// availEvent reads used->avail_event.
func (g *guest) availEvent() uint16 {
	return binary.LittleEndian.Uint16(g.ram[g.usedOff+4+8*uint64(g.size):])
}

// readChain concatenates what the device wrote into bufs, n bytes in all.
func (g *guest) readChain(bufs [][2]uint64, n int) []byte {
	var out []byte
	for _, b := range bufs {
		k := min(int(b[1]), n-len(out))
		out = append(out, g.ram[b[0]:b[0]+uint64(k)]...)
	}
	return out
}

// frameOf returns a test frame of n bytes whose content depends on seed.
func testFrame(n int, seed byte) []byte {
	f := make([]byte, n)
	for i := range f {
		f[i] = byte(i*7) + seed
	}
	if n >= 14 {
		copy(f, []byte{2, 0, 0, 0, 0, seed, 2, 0, 0, 0, 1, seed, 0x08, 0x00})
	}
	return f
}

// newTestBatch returns an arena and a batch whose frames name distinct
// buffers at the default offset, ready for Dequeue. The arena has twice
// the buffers a batch names: transmit batches use the second half.
func newTestBatch(t testing.TB) (*ring.Arena, *ring.Batch) {
	t.Helper()
	b := testutil.RxBatch(t, ring.ArenaConfig{Frames: 2 * ring.BatchSize, FrameSize: 2048, Headroom: 256})
	return b.Arena(), b
}

func checkTestFrames(t testing.TB, b *ring.Batch, want [][]byte) {
	t.Helper()
	if b.N != len(want) {
		t.Fatalf("batch has %d frames, want %d", b.N, len(want))
	}
	for i, w := range want {
		if got := b.Data(i); !bytes.Equal(got, w) {
			t.Fatalf("frame %d: got %d bytes % x..., want %d bytes % x...", i, len(got), prefix16(got), len(w), prefix16(w))
		}
	}
}

func prefix16(b []byte) []byte { return b[:min(len(b), 16)] }

// Pending reports whether the guest made chains available that the queue
// has not processed. It reads avail->idx and nothing else. A stopped queue
// has nothing pending. Like Dequeue, it belongs to the queue's goroutine.
// Only tests need it: the port polls with Dequeue.
func (q *Queue) Pending() bool {
	return q.err.Load() == nil && q.availIdx.load() != q.last
}
