// Package conformance is the test suite every [ports.Port] runs: one set
// of checks of the contract written in package ports, run against each
// port type through a [Harness] its tests supply, as cilium/ebpf runs
// one test against every link type.
//
// A harness opens the port under test together with a [Peer]: the other
// end of its wire (the veth's other end for AF_XDP, the kernel side of a
// TAP device, the guest of a vhost-user port, the queues of an in-memory
// port). The suite injects frames through the peer and receives them
// through the port, transmits through the port and reads them at the
// peer, and checks that frames arrive intact and in order, that Stats
// counts what moved, that a frame longer than the MTU allows is refused
// and counted, and that Close is safe while Receive and Transmit run.
//
// What legitimately differs between port types (the names of drop
// reasons, whether the peer can send an oversize frame at all) is
// declared in the Harness, never weakened in the suite. The package
// imports no port implementation.
package conformance

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xvswitch/xvs/internal/testutil"
	"github.com/xvswitch/xvs/ports"
	"github.com/xvswitch/xvs/ring"
)

// EtherType is the EtherType of every frame the suite sends (IEEE 802
// local experimental 1): a peer that reads from a kernel device can
// filter on it, and a kernel ignores it.
const EtherType = 0x88b5

// MaxFrame is the longest frame a port of MTU mtu must carry: MTU bytes
// of payload after an Ethernet header with one 802.1Q tag (18 bytes).
// Every xvs port refuses longer frames on Transmit; the slack of 4 bytes
// for an untagged frame is the one the kernel allows when it forwards
// (is_skb_forwardable).
func MaxFrame(mtu int) int { return mtu + 18 }

// Peer is the other end of a port's wire. It is used by one goroutine at
// a time (the test's).
type Peer interface {
	// Inject sends frames towards the port, in order, as they would
	// arrive from the wire; Receive finds them soon after. Frames are at
	// most MaxFrame(MTU)+1 bytes long. Inject fails t if it cannot send
	// them.
	Inject(t testing.TB, frames ...[]byte)
	// Take returns, without waiting, the frames the port transmitted
	// that reached the peer since the last call, in order. It may return
	// other frames too (a kernel's own traffic); the suite ignores frames
	// that are not its own.
	Take(t testing.TB) [][]byte
}

// Harness describes a port type to the suite.
type Harness struct {
	// New opens a fresh port and its peer, connected and ready to carry
	// frames both ways, and registers their teardown with t.Cleanup
	// (the suite may have closed the port already). Each subtest calls
	// it once. The port's MTU must be at least 1000.
	New func(t *testing.T) (ports.Port, Peer)

	// RxTooBig is the drop reason in Stats().Drops under which the port
	// counts a frame from the peer that does not fit the buffer Receive
	// was given.
	RxTooBig string
	// TxTooBig is the drop reason under which the port counts a frame
	// longer than MaxFrame(MTU) that Transmit refused.
	TxTooBig string
	// RxOverMTU is the drop reason under which a frame longer than
	// MaxFrame(MTU) from the peer is counted (by the port, or by the
	// kernel below it if the port reports that counter); "" when the
	// peer cannot send such a frame at all (a kernel device refuses to
	// send above its MTU), which skips that check.
	RxOverMTU string

	// KnownBugs names subtests the port is known to fail, with the
	// reason; they are skipped with it. Each entry is a bug to fix, not
	// a difference of port type.
	KnownBugs map[string]string
}

// timeout bounds every wait of the suite for frames to arrive.
const timeout = 5 * time.Second

// Run runs the suite against the port type h describes, one subtest per
// check. Every subtest also checks that the port, once its cleanup has
// closed it, leaves no goroutine and no file descriptor behind.
func Run(t *testing.T, h Harness) {
	if h.New == nil || h.RxTooBig == "" || h.TxTooBig == "" {
		t.Fatalf("conformance: incomplete Harness %+v: New, RxTooBig and TxTooBig are required", h)
	}
	s := &suite{h: h}
	tests := []struct {
		name string
		f    func(*testing.T)
	}{
		{"Receive", s.receive},
		{"Transmit", s.transmit},
		{"ReceiveTooBigForBuffer", s.receiveTooBigForBuffer},
		{"ReceiveOverMTU", s.receiveOverMTU},
		{"TransmitOverMTU", s.transmitOverMTU},
		{"Stats", s.stats},
		{"CloseWhileBusy", s.closeWhileBusy},
	}
	known := map[string]bool{}
	for _, tc := range tests {
		known[tc.name] = true
	}
	for name := range h.KnownBugs {
		if !known[name] {
			t.Fatalf("conformance: Harness.KnownBugs names %q, not a subtest", name)
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if why, ok := h.KnownBugs[tc.name]; ok {
				t.Skipf("known bug: %s", why)
			}
			tc.f(t)
		})
	}
}

type suite struct {
	h Harness
}

// open checks for leaks and opens a port and its peer.
func (s *suite) open(t *testing.T) (ports.Port, Peer, *tagger) {
	t.Helper()
	testutil.CheckLeaks(t) // first, so that it runs after the harness's cleanups
	p, peer := s.h.New(t)
	if p == nil || peer == nil {
		t.Fatal("conformance: Harness.New returned a nil port or peer")
	}
	if p.MTU() < 1000 {
		t.Fatalf("conformance: port MTU %d, the suite needs at least 1000", p.MTU())
	}
	return p, peer, newTagger()
}

// arenaFor sizes an arena whose buffers hold MaxFrame(mtu)+1 bytes after
// the default headroom, with room to spare.
func arenaFor(mtu int) ring.ArenaConfig {
	cfg := ring.DefaultArenaConfig
	cfg.FrameSize = max(cfg.FrameSize, (cfg.Headroom+MaxFrame(mtu)+1+64+63)&^63)
	cfg.Frames = 2 * ring.BatchSize
	return cfg
}

// A tagger makes the suite's frames. Each carries the suite's magic, a tag
// random per subtest (so no frame of another run or subtest is taken for
// one of this), a sequence number and a pattern that depends on both.
//
//	0:6 dst  6:12 src  12:14 EtherType  14:22 magic  22:26 tag  26:30 seq  30: pattern
type tagger struct {
	tag uint32
}

const hdrLen = 30

var (
	magic = []byte("xvsconf!")
	dst   = []byte{0x02, 0x78, 0x76, 0x73, 0x63, 0x01}
	src   = []byte{0x02, 0x78, 0x76, 0x73, 0x63, 0x02}
)

func newTagger() *tagger { return &tagger{tag: rand.Uint32()} }

// frame returns frame seq of size bytes (at least 60).
func (g *tagger) frame(seq, size int) []byte {
	size = max(size, 60)
	f := make([]byte, size)
	copy(f[0:6], dst)
	copy(f[6:12], src)
	binary.BigEndian.PutUint16(f[12:14], EtherType)
	copy(f[14:22], magic)
	binary.BigEndian.PutUint32(f[22:26], g.tag)
	binary.BigEndian.PutUint32(f[26:30], uint32(seq))
	for i := hdrLen; i < size; i++ {
		f[i] = byte(seq*7 + i)
	}
	return f
}

// seq returns the sequence number of one of this tagger's frames; ok is
// false for any other frame, whole or truncated to its header.
func (g *tagger) seq(f []byte) (int, bool) {
	if len(f) < hdrLen || binary.BigEndian.Uint16(f[12:14]) != EtherType || !bytes.Equal(f[14:22], magic) ||
		binary.BigEndian.Uint32(f[22:26]) != g.tag {
		return 0, false
	}
	return int(binary.BigEndian.Uint32(f[26:30])), true
}

// sizes returns n frame sizes from 60 to max, both included, the
// first 60 and the last max, the rest spread between.
func sizes(n, maxSize int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = 60 + (i*389)%(maxSize-60+1)
	}
	out[0], out[n-1] = 60, maxSize
	return out
}

// frames returns this tagger's frames 0..len(sizes)-1.
func (g *tagger) frames(sizes []int) [][]byte {
	out := make([][]byte, len(sizes))
	for i, n := range sizes {
		out[i] = g.frame(i, n)
	}
	return out
}

// received is what a run of Receive calls returned.
type received struct {
	ours   [][]byte // the tagger's frames, copied, in the order received
	frames uint64   // every frame received, the suite's or not
	bytes  uint64
}

// receive calls Receive with b until want of g's frames arrived, then a
// little longer to see that no more do, and checks what every call
// returned against the contract.
func receive(t *testing.T, p ports.Port, b *ring.Batch, g *tagger, want int) received {
	t.Helper()
	var r received
	step := func() int {
		testutil.ResetRx(b)
		n, err := p.Receive(b)
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		if n < 0 || n > ring.BatchSize || n != b.N {
			t.Fatalf("Receive returned %d with b.N %d", n, b.N)
		}
		for i := range n {
			f := &b.Frames[i]
			if f.Index != uint32(i) || int(f.Offset) != b.Arena().Headroom() {
				t.Fatalf("Receive moved frame %d's descriptor to buffer %d offset %d", i, f.Index, f.Offset)
			}
			r.frames++
			r.bytes += uint64(f.Len)
			if _, ok := g.seq(b.Data(i)); ok {
				r.ours = append(r.ours, append([]byte(nil), b.Data(i)...))
			}
		}
		return n
	}
	if !testutil.Poll(timeout, func() bool { step(); return len(r.ours) >= want }) {
		t.Fatalf("Receive: %d of the %d frames the peer sent arrived within %v", len(r.ours), want, timeout)
	}
	// A duplicate, or a frame the port should have dropped, would be
	// waiting now.
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
		if step() == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	return r
}

// take collects g's frames at the peer until want arrived, then a
// little longer to see that no more do.
func take(t *testing.T, peer Peer, g *tagger, want int) [][]byte {
	t.Helper()
	var ours [][]byte
	step := func() {
		for _, f := range peer.Take(t) {
			if _, ok := g.seq(f); ok {
				ours = append(ours, f)
			}
		}
	}
	if !testutil.Poll(timeout, func() bool { step(); return len(ours) >= want }) {
		t.Fatalf("peer: %d of the %d frames transmitted arrived within %v", len(ours), want, timeout)
	}
	time.Sleep(50 * time.Millisecond)
	step()
	return ours
}

// transmit sends frames through p, a batch at a time, retrying what
// Transmit did not accept (a full ring) until all are. It checks that
// Transmit leaves the batch as it was and keeps no reference to it: the
// buffers are overwritten as soon as it returns.
func transmit(t *testing.T, p ports.Port, b *ring.Batch, frames [][]byte) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for len(frames) > 0 {
		chunk := frames[:min(len(frames), ring.BatchSize)]
		testutil.Load(b, chunk...)
		desc := b.Frames
		n, err := p.Transmit(b)
		if err != nil {
			t.Fatalf("Transmit: %v", err)
		}
		if n < 0 || n > len(chunk) {
			t.Fatalf("Transmit of %d frames returned %d", len(chunk), n)
		}
		if b.N != len(chunk) || b.Frames != desc {
			t.Fatalf("Transmit changed the batch's descriptors (N %d -> %d)", len(chunk), b.N)
		}
		for i, f := range chunk {
			if !bytes.Equal(b.Data(i), f) {
				t.Fatalf("Transmit wrote into frame %d of the batch", i)
			}
		}
		// The batch is the caller's again: scribble over it.
		for i := range chunk {
			d := b.Data(i)
			for j := range d {
				d[j] = 0xdd
			}
		}
		frames = frames[n:]
		if n < len(chunk) {
			if time.Now().After(deadline) {
				t.Fatalf("Transmit: %d frames still not accepted after %v", len(frames), timeout)
			}
			time.Sleep(time.Millisecond) // a full ring drains
		}
	}
}

// inOrder checks that got is want, frame by frame.
func inOrder(t *testing.T, what string, g *tagger, got, want [][]byte) {
	t.Helper()
	for i := range min(len(got), len(want)) {
		if !bytes.Equal(got[i], want[i]) {
			gs, _ := g.seq(got[i])
			t.Fatalf("%s: frame %d is frame %d of %d bytes, want %d bytes %x...",
				what, i, gs, len(got[i]), len(want[i]), want[i][:hdrLen])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d frames, want %d", what, len(got), len(want))
	}
}

// delta is after - before of every counter.
type delta struct {
	rxFrames, rxBytes, txFrames, txBytes uint64
	drops                                map[string]uint64
}

func diff(t *testing.T, before, after ports.Stats) delta {
	t.Helper()
	d := delta{drops: map[string]uint64{}}
	for _, c := range []struct {
		name    string
		was, is uint64
		into    *uint64
	}{
		{"RxFrames", before.RxFrames, after.RxFrames, &d.rxFrames},
		{"RxBytes", before.RxBytes, after.RxBytes, &d.rxBytes},
		{"TxFrames", before.TxFrames, after.TxFrames, &d.txFrames},
		{"TxBytes", before.TxBytes, after.TxBytes, &d.txBytes},
	} {
		if c.is < c.was {
			t.Fatalf("Stats: %s went back from %d to %d", c.name, c.was, c.is)
		}
		*c.into = c.is - c.was
	}
	for r, was := range before.Drops {
		is, ok := after.Drops[r]
		if !ok || is < was {
			t.Fatalf("Stats: drops %q went back from %d to %d", r, was, is)
		}
	}
	for r, is := range after.Drops {
		d.drops[r] = is - before.Drops[r]
	}
	return d
}

func (s *suite) receive(t *testing.T) {
	p, peer, g := s.open(t)
	b := testutil.RxBatch(t, arenaFor(p.MTU()))

	// Nothing waiting: Receive returns at once.
	done := make(chan error, 1)
	go func() {
		testutil.ResetRx(b)
		_, err := p.Receive(b)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Receive with nothing waiting: %v", err)
		}
	case <-time.After(timeout):
		t.Fatalf("Receive with nothing waiting has not returned after %v: it must not block", timeout)
	}

	// More frames than a batch holds, of every size up to the largest an
	// untagged frame can have (an Ethernet header and MTU bytes).
	before := p.Stats()
	want := g.frames(sizes(100, p.MTU()+14))
	peer.Inject(t, want...)
	r := receive(t, p, b, g, len(want))
	inOrder(t, "Receive", g, r.ours, want)
	d := diff(t, before, p.Stats())
	if d.rxFrames != r.frames || d.rxBytes != r.bytes {
		t.Errorf("Stats: RxFrames +%d, RxBytes +%d; Receive returned %d frames of %d bytes", d.rxFrames, d.rxBytes, r.frames, r.bytes)
	}
	if d.txFrames != 0 || d.txBytes != 0 {
		t.Errorf("Stats: TxFrames +%d, TxBytes +%d after receiving only", d.txFrames, d.txBytes)
	}
}

func (s *suite) transmit(t *testing.T) {
	p, peer, g := s.open(t)
	b := testutil.RxBatch(t, arenaFor(p.MTU()))

	// More frames than a batch holds, of every size up to MaxFrame.
	want := g.frames(sizes(100, MaxFrame(p.MTU())))
	var bytes uint64
	for _, f := range want {
		bytes += uint64(len(f))
	}
	before := p.Stats()
	transmit(t, p, b, want)
	inOrder(t, "peer", g, take(t, peer, g, len(want)), want)
	d := diff(t, before, p.Stats())
	if d.txFrames != uint64(len(want)) || d.txBytes != bytes {
		t.Errorf("Stats: TxFrames +%d, TxBytes +%d; transmitted %d frames of %d bytes", d.txFrames, d.txBytes, len(want), bytes)
	}
	if d.rxFrames != 0 {
		t.Errorf("Stats: RxFrames +%d after transmitting only", d.rxFrames)
	}
}

func (s *suite) receiveTooBigForBuffer(t *testing.T) {
	p, peer, g := s.open(t)
	// 384 bytes of room: a frame of 600 does not fit.
	b := testutil.RxBatch(t, ring.ArenaConfig{Frames: ring.BatchSize, FrameSize: ring.MinHeadroom + 384, Headroom: ring.MinHeadroom})
	sent := [][]byte{g.frame(0, 100), g.frame(1, 600), g.frame(2, 200)}
	before := p.Stats()
	peer.Inject(t, sent...)
	r := receive(t, p, b, g, 2)
	inOrder(t, "Receive", g, r.ours, [][]byte{sent[0], sent[2]})
	d := diff(t, before, p.Stats())
	if d.drops[s.h.RxTooBig] != 1 {
		t.Errorf("Stats: drops %q +%d, want +1 for the frame that did not fit (drops %v)", s.h.RxTooBig, d.drops[s.h.RxTooBig], d.drops)
	}
	if d.rxFrames != r.frames || d.rxBytes != r.bytes {
		t.Errorf("Stats: RxFrames +%d, RxBytes +%d; Receive returned %d frames of %d bytes", d.rxFrames, d.rxBytes, r.frames, r.bytes)
	}
}

func (s *suite) receiveOverMTU(t *testing.T) {
	if s.h.RxOverMTU == "" {
		t.Skip("the peer cannot send a frame longer than MaxFrame(MTU): its kernel refuses to")
	}
	p, peer, g := s.open(t)
	b := testutil.RxBatch(t, arenaFor(p.MTU()))
	big := MaxFrame(p.MTU()) + 1
	sent := [][]byte{g.frame(0, 60), g.frame(1, big), g.frame(2, 61)}
	before := p.Stats()
	peer.Inject(t, sent...)
	r := receive(t, p, b, g, 2)
	inOrder(t, "Receive", g, r.ours, [][]byte{sent[0], sent[2]})
	d := diff(t, before, p.Stats())
	if d.drops[s.h.RxOverMTU] != 1 {
		t.Errorf("Stats: drops %q +%d, want +1 for the frame of %d bytes, MTU %d (drops %v)", s.h.RxOverMTU, d.drops[s.h.RxOverMTU], big, p.MTU(), d.drops)
	}
	if d.rxFrames != r.frames || d.rxBytes != r.bytes {
		t.Errorf("Stats: RxFrames +%d, RxBytes +%d; Receive returned %d frames of %d bytes", d.rxFrames, d.rxBytes, r.frames, r.bytes)
	}
}

func (s *suite) transmitOverMTU(t *testing.T) {
	p, peer, g := s.open(t)
	b := testutil.RxBatch(t, arenaFor(p.MTU()))
	max := MaxFrame(p.MTU())
	sent := [][]byte{g.frame(0, 60), g.frame(1, max+1), g.frame(2, max)}
	before := p.Stats()
	// One batch: the port drops the long frame and counts it, so
	// Transmit accepts it (else the switch would count it again).
	transmit(t, p, b, sent)
	inOrder(t, "peer", g, take(t, peer, g, 2), [][]byte{sent[0], sent[2]})
	d := diff(t, before, p.Stats())
	if d.drops[s.h.TxTooBig] != 1 {
		t.Errorf("Stats: drops %q +%d, want +1 for the frame of %d bytes, MTU %d (drops %v)", s.h.TxTooBig, d.drops[s.h.TxTooBig], max+1, p.MTU(), d.drops)
	}
	if want := uint64(60 + max); d.txFrames != 2 || d.txBytes != want {
		t.Errorf("Stats: TxFrames +%d, TxBytes +%d; want 2 frames of %d bytes", d.txFrames, d.txBytes, want)
	}
}

// stats moves frames both ways through one port and checks every counter,
// and that none goes back when the port closes.
func (s *suite) stats(t *testing.T) {
	p, peer, g := s.open(t)
	rx := testutil.RxBatch(t, arenaFor(p.MTU()))
	tx := testutil.RxBatch(t, arenaFor(p.MTU()))
	before := p.Stats()

	in := g.frames(sizes(10, p.MTU()+14))
	peer.Inject(t, in...)
	r := receive(t, p, rx, g, len(in))
	inOrder(t, "Receive", g, r.ours, in)

	out := make([][]byte, 10)
	var outBytes uint64
	for i := range out {
		out[i] = g.frame(100+i, 100+i)
		outBytes += uint64(len(out[i]))
	}
	transmit(t, p, tx, out)
	inOrder(t, "peer", g, take(t, peer, g, len(out)), out)

	open := p.Stats()
	d := diff(t, before, open)
	if d.rxFrames != r.frames || d.rxBytes != r.bytes || d.txFrames != uint64(len(out)) || d.txBytes != outBytes {
		t.Errorf("Stats: rx +%d frames +%d bytes, tx +%d frames +%d bytes; want rx %d frames %d bytes, tx %d frames %d bytes",
			d.rxFrames, d.rxBytes, d.txFrames, d.txBytes, r.frames, r.bytes, len(out), outBytes)
	}
	for reason, n := range d.drops {
		if n != 0 {
			t.Errorf("Stats: drops %q +%d with nothing to drop", reason, n)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	closed := p.Stats()
	if d := diff(t, open, closed); d.rxFrames != 0 || d.txFrames != 0 {
		t.Errorf("Stats after Close: rx +%d, tx +%d frames", d.rxFrames, d.txFrames)
	}
}

// closeWhileBusy closes the port while one goroutine loops in Receive and
// another in Transmit (run with -race): Close returns, both loops end with
// ErrPortClosed, later calls return it too, a second Close is harmless,
// and (checked by open) nothing is left running or open.
func (s *suite) closeWhileBusy(t *testing.T) {
	p, peer, g := s.open(t)
	rx := testutil.RxBatch(t, arenaFor(p.MTU()))
	tx := testutil.RxBatch(t, arenaFor(p.MTU()))
	out := [][]byte{g.frame(0, 60), g.frame(1, 200), g.frame(2, 1000), g.frame(3, 60)}

	var rxCalls, txCalls, rxFrames atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	// If the test fails with the loops running, its cleanup stops them.
	var stop atomic.Bool
	t.Cleanup(func() { stop.Store(true); wg.Wait() })
	wg.Add(2)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			testutil.ResetRx(rx)
			n, err := p.Receive(rx)
			if err != nil {
				if n != 0 {
					err = fmt.Errorf("%d frames received with %w", n, err)
				}
				errs <- err
				return
			}
			rxCalls.Add(1)
			rxFrames.Add(int64(n))
		}
	}()
	go func() {
		defer wg.Done()
		for !stop.Load() {
			testutil.Load(tx, out...)
			n, err := p.Transmit(tx)
			if err != nil {
				if n != 0 {
					err = fmt.Errorf("%d frames accepted with %w", n, err)
				}
				errs <- err
				return
			}
			txCalls.Add(1)
		}
	}()
	// Busy: frames coming in, both loops turning.
	peer.Inject(t, g.frames(sizes(20, 1000))...)
	ok := testutil.Poll(timeout, func() bool { return rxFrames.Load() > 0 && txCalls.Load() > 10 })
	if !ok {
		t.Errorf("loops not busy after %v: %d Receive calls (%d frames), %d Transmit calls", timeout, rxCalls.Load(), rxFrames.Load(), txCalls.Load())
	}

	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close while busy: %v", err)
		}
	case <-time.After(timeout):
		t.Fatalf("Close while Receive and Transmit run has not returned after %v", timeout)
	}
	for range 2 {
		select {
		case err := <-errs:
			if !errors.Is(err, ports.ErrPortClosed) {
				t.Errorf("a loop ended with %v, want ErrPortClosed", err)
			}
		case <-time.After(timeout):
			t.Fatalf("a Receive or Transmit loop still runs %v after Close: it never saw ErrPortClosed", timeout)
		}
	}
	wg.Wait()

	testutil.ResetRx(rx)
	if n, err := p.Receive(rx); n != 0 || !errors.Is(err, ports.ErrPortClosed) {
		t.Errorf("Receive after Close = %d, %v; want 0, ErrPortClosed", n, err)
	}
	testutil.Load(tx, out...)
	if n, err := p.Transmit(tx); n != 0 || !errors.Is(err, ports.ErrPortClosed) {
		t.Errorf("Transmit after Close = %d, %v; want 0, ErrPortClosed", n, err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	p.Stats() // must not panic
}
