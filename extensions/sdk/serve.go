package sdk

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/xvswitch/xvs/extensions/api"
	"github.com/xvswitch/xvs/extensions/api/pb"
	"github.com/xvswitch/xvs/extensions/internal/shm"
)

// Serve runs ext as an extension process and returns when the switch is
// done with it; call it from main. ext must implement exactly one of
// Capture, Filter or Forward; otherwise Serve prints why on standard
// error and exits with status 1. Run by hand rather than by the switch, the
// binary says that it is a plugin and exits with status 1.
func Serve(ext Extension) {
	// go-plugin points os.Stderr at a pipe of its own once it serves; the
	// process's real standard error is what the switch reads and parses as
	// JSON log lines, so the logger keeps the file it has now.
	stderr := os.Stderr
	s, err := newServer(ext, newLogger(ext, stderr))
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", filepath.Base(os.Args[0]), err)
		os.Exit(1)
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: api.Handshake,
		Plugins:         api.Plugins(s),
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger:          s.log,
	})
	// The switch killed the connection without Stop, or after it: stopping
	// twice is harmless.
	s.Stop(context.Background(), &pb.Empty{})
}

func newLogger(ext Extension, w io.Writer) hclog.Logger {
	name := "extension"
	if ext != nil {
		if n := ext.Info().Name; n != "" {
			name = n
		}
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Level:      hclog.Debug, // the switch's logger filters further
		Output:     w,
		JSONFormat: true,
	})
}

// Lifecycle states of a server.
const (
	stateIdle = iota
	stateRunning
	stateStopped
)

// Default idle behaviour of the frame loop.
const (
	defaultSpin        = 50 * time.Microsecond
	defaultPollTimeout = 100 * time.Millisecond
)

// server is the extension's side of the control service (pb.Extension).
type server struct {
	pb.UnimplementedExtensionServer

	ext     Extension
	info    Info
	kind    api.Kind
	capture Capture
	filter  Filter
	forward Forward
	log     hclog.Logger
	stats   counters
	ports   atomic.Pointer[portTable]

	// Idle behaviour of the loop; tests shorten or lengthen them.
	spin        time.Duration
	pollTimeout time.Duration

	mu    sync.Mutex // serializes Start and Stop
	state int
	host  *Host
	loop  *loop
}

var _ pb.ExtensionServer = (*server)(nil)

// newServer checks ext and prepares its control service.
func newServer(ext Extension, log hclog.Logger) (*server, error) {
	if ext == nil {
		return nil, fmt.Errorf("serve: extension is nil")
	}
	s := &server{ext: ext, log: log, spin: defaultSpin, pollTimeout: defaultPollTimeout}
	var kinds []string
	if c, ok := ext.(Capture); ok {
		s.capture, s.kind = c, api.KindCapture
		kinds = append(kinds, "Capture")
	}
	if f, ok := ext.(Filter); ok {
		s.filter, s.kind = f, api.KindFilter
		kinds = append(kinds, "Filter")
	}
	if f, ok := ext.(Forward); ok {
		s.forward, s.kind = f, api.KindForward
		kinds = append(kinds, "Forward")
	}
	switch len(kinds) {
	case 0:
		return nil, fmt.Errorf("serve: %T implements none of Capture, Filter, Forward: implement exactly one", ext)
	case 1:
	default:
		return nil, fmt.Errorf("serve: %T implements %s: implement exactly one of Capture, Filter, Forward", ext, strings.Join(kinds, " and "))
	}
	s.info = ext.Info()
	if s.info.Name == "" {
		s.info.Name = filepath.Base(os.Args[0])
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	empty, _ := newPortTable("ports", nil)
	s.ports.Store(empty)
	return s, nil
}

// Info says what the extension is, once the switch shows that it speaks
// the same API version.
func (s *server) Info(_ context.Context, req *pb.InfoRequest) (*pb.InfoReply, error) {
	if v := req.GetApiVersion(); v != api.ProtocolVersion {
		return nil, status.Errorf(codes.FailedPrecondition,
			"info: the switch speaks extension API version %d, extension %s speaks version %d: build both with the same version",
			v, s.info.Name, api.ProtocolVersion)
	}
	return &pb.InfoReply{
		ApiVersion:  api.ProtocolVersion,
		Name:        s.info.Name,
		Description: s.info.Description,
		Kind:        uint32(s.kind),
		EveryFrame:  s.info.EveryFrame,
	}, nil
}

// Start maps the inherited shared memory, calls Starter.Start and starts
// the frame loop.
func (s *server) Start(_ context.Context, req *pb.StartRequest) (*pb.StartReply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case stateRunning:
		return nil, status.Error(codes.FailedPrecondition, "start: already started")
	case stateStopped:
		return nil, status.Error(codes.FailedPrecondition, "start: stopped")
	}
	// The two descriptors were inherited for this Start: a refused Start
	// closes them, except standard I/O and numbers that are not open (they
	// may be someone else's later).
	shmFD, bellFD := req.GetShmFd(), req.GetDoorbellFd()
	usable := func(fd uint32) bool { return fd >= 3 && fd <= math.MaxInt32 && checkFD(int(fd)) == nil }
	shmOwned, bellOwned := usable(shmFD), usable(bellFD) && bellFD != shmFD
	var shmFile *os.File // owns shmFD once made: its finalizer would close it
	fail := func(c codes.Code, format string, a ...any) (*pb.StartReply, error) {
		switch {
		case shmFile != nil:
			shmFile.Close()
		case shmOwned:
			closeFD(int(shmFD))
		}
		if bellOwned {
			closeFD(int(bellFD))
		}
		return nil, status.Errorf(c, format, a...)
	}
	switch {
	case shmFD == bellFD:
		return fail(codes.InvalidArgument, "start: shm_fd and doorbell_fd are both %d", shmFD)
	case !shmOwned:
		return fail(codes.InvalidArgument, "start: shm_fd %d: want an open inherited descriptor (3 or more)", shmFD)
	case !bellOwned:
		return fail(codes.InvalidArgument, "start: doorbell_fd %d: want an open inherited descriptor (3 or more)", bellFD)
	}
	ports, err := newPortTable("ports", req.GetPorts())
	if err != nil {
		return fail(codes.InvalidArgument, "start: %v", err)
	}
	shmFile = os.NewFile(uintptr(shmFD), "xvs-shm")
	region, err := shm.Open(shmFile)
	if err != nil {
		return fail(codes.InvalidArgument, "start: shm_fd %d: %v", shmFD, err)
	}
	bell := int(bellFD)
	s.ports.Store(ports)

	h := &Host{
		instance: req.GetInstance(),
		config:   maps.Clone(req.GetConfig()),
		kind:     s.kind,
		ports:    &s.ports,
		log:      s.log,
		stats:    &s.stats,
		region:   region,
		doorbell: bell,
		up:       make([]upProducer, region.Channels()),
		claiming: true,
	}
	// Continue where a previous process left the rings: consume after what
	// it consumed, produce after what it published. Done before
	// Starter.Start so that Start may already inject.
	for i := range h.up {
		ch := region.Channel(i)
		ch.Down.AttachConsumer()
		ch.Up.AttachProducer()
		h.up[i].ring = &ch.Up
	}
	if st, ok := s.ext.(Starter); ok {
		if err := s.callStart(st, h); err != nil {
			h.endClaims()
			h.close()
			return nil, status.Errorf(codes.FailedPrecondition, "start: extension %s: %v", s.info.Name, err)
		}
	}
	claims := h.endClaims()
	s.host = h
	s.loop = newLoop(s, h)
	go s.loop.run()
	s.state = stateRunning
	s.log.Info("started", "instance", h.instance, "kind", s.kind.String(), "channels", region.Channels(),
		"ring_size", region.RingSize(), "slot_size", region.SlotSize(), "ports", len(ports.list), "claimed_vsids", claims)
	return &pb.StartReply{ClaimedVsids: claims}, nil
}

// callStart runs Starter.Start, turning a panic into an error.
func (s *server) callStart(st Starter, h *Host) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.stats.panics.Add(1)
			s.log.Error("Start panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return st.Start(h)
}

// SetPorts replaces the port table that Host's port methods read.
func (s *server) SetPorts(_ context.Context, req *pb.PortsRequest) (*pb.Empty, error) {
	t, err := newPortTable("ports", req.GetPorts())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "set ports: %v", err)
	}
	s.ports.Store(t)
	s.log.Debug("ports changed", "ports", len(t.list))
	return &pb.Empty{}, nil
}

// Stats returns the extension's counters and the SDK's (named sdk_*).
func (s *server) Stats(context.Context, *pb.Empty) (*pb.StatsReply, error) {
	m := map[string]uint64{}
	if st, ok := s.ext.(Stater); ok {
		maps.Copy(m, s.callStats(st))
	}
	s.stats.snapshot(m)
	return &pb.StatsReply{Counters: m}, nil
}

// callStats runs Stater.Stats; after a panic the reply has the SDK's
// counters only.
func (s *server) callStats(st Stater) (m map[string]uint64) {
	defer func() {
		if r := recover(); r != nil {
			s.stats.panics.Add(1)
			s.log.Error("Stats panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			m = nil
		}
	}()
	return st.Stats()
}

// Stop stops the frame loop, calls Stopper.Stop and unmaps the shared
// memory. It may be called any number of times.
func (s *server) Stop(context.Context, *pb.Empty) (*pb.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == stateRunning {
		s.loop.stopAndWait()
		if st, ok := s.ext.(Stopper); ok {
			s.callStop(st)
		}
		if err := s.host.close(); err != nil {
			s.log.Warn("stop: release shared memory", "error", err)
		}
		s.log.Info("stopped")
	}
	s.state = stateStopped
	return &pb.Empty{}, nil
}

func (s *server) callStop(st Stopper) {
	defer func() {
		if r := recover(); r != nil {
			s.stats.panics.Add(1)
			s.log.Error("Stop panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	st.Stop()
}
