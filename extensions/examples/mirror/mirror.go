package main

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xvswitch/xvs/extensions/sdk"
	"github.com/xvswitch/xvs/header"
)

// host is the part of *sdk.Host the mirror uses; tests pass a fake.
type host interface {
	Config() map[string]string
	Claim(vsids ...uint32)
	PortByName(name string) (sdk.Port, bool)
	PortByIndex(i uint16) (sdk.Port, bool)
	Invalidate()
}

// logger is the part of hclog.Logger the mirror uses.
type logger interface {
	Info(msg string, args ...any)
}

// Config keys.
const (
	keyMonitor = "monitor"
	keyVSIDs   = "vsids"
)

// The VSIDs the mirror accepts: 0 or a 24-bit virtual subnet ID, as
// extensions.Config does.
const (
	minVSID = header.MinVSID
	maxVSID = header.MaxVSID
)

// watchInterval is how often the monitor port is looked up again, to
// notice it being removed, renamed or given another index while the
// switch holds cached verdicts naming it.
const watchInterval = 500 * time.Millisecond

// monitorPort is the resolved monitor port. It is never changed once
// published: ports is handed to the SDK in every Destinations.
type monitorPort struct {
	index uint16
	ports []uint16 // {index}
}

// Mirror sends the frames of the VSIDs it claims to the monitor port as
// well as to where the switch would send them. Its zero value is ready
// for Start.
type Mirror struct {
	host    host
	log     logger
	monitor string              // the monitor port's name
	vsids   map[uint32]struct{} // read-only after start

	// mon is the monitor port as last resolved; nil: not found.
	mon atomic.Pointer[monitorPort]

	// interval overrides watchInterval (tests).
	interval time.Duration
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}

	mirrored       atomic.Uint64
	monitorMissing atomic.Uint64
	fromMonitor    atomic.Uint64
}

var (
	_ sdk.Extension = (*Mirror)(nil)
	_ sdk.Forward   = (*Mirror)(nil)
	_ sdk.Stopper   = (*Mirror)(nil)
	_ sdk.Stater    = (*Mirror)(nil)
)

// Info describes the extension. Decisions are per flow: the switch caches
// them.
func (mr *Mirror) Info() sdk.Info {
	return sdk.Info{
		Name:        "mirror",
		Description: "copies the frames of chosen VSIDs to a monitor port",
	}
}

// config is the mirror's configuration, checked.
type config struct {
	monitor string
	vsids   []uint32 // sorted, no duplicates
}

// parseConfig checks the key/values from the switch configuration.
func parseConfig(kv map[string]string) (config, error) {
	for k := range kv {
		if k != keyMonitor && k != keyVSIDs {
			return config{}, fmt.Errorf("config key %q: unknown: want %s or %s", k, keyMonitor, keyVSIDs)
		}
	}
	c := config{monitor: strings.TrimSpace(kv[keyMonitor])}
	if c.monitor == "" {
		return config{}, fmt.Errorf("config %s: missing: want the name of the monitor port", keyMonitor)
	}
	list := kv[keyVSIDs]
	if strings.TrimSpace(list) == "" {
		return config{}, fmt.Errorf("config %s: missing: want the VSIDs to mirror, such as 5001,5002", keyVSIDs)
	}
	for f := range strings.SplitSeq(list, ",") {
		f = strings.TrimSpace(f)
		v, err := strconv.ParseUint(f, 10, 32)
		if err != nil || v != 0 && (v < minVSID || v > maxVSID) {
			return config{}, fmt.Errorf("config %s %q: VSID %q: want 0 or %d..%d", keyVSIDs, list, f, minVSID, maxVSID)
		}
		c.vsids = append(c.vsids, uint32(v))
	}
	slices.Sort(c.vsids)
	c.vsids = slices.Compact(c.vsids)
	return c, nil
}

// start reads the configuration, claims the VSIDs and looks for the
// monitor port, which need not exist yet.
func (mr *Mirror) start(h host, log logger) error {
	if mr.stop != nil {
		return errors.New("start: already started")
	}
	cfg, err := parseConfig(h.Config())
	if err != nil {
		return err
	}
	mr.host, mr.log, mr.monitor = h, log, cfg.monitor
	mr.vsids = make(map[uint32]struct{}, len(cfg.vsids))
	for _, v := range cfg.vsids {
		mr.vsids[v] = struct{}{}
	}
	h.Claim(cfg.vsids...)
	if mp := mr.resolve(); mp != nil {
		log.Info("mirroring", "vsids", cfg.vsids, "monitor", mr.monitor, "index", mp.index)
	} else {
		log.Info("mirroring once the monitor port exists", "vsids", cfg.vsids, "monitor", mr.monitor)
	}
	if mr.interval <= 0 {
		mr.interval = watchInterval
	}
	mr.stop = make(chan struct{})
	mr.done = make(chan struct{})
	go mr.watch()
	return nil
}

// Forward mirrors a frame of a claimed VSID to the monitor port, and lets
// the switch forward it as usual (Default). The frame is not read.
//
// While the monitor port does not exist the answer is Default only, and
// not cached, so that the flow's next frame asks again and is mirrored
// once the port appears. A frame that came in on the monitor port is not
// mirrored back to it.
func (mr *Mirror) Forward(m *sdk.Meta, _ []byte) sdk.Destinations {
	if _, ok := mr.vsids[m.VSID]; !ok { // not claimed: the switch's choice
		return sdk.Destinations{Default: true}
	}
	mp := mr.current()
	if mp == nil {
		mr.monitorMissing.Add(1)
		return sdk.Destinations{Default: true, NoCache: true}
	}
	if m.InPort == mp.index {
		mr.fromMonitor.Add(1)
		return sdk.Destinations{Default: true}
	}
	mr.mirrored.Add(1)
	return sdk.Destinations{Default: true, Ports: mp.ports}
}

// current returns the monitor port, checked against the switch's port
// table (a lookup that does not allocate), or nil.
func (mr *Mirror) current() *monitorPort {
	if mp := mr.mon.Load(); mp != nil {
		if p, ok := mr.host.PortByIndex(mp.index); ok && p.Name == mr.monitor {
			return mp
		}
	}
	return mr.resolve()
}

// resolve looks the monitor port up by name and publishes the result.
// When a port it had resolved changed (gone, or another index), it tells
// the switch to forget its cached verdicts, which name the old index.
func (mr *Mirror) resolve() *monitorPort {
	old := mr.mon.Load()
	p, ok := mr.host.PortByName(mr.monitor)
	var mp *monitorPort
	switch {
	case !ok:
	case old != nil && old.index == p.Index:
		return old
	default:
		mp = &monitorPort{index: p.Index, ports: []uint16{p.Index}}
	}
	if old == mp || !mr.mon.CompareAndSwap(old, mp) {
		return mr.mon.Load() // unchanged, or the watcher got there first
	}
	if old != nil {
		// Cached verdicts name the old index (verdicts given while the
		// port was missing were not cached).
		mr.host.Invalidate()
	}
	if mp != nil {
		mr.log.Info("monitor port found", "monitor", mr.monitor, "index", mp.index)
	} else {
		mr.log.Info("monitor port gone: not mirroring until it is back", "monitor", mr.monitor)
	}
	return mp
}

// watch looks the monitor port up every interval: Forward only sees the
// first frame of each flow, so without it a change of the monitor port
// would go unnoticed by flows already cached.
func (mr *Mirror) watch() {
	defer close(mr.done)
	t := time.NewTicker(mr.interval)
	defer t.Stop()
	for {
		select {
		case <-mr.stop:
			return
		case <-t.C:
			mr.current()
		}
	}
}

// Stop stops watching the monitor port. It is safe to call twice, and
// before Start.
func (mr *Mirror) Stop() {
	if mr.stop == nil {
		return
	}
	mr.stopOnce.Do(func() {
		close(mr.stop)
		<-mr.done
	})
}

// Stats returns the counters: decisions that mirrored a flow, that could
// not because the monitor port was missing (per frame: those are not
// cached), and flows from the monitor port itself.
func (mr *Mirror) Stats() map[string]uint64 {
	return map[string]uint64{
		"mirrored":        mr.mirrored.Load(),
		"monitor-missing": mr.monitorMissing.Load(),
		"from-monitor":    mr.fromMonitor.Load(),
	}
}
