package gen

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// dispatcherPin keeps an XDP program in the kernel's XDP dispatcher for
// as long as it is open.
//
// Why: every BPF_PROG_RUN of an XDP program with Repeat > 1 adds the
// program to the XDP dispatcher before the run and removes it after, and
// each change of the dispatcher waits for an RCU grace period. On this VM
// that is ~13 ms twice per call, against ~15 µs when the program is already
// in the dispatcher (the kernel then only counts a user). A program is in
// the dispatcher while it is attached to some device, so the pin attaches
// it, in generic mode, to the loopback device of a private network
// namespace made for the purpose: the device is down and nothing else is
// in the namespace, so no frame ever reaches the program through it and
// no device of the user's carries an extra program. The namespace lives
// while the pin holds a file descriptor of it.
type dispatcherPin struct {
	nsfd int
	link link.Link
}

func pinInDispatcher(prog *ebpf.Program) (*dispatcherPin, error) {
	p := &dispatcherPin{nsfd: -1}
	errc := make(chan error, 1)
	go func() {
		// This thread is discarded when the goroutine returns.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare netns: %w", err)
			return
		}
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open private netns: %w", err)
			return
		}
		p.nsfd = fd
		const loIndex = 1 // the loopback device of a new namespace
		p.link, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: loIndex, Flags: link.XDPGenericMode})
		if err != nil {
			errc <- fmt.Errorf("attach to private loopback: %w", err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		p.close()
		return nil, fmt.Errorf("pin xdp program in the dispatcher: %w", err)
	}
	return p, nil
}

func (p *dispatcherPin) close() error {
	if p == nil {
		return nil
	}
	var errs []error
	if p.link != nil {
		errs = append(errs, p.link.Close())
		p.link = nil
	}
	if p.nsfd >= 0 {
		errs = append(errs, unix.Close(p.nsfd))
		p.nsfd = -1
	}
	return errors.Join(errs...)
}
