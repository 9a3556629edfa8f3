package extensions

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/rs/zerolog"

	"github.com/xvswitch/xvs/extensions/api"
	"github.com/xvswitch/xvs/extensions/api/pb"
	"github.com/xvswitch/xvs/extensions/internal/shm"
	"github.com/xvswitch/xvs/internal/sysio"
)

// State is where an extension is in its life.
type State uint32

const (
	StateStarting State = iota
	StateRunning
	StateFailed // crashed or too slow: fail mode applies, restart pending
	StateStopped
)

func (s State) String() string {
	return [...]string{"starting", "running", "failed", "stopped"}[s]
}

// Port is a switch port as extensions are told of it.
type Port struct {
	Index uint16
	Name  string
	VSID  uint32
}

// Options are what the switch gives an extension besides its Config.
type Options struct {
	Workers int            // channels in the region: one per switch worker
	Logger  zerolog.Logger // lifecycle events
	// Quiesce returns once no worker can still use an instance that was
	// replaced (Live changed) before the call.
	Quiesce func()
	// Ports returns the switch's ports, for the extension's port table.
	Ports func() []Port
}

// Backoff of restarts: from restartMin doubling to restartMax; an instance
// that ran for stableAfter resets it.
const (
	restartMin  = 100 * time.Millisecond
	restartMax  = 30 * time.Second
	stableAfter = 30 * time.Second
	startRPC    = 10 * time.Second
	watchEvery  = 50 * time.Millisecond
)

// Extension supervises one extension process.
type Extension struct {
	cfg  Config
	opts Options
	log  zerolog.Logger

	live     atomic.Pointer[Instance]
	state    atomic.Uint32
	kind     atomic.Uint32 // api.Kind, known after the first start
	every    atomic.Bool
	restarts atomic.Uint64
	lastErr  atomic.Pointer[string]
	fail     chan string // workers report failures here
	portsCh  chan struct{}

	// Counters is updated by workers (per batch) and read by stats.
	Counters Counters

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// Instance is one running extension process and its shared memory.
type Instance struct {
	ext          *Extension
	serial       uint64
	region       *shm.Region
	doorbell     sysio.EventFD // owned by doorbellFile
	doorbellFile *os.File
	client       *plugin.Client
	rpc          pb.ExtensionClient
	pid          int
	claimed      []uint32
	started      time.Time
	failed       atomic.Bool
}

// Start validates cfg, starts the extension process and its supervisor. An
// error means the extension never ran (bad config, missing executable,
// handshake or Start refused); later failures are handled by restarting.
func Start(cfg Config, opts Options) (*Extension, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Workers < 1 {
		opts.Workers = 1
	}
	if opts.Quiesce == nil {
		opts.Quiesce = func() {}
	}
	if opts.Ports == nil {
		opts.Ports = func() []Port { return nil }
	}
	e := &Extension{
		cfg: cfg, opts: opts,
		log:     opts.Logger.With().Str("extension", cfg.Name).Logger(),
		fail:    make(chan string, 1),
		portsCh: make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	inst, err := e.launch(1)
	if err != nil {
		return nil, fmt.Errorf("extension %s: %w", cfg.Name, err)
	}
	e.live.Store(inst)
	e.state.Store(uint32(StateRunning))
	e.log.Info().Str("kind", e.Kind().String()).Int("pid", inst.pid).Str("path", cfg.Path).
		Str("fail", e.FailMode().String()).Msg("extension started")
	go e.supervise(inst)
	return e, nil
}

// Config is the extension's configuration with defaults filled in.
func (e *Extension) Config() Config { return e.cfg }

// Name is the extension's name.
func (e *Extension) Name() string { return e.cfg.Name }

// Kind is what the extension said it is.
func (e *Extension) Kind() api.Kind { return api.Kind(e.kind.Load()) }

// EveryFrame reports whether the extension sees every frame rather than
// the first of each flow.
func (e *Extension) EveryFrame() bool { return e.cfg.EveryFrame || e.every.Load() }

// FailMode is the effective fail mode (the kind's default resolved).
func (e *Extension) FailMode() FailMode {
	if e.cfg.Fail != FailDefault {
		return e.cfg.Fail
	}
	if e.Kind() == api.KindFilter {
		return FailClosed
	}
	return FailOpen
}

// State is where the extension is in its life.
func (e *Extension) State() State { return State(e.state.Load()) }

// Restarts counts restarts after failures.
func (e *Extension) Restarts() uint64 { return e.restarts.Load() }

// LastError is the reason of the last failure, or "".
func (e *Extension) LastError() string {
	if p := e.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}

// PID is the running process's ID, or 0.
func (e *Extension) PID() int {
	if i := e.live.Load(); i != nil {
		return i.pid
	}
	return 0
}

// Live is the running instance, or nil while the extension is failed,
// restarting or stopped. Workers load it once per round.
func (e *Extension) Live() *Instance { return e.live.Load() }

// PortsChanged tells the extension that the switch's ports changed; the
// supervisor sends it the new table.
func (e *Extension) PortsChanged() {
	select {
	case e.portsCh <- struct{}{}:
	default:
	}
}

// PluginStats asks the running process for its own counters.
func (e *Extension) PluginStats(ctx context.Context) (map[string]uint64, error) {
	i := e.live.Load()
	if i == nil {
		return nil, fmt.Errorf("extension %s is %s", e.cfg.Name, e.State())
	}
	r, err := i.rpc.Stats(ctx, &pb.Empty{})
	if err != nil {
		return nil, fmt.Errorf("extension %s: stats: %w", e.cfg.Name, err)
	}
	return r.Counters, nil
}

// Close stops the extension's process and its supervisor. The caller must
// have removed it from the data path (and quiesced) first.
func (e *Extension) Close() error {
	e.stopOnce.Do(func() { close(e.stop) })
	<-e.done
	return nil
}

// Channel is worker w's pair of rings.
func (i *Instance) Channel(w int) *shm.Channel { return i.region.Channel(w) }

// Serial numbers the extension's instances: a new one after each restart.
func (i *Instance) Serial() uint64 { return i.serial }

// Generation changes when the extension says its decisions changed.
func (i *Instance) Generation() uint64 { return i.region.Generation() }

// Claims reports whether a forwarding extension decides for vsid.
func (i *Instance) Claims(vsid uint32) bool {
	if len(i.claimed) == 0 {
		return true
	}
	for _, v := range i.claimed {
		if v == vsid {
			return true
		}
	}
	return false
}

// Kick wakes the process if it sleeps on its doorbell. Called once per
// batch after Publish, not per frame.
func (i *Instance) Kick() {
	if i.region.Sleeping() {
		i.doorbell.Signal() // best effort: the extension also wakes at its poll timeout
	}
}

// Fail marks the instance failed (a worker saw a missed deadline or a
// broken protocol); the supervisor takes it down and restarts it. It
// reports whether this call marked it (false: it was failed already).
func (i *Instance) Fail(reason string) bool {
	if !i.failed.CompareAndSwap(false, true) {
		return false
	}
	select {
	case i.ext.fail <- reason:
	default:
	}
	return true
}

// Failed reports whether the instance was marked failed.
func (i *Instance) Failed() bool { return i.failed.Load() }

func (e *Extension) launch(serial uint64) (_ *Instance, err error) {
	region, err := shm.Create(e.cfg.Name, e.opts.Workers, e.cfg.RingSize, e.cfg.SlotSize)
	if err != nil {
		return nil, err
	}
	efd, err := sysio.NewEventFD(true)
	if err != nil {
		region.Close()
		return nil, fmt.Errorf("doorbell: %w", err)
	}
	efile := os.NewFile(uintptr(efd.FD()), "xvs-ext-doorbell")
	inst := &Instance{ext: e, serial: serial, region: region, doorbell: efd, doorbellFile: efile}
	defer func() {
		if err != nil {
			inst.close()
		}
	}()
	if _, err := os.Stat(e.cfg.Path); err != nil {
		return nil, fmt.Errorf("executable: %w", err)
	}
	cmd := exec.Command(e.cfg.Path, e.cfg.Args...)
	cmd.ExtraFiles = []*os.File{region.File(), efile} // fds 3 and 4: api.ShmFD, api.DoorbellFD
	cmd.Env = append(cmd.Env, "XVS_EXTENSION_NAME="+e.cfg.Name)
	lw := &logWriter{log: e.log}
	inst.client = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  api.Handshake,
		Plugins:          api.Plugins(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		StartTimeout:     startRPC,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: "plugin", Output: lw, JSONFormat: true, Level: hclog.Info,
		}),
		SyncStderr: lw,
	})
	rc, err := inst.client.Client()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", e.cfg.Path, err)
	}
	if rp := inst.client.ReattachConfig(); rp != nil {
		inst.pid = rp.Pid
	}
	raw, err := rc.Dispense(api.PluginName)
	if err != nil {
		return nil, fmt.Errorf("dispense: %w", err)
	}
	cl, ok := raw.(pb.ExtensionClient)
	if !ok {
		return nil, fmt.Errorf("dispense: got %T", raw)
	}
	inst.rpc = cl
	ctx, cancel := context.WithTimeout(context.Background(), startRPC)
	defer cancel()
	info, err := cl.Info(ctx, &pb.InfoRequest{ApiVersion: api.ProtocolVersion})
	if err != nil {
		return nil, fmt.Errorf("info: %w", err)
	}
	if info.ApiVersion != api.ProtocolVersion {
		return nil, fmt.Errorf("extension speaks API version %d, the switch %d", info.ApiVersion, api.ProtocolVersion)
	}
	k := api.Kind(info.Kind)
	if k != api.KindCapture && k != api.KindFilter && k != api.KindForward {
		return nil, fmt.Errorf("extension says its kind is %d: want capture, filter or forward", info.Kind)
	}
	if old := e.Kind(); old != 0 && old != k {
		return nil, fmt.Errorf("extension changed its kind from %s to %s", old, k)
	}
	e.kind.Store(uint32(k))
	e.every.Store(info.EveryFrame)
	rep, err := cl.Start(ctx, &pb.StartRequest{
		Instance: e.cfg.Name, Config: e.cfg.Settings,
		ShmFd: api.ShmFD, DoorbellFd: api.DoorbellFD, Ports: e.portTable(),
	})
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	inst.claimed = rep.ClaimedVsids
	inst.started = time.Now()
	return inst, nil
}

func (e *Extension) portTable() []*pb.Port {
	var out []*pb.Port
	for _, p := range e.opts.Ports() {
		out = append(out, &pb.Port{Index: uint32(p.Index), Name: p.Name, Vsid: p.VSID})
	}
	return out
}

func (i *Instance) close() {
	if i.client != nil {
		if i.rpc != nil && !i.failed.Load() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			i.rpc.Stop(ctx, &pb.Empty{})
			cancel()
		}
		i.client.Kill()
	}
	i.doorbellFile.Close()
	i.region.Close()
}

// Channel is one worker's pair of rings: Down to the extension, Up from it.
type Channel = shm.Channel
