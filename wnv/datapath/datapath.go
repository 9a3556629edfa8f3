package datapath

import (
	"net"
	"net/netip"

	"github.com/xvswitch/xvs/ring"
	"github.com/xvswitch/xvs/wnv"
)

// Action is what happens to one frame of a batch the module was given.
type Action uint8

const (
	// Continue: not the module's to decide (group destinations, non-IP,
	// link-local, frames on the uplink for nobody here): the VSID's
	// learning bridge forwards it as it is.
	Continue Action = iota
	// Deliver: to the local port Verdict.Port, whose VSID the frame now
	// carries (Frame.VSID); decapsulated, rewritten back or routed as
	// needed.
	Deliver
	// Send: out of the uplink Verdict.Port, already encapsulated in NVGRE
	// or rewritten.
	Send
	// Flood: to every local port of the frame's VSID (Frame.VSID); a
	// broadcast or multicast another host replicated to us.
	Flood
	// Drop: counted under Verdict.Reason.
	Drop
	// Taken: the module answered it or keeps a copy (a frame waiting for
	// its next hop's MAC); nothing more to do and nothing to count.
	Taken
)

var actionNames = [...]string{Continue: "continue", Deliver: "deliver", Send: "send", Flood: "flood", Drop: "drop", Taken: "taken"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "unknown"
}

// Verdict is the module's decision on one frame.
type Verdict struct {
	Action Action
	Reason Reason // for Drop
	Port   uint16 // for Deliver and Send: the port's index
}

// Emit is a frame the module built or released (an ARP or ND answer, an
// ARP request on the uplink, an ICMP error, a replicated copy, a frame
// whose next hop answered): send Frame out of the port with index Port.
// Its buffer belongs to the module's pool and returns to it at Release.
type Emit struct {
	Frame ring.Frame
	Port  uint16
}

// Device is what the module reads from an uplink port: its MAC (the outer
// source of what it sends) and MTU (what fits once encapsulated).
type Device interface {
	MAC() net.HardwareAddr
	MTU() int
}

// Port is one port of the switch as the module sees it.
type Port struct {
	Index uint16
	Name  string // the name lookup records give as VMName
	VSID  uint32
	// Assigned is false for a port without a VSID: it is given no frames.
	Assigned bool
	Dev      Device
}

// Ports is the switch's port table at one moment. It is immutable: the
// switch builds a new one on every change, and the module's caches are
// valid for one table only.
type Ports struct {
	byName map[string]*Port
}

// NewPorts returns a table of list.
func NewPorts(list []Port) *Ports {
	t := &Ports{byName: make(map[string]*Port, len(list))}
	for i := range list {
		p := list[i]
		t.byName[p.Name] = &p
	}
	return t
}

// ByName returns the named port, or nil.
func (t *Ports) ByName(name string) *Port {
	if t == nil {
		return nil
	}
	return t.byName[name]
}

// inVSID returns the named port if it is assigned to vsid.
func (t *Ports) inVSID(name string, vsid uint32) *Port {
	p := t.ByName(name)
	if p == nil || !p.Assigned || p.VSID != vsid {
		return nil
	}
	return p
}

// Config tunes a module. The zero value is valid.
type Config struct {
	// HeadEndReplication sends broadcast and multicast (other than ARP
	// and ND, which the module answers) of a virtual subnet to every other
	// host with records in it, one NVGRE unicast per host.
	HeadEndReplication bool
	// Miss, if set, hears of every address a VM asked for that the policy
	// does not know. Called from the data path: it must not block.
	Miss func(vsid uint32, addr netip.Addr)
	// ICMPPerSecond bounds the ICMP errors (time exceeded, fragmentation
	// needed, packet too big) one module sends per second; 0 means
	// DefaultICMPPerSecond. The frames they answer are counted either way.
	ICMPPerSecond int
}

// DefaultICMPPerSecond is the ICMP error budget of one module.
const DefaultICMPPerSecond = 100

// Module is one worker's WNV data path. It is used by one goroutine; what
// it shares with the other workers' modules is in its Provider.
type Module struct {
	cfg   Config
	prov  *Provider
	arena *ring.Arena
	pool  *ring.Pool

	// The round's view: set by Begin.
	pol   *wnv.Snapshot
	ports *Ports
	now   uint32

	verdicts [ring.BatchSize]Verdict
	// Emits are the frames to send after the last call, in order; the
	// caller sends them and then calls Release once they are transmitted.
	Emits    []Emit
	borrowed []uint32 // pool buffers of emitted frames, freed by Release
	pending  []pendingFrame
	flows    *[flowCacheSize]flowEntry
	decaps   *[decapCacheSize]decapEntry
	icmp     icmpBudget
	// Drops counts the frames dropped since the caller last took them
	// (TakeDrops), by reason.
	drops Tally
}

// New returns a module whose frames live in arena and whose spare buffers
// (answers, copies, held frames) come from pool.
func New(cfg Config, prov *Provider, arena *ring.Arena, pool *ring.Pool) *Module {
	if cfg.ICMPPerSecond <= 0 {
		cfg.ICMPPerSecond = DefaultICMPPerSecond
	}
	return &Module{
		cfg: cfg, prov: prov, arena: arena, pool: pool,
		Emits:    make([]Emit, 0, 4*ring.BatchSize),
		borrowed: make([]uint32, 0, 4*ring.BatchSize),
		pending:  make([]pendingFrame, 0, MaxPending),
		flows:    new([flowCacheSize]flowEntry),
		decaps:   new([decapCacheSize]decapEntry),
	}
}

// Begin sets the policy snapshot, the port table and the time (seconds,
// from the switch's clock) that the calls until the next Begin use.
func (m *Module) Begin(pol *wnv.Snapshot, ports *Ports, now uint32) {
	m.pol, m.ports, m.now = pol, ports, now
}

// Policy is the snapshot Begin set.
func (m *Module) Policy() *wnv.Snapshot { return m.pol }

// IsVirtual reports whether vsid is a virtual subnet of the policy: the
// ports the module serves for frames from VMs.
func (m *Module) IsVirtual(vsid uint32) bool {
	if m.pol == nil || vsid == 0 {
		return false
	}
	_, ok := m.pol.Subnet(vsid)
	return ok
}

// IsUplink reports whether the named port carries one of this host's
// provider addresses: the port frames from other hosts arrive on.
func (m *Module) IsUplink(name string) bool {
	if m.pol == nil {
		return false
	}
	_, ok := m.prov.uplinksFor(m.pol).byPort[name]
	return ok
}

// TakeDrops adds the drops counted since the last call to t, and clears
// them.
func (m *Module) TakeDrops(t *Tally) {
	for r, n := range m.drops {
		if n != 0 {
			t[r] += n
			m.drops[r] = 0
		}
	}
}

// Release returns the buffers of the frames emitted so far to the pool and
// empties Emits. Call it once they are transmitted.
func (m *Module) Release() {
	for _, idx := range m.borrowed {
		m.pool.Put(idx)
	}
	m.borrowed = m.borrowed[:0]
	m.Emits = m.Emits[:0]
}

// spare takes a pool buffer for a frame the module builds; the frame goes
// at the headroom offset.
func (m *Module) spare() (buf []byte, idx uint32, ok bool) {
	idx, ok = m.pool.Get()
	if !ok {
		m.drops[DropPoolEmpty]++
		return nil, 0, false
	}
	return m.arena.Buffer(idx)[m.arena.Headroom():], idx, true
}

// emit queues the n-byte frame built in spare buffer idx for port, padded
// to the Ethernet minimum (err: the build failed; the buffer goes back).
func (m *Module) emit(port uint16, idx uint32, n int, err error) {
	if err != nil {
		m.pool.Put(idx)
		m.drops[DropMalformed]++
		return
	}
	buf := m.arena.Buffer(idx)[m.arena.Headroom():]
	for n < 60 {
		buf[n] = 0
		n++
	}
	m.emitFrame(port, ring.Frame{Index: idx, Offset: uint16(m.arena.Headroom()), Len: uint16(n)})
}

// emitFrame queues f, whose buffer is a spare one, for port.
func (m *Module) emitFrame(port uint16, f ring.Frame) {
	m.borrowed = append(m.borrowed, f.Index)
	m.Emits = append(m.Emits, Emit{Frame: f, Port: port})
}

// copyFrame copies f's bytes into a spare buffer.
func (m *Module) copyFrame(f *ring.Frame) (ring.Frame, bool) {
	buf, idx, ok := m.spare()
	if !ok {
		return ring.Frame{}, false
	}
	n := copy(buf, m.arena.Buffer(f.Index)[f.Offset:f.Offset+f.Len])
	c := *f
	c.Index, c.Offset, c.Len = idx, uint16(m.arena.Headroom()), uint16(n)
	return c, true
}

func (m *Module) miss(vsid uint32, addr netip.Addr) {
	m.drops[DropNoPolicy]++
	if m.cfg.Miss != nil {
		m.cfg.Miss(vsid, addr)
	}
}

// verdictsFor returns the verdict slots of a batch of n frames, all
// Continue.
func (m *Module) verdictsFor(n int) []Verdict {
	v := m.verdicts[:n]
	clear(v)
	return v
}

func (m *Module) drop(v *Verdict, r Reason) {
	v.Action, v.Reason = Drop, r
	m.drops[r]++
}
