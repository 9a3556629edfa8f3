package vswitch

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/xvswitch/xvs/api"
	"github.com/xvswitch/xvs/extensions"
	"github.com/xvswitch/xvs/header"
	"github.com/xvswitch/xvs/ports"
	"github.com/xvswitch/xvs/ring"
	"github.com/xvswitch/xvs/wnv"
	"github.com/xvswitch/xvs/wnv/datapath"
)

// VSID values with a meaning of their own. A virtualized port has a VSID in
// [VSIDMin, VSIDMax] (RFC 7637 reserves 0..0xFFF and 0xFFFFFF). The range
// is package header's, the two others the control API's.
const (
	VSIDNone       uint32 = api.VSIDNone       // non-virtualized: a plain learning bridge
	VSIDMin        uint32 = header.MinVSID     // lowest VSID of a virtual subnet
	VSIDMax        uint32 = header.MaxVSID     // highest VSID of a virtual subnet
	VSIDUnassigned uint32 = api.VSIDUnassigned // port forwards nothing (no-vsid)
)

// MaxPorts is the most ports one switch holds.
const MaxPorts = 4096

// Sentinel errors callers branch on.
var (
	ErrPortExists   = errors.New("port already exists")
	ErrNoSuchPort   = errors.New("no such port")
	ErrTooManyPorts = errors.New("too many ports")
	ErrBadVSID      = errors.New("invalid VSID")
	ErrBadConfig    = errors.New("invalid switch configuration")
	ErrClosed       = errors.New("switch closed")
)

// CheckVSID returns an error naming v unless it is 0, a virtual subnet
// VSID, or VSIDUnassigned.
func CheckVSID(v uint32) error {
	if v == VSIDNone || v == VSIDUnassigned || (v >= VSIDMin && v <= VSIDMax) {
		return nil
	}
	return fmt.Errorf("%w: %d: want 0 (non-virtualized) or %d..%d", ErrBadVSID, v, VSIDMin, VSIDMax)
}

// PollMode says how a worker waits when its ports are idle.
type PollMode uint8

const (
	// PollAdaptive spins briefly, then sleeps with exponential backoff up
	// to 1 ms, so an idle switch costs well under a few percent of a core.
	PollAdaptive PollMode = iota
	// PollBusy never sleeps: lowest latency, one full core per worker.
	PollBusy
)

func (m PollMode) String() string {
	if m == PollBusy {
		return "busy"
	}
	return "adaptive"
}

// ParsePollMode parses "adaptive" or "busy".
func ParsePollMode(s string) (PollMode, error) {
	switch s {
	case "adaptive", "":
		return PollAdaptive, nil
	case "busy":
		return PollBusy, nil
	}
	return 0, fmt.Errorf("%w: poll mode %q: want adaptive or busy", ErrBadConfig, s)
}

// Config sizes and tunes a Switch. Zero fields take defaults.
type Config struct {
	Workers   int              // poll-mode goroutines, each on its own OS thread (default 1)
	PollMode  PollMode         // default adaptive
	Arena     ring.ArenaConfig // frame memory per worker (default ring.DefaultArenaConfig)
	MACLimit  int              // learned MACs per VSID (default 4096)
	MACAgeing time.Duration    // a MAC not seen for this long is forgotten (default 300 s)
	Logger    zerolog.Logger   // control-plane events; never per frame
	Offload   Offload          // told about learned stations; nil: none
	// Policy is the network virtualization policy; nil: none. With it,
	// ARP and Neighbor Discovery on virtualized ports are answered by the
	// switch from the policy's lookup records and never flooded.
	Policy *wnv.Policy
	// HeadEndReplication sends broadcast and multicast (other than ARP and
	// ND, which the switch answers) of a virtual subnet to every other
	// host with records in it, one NVGRE unicast per host.
	HeadEndReplication bool
	// PolicyMiss, if set, hears of every address a VM asked for that the
	// policy does not know: the hook for a lookup-on-miss to a policy
	// server. Called from a worker per missed request: it must not block.
	PolicyMiss PolicyMiss
}

// PolicyMiss is told of addresses the policy could not answer.
type PolicyMiss interface {
	Miss(vsid uint32, addr netip.Addr)
}

// Offload is told which stations the switch has learned, so that a layer
// below it (the AF_XDP ports' in-kernel fast path) can forward known
// unicast between its ports on the switch's behalf. Learn comes from a
// worker the first time a station is seen or when it moves (not per
// frame); the rest from the control plane. Implementations must ignore
// ports they cannot serve.
type Offload interface {
	Learn(vsid uint32, mac uint64, p ports.Port)
	Forget(vsid uint32, mac uint64)
	// SetVSID says which VSID p's frames belong to; VSIDUnassigned: none.
	SetVSID(p ports.Port, vsid uint32)
}

const (
	defaultMACLimit  = 4096
	defaultMACAgeing = 300 * time.Second
	maxWorkers       = 64
)

func (c *Config) setDefaults() error {
	if c.Workers == 0 {
		c.Workers = 1
	}
	if c.Workers < 0 || c.Workers > maxWorkers {
		return fmt.Errorf("%w: workers %d: want 1..%d", ErrBadConfig, c.Workers, maxWorkers)
	}
	if c.Arena == (ring.ArenaConfig{}) {
		c.Arena = ring.DefaultArenaConfig
	}
	if c.Arena.Frames < ring.BatchSize*2 {
		return fmt.Errorf("%w: arena frames %d: want at least %d", ErrBadConfig, c.Arena.Frames, ring.BatchSize*2)
	}
	if c.MACLimit == 0 {
		c.MACLimit = defaultMACLimit
	}
	if c.MACLimit < 0 || c.MACLimit > 1<<20 {
		return fmt.Errorf("%w: mac limit %d: want 1..%d", ErrBadConfig, c.MACLimit, 1<<20)
	}
	if c.MACAgeing == 0 {
		c.MACAgeing = defaultMACAgeing
	}
	if c.MACAgeing < time.Second {
		return fmt.Errorf("%w: mac ageing %v: want at least 1s", ErrBadConfig, c.MACAgeing)
	}
	return nil
}

// Switch is a virtual switch: ports, per-VSID learning domains and the
// workers that poll the ports.
type Switch struct {
	cfg Config
	log zerolog.Logger

	snap     atomic.Pointer[snapshot] // what workers read
	provider *datapath.Provider       // the provider network as the WNV modules know it
	clock    atomic.Uint32            // seconds since New, for MAC ageing

	mu      sync.Mutex // control plane: everything below
	ports   map[string]*portState
	byIdx   [MaxPorts]*portState
	domains map[uint32]*domainState
	workers []*worker
	exts    []*extState // loaded extensions, in chain order
	running bool
	closed  bool
	stop    chan struct{}
	wg      sync.WaitGroup
	born    time.Time
}

// portState is what persists about a port across snapshots.
type portState struct {
	port     ports.Port
	name     string
	idx      uint16
	vsid     uint32
	worker   int
	ctr      counters
	tx       []*ring.Batch // one per worker, over that worker's arena
	txMu     sync.Mutex    // serialises Transmit when several workers run
	lockTx   bool
	attached time.Time
}

// domainState is one VSID's learning domain.
type domainState struct {
	vsid    uint32
	macs    *macTable
	members []uint16 // port indexes, sorted
}

// snapshot is an immutable view of the ports for the data path.
type snapshot struct {
	views    []*portView // by port index; nil where no port
	byName   map[string]*portView
	byVSID   map[uint32]*domView
	byWorker [][]*portView     // ports each worker polls
	chain    *extensions.Chain // enabled extensions, in ingress order
	wnvPorts *datapath.Ports   // the ports as the WNV module sees them
}

type portView struct {
	st      *portState
	dom     *domView       // nil: unassigned
	wnvPort *datapath.Port // the port in wnvPorts
}

type domView struct {
	vsid    uint32
	macs    *macTable
	members []uint16
}

// New returns a stopped switch with no ports.
func New(cfg Config) (*Switch, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Switch{
		cfg:      cfg,
		log:      cfg.Logger,
		ports:    map[string]*portState{},
		domains:  map[uint32]*domainState{},
		born:     time.Now(),
		provider: datapath.NewProvider(),
	}
	for i := range cfg.Workers {
		w, err := newWorker(s, i)
		if err != nil {
			return nil, err
		}
		s.workers = append(s.workers, w)
	}
	s.publishLocked()
	return s, nil
}

// Config returns the switch's configuration with defaults filled in.
func (s *Switch) Config() Config { return s.cfg }

// AddPort attaches p with the given VSID. The switch owns p from now on and
// closes it on RemovePort or Close, also when AddPort fails.
func (s *Switch) AddPort(p ports.Port, vsid uint32) error {
	name := p.Name()
	fail := func(err error) error {
		p.Close()
		return err
	}
	if err := checkPortName(name); err != nil {
		return fail(err)
	}
	if err := CheckVSID(vsid); err != nil {
		return fail(fmt.Errorf("port %s: %w", name, err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fail(ErrClosed)
	}
	if _, ok := s.ports[name]; ok {
		return fail(fmt.Errorf("add port %s: %w", name, ErrPortExists))
	}
	idx := -1
	for i, ps := range s.byIdx {
		if ps == nil {
			idx = i
			break
		}
	}
	if idx < 0 {
		return fail(fmt.Errorf("add port %s: %w (%d)", name, ErrTooManyPorts, MaxPorts))
	}
	ps := &portState{
		port: p, name: name, idx: uint16(idx), vsid: vsid,
		worker: s.leastLoadedWorkerLocked(), lockTx: len(s.workers) > 1,
		attached: time.Now(),
	}
	for _, w := range s.workers {
		ps.tx = append(ps.tx, ring.NewBatch(w.arena))
	}
	s.ports[name] = ps
	s.byIdx[idx] = ps
	s.joinLocked(ps)
	s.publishLocked()
	s.log.Info().Str("port", name).Uint32("vsid", vsid).Int("worker", ps.worker).Msg("port added")
	return nil
}

func checkPortName(name string) error {
	if name == "" || len(name) > 64 || strings.ContainsAny(name, " \t\n/") {
		return fmt.Errorf("invalid port name %q: want 1..64 characters without spaces or '/'", name)
	}
	return nil
}

// RemovePort detaches and closes the named port. Traffic on other ports
// is not interrupted.
func (s *Switch) RemovePort(name string) error {
	s.mu.Lock()
	ps, ok := s.ports[name]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("remove port %s: %w", name, ErrNoSuchPort)
	}
	s.leaveLocked(ps)
	delete(s.ports, name)
	s.byIdx[ps.idx] = nil
	s.publishLocked()
	s.waitQuiescentLocked()
	s.mu.Unlock()
	err := ps.port.Close()
	s.log.Info().Str("port", name).Err(err).Msg("port removed")
	if err != nil {
		return fmt.Errorf("remove port %s: close: %w", name, err)
	}
	return nil
}

// SetPortVSID moves a port to another virtual subnet. Its learned MACs are
// forgotten in the old one.
func (s *Switch) SetPortVSID(name string, vsid uint32) error {
	if err := CheckVSID(vsid); err != nil {
		return fmt.Errorf("port %s: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ps, ok := s.ports[name]
	if !ok {
		return fmt.Errorf("set port %s: %w", name, ErrNoSuchPort)
	}
	if ps.vsid == vsid {
		return nil
	}
	old := ps.vsid
	s.leaveLocked(ps)
	ps.vsid = vsid
	s.joinLocked(ps)
	s.publishLocked()
	s.log.Info().Str("port", name).Uint32("old_vsid", old).Uint32("vsid", vsid).Msg("port moved to another VSID")
	return nil
}

func (s *Switch) joinLocked(ps *portState) {
	if ps.vsid == VSIDUnassigned {
		return
	}
	if s.cfg.Offload != nil {
		s.cfg.Offload.SetVSID(ps.port, ps.vsid)
	}
	d, ok := s.domains[ps.vsid]
	if !ok {
		d = &domainState{vsid: ps.vsid, macs: newMACTable(s.cfg.MACLimit)}
		s.domains[ps.vsid] = d
	}
	m := append(slices.Clone(d.members), ps.idx)
	slices.Sort(m)
	d.members = m
}

func (s *Switch) leaveLocked(ps *portState) {
	d, ok := s.domains[ps.vsid]
	if !ok {
		return
	}
	if s.cfg.Offload != nil {
		s.cfg.Offload.SetVSID(ps.port, VSIDUnassigned)
	}
	d.members = slices.DeleteFunc(slices.Clone(d.members), func(i uint16) bool { return i == ps.idx })
	idx := uint32(ps.idx)
	d.macs.removeIf(func(port, _ uint32) bool { return port == idx }, s.forgetter(d.vsid))
	if len(d.members) == 0 {
		delete(s.domains, ps.vsid)
	}
}

// forgetter tells the offload that a station of vsid is gone.
func (s *Switch) forgetter(vsid uint32) func(mac uint64) {
	if s.cfg.Offload == nil {
		return nil
	}
	return func(mac uint64) { s.cfg.Offload.Forget(vsid, mac) }
}

func (s *Switch) leastLoadedWorkerLocked() int {
	load := make([]int, len(s.workers))
	for _, ps := range s.ports {
		load[ps.worker]++
	}
	best := 0
	for i, n := range load {
		if n < load[best] {
			best = i
		}
	}
	return best
}

// publishLocked builds a new snapshot from the control-plane state.
func (s *Switch) publishLocked() {
	snap := &snapshot{byWorker: make([][]*portView, len(s.workers)), byName: map[string]*portView{}, byVSID: map[uint32]*domView{}}
	top := 0
	for _, ps := range s.ports {
		top = max(top, int(ps.idx)+1)
	}
	snap.views = make([]*portView, top)
	doms := map[uint32]*domView{}
	for vsid, d := range s.domains {
		doms[vsid] = &domView{vsid: vsid, macs: d.macs, members: d.members}
		snap.byVSID[vsid] = doms[vsid]
	}
	var wnvPorts []datapath.Port
	var chainPorts []extensions.ChainPort
	for _, ps := range s.byIdx[:top] {
		if ps == nil {
			continue
		}
		v := &portView{st: ps, dom: doms[ps.vsid]}
		snap.views[ps.idx] = v
		snap.byName[ps.name] = v
		snap.byWorker[ps.worker] = append(snap.byWorker[ps.worker], v)
		assigned := ps.vsid != VSIDUnassigned
		wnvPorts = append(wnvPorts, datapath.Port{Index: ps.idx, Name: ps.name, VSID: ps.vsid, Assigned: assigned, Dev: ps.port})
		chainPorts = append(chainPorts, extensions.ChainPort{Index: ps.idx, Name: ps.name, VSID: ps.vsid, Assigned: assigned})
	}
	snap.wnvPorts = datapath.NewPorts(wnvPorts)
	for _, v := range snap.views {
		if v != nil {
			v.wnvPort = snap.wnvPorts.ByName(v.st.name)
		}
	}
	snap.chain = extensions.NewChain(s.chainLocked(), chainPorts)
	s.snap.Store(snap)
	for _, st := range s.exts {
		st.link.Extension().PortsChanged()
	}
}

// waitQuiescentLocked returns once every running worker has started a new
// poll round, so none can still hold a view from before the last publish.
func (s *Switch) waitQuiescentLocked() {
	if !s.running {
		return
	}
	seen := make([]uint64, len(s.workers))
	for i, w := range s.workers {
		seen[i] = w.epoch.Load()
	}
	deadline := time.Now().Add(5 * time.Second)
	for i, w := range s.workers {
		for w.epoch.Load() == seen[i] && !w.stopped.Load() {
			if time.Now().After(deadline) {
				s.log.Warn().Int("worker", i).Msg("worker did not finish its poll round within 5s; closing the port anyway")
				return
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
}

// Start launches the workers and the MAC ageing timer.
func (s *Switch) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.running {
		return nil
	}
	s.running = true
	s.stop = make(chan struct{})
	for _, w := range s.workers {
		w.stopped.Store(false)
		s.wg.Add(1)
		go w.run(s.stop)
	}
	s.wg.Add(1)
	go s.janitor(s.stop)
	s.log.Info().Int("workers", len(s.workers)).Str("poll_mode", s.cfg.PollMode.String()).Msg("switch started")
	return nil
}

// janitor advances the switch clock and ages out MAC entries.
func (s *Switch) janitor(stop <-chan struct{}) {
	defer s.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			s.clock.Store(uint32(time.Since(s.born) / time.Second))
			s.Age()
			s.logNeighborEvents()
		}
	}
}

// logNeighborEvents logs the provider next hops whose MAC changed, or that
// were claimed by an unasked ARP and refused, since the last call.
func (s *Switch) logNeighborEvents() {
	for _, ev := range s.provider.NeighborEvents() {
		if ev.Refused {
			s.log.Warn().Str("next_hop", ev.Addr.String()).Str("mac", formatMAC(mac48(ev.Old[:]))).
				Str("claimed_mac", formatMAC(mac48(ev.New[:]))).Msg("unasked ARP claims another MAC for a provider next hop: refused (neighbor-changed)")
			continue
		}
		s.log.Warn().Str("next_hop", ev.Addr.String()).Str("old_mac", formatMAC(mac48(ev.Old[:]))).
			Str("mac", formatMAC(mac48(ev.New[:]))).Msg("provider next hop's MAC changed (neighbor-changed)")
	}
}

// Age forgets the MACs not seen for longer than the ageing time. The
// janitor calls it each second; tests call it directly.
func (s *Switch) Age() int {
	now := s.clock.Load()
	limit := uint32(s.cfg.MACAgeing / time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, d := range s.domains {
		n += d.macs.removeIf(func(_, seen uint32) bool { return now-seen > limit }, s.forgetter(d.vsid))
	}
	return n
}

// Close stops the workers and closes every port. Safe to call twice.
func (s *Switch) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.running {
		close(s.stop)
		s.running = false
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.closeExtensions()

	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for name, ps := range s.ports {
		if err := ps.port.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close port %s: %w", name, err))
		}
		delete(s.ports, name)
		s.byIdx[ps.idx] = nil
	}
	s.domains = map[uint32]*domainState{}
	s.publishLocked()
	s.log.Info().Msg("switch stopped")
	return errors.Join(errs...)
}

// RunOnce polls every port once on the calling goroutine and forwards what
// arrived; it returns the number of frames received. It is for tests and
// benchmarks and must not be used while the switch is started.
func (s *Switch) RunOnce() int {
	n := 0
	for _, w := range s.workers {
		n += w.round()
	}
	return n
}

// PortInfo describes a port; it is the control API's type.
type PortInfo = api.PortInfo

// PortStats are a port's counters: the switch's and the port's own; it is
// the control API's type.
type PortStats = api.PortStats

// Ports lists the ports by name.
func (s *Switch) Ports() []PortInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PortInfo, 0, len(s.ports))
	for _, ps := range s.ports {
		mac := ""
		if m := ps.port.MAC(); m != nil {
			mac = m.String()
		}
		out = append(out, PortInfo{Name: ps.name, Index: int(ps.idx), VSID: ps.vsid, MAC: mac, MTU: ps.port.MTU(), Worker: ps.worker})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Port returns the named port, for callers that need its concrete type.
func (s *Switch) Port(name string) (ports.Port, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps, ok := s.ports[name]
	if !ok {
		return nil, fmt.Errorf("port %s: %w", name, ErrNoSuchPort)
	}
	return ps.port, nil
}

// Stats returns the counters of the named port, or of every port (sorted by
// name) when name is empty. Every drop reason appears, zero or not; the
// port's own drop reasons are added under their names.
func (s *Switch) Stats(name string) ([]PortStats, error) {
	s.mu.Lock()
	var list []*portState
	if name != "" {
		ps, ok := s.ports[name]
		if !ok {
			s.mu.Unlock()
			return nil, fmt.Errorf("stats %s: %w", name, ErrNoSuchPort)
		}
		list = append(list, ps)
	} else {
		for _, ps := range s.ports {
			list = append(list, ps)
		}
	}
	s.mu.Unlock()
	out := make([]PortStats, 0, len(list))
	for _, ps := range list {
		st := PortStats{
			Name: ps.name, VSID: ps.vsid,
			RxFrames: ps.ctr.rxFrames.Load(), RxBytes: ps.ctr.rxBytes.Load(),
			TxFrames: ps.ctr.txFrames.Load(), TxBytes: ps.ctr.txBytes.Load(),
			Drops: map[string]uint64{},
		}
		for r := range NumDropReasons {
			st.Drops[r.String()] = ps.ctr.drops[r].Load()
		}
		own := ps.port.Stats()
		for k, v := range own.Drops {
			st.Drops[k] += v
		}
		st.OffloadRxFrames, st.OffloadTxFrames = own.OffloadRxFrames, own.OffloadTxFrames
		st.RxFrames += own.OffloadRxFrames
		st.RxBytes += own.OffloadRxBytes
		st.TxFrames += own.OffloadTxFrames
		st.TxBytes += own.OffloadTxBytes
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// MACEntry is one learned address; it is the control API's type.
type MACEntry = api.MACEntry

// MACs lists the learned addresses of every VSID.
func (s *Switch) MACs() []MACEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Load()
	var out []MACEntry
	for vsid, d := range s.domains {
		d.macs.entries(func(mac uint64, port, seen uint32) {
			name := ""
			if int(port) < len(s.byIdx) && s.byIdx[port] != nil {
				name = s.byIdx[port].name
			}
			out = append(out, MACEntry{VSID: vsid, MAC: formatMAC(mac), Port: name, Age: int(now - seen)})
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].VSID != out[j].VSID {
			return out[i].VSID < out[j].VSID
		}
		return out[i].MAC < out[j].MAC
	})
	return out
}

func formatMAC(m uint64) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", byte(m>>40), byte(m>>32), byte(m>>24), byte(m>>16), byte(m>>8), byte(m))
}
