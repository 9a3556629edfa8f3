package extensions

import (
	"time"

	"github.com/xvswitch/xvs/extensions/api"
	"github.com/xvswitch/xvs/ring"
)

// Poll starts a worker's round: it takes the round's chain, policy version
// and time (seconds), attaches to new instances, reads verdicts and
// injected frames, takes the frames they release through the rest of the
// chain, and fails extensions that hold a frame past their deadline.
// Frames that come out of the chain are in Resumed, drops of frames not in
// a batch in Drops: the caller handles both before the next Poll.
func (s *Stage) Poll(chain *Chain, policy uint64, now uint32) {
	s.Resumed, s.Drops = s.Resumed[:0], s.Drops[:0]
	s.fwd = s.fwd[:0]
	s.chain, s.policy, s.now = chain, policy, now
	if chain.Len() == 0 && s.nparked == 0 && s.last.Len() == 0 {
		s.last = chain
		return
	}
	s.nowNs = 0
	if chain != s.last {
		s.chainChanged()
	}
	for k, x := range chain.links {
		lw := x.link.workers[s.worker]
		lw.flushCounts(&x.link.ext.Counters)
		inst := x.link.ext.Live()
		if inst != lw.inst {
			s.attach(x, lw, inst)
		}
		if inst == nil {
			continue
		}
		ch := inst.Channel(s.worker)
		var d api.Desc
		n := 0
		for ; n < 4*ring.BatchSize && ch.Up.Next(&d); n++ {
			switch d.Type {
			case api.TypeVerdict:
				s.verdict(x, k, lw, ch, &d)
			case api.TypeInject:
				s.inject(x, k, ch, &d)
			default:
				x.link.ext.Counters.Invalid.Add(1)
			}
		}
		if n > 0 {
			ch.Up.Release() // a store the extension would see: only when there is news
		}
		if ch.Up.Broken() || ch.Down.Broken() {
			s.protocolError(x, inst)
		}
	}
	if s.nparked > 0 && s.clock()-s.scanned > int64(time.Millisecond) {
		s.scanned = s.clock()
		s.checkDeadlines()
	}
}

// protocolError fails an extension whose ring indexes left the ring's
// geometry: it moved an index it does not own, or moved its own past what
// the protocol allows. The supervisor kills and restarts it; meanwhile
// its fail mode applies.
func (s *Stage) protocolError(x *chainLink, inst *Instance) {
	if inst.Fail("protocol error: ring index out of range") {
		x.link.ext.Counters.ProtocolErrors.Add(1)
	}
}

// chainChanged forgets cached verdicts and releases frames parked by
// extensions no longer in the chain (unloaded or disabled): they go on as
// if the extension were absent.
func (s *Stage) chainChanged() {
	if s.last != nil {
		for _, x := range s.last.links { // counts of extensions leaving the chain
			x.link.workers[s.worker].flushCounts(&x.link.ext.Counters)
		}
	}
	s.last = s.chain
	// Ports, VSIDs or the chain changed: verdicts may depend on them.
	for _, x := range s.chain.links {
		x.link.workers[s.worker].cache.Invalidate()
	}
	for i := range s.parked {
		p := &s.parked[i]
		if p.inUse && s.chain.pos(p.link) < 0 {
			s.release(p, true)
		}
	}
}

// attach moves the worker to a new instance (or to none): frames parked
// with the old one meet the fail mode, cached verdicts are forgotten.
func (s *Stage) attach(x *chainLink, lw *linkWorker, inst *Instance) {
	for i := range s.parked {
		p := &s.parked[i]
		if p.inUse && p.link == x.link && p.inst != inst {
			x.link.ext.Counters.FailedFrames.Add(1)
			s.release(p, !x.failClosed)
		}
	}
	lw.inst = inst
	lw.cache.Invalidate()
	if inst != nil {
		ch := inst.Channel(s.worker)
		ch.Down.AttachProducer()
		ch.Up.AttachConsumer()
		lw.gen = inst.Generation()
	}
}

// release ends a frame's wait: pass resumes it after its extension, else
// it is dropped as extension-failed.
func (s *Stage) release(p *parkedFrame, pass bool) {
	f := p.f
	k := s.chain.pos(p.link)
	s.unpark(p)
	if !pass {
		s.dropFrame(&f, p.dropPort(), DropFailed)
		return
	}
	s.resume(f, p.dir, p.out, k)
}

func (s *Stage) unpark(p *parkedFrame) {
	p.inUse = false
	p.link, p.inst = nil, nil
	s.free = append(s.free, p.slot)
	s.nparked--
}

// dropFrame counts the drop of a frame held in a spare buffer on port and
// frees the buffer.
func (s *Stage) dropFrame(f *ring.Frame, port uint16, why Drop) {
	s.Drops = append(s.Drops, PortDrop{Port: port, Reason: why})
	s.pool.Put(f.Index)
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

// resume takes a frame on from chain position k (its extension's; -1: the
// extension is gone, skip the rest of the chain) in its direction, and
// adds it to Resumed if it comes out of the chain.
func (s *Stage) resume(f ring.Frame, dir api.Direction, out uint16, k int) {
	b := s.one
	b.Frames[0] = f
	b.N = 1
	clear(s.tally[:])
	if dir == api.Egress {
		p, ok := s.chain.port(out)
		if !ok {
			s.dropFrame(&f, f.InPort, DropPortGone) // the port left while the frame waited
			return
		}
		if k > 0 {
			s.egressFrom(k-1, b, out, p.VSID, &s.tally)
		}
		s.settle(b, dir, out)
		return
	}
	p, ok := s.chain.port(f.InPort)
	if !ok || !p.Assigned {
		s.pool.Put(f.Index) // the port it came in on is gone: nowhere to count it
		return
	}
	if k >= 0 {
		s.ingressFrom(k+1, b, f.InPort, p.VSID, &s.tally)
	}
	s.settle(b, dir, api.NoPort)
}

// settle records the outcome of taking one frame through the rest of the
// chain: resumed if it came out, its buffer freed and its drop counted if
// the chain dropped it (a frame parked again stays parked).
func (s *Stage) settle(b *ring.Batch, dir api.Direction, out uint16) {
	port := out
	if dir == api.Ingress {
		port = b.Frames[0].InPort
	}
	for r, n := range s.tally {
		for range n {
			s.Drops = append(s.Drops, PortDrop{Port: port, Reason: Drop(r)})
		}
	}
	if b.N == 1 {
		s.Resumed = append(s.Resumed, Resumed{Frame: b.Frames[0], Dir: dir, Out: out})
		return
	}
	// Dropped (counted above) or parked again (its copy is in a new
	// buffer): this buffer is free.
	s.pool.Put(b.Frames[0].Index)
}

// verdict applies one verdict descriptor, after checking it.
func (s *Stage) verdict(x *chainLink, k int, lw *linkWorker, ch *Channel, d *api.Desc) {
	c := &x.link.ext.Counters
	pi := uint32(d.Cookie)
	if pi >= maxParked || !s.parked[pi].inUse || s.parked[pi].tag != uint32(d.Cookie>>32) || s.parked[pi].link != x.link {
		c.Invalid.Add(1)
		return
	}
	p := &s.parked[pi]
	c.ObserveLatency(s.clock() - p.sent)
	f := p.f
	// A verdict decided under rules the extension has replaced since is
	// applied to this frame but not cached.
	cacheIt := p.cached && d.Flags&api.FlagNoCache == 0 && p.gen == lw.gen && lw.inst.Generation() == lw.gen
	switch d.Verdict {
	case api.VerdictPass:
		c.Passed.Add(1)
	case api.VerdictDrop:
		c.Dropped.Add(1)
	case api.VerdictModified:
		data, ok := ch.Up.Slot(d)
		room := s.arena.FrameSize() - int(f.Offset)
		if !ok || len(data) < 14 || len(data) > room {
			c.Invalid.Add(1)
			s.unpark(p)
			s.dropFrame(&f, p.dropPort(), DropInvalid)
			return
		}
		copy(s.arena.Buffer(f.Index)[f.Offset:], data)
		f.Len = uint16(len(data))
		c.Modified.Add(1)
		cacheIt = false
	case api.VerdictForward:
		if x.kind != api.KindForward || d.NPorts > api.MaxPorts {
			c.Invalid.Add(1)
			s.unpark(p)
			s.dropFrame(&f, p.dropPort(), DropInvalid)
			return
		}
		c.Forwarded.Add(1)
	default:
		c.Invalid.Add(1)
		s.unpark(p)
		s.dropFrame(&f, p.dropPort(), DropInvalid)
		return
	}
	key, hash := p.key, p.hash
	now := s.now
	if cacheIt {
		tag := s.newFlowTag() // first: a wrap of the tags forgets the cache
		ce := lw.cache.Slot(&key, hash, now, now+x.ttl)
		ce.Verdict, ce.Flags, ce.NPorts, ce.Ports, ce.Tag = d.Verdict, d.Flags, d.NPorts, d.Ports, tag
	} else if ce := lw.cache.Lookup(&key, hash, now); ce != nil {
		ce.Expires = 0 // no longer pending: the next frame asks again
	}
	s.apply(p, f, d, k)
	// Frames of the same flow that waited for this verdict.
	for i := range s.parked {
		q := &s.parked[i]
		if !q.inUse || q.asked || q.link != x.link || q.hash != hash || q.key != key {
			continue
		}
		if cacheIt {
			s.apply(q, q.f, d, k)
		} else if ch.Down.Free() > 0 && s.ask(ch, q, s.arena.Buffer(q.f.Index)[q.f.Offset:][:q.f.Len]) {
			ch.Down.Publish()
		}
	}
}

// apply ends a parked frame's wait with verdict d (already checked): drop,
// or resume with f (which may carry a modified frame) after extension k.
func (s *Stage) apply(p *parkedFrame, f ring.Frame, d *api.Desc, k int) {
	dir, out, port := p.dir, p.out, p.dropPort()
	s.unpark(p)
	if d.Verdict == api.VerdictDrop {
		s.dropFrame(&f, port, DropVerdict)
		return
	}
	if d.Verdict == api.VerdictForward && k >= 0 {
		f.Fwd = s.decide(s.chain.links[k], d.Verdict, d.Flags, d.NPorts, &d.Ports, f.InPort)
	}
	s.resume(f, dir, out, k)
}

// inject takes a frame a filter extension made and sends it on after the
// extension: ingress as if received on InPort, egress out of OutPort.
func (s *Stage) inject(x *chainLink, k int, ch *Channel, d *api.Desc) {
	c := &x.link.ext.Counters
	data, ok := ch.Up.Slot(d)
	port := d.InPort
	if api.Direction(d.Dir) == api.Egress {
		port = d.OutPort
	}
	p, known := s.chain.port(port)
	if !ok || x.kind != api.KindFilter || len(data) < 14 || len(data) > s.arena.FrameSize()-s.arena.Headroom() ||
		!known || d.Dir > uint8(api.Egress) {
		c.Invalid.Add(1)
		return
	}
	// An extension injects only where it could have seen the frame: a
	// port and VSID of its scope, in a direction it runs in.
	dir := api.Direction(d.Dir)
	if !x.sees(port, p.VSID) || (dir == api.Ingress && x.dirs&DirIngress == 0) || (dir == api.Egress && x.dirs&DirEgress == 0) {
		c.Scope.Add(1)
		s.Drops = append(s.Drops, PortDrop{Port: port, Reason: DropScope})
		return
	}
	idx, ok := s.pool.Get()
	if !ok {
		s.Drops = append(s.Drops, PortDrop{Port: port, Reason: DropPoolEmpty})
		return
	}
	f := ring.Frame{Index: idx, Offset: uint16(s.arena.Headroom()), Len: uint16(len(data))}
	copy(s.arena.Buffer(idx)[f.Offset:], data)
	f.InPort = port
	if p.Assigned {
		f.VSID = p.VSID
	}
	c.Injected.Add(1)
	s.resume(f, api.Direction(d.Dir), port, k)
}

// checkDeadlines fails an extension that holds a frame past its deadline.
func (s *Stage) checkDeadlines() {
	for i := range s.parked {
		p := &s.parked[i]
		if !p.inUse || !p.asked || p.inst == nil || p.inst.Failed() {
			continue
		}
		k := s.chain.pos(p.link)
		if k < 0 {
			continue
		}
		if dl := s.chain.links[k].deadline; s.clock()-p.sent > dl {
			p.link.ext.Counters.DeadlineMiss.Add(1)
			p.inst.Fail("verdict deadline missed (" + time.Duration(dl).String() + ")")
		}
	}
}
