package vswitch

import (
	"encoding/binary"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/xvswitch/xvs/extensions"
	"github.com/xvswitch/xvs/extensions/api"
	"github.com/xvswitch/xvs/ring"
	"github.com/xvswitch/xvs/wnv/datapath"
)

// worker polls a set of ports on one locked OS thread and runs the
// pipeline for each received batch. All its state is owned by its
// goroutine; the switch only reads epoch and stopped.
type worker struct {
	sw       *Switch
	id       int
	arena    *ring.Arena
	pool     *ring.Pool // spare buffers for frames the switch creates or holds
	rx       *ring.Batch
	drops    dropTally
	marked   []bool       // by port index: has frames in its tx batch
	queued   []*portState // ports with frames in their tx batch, in first-use order
	borrowed []uint32     // pool buffers of resumed frames, freed after flush
	one      *ring.Batch  // a frame an extension released, going on through the pipeline

	wnv      *datapath.Module  // the WNV module
	ext      *extensions.Stage // the extension stage
	extDrops extensions.Tally  // the extension stage's drops in one batch
	wnvDrops datapath.Tally    // the WNV module's drops in one call

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
		one:      ring.NewBatch(a),
		marked:   make([]bool, MaxPorts),
		queued:   make([]*portState, 0, MaxPorts),
		borrowed: make([]uint32, 0, 2*ring.BatchSize),
		ext:      extensions.NewStage(id, a, pool),
	}
	wcfg := datapath.Config{HeadEndReplication: s.cfg.HeadEndReplication}
	if m := s.cfg.PolicyMiss; m != nil {
		wcfg.Miss = m.Miss
	}
	w.wnv = datapath.New(wcfg, s.provider, a, pool)
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
	var policyVersion uint64
	if pol := w.sw.cfg.Policy; pol != nil {
		ps := pol.Snapshot()
		policyVersion = ps.Version()
		w.wnv.Begin(ps, snap.wnvPorts, now)
		if w.wnv.Pending() > 0 {
			w.retryPending(snap)
		}
	}
	if snap.chain.Len() > 0 || w.ext.Parked() > 0 {
		w.ext.Poll(snap.chain, policyVersion, now)
		w.resumeReleased(snap, now)
	}
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
	w.pipeline(snap, v, b, now)
	w.ext.EndRun()
	return n
}

// wnvRole says what the WNV module is for a port's frames.
type wnvRole uint8

const (
	wnvNone   wnvRole = iota // a plain isolated L2 segment (or no policy)
	wnvVM                    // a VM port in a virtual subnet: resolve, then route
	wnvUplink                // an uplink: provider ARP, decapsulation, rewrite back
)

// wnvRoleOf says what the WNV module does for frames from v.
func (w *worker) wnvRoleOf(v *portView) wnvRole {
	if w.sw.cfg.Policy == nil || v.dom == nil {
		return wnvNone
	}
	if v.dom.vsid == VSIDNone {
		if w.wnv.IsUplink(v.st.name) {
			return wnvUplink
		}
		return wnvNone
	}
	if w.wnv.IsVirtual(v.dom.vsid) {
		return wnvVM
	}
	return wnvNone
}

// pipeline runs a batch that came in on v through the stages after
// ingress: the WNV module where Hyper-V's WNV filter sits (frames from the
// uplink; address resolution for frames from VMs), the ingress extensions,
// then WNV routing and the learning bridge.
func (w *worker) pipeline(snap *snapshot, v *portView, b *ring.Batch, now uint32) {
	role := w.wnvRoleOf(v)
	switch role {
	case wnvUplink:
		w.applyWNV(snap, b, w.wnv.FromUplink(v.wnvPort, b))
	case wnvVM:
		w.applyWNV(snap, b, w.wnv.Resolve(v.wnvPort, b))
	}
	if snap.chain.Len() > 0 && v.dom != nil && b.N > 0 {
		w.ext.Run(b, api.Ingress, v.st.idx, v.dom.vsid, &w.extDrops)
		w.takeExtDrops(&w.drops)
	}
	w.afterExtensions(snap, v, b, now, role)
}

// afterExtensions routes (WNV) and forwards a batch from v that has been
// through the ingress extensions, and sends what it queued.
func (w *worker) afterExtensions(snap *snapshot, v *portView, b *ring.Batch, now uint32, role wnvRole) {
	offload := w.sw.cfg.Offload
	if role == wnvVM {
		w.applyWNV(snap, b, w.wnv.Route(v.wnvPort, b))
		// Policy-checked traffic (spoof, isolation) must not be learned
		// into a fast path that would skip those checks.
		offload = nil
	}
	w.forward(snap, v, b, now, offload)
	w.drops.flush(&v.st.ctr)
	w.flush()
	w.wnv.Release()
	w.freeBorrowed()
}

// applyWNV carries out the WNV module's verdicts on a batch: frames it
// sends go to their ports, frames it leaves (Continue) stay in the batch
// for the bridge, and what it emitted (answers, requests, errors) is
// queued first.
func (w *worker) applyWNV(snap *snapshot, b *ring.Batch, vs []datapath.Verdict) {
	w.takeWNV(snap)
	kept := 0
	var last *portState // frames of a batch mostly go to one port
	for i := range b.N {
		f := &b.Frames[i]
		switch vs[i].Action {
		case datapath.Continue:
			if i != kept {
				// Swap, not copy: each slot keeps a distinct buffer.
				b.Frames[kept], b.Frames[i] = b.Frames[i], b.Frames[kept]
			}
			kept++
		case datapath.Deliver, datapath.Send:
			if last == nil || last.idx != vs[i].Port {
				last = snap.views[vs[i].Port].st
			}
			w.enqueue(last, f)
		case datapath.Flood:
			dom := snap.byVSID[f.VSID]
			if dom == nil {
				w.drops[DropNVGRENoDst]++
				continue
			}
			for _, m := range dom.members {
				w.enqueue(snap.views[m].st, f)
			}
		}
	}
	b.N = kept
}

// takeWNV counts the WNV module's drops since the last call and queues the
// frames it emitted, in order.
func (w *worker) takeWNV(snap *snapshot) {
	w.wnv.TakeDrops(&w.wnvDrops)
	w.countWNVDrops(&w.drops)
	for i := range w.wnv.Emits {
		e := &w.wnv.Emits[i]
		w.enqueue(snap.views[e.Port].st, &e.Frame)
	}
	w.wnv.Emits = w.wnv.Emits[:0]
}

// countWNVDrops adds the WNV module's drops to t.
func (w *worker) countWNVDrops(t *dropTally) {
	for r, n := range w.wnvDrops {
		if n != 0 {
			t[wnvDropReasons[r]] += n
			w.wnvDrops[r] = 0
		}
	}
}

// takeExtDrops adds the extension stage's drops of a batch to t.
func (w *worker) takeExtDrops(t *dropTally) {
	for r, n := range w.extDrops {
		if n != 0 {
			t[extDropReasons[r]] += n
			w.extDrops[r] = 0
		}
	}
}

// retryPending sends the frames the WNV module held for a next hop that
// has answered since, and counts those it gave up on on the uplink.
func (w *worker) retryPending(snap *snapshot) {
	up, ok := w.wnv.Retry()
	w.takeWNV(snap)
	if ok && int(up) < len(snap.views) && snap.views[up] != nil {
		w.drops.flush(&snap.views[up].st.ctr)
	}
	w.flush()
	w.wnv.Release()
}

// resumeReleased goes on with the frames the extension stage released
// this round: ingress frames through WNV routing and forwarding, egress
// frames to their port; and counts its drops on their ports.
func (w *worker) resumeReleased(snap *snapshot, now uint32) {
	for _, d := range w.ext.Drops {
		if int(d.Port) < len(snap.views) && snap.views[d.Port] != nil {
			snap.views[d.Port].st.ctr.drops[extDropReasons[d.Reason]].Add(1)
		}
	}
	for i := range w.ext.Resumed {
		r := &w.ext.Resumed[i]
		b := w.one
		b.Frames[0] = r.Frame
		b.N = 1
		w.borrowed = append(w.borrowed, r.Frame.Index) // freed when the run ends
		if r.Dir == api.Egress {
			if int(r.Out) >= len(snap.views) || snap.views[r.Out] == nil {
				w.drops[DropPortError]++ // the port left between the stage's check and now
				w.freeBorrowed()
				continue
			}
			w.transmitNow(snap.views[r.Out].st, b)
			w.freeBorrowed()
			continue
		}
		if int(r.Frame.InPort) >= len(snap.views) || snap.views[r.Frame.InPort] == nil || snap.views[r.Frame.InPort].dom == nil {
			w.freeBorrowed() // the stage checked; the port left since
			continue
		}
		v := snap.views[r.Frame.InPort]
		w.afterExtensions(snap, v, b, now, w.wnvRoleOf(v))
	}
	w.ext.Resumed, w.ext.Drops = w.ext.Resumed[:0], w.ext.Drops[:0]
}

func (w *worker) freeBorrowed() {
	for _, idx := range w.borrowed {
		w.pool.Put(idx)
	}
	w.borrowed = w.borrowed[:0]
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

// extForward sends f where its forwarding extension decided and reports
// whether the built-in lookup should also run (FlagDefault).
func (w *worker) extForward(snap *snapshot, f *ring.Frame) bool {
	d := w.ext.Decision(f.Fwd)
	if d == nil {
		return true
	}
	for _, p := range d.Ports[:d.N] {
		if int(p) >= len(snap.views) || snap.views[p] == nil {
			w.drops[DropExtensionInvalid]++
			continue
		}
		if p == d.Origin {
			continue // never back out of the port it came in on
		}
		// Only a port inside the extension's scope, of the frame's own
		// VSID: never another tenant's, nor the uplink, which takes a
		// virtual subnet's frames only encapsulated. A port of no
		// virtual subnet that is not an uplink (a monitor port the
		// operator set up) may take copies of any VSID.
		v := snap.views[p]
		if v.dom == nil || !d.Allows(p, v.dom.vsid) ||
			(v.dom.vsid != f.VSID && (v.dom.vsid != VSIDNone || w.wnvRoleOf(v) == wnvUplink)) {
			w.drops[DropExtensionScope]++
			continue
		}
		w.enqueue(v.st, f)
	}
	if !d.Default && d.N == 0 {
		w.drops[DropExtension]++
	}
	return d.Default
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
	if w.last.chain.Len() > 0 {
		n := tb.N
		w.ext.Run(tb, api.Egress, st.idx, st.vsid, &w.extDrops)
		if tb.N != n { // nothing to count unless frames left the batch
			var t dropTally
			w.takeExtDrops(&t)
			t.flush(&st.ctr)
		}
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
