package sdk

import (
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xvswitch/xvs/extensions/api"
	"github.com/xvswitch/xvs/extensions/api/pb"
	"github.com/xvswitch/xvs/extensions/internal/shm"
)

// Errors of the host handle, for callers that branch on them.
var (
	// ErrStopped is returned by Inject once the switch stopped the
	// extension.
	ErrStopped = errors.New("extension stopped")
	// ErrRingFull is returned by Inject when the switch did not make room
	// within InjectWait: it is overloaded or gone. The frame was not sent.
	ErrRingFull = errors.New("up ring full")
	// ErrFrameLength is wrapped by Inject for a frame shorter than an
	// Ethernet header or longer than a slot.
	ErrFrameLength = errors.New("frame length out of range")
	// ErrNotFilter is returned by Inject in a capture or forwarding
	// extension: only filters may inject frames.
	ErrNotFilter = errors.New("only filter extensions inject frames")
)

// MinFrame is the shortest frame Inject or a modified verdict may carry:
// an Ethernet header.
const MinFrame = 14

// InjectWait is how long Inject (and the frame loop, for a verdict) waits
// for the switch to make room in a full up ring.
const InjectWait = 100 * time.Millisecond

// Host is the extension's handle on the switch, given to Starter.Start.
// Its methods are safe to call from any goroutine, during Start and until
// Stopper.Stop returns; afterwards Inject returns ErrStopped and
// Invalidate does nothing.
//
// The zero Host behaves like one that was stopped, with no settings and no
// ports, and a logger that discards: unit tests of an extension's Start
// and Filter may use &sdk.Host{}.
type Host struct {
	instance string
	config   map[string]string
	kind     api.Kind
	ports    *atomic.Pointer[portTable] // shared with the server: SetPorts replaces it
	log      hclog.Logger
	stats    *counters

	// life guards the mapping: readers use the region, close unmaps it.
	life     sync.RWMutex
	closed   bool
	region   *shm.Region
	doorbell int
	up       []upProducer // one per channel

	claimMu  sync.Mutex
	claiming bool // inside Starter.Start
	claimed  []uint32
	lateOnce sync.Once
}

// upProducer is the producing side of one channel's up ring, shared by the
// frame loop (verdicts) and Inject (channel 0, any goroutine).
type upProducer struct {
	mu      sync.Mutex
	ring    *shm.Ring
	pending bool // reserved descriptors not yet published
}

// Instance is the name the switch knows this extension by.
func (h *Host) Instance() string { return h.instance }

// Config returns a copy of the extension's settings from the switch
// configuration.
func (h *Host) Config() map[string]string {
	c := maps.Clone(h.config)
	if c == nil {
		c = map[string]string{}
	}
	return c
}

// Logger is the extension's logger. It writes JSON to the process's
// standard error, which go-plugin forwards into the switch's log with each
// line's level. Never log per frame: count instead (Stater), or sample.
func (h *Host) Logger() hclog.Logger {
	if h.log == nil {
		return hclog.NewNullLogger()
	}
	return h.log
}

// SlotSize is the longest frame the shared memory carries: the limit of
// Inject and of a modified verdict's frame.
func (h *Host) SlotSize() int {
	if h.region == nil {
		return 0
	}
	return h.region.SlotSize()
}

// Ports returns the switch's ports as of the last Start or SetPorts, in
// the order the switch gave them. The slice is the caller's.
func (h *Host) Ports() []Port { return slices.Clone(h.table().list) }

func (h *Host) table() *portTable {
	if h.ports == nil {
		return &portTable{}
	}
	return h.ports.Load()
}

// PortByName returns the port named name.
func (h *Host) PortByName(name string) (Port, bool) {
	t := h.table()
	i, ok := t.byName[name]
	if !ok {
		return Port{}, false
	}
	return t.list[i], true
}

// PortByIndex returns the port with switch index i (Meta.InPort and
// Meta.OutPort are such indexes). It does not allocate: frame callbacks
// may use it.
func (h *Host) PortByIndex(i uint16) (Port, bool) {
	t := h.table()
	j, ok := t.byIndex[i]
	if !ok {
		return Port{}, false
	}
	return t.list[j], true
}

// Invalidate tells the switch that its cached verdicts of this extension
// are stale, for example after the extension reloaded its rules: the next
// frame of every flow is asked again.
func (h *Host) Invalidate() {
	h.life.RLock()
	defer h.life.RUnlock()
	if !h.closed && h.region != nil {
		h.region.BumpGeneration()
	}
}

// Claim names the VSIDs whose forwarding a forwarding extension decides;
// without a claim it decides for every VSID the switch shows it. Only
// calls made inside Starter.Start count: the switch learns the claims from
// Start's reply. Later calls (and calls by other kinds) are logged and
// ignored.
func (h *Host) Claim(vsids ...uint32) {
	h.claimMu.Lock()
	defer h.claimMu.Unlock()
	if !h.claiming || h.kind != api.KindForward {
		h.lateOnce.Do(func() {
			h.Logger().Warn("Claim ignored: only a forwarding extension claims VSIDs, and only inside Start",
				"kind", h.kind.String(), "vsids", vsids)
		})
		return
	}
	for _, v := range vsids {
		if !slices.Contains(h.claimed, v) {
			h.claimed = append(h.claimed, v)
		}
	}
}

// Inject sends a new frame into the switch. With api.Ingress the frame
// enters as if received on port, and goes on through the extensions after
// this one and forwarding; with api.Egress it leaves on port, through the
// egress extensions after this one. The frame is copied: the caller keeps
// it. It must hold MinFrame to SlotSize bytes (the switch also drops, and
// counts as invalid, a frame longer than its own buffers or for a port it
// does not have).
//
// Inject is safe from any goroutine, including inside Filter. Injected
// frames travel on channel 0; when the switch does not make room within
// InjectWait, Inject returns ErrRingFull.
func (h *Host) Inject(port uint16, dir api.Direction, frame []byte) error {
	if dir != api.Ingress && dir != api.Egress {
		return fmt.Errorf("inject to port %d: direction %d: want ingress or egress", port, dir)
	}
	if port == api.NoPort {
		return fmt.Errorf("inject: port %#x is api.NoPort: want a port index", port)
	}
	h.life.RLock()
	defer h.life.RUnlock()
	if h.closed || h.region == nil {
		return fmt.Errorf("inject to port %d: %w", port, ErrStopped)
	}
	if h.kind != api.KindFilter {
		return fmt.Errorf("inject to port %d: %s extension: %w", port, h.kind, ErrNotFilter)
	}
	if n, max := len(frame), h.region.SlotSize(); n < MinFrame || n > max {
		h.stats.injectErrors.Add(1)
		return fmt.Errorf("inject to port %d: frame of %d bytes, want %d..%d: %w", port, n, MinFrame, max, ErrFrameLength)
	}
	p := &h.up[0]
	p.mu.Lock()
	defer p.mu.Unlock()
	d, slot, ok := p.reserve(InjectWait, nil, h.stats)
	if !ok {
		h.stats.injectErrors.Add(1)
		return fmt.Errorf("inject to port %d: %v: %w", port, InjectWait, ErrRingFull)
	}
	n := copy(slot, frame)
	d.Type = api.TypeInject
	d.Dir = uint8(dir)
	d.Time = time.Now().UnixNano()
	d.Len = uint32(n)
	d.OrigLen = uint32(n)
	d.InPort, d.OutPort = port, api.NoPort
	if dir == api.Egress {
		d.InPort, d.OutPort = api.NoPort, port
	}
	if pt, ok := h.PortByIndex(port); ok {
		d.VSID = pt.VSID
	}
	h.stats.injects.Add(1)
	p.publish()
	return nil
}

// reserve returns a free descriptor of p's ring (its Slot field set, the
// rest zero) and the descriptor's slot. When the ring is full it publishes
// what is pending, so that the switch can drain it, and retries for up to
// wait, or until abort is set. p.mu is held on entry and on return, and
// released while waiting.
func (p *upProducer) reserve(wait time.Duration, abort *atomic.Bool, c *counters) (*api.Desc, []byte, bool) {
	if d, slot, ok := p.ring.Reserve(); ok {
		p.pending = true
		return d, slot, true
	}
	c.upRingFull.Add(1)
	p.publish()
	deadline := time.Now().Add(wait)
	for i := 0; ; i++ {
		p.mu.Unlock()
		if i < 100 {
			runtime.Gosched()
		} else {
			time.Sleep(50 * time.Microsecond)
		}
		p.mu.Lock()
		if d, slot, ok := p.ring.Reserve(); ok {
			p.pending = true
			return d, slot, true
		}
		if abort != nil && abort.Load() || time.Now().After(deadline) {
			return nil, nil, false
		}
	}
}

// publish makes the reserved descriptors visible to the switch. p.mu is
// held.
func (p *upProducer) publish() {
	if p.pending {
		p.ring.Publish()
		p.pending = false
	}
}

// close unmaps the shared memory and closes the doorbell. The frame loop
// must have stopped; Inject and Invalidate calls in flight finish first.
func (h *Host) close() error {
	h.life.Lock()
	defer h.life.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	err := h.region.Close()
	if cerr := closeFD(h.doorbell); err == nil && cerr != nil {
		err = fmt.Errorf("close doorbell: %w", cerr)
	}
	return err
}

// endClaims closes the window in which Claim counts and returns the
// claims, sorted.
func (h *Host) endClaims() []uint32 {
	h.claimMu.Lock()
	defer h.claimMu.Unlock()
	h.claiming = false
	slices.Sort(h.claimed)
	return slices.Clone(h.claimed)
}

// portTable is an immutable snapshot of the switch's ports.
type portTable struct {
	list    []Port
	byIndex map[uint16]int
	byName  map[string]int
}

// newPortTable checks ports from the switch (field is the request field,
// for errors) and indexes them.
func newPortTable(field string, ports []*pb.Port) (*portTable, error) {
	t := &portTable{
		list:    make([]Port, 0, len(ports)),
		byIndex: make(map[uint16]int, len(ports)),
		byName:  make(map[string]int, len(ports)),
	}
	for i, p := range ports {
		if p == nil {
			return nil, fmt.Errorf("%s[%d]: missing", field, i)
		}
		if p.GetIndex() >= api.NoPort {
			return nil, fmt.Errorf("%s[%d].index %d: want 0..%d", field, i, p.GetIndex(), api.NoPort-1)
		}
		idx := uint16(p.GetIndex())
		if _, dup := t.byIndex[idx]; dup {
			return nil, fmt.Errorf("%s[%d].index %d: given twice", field, i, idx)
		}
		if _, dup := t.byName[p.GetName()]; dup {
			return nil, fmt.Errorf("%s[%d].name %q: given twice", field, i, p.GetName())
		}
		t.byIndex[idx] = len(t.list)
		t.byName[p.GetName()] = len(t.list)
		t.list = append(t.list, Port{Index: idx, Name: p.GetName(), VSID: p.GetVsid()})
	}
	return t, nil
}
