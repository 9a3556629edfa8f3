package afxdp

// The XDP program that steers a queue's frames to its socket is asavie/xdp's
// (a translation of libbpf's default: look the rx queue up in a queue map,
// redirect to the socket in the XSK map, pass otherwise). Attaching and
// detaching are done here through netlink with explicit mode flags, never
// through Program.Attach/Detach: those remove an old program without mode
// flags and then wait for it to disappear, forever when it was attached in
// generic mode.
//
// Ports on different queues of one device share one program: the first
// attaches it, the last detaches it.

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/asavie/xdp"
	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// XDPMode selects how the steering XDP program is attached.
type XDPMode int

const (
	// ModeAuto attaches in native (driver) mode and falls back to generic
	// mode when the driver refuses.
	ModeAuto XDPMode = iota
	// ModeNative attaches in native mode or fails.
	ModeNative
	// ModeGeneric attaches in generic (skb) mode: works on any device,
	// copies every frame into an skb first, and forces copy-mode sockets.
	ModeGeneric
)

func (m XDPMode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeNative:
		return "native"
	case ModeGeneric:
		return "generic"
	}
	return fmt.Sprintf("XDPMode(%d)", int(m))
}

func (m XDPMode) flags() int {
	if m == ModeGeneric {
		return nl.XDP_FLAGS_SKB_MODE
	}
	return nl.XDP_FLAGS_DRV_MODE
}

// program is the XDP program attached to one device.
type program struct {
	fp      *FastPath // nil: the plain steering program
	ifindex int
	prog    *xdp.Program
	mode    XDPMode // ModeNative or ModeGeneric: how it is attached
	queues  map[int]bool
	// threaded NAPI turned on by the first port (Config.ThreadedNAPI);
	// the device's previous setting comes back with the program.
	threaded, threadedPrev bool
	link                   netlink.Link
}

var programs struct {
	sync.Mutex
	byIfindex map[int]*program
}

// attachment is the outcome of acquireProgram, for the log line.
type attachment struct {
	prog        *program
	fellBack    error  // why native mode was refused, if it was
	replaced    uint32 // ID of a foreign program removed first, or 0
	threadedErr error  // why threaded NAPI could not be turned on
}

// acquireProgram makes sure the steering program is attached to link and
// reserves queue for one socket. The caller binds its socket (in copy mode
// when the program is generic) and then calls register.
func acquireProgram(link netlink.Link, queue int, want XDPMode, fp *FastPath, threaded bool) (attachment, error) {
	programs.Lock()
	defer programs.Unlock()
	if programs.byIfindex == nil {
		programs.byIfindex = map[int]*program{}
	}
	attrs := link.Attrs()
	p := programs.byIfindex[attrs.Index]
	var a attachment
	if p == nil {
		var err error
		if a, err = attachProgram(link, want, fp); err != nil {
			return a, err
		}
		p = a.prog
		programs.byIfindex[attrs.Index] = p
		if threaded {
			// after the attach: a veth has NAPI only with a program
			if p.threadedPrev, a.threadedErr = setThreadedNAPI(link, true); a.threadedErr == nil {
				p.threaded, p.link = true, link
			}
		}
	} else {
		a.prog = p
		if want != ModeAuto && want != p.mode {
			return a, fmt.Errorf("another port attached the XDP program in %s mode, want %s", p.mode, want)
		}
		if fp != p.fp {
			return a, fmt.Errorf("another port attached the XDP program with a different fast path setting: %w", unix.EBUSY)
		}
	}
	if p.queues[queue] {
		return a, fmt.Errorf("queue %d already has a port: %w", queue, unix.EBUSY)
	}
	p.queues[queue] = true
	return a, nil
}

// register steers queue to the socket fd.
func (p *program) register(queue, fd int) error {
	programs.Lock()
	defer programs.Unlock()
	if err := p.prog.Register(queue, fd); err != nil {
		return fmt.Errorf("register socket for queue %d: %w", queue, errnoOf(err))
	}
	return nil
}

// attachProgram loads a program and attaches it, replacing whatever XDP
// program the device had.
func attachProgram(link netlink.Link, want XDPMode, fp *FastPath) (attachment, error) {
	attrs := link.Attrs()
	var a attachment
	if attrs.Xdp != nil && attrs.Xdp.Attached {
		a.replaced = attrs.Xdp.ProgId
		if err := detachAll(attrs.Index); err != nil {
			return a, fmt.Errorf("remove XDP program %d already attached: %w", attrs.Xdp.ProgId, err)
		}
	}
	// One map entry per rx queue the device can have, so that no queue
	// index makes the program abort (it returns XDP_ABORTED for a queue
	// beyond the map).
	entries := max(attrs.NumRxQueues, 1)
	var prog *xdp.Program
	var err error
	if fp != nil {
		prog, err = newFastPathProgram(fp, entries)
	} else {
		prog, err = xdp.NewProgram(entries)
	}
	if err != nil {
		return a, fmt.Errorf("load XDP program: %w", errnoOf(err))
	}
	p := &program{fp: fp, ifindex: attrs.Index, prog: prog, queues: map[int]bool{}}
	mode := want
	if mode == ModeAuto {
		mode = ModeNative
	}
	err = netlink.LinkSetXdpFdWithFlags(link, prog.Program.FD(), mode.flags()|nl.XDP_FLAGS_UPDATE_IF_NOEXIST)
	if err != nil && want == ModeAuto && !errors.Is(err, unix.EBUSY) {
		a.fellBack = err
		mode = ModeGeneric
		err = netlink.LinkSetXdpFdWithFlags(link, prog.Program.FD(), mode.flags()|nl.XDP_FLAGS_UPDATE_IF_NOEXIST)
	}
	if err != nil {
		prog.Close()
		if mode == ModeNative && errors.Is(err, unix.ERANGE) {
			err = fmt.Errorf("%w (on a veth: the peer's MTU must be at most 3506 for native XDP)", err)
		}
		return a, fmt.Errorf("attach XDP program in %s mode: %w", mode, err)
	}
	p.mode = mode
	a.prog = p
	return a, nil
}

// releaseProgram unmaps queue and, for the last queue, detaches the program.
func releaseProgram(p *program, queue int) error {
	programs.Lock()
	defer programs.Unlock()
	return p.release(queue)
}

// release runs with programs locked. queue < 0 releases no queue.
func (p *program) release(queue int) error {
	var errs []error
	if queue >= 0 && p.queues[queue] {
		delete(p.queues, queue)
		// Not Program.Unregister: it deletes from the queue map first, an
		// array map whose entries cannot be deleted, and so never reaches
		// the socket map. The kernel drops the socket's entry anyway when
		// the socket closes; clearing the queue entry first makes the
		// program pass the queue's frames to the stack meanwhile.
		if err := p.prog.Queues.Put(uint32(queue), uint32(0)); err != nil {
			errs = append(errs, fmt.Errorf("unregister queue %d: %w", queue, err))
		}
		if err := p.prog.Sockets.Delete(uint32(queue)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("unregister queue %d: %w", queue, err))
		}
	}
	if len(p.queues) > 0 {
		return errors.Join(errs...)
	}
	if programs.byIfindex[p.ifindex] == p {
		delete(programs.byIfindex, p.ifindex)
	}
	// before the detach: a veth without a program may have no NAPI to
	// set, and would keep the flag for the next one
	if p.threaded && !p.threadedPrev {
		if _, err := setThreadedNAPI(p.link, false); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("restore: %w", err))
		}
	}
	if err := detach(p.ifindex, p.mode.flags()); err != nil {
		errs = append(errs, err)
	}
	if err := p.prog.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close XDP program: %w", err))
	}
	return errors.Join(errs...)
}

// detach removes the device's XDP program in the given mode and then makes
// sure no program is left in any mode. A device that is gone has none.
func detach(ifindex, flags int) error {
	link, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("detach XDP program: %w", err)
	}
	if err := netlink.LinkSetXdpFdWithFlags(link, -1, flags); err != nil && !isNotFound(err) {
		return fmt.Errorf("detach XDP program: %w", err)
	}
	return detachAll(ifindex)
}

// detachAll removes any XDP program in native and generic mode and checks
// that none is left. It does not wait: removal through netlink is
// synchronous.
func detachAll(ifindex int) error {
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		link, err := netlink.LinkByIndex(ifindex)
		if err != nil {
			if isNotFound(err) {
				return nil
			}
			return fmt.Errorf("detach XDP program: %w", err)
		}
		if x := link.Attrs().Xdp; x == nil || !x.Attached {
			return nil
		}
		for _, f := range []int{nl.XDP_FLAGS_SKB_MODE, nl.XDP_FLAGS_DRV_MODE} {
			if err := netlink.LinkSetXdpFdWithFlags(link, -1, f); err != nil {
				last = err
			}
		}
		if attempt > 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if last == nil {
		last = errors.New("still attached")
	}
	return fmt.Errorf("detach XDP program: %w", last)
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// errnoOf recovers the errno from asavie/xdp's errors, which are formatted
// with %v and so lose it: it returns err wrapped together with the errno
// whose message it contains, so that errors.Is(err, unix.EPERM) works.
func errnoOf(err error) error {
	if err == nil {
		return nil
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		return err
	}
	for _, e := range []unix.Errno{unix.EPERM, unix.ENOMEM, unix.EACCES, unix.EINVAL, unix.ENOENT, unix.E2BIG, unix.EBUSY} {
		if strings.Contains(err.Error(), e.Error()) {
			return &errnoError{err: err, errno: e}
		}
	}
	return err
}

type errnoError struct {
	err   error
	errno unix.Errno
}

func (e *errnoError) Error() string   { return e.err.Error() }
func (e *errnoError) Unwrap() []error { return []error{e.err, e.errno} }
