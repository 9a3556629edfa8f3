package gen

import (
	"fmt"
	"math/bits"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// netnsPath turns a namespace name as given to "ip netns add" into the
// path of its bind mount; a name containing a slash is taken as a path
// already (for example /proc/PID/ns/net).
func netnsPath(name string) string {
	if strings.Contains(name, "/") {
		return name
	}
	return "/run/netns/" + name
}

// enterNetns locks the calling goroutine to its OS thread and moves that
// thread into the named network namespace ("" keeps the current one).
//
// The thread is never unlocked: when the goroutine returns, the Go runtime
// ends the thread, so no other goroutine ever runs in the namespace by
// accident. Call it only at the top of a goroutine started for the purpose.
func enterNetns(name string) error {
	runtime.LockOSThread()
	if name == "" {
		return nil
	}
	fd, err := unix.Open(netnsPath(name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("netns %s: %w", name, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("netns %s: setns: %w", name, err)
	}
	return nil
}

// inNetns runs fn on a fresh OS thread inside the named network namespace
// and waits for it. Kernel objects fn creates (sockets, XDP links) keep
// the namespace they were made in after the thread is gone.
func inNetns(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		if err := enterNetns(name); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// blockAsyncSignals blocks, on the calling (locked) thread only, the
// signals that arrive asynchronously, so that the kernel delivers them to
// another thread of the process. A BPF_PROG_RUN interrupted by a signal
// returns EINTR after sending an unknown number of frames, and cilium/ebpf
// then runs the whole request again; with these blocked, the frame count
// of every run is exact. Synchronous signals (SIGSEGV, SIGBUS, SIGFPE, ...)
// and SIGKILL/SIGSTOP stay deliverable.
func blockAsyncSignals() error {
	var set unix.Sigset_t
	for _, s := range []unix.Signal{
		unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGUSR1, unix.SIGUSR2,
		unix.SIGCHLD, unix.SIGALRM, unix.SIGPROF, unix.SIGURG, unix.SIGWINCH, unix.SIGPIPE,
		unix.SIGIO, unix.SIGVTALRM, unix.SIGCONT, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU,
	} {
		// Sigset_t words are machine words on every Linux port.
		n := uint(s) - 1
		set.Val[n/bits.UintSize] |= 1 << (n % bits.UintSize)
	}
	return unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil)
}
