package gen

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xvswitch/xvs/cmd/xvs-pktgen/internal/frame"
)

// xdpMD mirrors struct xdp_md, the context BPF_PROG_RUN takes for XDP.
type xdpMD struct {
	Data           uint32
	DataEnd        uint32
	DataMeta       uint32
	IngressIfindex uint32
	RxQueueIndex   uint32
	EgressIfindex  uint32
}

// liveBatch is the kernel's batch size for live frames: how many frames
// it runs the program on before flushing them to the device (default 64,
// at most 256). A veth's XDP receive ring has 256 slots: with batches of
// 256, frames left in the ring by the previous batch make the next one
// overflow it (measured: 0.7% loss at 1 Mpps paced); with 64 there was no
// loss and the same peak rate.
const liveBatch = 64

// liveBurst is the most frames one BPF_PROG_RUN sends: at ~7 Mpps about
// 5 ms, short enough for duration, rate and Ctrl-C to be honoured
// promptly, long enough to make the ~15 µs a call costs (page pool set up
// and torn down) negligible.
const liveBurst = 1 << 15

// liveBurstUnpinned is the burst when each call costs tens of milliseconds
// (see dispatcherPin).
const liveBurstUnpinned = 1 << 20

// liveSender runs an XDP program that returns XDP_TX in the kernel's
// live-frames mode: the kernel copies the frame into a page-pool page per
// repetition, runs the program on it as if it had arrived on the device
// and, for XDP_TX, transmits it out of that same device (through
// ndo_xdp_xmit, like a redirect). On a veth the frame lands in the peer's
// XDP receive ring, which exists only while the peer has NAPI enabled: an
// XDP program on the peer, or GRO on it. Frames the device refuses are
// freed without a trace in the return value.
//
// The program is kept in the XDP dispatcher (see dispatcherPin) so that a
// call costs microseconds, not two RCU grace periods; if that fails (no
// right to make a network namespace) the sender still works with bigger
// bursts.
type liveSender struct {
	prog  *ebpf.Program
	ctr   *ebpf.Map
	pin   *dispatcherPin
	burst int
	data  []byte
	ctx   xdpMD
	// Warning says why the sender runs below its best, or is "".
	warning string
}

func openLive(ifi *net.Interface, c frame.Config) (*liveSender, error) {
	s := &liveSender{data: c.Frame(make([]byte, c.Size), 0)}
	if c.Flows > 1 {
		m, err := ebpf.NewMap(&ebpf.MapSpec{
			Name: "xvspg_ctr",
			// Not per-CPU: one thread sends at a time, and a single
			// counter keeps the round robin exact when it migrates.
			Type:       ebpf.Array,
			KeySize:    4,
			ValueSize:  8,
			MaxEntries: 1,
		})
		if err != nil {
			s.close()
			return nil, fmt.Errorf("live: create counter map: %w", wrapPerm(err))
		}
		s.ctr = m
	}
	spec, err := txProgram(c, s.ctr)
	if err != nil {
		s.close()
		return nil, err
	}
	s.prog, err = ebpf.NewProgram(spec)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("live: load xdp program: %w", wrapPerm(err))
	}
	s.ctx = xdpMD{DataEnd: uint32(len(s.data)), IngressIfindex: uint32(ifi.Index)}
	s.burst = liveBurst
	if s.pin, err = pinInDispatcher(s.prog); err != nil {
		s.burst = liveBurstUnpinned
		s.warning = fmt.Sprintf("%v; every BPF_PROG_RUN call now costs two RCU grace periods, so bursts are %d frames", err, s.burst)
	}
	return s, nil
}

func (s *liveSender) send(n int) (int, int, error) {
	_, err := s.prog.Run(&ebpf.RunOptions{
		Data:      s.data,
		Context:   &s.ctx,
		Repeat:    uint32(n),
		Flags:     unix.BPF_F_TEST_XDP_LIVE_FRAMES,
		BatchSize: liveBatch,
	})
	if err != nil {
		switch {
		case errors.Is(err, ebpf.ErrNotSupported), errors.Is(err, unix.EINVAL), errors.Is(err, unix.EOPNOTSUPP):
			// EINVAL: frames larger than a page minus head- and
			// tailroom, or a kernel without live frames (< 5.18).
			return 0, 0, fmt.Errorf("live: BPF_PROG_RUN with live frames (%d-byte frame): %w: %w", len(s.data), ErrUnsupported, err)
		}
		return 0, 0, fmt.Errorf("live: BPF_PROG_RUN: %w", wrapPerm(err))
	}
	return n, n, nil
}

func (s *liveSender) maxBurst() int { return s.burst }
func (s *liveSender) warn() string  { return s.warning }
func (s *liveSender) mode() string  { return ModeLive }

func (s *liveSender) flush(time.Duration) (int, error) { return 0, nil }

func (s *liveSender) close() error {
	var errs []error
	if s.pin != nil {
		errs = append(errs, s.pin.close())
		s.pin = nil
	}
	if s.prog != nil {
		errs = append(errs, s.prog.Close())
		s.prog = nil
	}
	if s.ctr != nil {
		errs = append(errs, s.ctr.Close())
		s.ctr = nil
	}
	return errors.Join(errs...)
}
