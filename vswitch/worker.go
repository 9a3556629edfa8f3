package vswitch

import (
	"encoding/binary"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/xvswitch/xvs/ring"
	"github.com/xvswitch/xvs/wnv"
)

// worker polls a set of ports on one locked OS thread and runs the
// pipeline for each received batch. All its state is owned by its
// goroutine; the switch only reads epoch and stopped.
type worker struct {
	sw          *Switch
	id          int
	arena       *ring.Arena
	pool        *ring.Pool // spare buffers for frames the switch creates or holds
	rx          *ring.Batch
	drops       dropTally
	marked      []bool         // by port index: has frames in its tx batch
	queued      []*portState   // ports with frames in their tx batch, in first-use order
	borrowed    []uint32       // pool buffers holding frames built this batch, freed after flush
	pending     []pendingFrame // frames waiting for a provider next hop's MAC
	flows       *[flowCacheSize]flowEntry
	decaps      *[decapCacheSize]decapEntry
	ext         extData   // extension stage: parked frames, forwarding decisions
	egressDrops dropTally // drops in the egress extension stage, counted on the output port

	last    *snapshot     // the snapshot of the last round
	waiter  idleWaiter    // blocks until a port has frames, where ports allow it
	epoch   atomic.Uint64 // incremented at the start of every poll round
	stopped atomic.Bool
}

func newWorker(s *Switch, id int) (*worker, error) {
	a, err := ring.NewArena(s.cfg.Arena)
	if err != nil {
		return nil, err
	}
	pool, err := ring.NewPool(a, ring.BatchSize, a.Frames()-ring.BatchSize)
	if err != nil {
		return nil, err
	}
	w := &worker{
		sw: s, id: id, arena: a, pool: pool,
		rx:       ring.NewBatch(a),
		marked:   make([]bool, MaxPorts),
		queued:   make([]*portState, 0, MaxPorts),
		borrowed: make([]uint32, 0, 2*ring.BatchSize),
		pending:  make([]pendingFrame, 0, maxPending),
		flows:    new([flowCacheSize]flowEntry),
		decaps:   new([decapCacheSize]decapEntry),
	}
	w.ext.init(a)
	w.stopped.Store(true)
	// The receive batch owns buffers [0, BatchSize) for the worker's life:
	// ports copy into them and transmit copies out of them, so they are
	// free again when a round ends.
	for i := range ring.BatchSize {
		w.rx.Frames[i].Index = uint32(i)
	}
	return w, nil
}

// Spin this many empty rounds before the adaptive mode starts sleeping,
// then sleep from 1 µs doubling up to maxIdleSleep. After idleSleeps
// sleeps, block in poll(2) on the ports' descriptors for up to idleWait
// when every port has one (ports.Waiter): Go's timer-based sleep costs
// several syscalls per wake-up, poll one, and poll wakes at the first frame.
const (
	idleSpins    = 256
	idleSleeps   = 20
	maxIdleSleep = time.Millisecond
	idleWait     = 10 * time.Millisecond
)

func (w *worker) run(stop <-chan struct{}) {
	defer w.sw.wg.Done()
	defer w.stopped.Store(true)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	busy := w.sw.cfg.PollMode == PollBusy
	idle := 0
	for {
		if idle&63 == 0 || idle > idleSpins { // check for stop without a channel op each round
			select {
			case <-stop:
				return
			default:
			}
		}
		if w.round() > 0 {
			idle = 0
			continue
		}
		idle++
		if busy || idle <= idleSpins {
			continue
		}
		if idle > idleSpins+idleSleeps && w.waiter.wait(w.last, w.id, idleWait) {
			continue
		}
		shift := min(idle-idleSpins-1, 10)
		time.Sleep(min(time.Microsecond<<shift, maxIdleSleep))
	}
}

// round polls each of the worker's ports once and returns the number of
// frames received.
func (w *worker) round() int {
	w.epoch.Add(1)
	snap := w.sw.snap.Load()
	w.last = snap
	now := w.sw.clock.Load()
	if len(w.pending) > 0 {
		w.retryPending(snap, now)
	}
	w.pollExtensions(snap, now)
	total := 0
	for _, v := range snap.byWorker[w.id] {
		total += w.poll(snap, v, now)
	}
	return total
}

// poll receives one batch from a port and runs it through the pipeline.
func (w *worker) poll(snap *snapshot, v *portView, now uint32) int {
	b := w.rx
	headroom := uint16(w.arena.Headroom())
	for i := range b.Frames {
		b.Frames[i].Offset = headroom
		b.Frames[i].Len = 0
	}
	b.N = 0
	n, err := v.st.port.Receive(b)
	if err != nil || n == 0 {
		return 0
	}
	w.ingress(v, b)
	w.pipeline(snap, v, b, now, 0)
	return n
}

// pipeline runs a batch that came in on v through the stages after
// ingress; from > 0 resumes frames after extension from-1 (their ARP/ND
// was already proxied and the extensions before it have seen them).
func (w *worker) pipeline(snap *snapshot, v *portView, b *ring.Batch, now uint32, from int) {
	// WNV applies to ports whose VSID is a virtual subnet of the policy;
	// other VSIDs are plain isolated L2 segments.
	var ps *wnv.Snapshot
	if pol := w.sw.cfg.Policy; pol != nil && v.dom != nil {
		ps = pol.Snapshot()
		if v.dom.vsid == VSIDNone {
			// the provider network: an uplink if a PA is on this port
			if pa, up := w.sw.uplinksFor(ps).byPort[v.st.name]; up && from == 0 {
				w.provider(snap, v, b, ps, pa) // resumed frames went through it before
			}
			ps = nil
		} else if _, virtual := ps.Subnet(v.dom.vsid); !virtual {
			ps = nil
		}
	}
	if ps != nil && from == 0 {
		w.proxy(v, b, ps)
	}
	if len(snap.chain) > 0 && v.dom != nil {
		w.extIngress(snap, v, b, from, now)
	}
	offload := w.sw.cfg.Offload
	if ps != nil {
		w.route(snap, v, b, ps)
		// Policy-checked traffic (spoof, isolation) must not be learned
		// into a fast path that would skip those checks.
		offload = nil
	}
	w.forward(snap, v, b, now, offload)
	w.drops.flush(&v.st.ctr)
	w.flush()
	w.freeBorrowed()
	w.ext.fwd = w.ext.fwd[:0]
}

// ingress counts what arrived, drops what cannot be forwarded at all, and
// tags every frame with its port and VSID.
func (w *worker) ingress(v *portView, b *ring.Batch) {
	var bytes uint64
	for i := range b.N {
		bytes += uint64(b.Frames[i].Len)
	}
	v.st.ctr.rxFrames.Add(uint64(b.N))
	v.st.ctr.rxBytes.Add(bytes)
	if v.dom == nil {
		w.drops[DropNoVSID] += uint32(b.N)
		b.N = 0
		return
	}
	in, vsid := v.st.idx, v.dom.vsid
	kept := 0
	for i := range b.N {
		f := &b.Frames[i]
		if f.Len < 14 {
			w.drops[DropMalformed]++
			continue
		}
		f.InPort, f.VSID, f.Hash, f.Fwd, f.Flow = in, vsid, 0, 0, 0
		if i != kept {
			// Swap, not copy: each slot keeps a distinct buffer.
			b.Frames[kept], b.Frames[i] = b.Frames[i], b.Frames[kept]
		}
		kept++
	}
	b.N = kept
}

const macGroupBit = uint64(1) << 40 // I/G bit: the low bit of the first octet

func mac48(b []byte) uint64 {
	return uint64(binary.BigEndian.Uint32(b))<<16 | uint64(binary.BigEndian.Uint16(b[4:]))
}

// forward learns source addresses and queues each frame on its output
// ports' transmit batches.
func (w *worker) forward(snap *snapshot, v *portView, b *ring.Batch, now uint32, off Offload) {
	dom := v.dom
	if dom == nil {
		return
	}
	macs := dom.macs
	in := uint32(v.st.idx)
	for i := range b.N {
		f := &b.Frames[i]
		d := b.Data(i)
		dst, src := mac48(d[0:6]), mac48(d[6:12])
		if src&macGroupBit != 0 {
			w.drops[DropMalformed]++
			continue
		}
		switch macs.learn(src, in, now) {
		case learnFull:
			w.drops[DropLearnCap]++
		case learnNew, learnMoved:
			if off != nil {
				off.Learn(dom.vsid, src, v.st.port)
			}
		}
		if f.Fwd != 0 && !w.extForward(snap, f) {
			continue // the forwarding extension replaced the lookup
		}
		if dst&macGroupBit == 0 {
			if s := macs.lookup(dst); s != nil {
				out := s.port.Load()
				if out == in {
					w.drops[DropSamePort]++
					continue
				}
				// The entry may name a port removed or moved since: only
				// trust it if the port is in this domain in this snapshot.
				if int(out) < len(snap.views) {
					if ov := snap.views[out]; ov != nil && ov.dom == dom {
						w.enqueue(ov.st, f)
						continue
					}
				}
			}
		}
		for _, m := range dom.members {
			if uint32(m) != in {
				w.enqueue(snap.views[m].st, f)
			}
		}
	}
}

// enqueue adds a frame descriptor to a port's transmit batch, sending the
// batch at once when it is full.
func (w *worker) enqueue(st *portState, f *ring.Frame) {
	tb := st.tx[w.id]
	if !w.marked[st.idx] {
		w.marked[st.idx] = true
		w.queued = append(w.queued, st)
	}
	tb.Frames[tb.N] = *f
	tb.N++
	if tb.N == ring.BatchSize {
		w.transmit(st, tb)
	}
}

// flush sends every queued transmit batch.
func (w *worker) flush() {
	for _, st := range w.queued {
		w.marked[st.idx] = false
		if tb := st.tx[w.id]; tb.N > 0 {
			w.transmit(st, tb)
		}
	}
	w.queued = w.queued[:0]
}

// transmit runs the egress extensions over a port's batch and sends it.
func (w *worker) transmit(st *portState, tb *ring.Batch) {
	if snap := w.last; len(snap.chain) > 0 {
		w.extEgress(snap, st, tb, len(snap.chain)-1, w.sw.clock.Load())
	}
	w.transmitNow(st, tb)
}

// transmitNow hands a batch to its port and counts what the port took.
func (w *worker) transmitNow(st *portState, tb *ring.Batch) {
	if tb.N == 0 {
		return
	}
	if st.lockTx {
		st.txMu.Lock()
	}
	n, err := st.port.Transmit(tb)
	if st.lockTx {
		st.txMu.Unlock()
	}
	n = min(max(n, 0), tb.N)
	var bytes uint64
	for i := range n {
		bytes += uint64(tb.Frames[i].Len)
	}
	st.ctr.txFrames.Add(uint64(n))
	st.ctr.txBytes.Add(bytes)
	if lost := tb.N - n; lost > 0 {
		if err != nil {
			st.ctr.drops[DropPortError].Add(uint64(lost))
		} else {
			st.ctr.drops[DropRingFull].Add(uint64(lost))
		}
	}
	tb.N = 0
}
