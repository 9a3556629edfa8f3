package sdk

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xvswitch/xvs/extensions/api"
	"github.com/xvswitch/xvs/extensions/internal/shm"
)

// batchSize is how many descriptors the loop takes from one down ring
// before it releases them, publishes its verdicts and turns to the next
// channel.
const batchSize = 64

// loop is the frame loop: one goroutine serving every channel's down ring
// and writing verdicts to the same channel's up ring. Nothing in it
// allocates per frame.
type loop struct {
	h       *Host
	stats   *counters
	log     hclog.Logger
	capture Capture
	filter  Filter
	forward Forward

	spin        time.Duration
	pollTimeout time.Duration

	stop atomic.Bool
	done chan struct{}

	// Scratch, reused for every frame.
	desc    api.Desc
	meta    Meta
	verdict upVerdict

	// Counted per frame here, added to stats per batch.
	captures, requests, verdicts uint64

	// Logging from the data path is sampled.
	panicLog, verdictLog, lostLog, bellLog sampler
}

// upVerdict is a decision on its way to an up descriptor.
type upVerdict struct {
	verdict uint8
	flags   uint8
	nports  uint8
	ports   [api.MaxPorts]uint16
	frame   []byte // VerdictModified: copied into the up slot
}

func newLoop(s *server, h *Host) *loop {
	return &loop{
		h: h, stats: &s.stats, log: s.log,
		capture: s.capture, filter: s.filter, forward: s.forward,
		spin: s.spin, pollTimeout: s.pollTimeout,
		done: make(chan struct{}),
	}
}

// run serves the channels until stop is set.
func (l *loop) run() {
	defer close(l.done)
	channels := l.h.region.Channels()
	var idleSince time.Time
	for !l.stop.Load() {
		n := 0
		for i := range channels {
			n += l.serveChannel(i)
		}
		if n > 0 {
			idleSince = time.Time{}
			continue
		}
		now := time.Now()
		if idleSince.IsZero() {
			idleSince = now
		}
		if now.Sub(idleSince) < l.spin {
			runtime.Gosched()
			continue
		}
		l.sleep()
		idleSince = time.Time{}
	}
}

// stopAndWait stops the loop, waking it if it sleeps, and returns once it
// has returned (and with it every frame callback).
func (l *loop) stopAndWait() {
	l.stop.Store(true)
	ringDoorbell(l.h.doorbell) // best effort: the poll timeout bounds the wait anyway
	<-l.done
}

// sleep waits on the doorbell. The switch rings it after publishing when it
// sees the sleeping flag; the flag is set before the rings are checked a
// last time, so a frame published in between is either seen here or
// rings the bell.
func (l *loop) sleep() {
	r := l.h.region
	r.SetSleeping(true)
	defer r.SetSleeping(false)
	for i := range r.Channels() {
		if r.Channel(i).Down.Pending() > 0 {
			return
		}
	}
	if l.stop.Load() {
		return
	}
	l.stats.sleeps.Add(1)
	rang, err := waitDoorbell(l.h.doorbell, l.pollTimeout)
	switch {
	case err != nil:
		// A doorbell that cannot be waited on would turn this into a busy
		// loop: fall back to polling the rings every millisecond.
		if l.bellLog.allow() {
			l.log.Error("doorbell: falling back to polling every millisecond", "error", err, "times", l.bellLog.take())
		}
		time.Sleep(time.Millisecond)
	case rang:
		l.stats.wakeups.Add(1)
	}
}

// serveChannel handles up to batchSize descriptors of channel ci and
// returns how many it took.
func (l *loop) serveChannel(ci int) int {
	ch := l.h.region.Channel(ci)
	up := &l.h.up[ci]
	n := 0
	for n < batchSize && ch.Down.Next(&l.desc) {
		n++
		l.handle(ch, up)
	}
	if n == 0 {
		return 0
	}
	// Counters first: whoever sees a verdict sees it counted.
	l.stats.frames.Add(uint64(n))
	l.flushCounts()
	up.mu.Lock()
	up.publish()
	up.mu.Unlock()
	ch.Down.Release()
	return n
}

// handle serves l.desc, just read from ch's down ring.
func (l *loop) handle(ch *shm.Channel, up *upProducer) {
	d := &l.desc
	frame, ok := ch.Down.Slot(d)
	if !ok || d.Dir > uint8(api.Egress) {
		l.stats.badDescriptors.Add(1)
		return
	}
	m := &l.meta
	*m = Meta{
		Dir:     api.Direction(d.Dir),
		InPort:  d.InPort,
		OutPort: d.OutPort,
		VSID:    d.VSID,
		OrigLen: int(d.OrigLen),
	}
	if d.Time != 0 {
		m.Time = time.Unix(0, d.Time)
	}
	switch d.Type {
	case api.TypeCapture:
		if l.capture == nil {
			l.stats.kindMismatch.Add(1)
			return
		}
		l.captures++
		l.callCapture(m, frame)
	case api.TypeRequest:
		v := &l.verdict
		*v = upVerdict{}
		switch {
		case l.filter != nil:
			l.requests++
			l.decideFilter(m, frame, v)
		case l.forward != nil:
			l.requests++
			l.decideForward(m, frame, v)
		default:
			// A capture extension asked for a verdict: let the frame go on,
			// and do not let the answer stick.
			l.stats.kindMismatch.Add(1)
			v.verdict, v.flags = api.VerdictPass, api.FlagNoCache
		}
		l.answer(up, v)
	default:
		l.stats.badDescriptors.Add(1)
	}
}

// decideFilter asks the filter and turns its Verdict into v.
func (l *loop) decideFilter(m *Meta, frame []byte, v *upVerdict) {
	fv, ok := l.callFilter(m, frame)
	if !ok {
		v.verdict, v.flags = api.VerdictDrop, api.FlagNoCache
		return
	}
	if fv.NoCache {
		v.flags |= api.FlagNoCache
	}
	switch fv.Action {
	case ActionPass:
		v.verdict = api.VerdictPass
	case ActionDrop:
		v.verdict = api.VerdictDrop
	case ActionModified:
		out := fv.Frame
		if out == nil {
			out = frame
		}
		if len(out) < MinFrame || len(out) > l.h.region.SlotSize() {
			l.badVerdict("modified frame of %d bytes: want %d..%d", len(out), MinFrame, l.h.region.SlotSize())
			v.verdict, v.flags = api.VerdictDrop, api.FlagNoCache
			return
		}
		v.verdict, v.frame = api.VerdictModified, out
	default:
		l.badVerdict("action %d: want ActionPass, ActionDrop or ActionModified", fv.Action)
		v.verdict, v.flags = api.VerdictDrop, api.FlagNoCache
	}
}

// decideForward asks the forwarding extension and turns its Destinations
// into v.
func (l *loop) decideForward(m *Meta, frame []byte, v *upVerdict) {
	fd, ok := l.callForward(m, frame)
	if !ok {
		v.verdict, v.flags = api.VerdictDrop, api.FlagNoCache
		return
	}
	if fd.NoCache {
		v.flags |= api.FlagNoCache
	}
	if fd.Drop {
		v.verdict = api.VerdictDrop
		return
	}
	v.verdict = api.VerdictForward
	if fd.Default {
		v.flags |= api.FlagDefault
	}
	ports := fd.Ports
	if len(ports) > api.MaxPorts {
		l.stats.portsTruncated.Add(1)
		if l.verdictLog.allow() {
			l.log.Error("forwarding verdict names too many ports: sending the first ones",
				"ports", len(ports), "max", api.MaxPorts, "times", l.verdictLog.take())
		}
		ports = ports[:api.MaxPorts]
	}
	v.nports = uint8(copy(v.ports[:], ports))
}

// answer writes v as the verdict of l.desc on up. It waits up to
// InjectWait for room; a verdict that still does not fit is counted and
// logged, and the switch's deadline takes over.
func (l *loop) answer(up *upProducer, v *upVerdict) {
	req := &l.desc
	up.mu.Lock()
	d, slot, ok := up.reserve(InjectWait, &l.stop, l.stats)
	if !ok {
		up.mu.Unlock()
		l.stats.verdictsLost.Add(1)
		if l.lostLog.allow() {
			l.log.Error("up ring full: verdict not sent, the switch will apply its deadline",
				"wait", InjectWait, "times", l.lostLog.take())
		}
		return
	}
	d.Cookie = req.Cookie
	d.Time = req.Time
	d.VSID = req.VSID
	d.InPort, d.OutPort = req.InPort, req.OutPort
	d.Type = api.TypeVerdict
	d.Dir = req.Dir
	d.Verdict = v.verdict
	d.Flags = v.flags
	d.NPorts = v.nports
	d.Ports = v.ports
	if v.frame != nil {
		n := copy(slot, v.frame)
		d.Len, d.OrigLen = uint32(n), uint32(n)
	}
	up.mu.Unlock()
	l.verdicts++
}

// flushCounts adds the batch's counts to the shared counters.
func (l *loop) flushCounts() {
	if l.captures > 0 {
		l.stats.captures.Add(l.captures)
		l.captures = 0
	}
	if l.requests > 0 {
		l.stats.requests.Add(l.requests)
		l.requests = 0
	}
	if l.verdicts > 0 {
		l.stats.verdicts.Add(l.verdicts)
		l.verdicts = 0
	}
}

func (l *loop) badVerdict(format string, a ...any) {
	l.stats.badVerdicts.Add(1)
	if l.verdictLog.allow() {
		l.log.Error("bad verdict: answered drop", "reason", fmt.Sprintf(format, a...), "times", l.verdictLog.take())
	}
}

// The callbacks run under recover: a panic in the extension's code is
// logged (sampled) and counted, and a request is answered with a drop
// that is not cached, rather than the process dying with frames waiting.

func (l *loop) callCapture(m *Meta, frame []byte) {
	defer l.recoverCallback("Capture")
	l.capture.Capture(m, frame)
}

func (l *loop) callFilter(m *Meta, frame []byte) (v Verdict, ok bool) {
	defer l.recoverCallback("Filter")
	return l.filter.Filter(m, frame), true
}

func (l *loop) callForward(m *Meta, frame []byte) (d Destinations, ok bool) {
	defer l.recoverCallback("Forward")
	return l.forward.Forward(m, frame), true
}

func (l *loop) recoverCallback(name string) {
	r := recover()
	if r == nil {
		return
	}
	l.stats.panics.Add(1)
	if l.panicLog.allow() {
		l.log.Error(name+" panicked: frame dropped", "panic", fmt.Sprint(r),
			"times", l.panicLog.take(), "stack", string(debug.Stack()))
	}
}

// sampler lets one log line through per second; take returns how many
// events the line stands for. Used by one goroutine.
type sampler struct {
	last   time.Time
	events int
}

func (s *sampler) allow() bool {
	s.events++
	now := time.Now()
	if !s.last.IsZero() && now.Sub(s.last) < time.Second {
		return false
	}
	s.last = now
	return true
}

func (s *sampler) take() int {
	n := s.events
	s.events = 0
	return n
}
