package vswitch

import (
	"time"

	"github.com/xvswitch/xvs/extensions"
	"github.com/xvswitch/xvs/extensions/api"
	"github.com/xvswitch/xvs/ring"
)

// The extension stage. Ingress runs the chain in order after the proxy and
// before routing and forwarding; egress runs it in reverse order just
// before a port's Transmit. A batch comes from one port, so scope (ports,
// VSIDs, direction) is checked per batch.
//
// Capture extensions get a copy of each frame in shared memory; when their
// ring is full the copy is dropped and counted, and forwarding goes on.
//
// Filter and forwarding extensions answer per flow. A frame whose flow has
// a cached verdict is handled at once. Otherwise a copy is parked in a
// spare buffer, a request goes to the extension, and the frame leaves the
// batch; when the verdict comes back (polled at the start of each round)
// it is cached and the frame resumes at the next extension of the chain.
// A verdict later than the extension's deadline fails the extension.

// maxParked is how many frames one worker holds waiting for verdicts.
const maxParked = 256

// cacheEntries is the size of each worker's verdict cache per extension.
const cacheEntries = 4096

// maxShortRuns is how many runs of no frame a filter tolerates in one
// batch before it stops starting runs for the rest of it.
const maxShortRuns = 4

// pendingTTL bounds, in seconds, how long a flow's later frames wait for
// a verdict asked for its first frame before asking again.
const pendingTTL = 2

// extState is a loaded extension as the control plane keeps it.
type extState struct {
	ext     *extensions.Extension
	enabled bool
	workers []*extWorker // by worker id; owned by that worker
}

// extWorker is one worker's private state for one extension.
type extWorker struct {
	cache         *extensions.Cache
	inst          *extensions.Instance // the instance whose rings this worker is attached to
	gen           uint64               // the instance's generation last seen
	skip, backoff int                  // capture: batches to skip, and the next skip, after a full ring
	draining      bool                 // capture: the ring was full; wait until half of it is free
	// Counts not yet added to the extension's counters: the busiest ones
	// are kept here per batch and added once a round (flushCounts), so a
	// batch costs no atomic add.
	hits, captured, captureDrops uint64
	policy                       uint64 // the WNV policy version the cache was filled under
}

// flushCounts adds the counts kept since the last round to c.
func (xw *extWorker) flushCounts(c *extensions.Counters) {
	if xw.hits > 0 {
		c.CacheHits.Add(xw.hits)
		xw.hits = 0
	}
	if xw.captured > 0 {
		c.Captured.Add(xw.captured)
		xw.captured = 0
	}
	if xw.captureDrops > 0 {
		c.CaptureDrops.Add(xw.captureDrops)
		xw.captureDrops = 0
	}
}

// extView is an extension in a snapshot's chain.
type extView struct {
	st         *extState
	kind       api.Kind
	dirs       extensions.Directions
	vsids      map[uint32]bool // nil: all
	ports      []bool          // by port index; nil: all
	failClosed bool
	every      bool
	ttl        uint32 // seconds
	deadline   int64  // ns
}

func (x *extView) sees(port uint16, vsid uint32) bool {
	if x.ports != nil && (int(port) >= len(x.ports) || !x.ports[port]) {
		return false
	}
	return x.vsids == nil || x.vsids[vsid]
}

// parkedFrame is a frame waiting for an extension's verdict.
type parkedFrame struct {
	f      ring.Frame // a copy in a spare buffer
	st     *extState
	inst   *extensions.Instance
	tag    uint32 // must match the cookie's
	dir    api.Direction
	out    uint16
	sent   int64 // ns
	key    extensions.FlowKey
	hash   uint32
	slot   uint16 // index in parked
	asked  bool   // a request was sent; else it follows its flow's request
	gen    uint64 // the extension's generation when parked
	inUse  bool
	cached bool // verdict may be cached
}

// fwdDecision is a forwarding extension's answer, for the frames of one
// pipeline run that carry its index in Frame.Fwd.
type fwdDecision struct {
	ports  [api.MaxPorts]uint16
	n      uint8
	dflt   bool
	origin uint16 // the port the frame came in on
}

// extData is a worker's extension state.
type extData struct {
	parked    [maxParked]parkedFrame
	free      []uint16 // free parked slots
	nparked   int
	tag       uint32
	fwd       []fwdDecision
	resume    *ring.Batch
	key       extensions.FlowKey
	nowNs     int64 // this round's time (0: not read yet; see now)
	lastScan  int64
	lastChain []*extView
	flowTag   uint32 // the last ring.Meta.Flow handed out
}

// newFlowTag returns a tag for a newly cached flow (see ring.Meta.Flow).
// Tags are unique among a worker's cache entries: when they wrap, every
// cache of the worker is forgotten, since an old entry's tag could come
// back for another flow.
func (w *worker) newFlowTag() uint32 {
	e := &w.ext
	e.flowTag++
	if e.flowTag == 0 {
		e.flowTag = 1
		for _, x := range e.lastChain {
			x.st.workers[w.id].cache.Invalidate()
		}
	}
	return e.flowTag
}

// now is the time of this round, read once when first needed: a round in
// which every frame hits the cache needs no clock.
func (d *extData) now() int64 {
	if d.nowNs == 0 {
		d.nowNs = time.Now().UnixNano()
	}
	return d.nowNs
}

func (d *extData) init(a *ring.Arena) {
	d.fwd = make([]fwdDecision, 0, 2*ring.BatchSize)
	d.resume = ring.NewBatch(a)
	d.free = make([]uint16, 0, maxParked)
	for i := maxParked - 1; i >= 0; i-- {
		d.free = append(d.free, uint16(i))
	}
}

// runExtension runs one extension over a batch in one direction; out is
// the egress port (api.NoPort on ingress).
func (w *worker) runExtension(x *extView, b *ring.Batch, dir api.Direction, out uint16, now uint32, drops *dropTally) {
	xw := x.st.workers[w.id]
	inst := xw.inst
	if inst == nil || inst.Failed() || x.st.ext.Live() != inst {
		c := &x.st.ext.Counters
		c.FailedFrames.Add(uint64(b.N))
		if x.failClosed && x.kind != api.KindCapture {
			drops[DropExtensionFailed] += uint32(b.N)
			b.N = 0
		}
		return
	}
	ch := inst.Channel(w.id)
	if x.kind == api.KindCapture {
		if w.capture(x, xw, ch, b, dir, out) {
			inst.Kick()
		}
		return
	}
	w.filter(x, xw, inst, ch, b, dir, out, now, drops)
}

// capture copies each frame of b into the extension's ring. When the
// ring is full the copies are dropped, and the next batches skip the ring
// altogether (doubling up to maxCaptureSkip batches while it stays full):
// asking a busy ring for room costs a cache miss on the consumer's index,
// which would make a slow capture slow forwarding down.
func (w *worker) capture(x *extView, xw *extWorker, ch *extensions.Channel, b *ring.Batch, dir api.Direction, out uint16) (published bool) {
	if xw.skip > 0 {
		xw.skip--
		xw.captureDrops += uint64(b.N)
		return false
	}
	r := &ch.Down
	if xw.draining {
		// The ring filled up: write again only once the extension has
		// taken half of it. Copies then go out in bursts into slots it
		// let go of long ago, rather than one by one into the lines it
		// has just read, each of which would cost a transfer between
		// the two cores.
		if r.Free() < r.Cap()/2 {
			xw.captureDrops += uint64(b.N)
			xw.backoff = min(max(2*xw.backoff, 1), maxCaptureSkip)
			xw.skip = xw.backoff
			return false
		}
		xw.draining = false
	}
	t := w.ext.now()
	n := 0
	for i := range b.N {
		d, slot, ok := r.Reserve()
		if !ok {
			break
		}
		f := &b.Frames[i]
		data := b.Data(i)
		c := copy(slot, data)
		d.Time, d.Len, d.OrigLen = t, uint32(c), uint32(len(data))
		d.VSID, d.InPort, d.OutPort = f.VSID, f.InPort, out
		d.Type, d.Dir = api.TypeCapture, uint8(dir)
		n++
	}
	if n > 0 {
		r.Publish()
		xw.captured += uint64(n)
	}
	if lost := b.N - n; lost > 0 {
		xw.captureDrops += uint64(lost)
		xw.backoff = min(max(2*xw.backoff, 1), maxCaptureSkip)
		xw.skip = xw.backoff
		xw.draining = true
	} else {
		xw.backoff = 0
	}
	return n > 0
}

// maxCaptureSkip bounds the batches a worker skips after finding a
// capture ring full.
const maxCaptureSkip = 64

// filter applies cached verdicts and parks the frames without one.
func (w *worker) filter(x *extView, xw *extWorker, inst *extensions.Instance, ch *extensions.Channel, b *ring.Batch, dir api.Direction, out uint16, now uint32, drops *dropTally) {
	if g := inst.Generation(); g != xw.gen {
		xw.gen = g
		xw.cache.Invalidate()
	}
	if pol := w.sw.cfg.Policy; pol != nil {
		// a verdict may depend on where the policy sends the flow
		if v := pol.Version(); v != xw.policy {
			xw.policy = v
			xw.cache.Invalidate()
		}
	}
	// Forwarding runs on ingress only, where a batch comes from one port:
	// one VSID, checked once.
	if x.kind == api.KindForward && b.N > 0 && !inst.Claims(b.Frames[0].VSID) {
		return
	}
	var hits, misses, sent, dropped, busy uint64
	key := &w.ext.key
	// Frames of the flow that last passed (the run) go through Scan in a
	// tight loop; the others one by one.
	var run *extensions.Run
	if !x.every && b.N > 0 {
		port := out
		if dir == api.Ingress {
			port = b.Frames[0].InPort // a batch on ingress comes from one port
		}
		run = xw.cache.PassRun(now, dir, port)
	}
	kept := 0
	// Runs that end at once (flows interleaved frame by frame) cost more
	// than they save: after a few, the rest of the batch goes without.
	shortRuns := 0
	for i := 0; i < b.N; {
		if run != nil {
			j := run.Scan(b, i)
			if j == i {
				if shortRuns++; shortRuns == maxShortRuns {
					run = nil
				}
			}
			if j > i {
				hits += uint64(j - i)
				if kept != i {
					for ; i < j; i++ {
						b.Frames[kept], b.Frames[i] = b.Frames[i], b.Frames[kept]
						kept++
					}
				} else {
					kept, i = j, j
				}
				if i == b.N {
					break
				}
			}
		}
		f := &b.Frames[i]
		data := b.Data(i)
		i++
		verdict, expires, found := uint8(0), uint32(0), false
		var e *extensions.CacheEntry
		if !x.every && dir == api.Egress && f.Flow != 0 {
			// a frame that carries an ingress flow tag: found by the tag
			verdict, expires, found = xw.cache.LookupTag(f.Flow, out, now)
		}
		if !found {
			extensions.MakeFlowKey(key, data, f.VSID, dir, f.InPort, out)
			h := key.Hash()
			if !x.every {
				e = xw.cache.Lookup(key, h, now)
			}
			switch {
			case e == nil: // the flow's first frame, or the extension sees every frame
				if !x.every {
					misses++
				}
				if !w.park(x, inst, ch, f, data, dir, out, h, true) {
					busy++
					drops[DropExtensionBusy]++
					continue
				}
				if !x.every {
					xw.cache.Slot(key, h, now, now+pendingTTL).Verdict = extensions.VerdictPending
				}
				sent++
				continue
			case e.Verdict == extensions.VerdictPending: // asked already: wait for that verdict
				if !w.park(x, inst, ch, f, data, dir, out, h, false) {
					busy++
					drops[DropExtensionBusy]++
				}
				continue
			}
			verdict, expires = e.Verdict, e.Expires
			if dir == api.Egress && f.Flow != 0 {
				xw.cache.SetTag(f.Flow, out, e)
			}
		}
		hits++
		switch verdict {
		case api.VerdictDrop:
			dropped++
			drops[DropExtension]++
			continue
		case api.VerdictForward:
			if e != nil { // always: forwarding runs on ingress, found by key
				f.Fwd = w.decide(e.Verdict, e.Flags, e.NPorts, &e.Ports, f.InPort)
			}
		case api.VerdictPass:
			flow := f.Flow
			if dir == api.Ingress && e != nil { // e is always set on ingress
				flow = e.Tag
				f.Flow = flow
			}
			if shortRuns < maxShortRuns {
				run = xw.cache.StartPassRun(data, dir, f.InPort, out, f.VSID, flow, expires)
			}
		}
		if k := i - 1; k != kept {
			b.Frames[kept], b.Frames[k] = b.Frames[k], b.Frames[kept]
		}
		kept++
	}
	b.N = kept
	c := &x.st.ext.Counters
	xw.hits += hits
	if misses > 0 {
		c.CacheMisses.Add(misses)
	}
	if dropped > 0 {
		c.Dropped.Add(dropped)
	}
	if busy > 0 {
		c.Busy.Add(busy)
	}
	if sent > 0 {
		c.Sent.Add(sent)
		ch.Down.Publish()
		inst.Kick()
	}
}

// park copies a frame into a spare buffer and, if ask, sends it to the
// extension; otherwise it waits for the verdict of its flow's first frame.
func (w *worker) park(x *extView, inst *extensions.Instance, ch *extensions.Channel, f *ring.Frame, data []byte, dir api.Direction, out uint16, h uint32, ask bool) bool {
	e := &w.ext
	if len(e.free) == 0 {
		return false
	}
	if len(data) > ch.Down.SlotSize() {
		x.st.ext.Counters.TooBig.Add(1)
		return false
	}
	if ask && ch.Down.Free() == 0 {
		return false
	}
	idx, ok := w.pool.Get()
	if !ok {
		return false
	}
	e.tag++
	pi := e.free[len(e.free)-1]
	e.free = e.free[:len(e.free)-1]
	e.nparked++
	p := &e.parked[pi]
	*p = parkedFrame{f: *f, st: x.st, inst: inst, tag: e.tag, dir: dir, out: out, sent: e.now(), key: e.key, hash: h, slot: pi, inUse: true, cached: !x.every, gen: x.st.workers[w.id].gen}
	p.f.Index = idx
	p.f.Offset = uint16(w.arena.Headroom())
	p.f.Fwd = 0
	p.f.Flow = 0 // its verdict may modify it: no longer one of a run
	copy(w.arena.Buffer(idx)[p.f.Offset:], data)
	if ask {
		w.ask(ch, p, data)
	}
	return true
}

// ask sends a parked frame's request (the ring has room: checked by the
// caller).
func (w *worker) ask(ch *extensions.Channel, p *parkedFrame, data []byte) {
	d, slot, _ := ch.Down.Reserve()
	n := copy(slot, data)
	d.Cookie = uint64(p.tag)<<32 | uint64(p.slot)
	d.Time, d.Len, d.OrigLen = w.ext.now(), uint32(n), uint32(len(data))
	d.VSID, d.InPort, d.OutPort = p.f.VSID, p.f.InPort, p.out
	d.Type, d.Dir = api.TypeRequest, uint8(p.dir)
	p.asked = true
	p.sent = w.ext.now()
}

// decide records a forwarding decision for the current pipeline run and
// returns its Frame.Fwd value.
func (w *worker) decide(verdict, flags, n uint8, ports *[api.MaxPorts]uint16, in uint16) uint16 {
	e := &w.ext
	if len(e.fwd) == cap(e.fwd) || verdict != api.VerdictForward {
		return 0
	}
	e.fwd = append(e.fwd, fwdDecision{ports: *ports, n: min(n, api.MaxPorts), dflt: flags&api.FlagDefault != 0, origin: in})
	return uint16(len(e.fwd))
}

// extIngress runs the ingress chain from position from over a batch that
// came in on v.
func (w *worker) extIngress(snap *snapshot, v *portView, b *ring.Batch, from int, now uint32) {
	for k := from; k < len(snap.chain) && b.N > 0; k++ {
		x := snap.chain[k]
		if x.dirs&extensions.DirIngress == 0 || !x.sees(v.st.idx, v.dom.vsid) {
			continue
		}
		w.runExtension(x, b, api.Ingress, api.NoPort, now, &w.drops)
	}
}

// extEgress runs the egress chain, in reverse, from position from down to
// 0 over a batch leaving on st.
func (w *worker) extEgress(snap *snapshot, st *portState, b *ring.Batch, from int, now uint32) {
	n := b.N
	for k := from; k >= 0 && b.N > 0; k-- {
		x := snap.chain[k]
		if x.dirs&extensions.DirEgress == 0 || x.kind == api.KindForward || !x.sees(st.idx, st.vsid) {
			continue
		}
		w.runExtension(x, b, api.Egress, st.idx, now, &w.egressDrops)
	}
	if b.N != n { // nothing to count unless frames left the batch
		w.egressDrops.flush(&st.ctr)
	}
}

// pollExtensions attaches to new instances, reads verdicts and injected
// frames, resumes the frames they release and checks deadlines. Called at
// the start of each round.
func (w *worker) pollExtensions(snap *snapshot, now uint32) {
	e := &w.ext
	if len(snap.chain) == 0 && e.nparked == 0 && len(e.lastChain) == 0 {
		return
	}
	e.nowNs = 0
	if !sameChain(snap.chain, e.lastChain) {
		w.chainChanged(snap, now)
	}
	for k, x := range snap.chain {
		xw := x.st.workers[w.id]
		xw.flushCounts(&x.st.ext.Counters)
		inst := x.st.ext.Live()
		if inst != xw.inst {
			w.attach(snap, x, xw, inst, now)
		}
		if inst == nil {
			continue
		}
		ch := inst.Channel(w.id)
		var d api.Desc
		n := 0
		for ; n < 4*ring.BatchSize && ch.Up.Next(&d); n++ {
			switch d.Type {
			case api.TypeVerdict:
				w.verdict(snap, x, k, xw, ch, &d, now)
			case api.TypeInject:
				w.inject(snap, x, k, ch, &d, now)
			default:
				x.st.ext.Counters.Invalid.Add(1)
			}
		}
		if n > 0 {
			ch.Up.Release() // a store the extension would see: only when there is news
		}
	}
	if e.nparked > 0 && e.now()-e.lastScan > int64(time.Millisecond) {
		e.lastScan = e.now()
		w.checkDeadlines(snap)
	}
}

func sameChain(a, b []*extView) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// chainChanged forgets cached verdicts and releases frames parked by
// extensions no longer in the chain (unloaded or disabled): they go on as
// if the extension were absent.
func (w *worker) chainChanged(snap *snapshot, now uint32) {
	for _, x := range w.ext.lastChain { // counts of extensions leaving the chain
		x.st.workers[w.id].flushCounts(&x.st.ext.Counters)
	}
	w.ext.lastChain = snap.chain
	// Ports, VSIDs or the chain changed: verdicts may depend on them.
	for _, x := range snap.chain {
		x.st.workers[w.id].cache.Invalidate()
	}
	for i := range w.ext.parked {
		p := &w.ext.parked[i]
		if p.inUse && chainPos(snap, p.st) < 0 {
			w.release(snap, p, true, now)
		}
	}
}

func chainPos(snap *snapshot, st *extState) int {
	for k, x := range snap.chain {
		if x.st == st {
			return k
		}
	}
	return -1
}

// attach moves the worker to a new instance (or to none): frames parked
// with the old one meet the fail mode, cached verdicts are forgotten.
func (w *worker) attach(snap *snapshot, x *extView, xw *extWorker, inst *extensions.Instance, now uint32) {
	for i := range w.ext.parked {
		p := &w.ext.parked[i]
		if p.inUse && p.st == x.st && p.inst != inst {
			x.st.ext.Counters.FailedFrames.Add(1)
			w.release(snap, p, !x.failClosed, now)
		}
	}
	xw.inst = inst
	xw.cache.Invalidate()
	if inst != nil {
		ch := inst.Channel(w.id)
		ch.Down.AttachProducer()
		ch.Up.AttachConsumer()
		xw.gen = inst.Generation()
	}
}

// release ends a frame's wait: pass resumes it after its extension, else
// it is dropped as extension-failed.
func (w *worker) release(snap *snapshot, p *parkedFrame, pass bool, now uint32) {
	f := p.f
	k := chainPos(snap, p.st)
	w.unpark(p)
	if !pass {
		w.dropParked(snap, &f, p.dropPort(), DropExtensionFailed)
		return
	}
	w.resume(snap, f, p.dir, p.out, k, now)
}

func (w *worker) unpark(p *parkedFrame) {
	p.inUse = false
	p.st, p.inst = nil, nil
	e := &w.ext
	e.free = append(e.free, p.slot)
	e.nparked--
}

// dropParked counts a parked frame's drop on port and frees its buffer.
func (w *worker) dropParked(snap *snapshot, f *ring.Frame, port uint16, why DropReason) {
	if int(port) < len(snap.views) && snap.views[port] != nil {
		snap.views[port].st.ctr.drops[why].Add(1)
	}
	w.pool.Put(f.Index)
}

// dropPort is the port a parked frame's drop is counted on: where it was
// going on egress (as a cached egress verdict's drop is), where it came
// from on ingress.
func (p *parkedFrame) dropPort() uint16 {
	if p.dir == api.Egress {
		return p.out
	}
	return p.f.InPort
}

// resume sends a frame on from chain position k (its extension's; -1: the
// extension is gone, skip the rest of the chain) in its direction.
func (w *worker) resume(snap *snapshot, f ring.Frame, dir api.Direction, out uint16, k int, now uint32) {
	rb := w.ext.resume
	rb.Frames[0] = f
	rb.N = 1
	w.borrowed = append(w.borrowed, f.Index) // freed when the pipeline run ends
	if dir == api.Egress {
		if int(out) >= len(snap.views) || snap.views[out] == nil {
			w.dropParked(snap, &f, f.InPort, DropPortError) // the port left while the frame waited
			w.borrowed = w.borrowed[:len(w.borrowed)-1]
			return
		}
		st := snap.views[out].st
		if k > 0 {
			w.extEgress(snap, st, rb, k-1, now)
		}
		w.transmitNow(st, rb)
		w.freeBorrowed()
		return
	}
	if int(f.InPort) >= len(snap.views) || snap.views[f.InPort] == nil || snap.views[f.InPort].dom == nil {
		w.freeBorrowed()
		return
	}
	v := snap.views[f.InPort]
	from := len(snap.chain)
	if k >= 0 {
		from = k + 1
	}
	w.pipeline(snap, v, rb, now, from)
}

func (w *worker) freeBorrowed() {
	for _, idx := range w.borrowed {
		w.pool.Put(idx)
	}
	w.borrowed = w.borrowed[:0]
}

// verdict applies one verdict descriptor, after checking it.
func (w *worker) verdict(snap *snapshot, x *extView, k int, xw *extWorker, ch *extensions.Channel, d *api.Desc, now uint32) {
	c := &x.st.ext.Counters
	e := &w.ext
	pi := uint32(d.Cookie)
	if pi >= maxParked || !e.parked[pi].inUse || e.parked[pi].tag != uint32(d.Cookie>>32) || e.parked[pi].st != x.st {
		c.Invalid.Add(1)
		return
	}
	p := &e.parked[pi]
	c.ObserveLatency(e.now() - p.sent)
	f := p.f
	// A verdict decided under rules the extension has replaced since is
	// applied to this frame but not cached.
	cacheIt := p.cached && d.Flags&api.FlagNoCache == 0 && p.gen == xw.gen && xw.inst.Generation() == xw.gen
	switch d.Verdict {
	case api.VerdictPass:
		c.Passed.Add(1)
	case api.VerdictDrop:
		c.Dropped.Add(1)
	case api.VerdictModified:
		data, ok := ch.Up.Slot(d)
		room := w.arena.FrameSize() - int(f.Offset)
		if !ok || len(data) < 14 || len(data) > room {
			c.Invalid.Add(1)
			w.unpark(p)
			w.dropParked(snap, &f, p.dropPort(), DropExtensionInvalid)
			return
		}
		copy(w.arena.Buffer(f.Index)[f.Offset:], data)
		f.Len = uint16(len(data))
		c.Modified.Add(1)
		cacheIt = false
	case api.VerdictForward:
		if x.kind != api.KindForward || d.NPorts > api.MaxPorts {
			c.Invalid.Add(1)
			w.unpark(p)
			w.dropParked(snap, &f, p.dropPort(), DropExtensionInvalid)
			return
		}
		c.Forwarded.Add(1)
	default:
		c.Invalid.Add(1)
		w.unpark(p)
		w.dropParked(snap, &f, p.dropPort(), DropExtensionInvalid)
		return
	}
	key, hash := p.key, p.hash
	if cacheIt {
		tag := w.newFlowTag() // first: a wrap of the tags forgets the cache
		ce := xw.cache.Slot(&key, hash, now, now+x.ttl)
		ce.Verdict, ce.Flags, ce.NPorts, ce.Ports, ce.Tag = d.Verdict, d.Flags, d.NPorts, d.Ports, tag
	} else if ce := xw.cache.Lookup(&key, hash, now); ce != nil {
		ce.Expires = 0 // no longer pending: the next frame asks again
	}
	w.apply(snap, p, f, d, k, now)
	// Frames of the same flow that waited for this verdict.
	for i := range e.parked {
		q := &e.parked[i]
		if !q.inUse || q.asked || q.st != x.st || q.hash != hash || q.key != key {
			continue
		}
		if cacheIt {
			w.apply(snap, q, q.f, d, k, now)
		} else if ch.Down.Free() > 0 {
			w.ask(ch, q, w.arena.Buffer(q.f.Index)[q.f.Offset:][:q.f.Len])
			ch.Down.Publish()
		}
	}
}

// apply ends a parked frame's wait with verdict d (already checked): drop,
// or resume with f (which may carry a modified frame) after extension k.
func (w *worker) apply(snap *snapshot, p *parkedFrame, f ring.Frame, d *api.Desc, k int, now uint32) {
	dir, out, port := p.dir, p.out, p.dropPort()
	w.unpark(p)
	if d.Verdict == api.VerdictDrop {
		w.dropParked(snap, &f, port, DropExtension)
		return
	}
	if d.Verdict == api.VerdictForward {
		f.Fwd = w.decide(d.Verdict, d.Flags, d.NPorts, &d.Ports, f.InPort)
	}
	w.resume(snap, f, dir, out, k, now)
}

// inject takes a frame a filter extension made and sends it on after the
// extension: ingress as if received on InPort, egress out of OutPort.
func (w *worker) inject(snap *snapshot, x *extView, k int, ch *extensions.Channel, d *api.Desc, now uint32) {
	c := &x.st.ext.Counters
	data, ok := ch.Up.Slot(d)
	port := d.InPort
	if api.Direction(d.Dir) == api.Egress {
		port = d.OutPort
	}
	if !ok || x.kind != api.KindFilter || len(data) < 14 || len(data) > w.arena.FrameSize()-w.arena.Headroom() ||
		int(port) >= len(snap.views) || snap.views[port] == nil || d.Dir > uint8(api.Egress) {
		c.Invalid.Add(1)
		return
	}
	idx, ok := w.pool.Get()
	if !ok {
		snap.views[port].st.ctr.drops[DropPoolEmpty].Add(1)
		return
	}
	v := snap.views[port]
	f := ring.Frame{Index: idx, Offset: uint16(w.arena.Headroom()), Len: uint16(len(data))}
	copy(w.arena.Buffer(idx)[f.Offset:], data)
	f.InPort = port
	if v.dom != nil {
		f.VSID = v.dom.vsid
	}
	c.Injected.Add(1)
	w.resume(snap, f, api.Direction(d.Dir), port, k, now)
}

// checkDeadlines fails an extension that holds a frame past its deadline.
func (w *worker) checkDeadlines(snap *snapshot) {
	e := &w.ext
	for i := range e.parked {
		p := &e.parked[i]
		if !p.inUse || !p.asked || p.inst == nil || p.inst.Failed() {
			continue
		}
		k := chainPos(snap, p.st)
		if k < 0 {
			continue
		}
		if e.now()-p.sent > snap.chain[k].deadline {
			p.st.ext.Counters.DeadlineMiss.Add(1)
			p.inst.Fail("verdict deadline missed (" + time.Duration(snap.chain[k].deadline).String() + ")")
		}
	}
}

// extForward sends f where its forwarding extension decided and reports
// whether the built-in lookup should also run (FlagDefault).
func (w *worker) extForward(snap *snapshot, f *ring.Frame) bool {
	if int(f.Fwd) > len(w.ext.fwd) {
		return true
	}
	d := &w.ext.fwd[f.Fwd-1]
	for _, p := range d.ports[:d.n] {
		if int(p) >= len(snap.views) || snap.views[p] == nil {
			w.drops[DropExtensionInvalid]++
			continue
		}
		if p == d.origin {
			continue // never back out of the port it came in on
		}
		w.enqueue(snap.views[p].st, f)
	}
	if !d.dflt && d.n == 0 {
		w.drops[DropExtension]++
	}
	return d.dflt
}
