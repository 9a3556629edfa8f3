// Package porttest provides an in-memory [ports.Port] for tests and
// benchmarks: a test injects frames as if they arrived from the wire and
// collects what the switch sent, with no kernel, device or privilege.
//
// Two kinds exist. [New] returns a port with a queue: Inject adds frames,
// Sent and WaitSent return copies of what was transmitted. [NewReplay]
// returns a port for benchmarks that receives the same frames forever and
// only counts what it transmits, allocating nothing.
package porttest

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xvswitch/xvs/ports"
	"github.com/xvswitch/xvs/ring"
)

// DefaultMTU is the MTU of in-memory ports.
const DefaultMTU = 1500

// maxOverMTU is what a frame may add to the MTU: an Ethernet header with
// one 802.1Q tag, as for every port of xvs.
const maxOverMTU = 18

// Port is an in-memory port.
type Port struct {
	name string
	mac  net.HardwareAddr
	mtu  int

	mu      sync.Mutex
	inq     [][]byte
	spare   [][]byte // buffers of received frames, reused by Inject
	sent    [][]byte
	arrived *sync.Cond

	replay  [][]byte // non-nil: replay mode
	rnext   int
	collect bool

	closed                               atomic.Bool
	rxFrames, rxBytes, txFrames, txBytes atomic.Uint64
	tooBig                               atomic.Uint64 // received frames that did not fit, or were over MTU
	txTooBig                             atomic.Uint64 // frames over MTU given to Transmit
	txLimit                              atomic.Int64  // accept at most this many per Transmit; <0: unlimited
}

var _ ports.Port = (*Port)(nil)

// New returns a queue port. mac may be nil.
func New(name string, mac net.HardwareAddr) *Port {
	p := &Port{name: name, mac: mac, mtu: DefaultMTU, collect: true}
	p.arrived = sync.NewCond(&p.mu)
	p.txLimit.Store(-1)
	return p
}

// NewReplay returns a port whose Receive fills every batch with frames,
// cycling through them forever, and whose Transmit only counts.
func NewReplay(name string, frames [][]byte) *Port {
	p := New(name, nil)
	p.replay = frames
	p.collect = false
	return p
}

// Name implements ports.Port.
func (p *Port) Name() string { return p.name }

// MAC implements ports.Port.
func (p *Port) MAC() net.HardwareAddr { return p.mac }

// MTU implements ports.Port.
func (p *Port) MTU() int { return p.mtu }

// Inject queues frames for the switch to receive. The port keeps copies,
// in buffers it reuses once the switch has received them, so a steady
// inject-and-forward loop allocates nothing. Receive drops (and counts as
// too-big) a frame longer than the MTU allows, as a device would.
func (p *Port) Inject(frames ...[]byte) {
	p.mu.Lock()
	for _, f := range frames {
		var buf []byte
		if n := len(p.spare); n > 0 {
			buf, p.spare = p.spare[n-1][:0], p.spare[:n-1]
		}
		p.inq = append(p.inq, append(buf, f...))
	}
	p.mu.Unlock()
}

// Pending is the number of injected frames the switch has not received yet.
func (p *Port) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.inq)
}

// SetCollect turns keeping copies of transmitted frames on or off (off:
// Transmit only counts, allocating nothing, as benchmarks need).
func (p *Port) SetCollect(on bool) {
	p.mu.Lock()
	p.collect = on
	p.mu.Unlock()
}

// SetTxLimit makes Transmit accept at most n frames per call, as a full
// device ring would; n < 0 removes the limit.
func (p *Port) SetTxLimit(n int) { p.txLimit.Store(int64(n)) }

// Receive implements ports.Port.
func (p *Port) Receive(b *ring.Batch) (int, error) {
	if p.closed.Load() {
		return 0, ports.ErrPortClosed
	}
	if p.replay != nil {
		return p.receiveReplay(b), nil
	}
	p.mu.Lock()
	n, used := 0, 0
	for used < len(p.inq) && n < ring.BatchSize {
		f := p.inq[used]
		used++
		p.spare = append(p.spare, f)
		room := b.Room(n)
		if len(f) > len(room) || len(f) > p.mtu+maxOverMTU {
			p.tooBig.Add(1)
			continue
		}
		b.Frames[n].Len = uint16(copy(room, f))
		p.rxBytes.Add(uint64(len(f)))
		n++
	}
	// Move the rest to the front: the queue's array is reused, not regrown.
	p.inq = p.inq[:copy(p.inq, p.inq[used:])]
	p.mu.Unlock()
	b.N = n
	p.rxFrames.Add(uint64(n))
	return n, nil
}

func (p *Port) receiveReplay(b *ring.Batch) int {
	var bytes uint64
	for i := range ring.BatchSize {
		f := p.replay[p.rnext]
		p.rnext++
		if p.rnext == len(p.replay) {
			p.rnext = 0
		}
		b.Frames[i].Len = uint16(copy(b.Room(i), f))
		bytes += uint64(len(f))
	}
	b.N = ring.BatchSize
	p.rxFrames.Add(ring.BatchSize)
	p.rxBytes.Add(bytes)
	return ring.BatchSize
}

// Transmit implements ports.Port. A frame longer than the MTU allows is
// dropped, counted as too-big and counted among those accepted, as the
// device ports do; the rest are sent up to the limit SetTxLimit set.
func (p *Port) Transmit(b *ring.Batch) (int, error) {
	if p.closed.Load() {
		return 0, ports.ErrPortClosed
	}
	limit := p.txLimit.Load()
	maxLen := p.mtu + maxOverMTU
	var sent, tooBig, bytes uint64
	i := 0
	if !p.collect && limit < 0 {
		// A benchmark's port: only count, in a loop as tight as the
		// switch's own, so that the harness does not weigh on the figure.
		for ; i < b.N; i++ {
			l := uint64(b.Frames[i].Len)
			if l > uint64(maxLen) {
				tooBig++
				continue
			}
			bytes += l
		}
		sent = uint64(b.N) - tooBig
		i = b.N
	}
	if p.collect {
		p.mu.Lock()
	}
	for ; i < b.N; i++ {
		l := int(b.Frames[i].Len)
		if l > maxLen {
			tooBig++
			continue
		}
		if limit >= 0 && sent == uint64(limit) {
			break
		}
		if p.collect {
			p.sent = append(p.sent, append([]byte(nil), b.Data(i)...))
		}
		sent++
		bytes += uint64(l)
	}
	if p.collect {
		p.arrived.Broadcast()
		p.mu.Unlock()
	}
	p.txFrames.Add(sent)
	p.txBytes.Add(bytes)
	if tooBig != 0 {
		p.txTooBig.Add(tooBig)
	}
	return i, nil
}

// Sent returns and forgets the frames transmitted so far.
func (p *Port) Sent() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.sent
	p.sent = nil
	return s
}

// WaitSent waits until at least n frames were transmitted, then returns and
// forgets them all. It fails when they do not arrive within timeout.
func (p *Port) WaitSent(n int, timeout time.Duration) ([][]byte, error) {
	deadline := time.Now().Add(timeout)
	t := time.AfterFunc(timeout, func() {
		p.mu.Lock()
		p.arrived.Broadcast()
		p.mu.Unlock()
	})
	defer t.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.sent) < n {
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("port %s: %d frames sent, want %d within %v", p.name, len(p.sent), n, timeout)
		}
		p.arrived.Wait()
	}
	s := p.sent
	p.sent = nil
	return s, nil
}

// TxFrames is the number of frames transmitted since New.
func (p *Port) TxFrames() uint64 { return p.txFrames.Load() }

// Stats implements ports.Port.
func (p *Port) Stats() ports.Stats {
	return ports.Stats{
		RxFrames: p.rxFrames.Load(), RxBytes: p.rxBytes.Load(),
		TxFrames: p.txFrames.Load(), TxBytes: p.txBytes.Load(),
		Drops: map[string]uint64{"too-big": p.tooBig.Load() + p.txTooBig.Load()},
	}
}

// Close implements ports.Port.
func (p *Port) Close() error {
	p.closed.Store(true)
	return nil
}

// Closed reports whether Close was called.
func (p *Port) Closed() bool { return p.closed.Load() }
