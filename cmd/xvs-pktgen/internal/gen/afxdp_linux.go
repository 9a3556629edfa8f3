package gen

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/asavie/xdp"
	"golang.org/x/sys/unix"

	"github.com/xvswitch/xvs/cmd/xvs-pktgen/internal/frame"
)

// AF_XDP sizing: one UMEM of afxdpSlots frames, all used for transmit.
const (
	afxdpSlots = 4096
	afxdpBurst = 256
)

// afxdpSender transmits through an AF_XDP socket bound to queue 0 (copy
// mode on a veth: the kernel builds an skb per frame). Every UMEM slot
// holds a ready frame; slot i holds flow i % flows when the slots can be
// shared out evenly, else a slot is rewritten before each use. The kernel
// sends at most a budget of frames per sendto (32 by default; raised with
// XDP_MAX_TX_SKB_BUDGET where the kernel has it), so send kicks once per
// call.
type afxdpSender struct {
	xsk       *xdp.Socket
	c         frame.Config
	frameSize int
	nslots    int
	slotFlow  []int // flow each slot's frame is for
	next      int   // next slot to fill
	seq       uint64
	inflight  int
	descs     []xdp.Desc
}

func openAFXDP(ifindex int, c frame.Config) (*afxdpSender, error) {
	frameSize := 2048
	if c.Size > frameSize {
		frameSize = 4096
	}
	if c.Size > frameSize {
		return nil, fmt.Errorf("afxdp: %d-byte frames do not fit a %d-byte UMEM chunk: %w", c.Size, frameSize, ErrUnsupported)
	}
	nslots := afxdpSlots
	if c.Flows <= nslots {
		nslots -= nslots % c.Flows
	}
	opts := &xdp.SocketOptions{
		NumFrames:              afxdpSlots,
		FrameSize:              frameSize,
		FillRingNumDescs:       64, // required by the kernel, unused
		CompletionRingNumDescs: afxdpSlots,
		TxRingNumDescs:         afxdpSlots,
	}
	xsk, err := xdp.NewSocket(ifindex, 0, opts)
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("afxdp: %w", wrapPerm(err))
		}
		return nil, fmt.Errorf("afxdp: open socket on ifindex %d: %w: %w", ifindex, ErrUnsupported, err)
	}
	// Best effort: more frames per sendto (Linux 6.17+).
	_ = unix.SetsockoptInt(xsk.FD(), unix.SOL_XDP, unix.XDP_MAX_TX_SKB_BUDGET, afxdpBurst)
	s := &afxdpSender{
		xsk:       xsk,
		c:         c,
		frameSize: frameSize,
		nslots:    nslots,
		slotFlow:  make([]int, nslots),
		descs:     make([]xdp.Desc, 0, afxdpBurst),
	}
	for i := range nslots {
		s.slotFlow[i] = i % c.Flows
		c.Frame(s.slot(i), s.slotFlow[i])
	}
	return s, nil
}

func (s *afxdpSender) slot(i int) []byte {
	return s.xsk.GetFrame(xdp.Desc{Addr: uint64(i * s.frameSize), Len: uint32(s.c.Size)})
}

func (s *afxdpSender) reap() int {
	n := s.xsk.NumCompleted()
	if n > 0 {
		s.xsk.Complete(n)
		s.inflight -= n
	}
	return n
}

func (s *afxdpSender) send(n int) (int, int, error) {
	done := s.reap()
	k := min(n, s.nslots-s.inflight, s.xsk.NumFreeTxSlots(), afxdpBurst)
	descs := s.descs[:0]
	for range k {
		f := int(s.seq % uint64(s.c.Flows))
		if s.slotFlow[s.next] != f {
			s.c.Frame(s.slot(s.next), f)
			s.slotFlow[s.next] = f
		}
		descs = append(descs, xdp.Desc{Addr: uint64(s.next * s.frameSize), Len: uint32(s.c.Size)})
		s.seq++
		s.next++
		if s.next == s.nslots {
			s.next = 0
		}
	}
	q, err := s.transmit(descs)
	s.inflight += q
	return q, done + s.reap(), err
}

// transmit queues descs and kicks the kernel (also with no descs). The
// library panics on any sendto error other than EAGAIN/EBUSY/EINTR (here:
// ENETDOWN when the device goes down); the panic is turned into an error.
func (s *afxdpSender) transmit(descs []xdp.Desc) (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			// The descriptors were put on the ring before the failed
			// sendto; the kernel may still send them.
			n = len(descs)
			err = fmt.Errorf("afxdp: transmit: %w", panicErr(r))
		}
	}()
	return s.xsk.Transmit(descs), nil
}

func (s *afxdpSender) flush(timeout time.Duration) (int, error) {
	done := 0
	end := time.Now().Add(timeout)
	for s.inflight > 0 && time.Now().Before(end) {
		if _, err := s.transmit(nil); err != nil {
			return done + s.reap(), err
		}
		done += s.reap()
		if s.inflight > 0 {
			time.Sleep(50 * time.Microsecond)
		}
	}
	return done, nil
}

func (s *afxdpSender) maxBurst() int { return afxdpBurst }
func (s *afxdpSender) mode() string  { return ModeAFXDP }

func (s *afxdpSender) close() error {
	if s.xsk == nil {
		return nil
	}
	unmapErr := unmapSocketRings(s.xsk.FD())
	err := errors.Join(unmapErr, s.xsk.Close())
	s.xsk = nil
	if err != nil {
		return fmt.Errorf("afxdp: close: %w", err)
	}
	return nil
}

// unmapSocketRings unmaps every mapping of the socket fd in this process.
// asavie/xdp's Close closes the socket and unmaps the UMEM but not the
// four rings it mapped from the socket, and a mapping holds the socket
// open: the socket, and its hold on the device's queue, would live until
// the process exits, and the next socket on the queue would fail with
// EBUSY. The library does not keep the mappings where we can reach them,
// so they are found by the socket's inode in /proc/self/maps.
func unmapSocketRings(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("afxdp: stat socket: %w", err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return fmt.Errorf("afxdp: unmap rings: %w", err)
	}
	name := fmt.Sprintf("socket:[%d]", st.Ino)
	var errs []error
	for line := range strings.Lines(string(maps)) {
		f := strings.Fields(line)
		if len(f) < 6 || f[5] != name {
			continue
		}
		var start, end uintptr
		if _, err := fmt.Sscanf(f[0], "%x-%x", &start, &end); err != nil || end <= start {
			errs = append(errs, fmt.Errorf("afxdp: unmap rings: bad range %q", f[0]))
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MUNMAP, start, end-start, 0); errno != 0 {
			errs = append(errs, fmt.Errorf("afxdp: unmap ring at %#x: %w", start, errno))
		}
	}
	return errors.Join(errs...)
}

// panicErr turns the library's sendto panic ("sendto failed with rc=%d
// and errno=%d") into the errno it carries, or any other panic into an
// error.
func panicErr(r any) error {
	err, ok := r.(error)
	if !ok {
		return fmt.Errorf("%v", r)
	}
	var rc uint64
	var errno int
	if n, _ := fmt.Sscanf(err.Error(), "sendto failed with rc=%d and errno=%d", &rc, &errno); n == 2 {
		return fmt.Errorf("sendto: %w", unix.Errno(errno))
	}
	return err
}
