package extensions

import (
	"time"

	"github.com/xvswitch/xvs/extensions/api"
	"github.com/xvswitch/xvs/ring"
)

// The extension stage. A switch worker owns one Stage and gives it each
// batch twice: on ingress after address resolution and before routing and
// forwarding (Run with api.Ingress: the chain in order), and on egress
// just before a port's Transmit (api.Egress: the chain in reverse). A batch
// comes from (or goes to) one port, so scope (ports, VSIDs, direction) is
// checked per batch.
//
// Capture extensions get a copy of each frame in shared memory; when their
// ring is full the copy is dropped and counted, and forwarding goes on.
//
// Filter and forwarding extensions answer per flow. A frame whose flow has
// a cached verdict is handled at once. Otherwise a copy is parked in a
// spare buffer, a request goes to the extension, and the frame leaves the
// batch; when the verdict comes back (Poll, at the start of each round) it
// is cached and the frame goes on through the rest of the chain inside
// the stage. Frames that reach the end of the chain that way come out of
// Poll as Resumed, with where they go on: the rest of the pipeline after
// the ingress chain, or the port they leave by. The stage never calls back
// into the switch. A verdict later than the extension's deadline fails the
// extension.

// maxParked is how many frames one worker holds waiting for verdicts.
const maxParked = 256

// maxShortRuns is how many runs of no frame a filter tolerates in one
// batch before it stops starting runs for the rest of it.
const maxShortRuns = 4

// pendingTTL bounds, in seconds, how long a flow's later frames wait for
// a verdict asked for its first frame before asking again.
const pendingTTL = 2

// maxCaptureSkip bounds the batches a worker skips after finding a
// capture ring full.
const maxCaptureSkip = 64

// Drop names why the stage dropped a frame. The String forms are the drop
// reasons users see (the switch counts them under the same names).
type Drop uint8

const (
	DropVerdict   Drop = iota // an extension's verdict: filter drop, or forwarding to nowhere
	DropFailed                // a fail-closed extension is failed or restarting
	DropBusy                  // an extension's ring or the frames waiting for verdicts are full
	DropInvalid               // an extension answered with a descriptor that failed validation
	DropPoolEmpty             // no spare buffer for a frame an extension injected
	DropPortGone              // the port a waiting frame was leaving by was removed meanwhile
	DropScope                 // an extension injected or forwarded a frame outside its scope
	NumDrops
)

var dropNames = [NumDrops]string{
	DropVerdict: "extension-drop", DropFailed: "extension-failed", DropBusy: "extension-busy",
	DropInvalid: "extension-invalid", DropPoolEmpty: "pool-empty", DropPortGone: "port-error",
	DropScope: "extension-scope",
}

func (d Drop) String() string {
	if d < NumDrops {
		return dropNames[d]
	}
	return "unknown"
}

// Tally counts a batch's drops by reason.
type Tally [NumDrops]uint32

// PortDrop is a drop of a frame that was not in a batch the caller gave
// (a parked or injected frame), to be counted on Port.
type PortDrop struct {
	Port   uint16
	Reason Drop
}

// Resumed is a frame that has been through the rest of the chain after a
// verdict released it (or an extension injected it). On ingress it goes
// on after the ingress chain, as if received on Frame.InPort; on egress it
// leaves by Out. Its buffer is one of the pool's: the caller returns it
// (Pool.Put) once the frame is transmitted.
type Resumed struct {
	Frame ring.Frame
	Dir   api.Direction
	Out   uint16
}

// FwdDecision is a forwarding extension's answer, for the frames that
// carry its number in Frame.Fwd (see Stage.Decision).
type FwdDecision struct {
	Ports   [api.MaxPorts]uint16
	N       uint8
	Default bool   // the built-in lookup runs as well
	Origin  uint16 // the port the frame came in on: never sent back there
	scope   *chainLink
}

// Allows reports whether the extension's configured scope (its ports and
// VSIDs) covers port, a port of VSID portVSID, for a copy of a frame its
// decision sends there. The switch also keeps the copy inside the frame's
// own VSID; what neither allows it drops as extension-scope.
func (d *FwdDecision) Allows(port uint16, portVSID uint32) bool {
	return d.scope == nil || d.scope.sees(port, portVSID)
}

// parkedFrame is a frame waiting for an extension's verdict.
type parkedFrame struct {
	f      ring.Frame // a copy in a spare buffer
	link   *Link
	inst   *Instance
	tag    uint32 // must match the cookie's
	dir    api.Direction
	out    uint16
	sent   int64 // ns
	key    FlowKey
	hash   uint32
	slot   uint16 // index in parked
	asked  bool   // a request was sent; else it follows its flow's request
	gen    uint64 // the extension's generation when parked
	inUse  bool
	cached bool // verdict may be cached
}

// Stage is one worker's extension stage. It is used by that worker's
// goroutine only.
type Stage struct {
	worker int
	arena  *ring.Arena
	pool   *ring.Pool

	chain  *Chain // this round's
	last   *Chain // the chain of the previous round
	policy uint64 // this round's policy version
	now    uint32 // this round's time, seconds

	parked  [maxParked]parkedFrame
	free    []uint16 // free parked slots
	nparked int
	tag     uint32
	fwd     []FwdDecision
	key     FlowKey
	nowNs   int64 // this round's time (0: not read yet; see clock)
	scanned int64 // when deadlines were last checked
	flowTag uint32
	one     *ring.Batch // a released frame going through the rest of the chain
	tally   Tally

	// Resumed and Drops are what the last Poll released and dropped; the
	// caller takes them before the next Poll.
	Resumed []Resumed
	Drops   []PortDrop
}

// NewStage returns the stage of worker (its index among the switch's
// workers: the ring pair it uses in every extension's region), parking
// frames in spare buffers of pool, over arena.
func NewStage(worker int, arena *ring.Arena, pool *ring.Pool) *Stage {
	s := &Stage{
		worker: worker, arena: arena, pool: pool,
		fwd:     make([]FwdDecision, 0, maxParked+2*ring.BatchSize),
		free:    make([]uint16, 0, maxParked),
		one:     ring.NewBatch(arena),
		Resumed: make([]Resumed, 0, maxParked),
		Drops:   make([]PortDrop, 0, maxParked),
	}
	for i := maxParked - 1; i >= 0; i-- {
		s.free = append(s.free, uint16(i))
	}
	return s
}

// Parked is how many frames wait for verdicts.
func (s *Stage) Parked() int { return s.nparked }

// clock is the time of this round, read once when first needed: a round in
// which every frame hits the cache needs no clock.
func (s *Stage) clock() int64 {
	if s.nowNs == 0 {
		s.nowNs = time.Now().UnixNano()
	}
	return s.nowNs
}

// newFlowTag returns a tag for a newly cached flow (see ring.Meta.Flow).
// Tags are unique among a worker's cache entries: when they wrap, every
// cache of the worker is forgotten, since an old entry's tag could come
// back for another flow.
func (s *Stage) newFlowTag() uint32 {
	s.flowTag++
	if s.flowTag == 0 {
		s.flowTag = 1
		if s.last != nil {
			for _, x := range s.last.links {
				x.link.workers[s.worker].cache.Invalidate()
			}
		}
	}
	return s.flowTag
}

// Run runs the chain over a batch in one direction: on ingress (port: the
// port it came in on) in order, on egress (port: the port it leaves by) in
// reverse. Frames dropped or parked leave the batch; drops are added to
// drops. vsid is the port's VSID.
func (s *Stage) Run(b *ring.Batch, dir api.Direction, port uint16, vsid uint32, drops *Tally) {
	c := s.chain
	if c == nil {
		return
	}
	if dir == api.Ingress {
		for k := 0; k < len(c.links) && b.N > 0; k++ {
			if x := c.links[k]; x.dirs&DirIngress != 0 && x.sees(port, vsid) {
				s.runOne(x, b, api.Ingress, api.NoPort, drops)
			}
		}
		return
	}
	s.egressFrom(len(c.links)-1, b, port, vsid, drops)
}

// egressFrom runs the egress chain, in reverse, from position from down
// to 0 over a batch leaving on port.
func (s *Stage) egressFrom(from int, b *ring.Batch, port uint16, vsid uint32, drops *Tally) {
	c := s.chain
	for k := from; k >= 0 && b.N > 0; k-- {
		x := c.links[k]
		if x.dirs&DirEgress == 0 || x.kind == api.KindForward || !x.sees(port, vsid) {
			continue
		}
		s.runOne(x, b, api.Egress, port, drops)
	}
}

// ingressFrom runs the ingress chain from position from over a batch that
// came in on port.
func (s *Stage) ingressFrom(from int, b *ring.Batch, port uint16, vsid uint32, drops *Tally) {
	c := s.chain
	for k := from; k < len(c.links) && b.N > 0; k++ {
		if x := c.links[k]; x.dirs&DirIngress != 0 && x.sees(port, vsid) {
			s.runOne(x, b, api.Ingress, api.NoPort, drops)
		}
	}
}

// Decision returns the forwarding decision numbered fwd (Frame.Fwd), or
// nil. Decisions are valid until EndRun or the next Poll.
func (s *Stage) Decision(fwd uint16) *FwdDecision {
	if fwd == 0 || int(fwd) > len(s.fwd) {
		return nil
	}
	return &s.fwd[fwd-1]
}

// EndRun forgets the forwarding decisions of the frames of a batch that
// has been forwarded.
func (s *Stage) EndRun() { s.fwd = s.fwd[:0] }

// runOne runs one extension over a batch in one direction; out is the
// egress port (api.NoPort on ingress).
func (s *Stage) runOne(x *chainLink, b *ring.Batch, dir api.Direction, out uint16, drops *Tally) {
	lw := x.link.workers[s.worker]
	inst := lw.inst
	if inst == nil || inst.Failed() || x.link.ext.Live() != inst {
		c := &x.link.ext.Counters
		c.FailedFrames.Add(uint64(b.N))
		if x.failClosed && x.kind != api.KindCapture {
			drops[DropFailed] += uint32(b.N)
			b.N = 0
		}
		return
	}
	ch := inst.Channel(s.worker)
	if x.kind == api.KindCapture {
		if s.capture(lw, ch, b, dir, out) {
			inst.Kick()
		}
		return
	}
	s.filter(x, lw, inst, ch, b, dir, out, drops)
}

// capture copies each frame of b into the extension's ring. When the
// ring is full the copies are dropped, and the next batches skip the ring
// altogether (doubling up to maxCaptureSkip batches while it stays full):
// asking a busy ring for room costs a cache miss on the consumer's index,
// which would make a slow capture slow forwarding down.
func (s *Stage) capture(lw *linkWorker, ch *Channel, b *ring.Batch, dir api.Direction, out uint16) (published bool) {
	if lw.skip > 0 {
		lw.skip--
		lw.captureDrops += uint64(b.N)
		return false
	}
	r := &ch.Down
	if lw.draining {
		// The ring filled up: write again only once the extension has
		// taken half of it. Copies then go out in bursts into slots it
		// let go of long ago, rather than one by one into the lines it
		// has just read, each of which would cost a transfer between
		// the two cores.
		if r.Free() < r.Cap()/2 {
			lw.captureDrops += uint64(b.N)
			lw.backoff = min(max(2*lw.backoff, 1), maxCaptureSkip)
			lw.skip = lw.backoff
			return false
		}
		lw.draining = false
	}
	t := s.clock()
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
		lw.captured += uint64(n)
	}
	if lost := b.N - n; lost > 0 {
		lw.captureDrops += uint64(lost)
		lw.backoff = min(max(2*lw.backoff, 1), maxCaptureSkip)
		lw.skip = lw.backoff
		lw.draining = true
	} else {
		lw.backoff = 0
	}
	return n > 0
}

// filter applies cached verdicts and parks the frames without one.
func (s *Stage) filter(x *chainLink, lw *linkWorker, inst *Instance, ch *Channel, b *ring.Batch, dir api.Direction, out uint16, drops *Tally) {
	if g := inst.Generation(); g != lw.gen {
		lw.gen = g
		lw.cache.Invalidate()
	}
	// a verdict may depend on where the policy sends the flow
	if s.policy != lw.policy {
		lw.policy = s.policy
		lw.cache.Invalidate()
	}
	// Forwarding runs on ingress only, where a batch comes from one port:
	// one VSID, checked once.
	if x.kind == api.KindForward && b.N > 0 && !inst.Claims(b.Frames[0].VSID) {
		return
	}
	now := s.now
	var hits, misses, sent, dropped, busy uint64
	key := &s.key
	// Frames of the flow that last passed (the run) go through Scan in a
	// tight loop; the others one by one.
	var run *Run
	if !x.every && b.N > 0 {
		port := out
		if dir == api.Ingress {
			port = b.Frames[0].InPort // a batch on ingress comes from one port
		}
		run = lw.cache.PassRun(now, dir, port)
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
		var e *CacheEntry
		if !x.every && dir == api.Egress && f.Flow != 0 {
			// a frame that carries an ingress flow tag: found by the tag
			verdict, expires, found = lw.cache.LookupTag(f.Flow, out, now)
		}
		if !found {
			MakeFlowKey(key, data, f.VSID, dir, f.InPort, out)
			h := key.Hash()
			if !x.every {
				e = lw.cache.Lookup(key, h, now)
			}
			switch {
			case e == nil: // the flow's first frame, or the extension sees every frame
				if !x.every {
					misses++
				}
				if !s.park(x, inst, ch, f, data, dir, out, h, true) {
					busy++
					drops[DropBusy]++
					continue
				}
				if !x.every {
					lw.cache.Slot(key, h, now, now+pendingTTL).Verdict = VerdictPending
				}
				sent++
				continue
			case e.Verdict == VerdictPending: // asked already: wait for that verdict
				if !s.park(x, inst, ch, f, data, dir, out, h, false) {
					busy++
					drops[DropBusy]++
				}
				continue
			}
			verdict, expires = e.Verdict, e.Expires
			if dir == api.Egress && f.Flow != 0 {
				lw.cache.SetTag(f.Flow, out, e)
			}
		}
		hits++
		switch verdict {
		case api.VerdictDrop:
			dropped++
			drops[DropVerdict]++
			continue
		case api.VerdictForward:
			if e != nil { // always: forwarding runs on ingress, found by key
				f.Fwd = s.decide(x, e.Verdict, e.Flags, e.NPorts, &e.Ports, f.InPort)
			}
		case api.VerdictPass:
			flow := f.Flow
			if dir == api.Ingress && e != nil { // e is always set on ingress
				flow = e.Tag
				f.Flow = flow
			}
			if shortRuns < maxShortRuns {
				run = lw.cache.StartPassRun(data, dir, f.InPort, out, f.VSID, flow, expires)
			}
		}
		if k := i - 1; k != kept {
			b.Frames[kept], b.Frames[k] = b.Frames[k], b.Frames[kept]
		}
		kept++
	}
	b.N = kept
	c := &x.link.ext.Counters
	lw.hits += hits
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
func (s *Stage) park(x *chainLink, inst *Instance, ch *Channel, f *ring.Frame, data []byte, dir api.Direction, out uint16, h uint32, ask bool) bool {
	if len(s.free) == 0 {
		return false
	}
	if len(data) > ch.Down.SlotSize() {
		x.link.ext.Counters.TooBig.Add(1)
		return false
	}
	if ask && ch.Down.Free() == 0 {
		return false
	}
	idx, ok := s.pool.Get()
	if !ok {
		return false
	}
	s.tag++
	pi := s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	s.nparked++
	p := &s.parked[pi]
	*p = parkedFrame{f: *f, link: x.link, inst: inst, tag: s.tag, dir: dir, out: out, sent: s.clock(), key: s.key, hash: h, slot: pi, inUse: true, cached: !x.every, gen: x.link.workers[s.worker].gen}
	p.f.Index = idx
	p.f.Offset = uint16(s.arena.Headroom())
	p.f.Fwd = 0
	p.f.Flow = 0 // its verdict may modify it: no longer one of a run
	copy(s.arena.Buffer(idx)[p.f.Offset:], data)
	if ask && !s.ask(ch, p, data) {
		// The ring had room a moment ago: the extension moved its index
		// (the ring is broken; Poll fails the extension).
		s.unpark(p)
		s.pool.Put(idx)
		return false
	}
	return true
}

// ask sends a parked frame's request, or returns false when the ring has
// no room (the caller checked that it had: the ring is broken).
func (s *Stage) ask(ch *Channel, p *parkedFrame, data []byte) bool {
	d, slot, ok := ch.Down.Reserve()
	if !ok {
		return false
	}
	n := copy(slot, data)
	d.Cookie = uint64(p.tag)<<32 | uint64(p.slot)
	d.Time, d.Len, d.OrigLen = s.clock(), uint32(n), uint32(len(data))
	d.VSID, d.InPort, d.OutPort = p.f.VSID, p.f.InPort, p.out
	d.Type, d.Dir = api.TypeRequest, uint8(p.dir)
	p.asked = true
	p.sent = s.clock()
	return true
}

// decide records a forwarding decision and returns its Frame.Fwd value
// (0 when no more can be recorded: the built-in lookup then runs).
func (s *Stage) decide(x *chainLink, verdict, flags, n uint8, ports *[api.MaxPorts]uint16, in uint16) uint16 {
	if len(s.fwd) == cap(s.fwd) || verdict != api.VerdictForward {
		return 0
	}
	s.fwd = append(s.fwd, FwdDecision{Ports: *ports, N: min(n, api.MaxPorts), Default: flags&api.FlagDefault != 0, Origin: in, scope: x})
	return uint16(len(s.fwd))
}
