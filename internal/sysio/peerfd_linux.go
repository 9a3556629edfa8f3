package sysio

import (
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Descriptors a peer hands us (a vhost-user front-end's kick and call
// eventfds) share their open file with the peer, and with it the file's
// flags: the peer can clear O_NONBLOCK at any time, or hand over something
// that is not an eventfd at all (a pipe, a socket) whose read or write
// blocks. The functions here never block whatever the peer does to the
// file's flags; the caller checks the descriptor's type once, with
// IsEventFD, when it receives it.

// IsEventFD reports whether fd is an eventfd: its /proc/self/fd link reads
// "anon_inode:[eventfd]". Call it when a descriptor is received, not on
// the data path (it allocates).
func IsEventFD(fd int) (bool, error) {
	l, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return false, newFDError("readlink /proc/self/fd", fd, unwrapPath(err))
	}
	return l == "anon_inode:[eventfd]", nil
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// TryDrain is [EventFD.Drain] that never blocks, whatever the file's
// O_NONBLOCK: one preadv2(2) with RWF_NOWAIT, which eventfd honours since
// Linux 5.10. Where the kernel refuses RWF_NOWAIT (EOPNOTSUPP) it reads
// only after poll(2) with a zero timeout found the counter not zero; a
// peer that reads the counter empty in between can then block the read
// until its next signal. An empty counter is not an error.
func (e EventFD) TryDrain() error {
	var b [8]byte
	iov := unix.Iovec{Base: &b[0], Len: 8}
	// offset -1: the file's position (eventfd has none); on 64-bit Linux
	// pos_l carries the whole offset and pos_h is ignored.
	_, _, errno := unix.Syscall6(unix.SYS_PREADV2, uintptr(e), uintptr(unsafe.Pointer(&iov)), 1,
		^uintptr(0), 0, unix.RWF_NOWAIT)
	switch errno {
	case 0, unix.EAGAIN:
		return nil
	case unix.EOPNOTSUPP, unix.ENOSYS:
		if ok, err := e.ready(unix.POLLIN); !ok || err != nil {
			return err
		}
		return e.Drain()
	}
	return newFDError("read eventfd", int(e), errno)
}

// TrySignal is [EventFD.Signal] that does not wait for room: it writes
// only if poll(2) with a zero timeout finds the counter able to take one
// more, and otherwise returns nil, as Signal does for a full counter on a
// non-blocking descriptor (the waiter has a signal pending). Linux offers
// no write to an eventfd that ignores a cleared O_NONBLOCK (pwritev2's
// RWF_NOWAIT is refused), so a peer that fills the counter to its maximum
// between the poll and the write, and never reads it, blocks the write:
// a window of one system call, which the peer cannot see and must win
// blindly, and which only a signal from a goroutine of its own would
// close. Two system calls; nothing allocates unless one fails.
func (e EventFD) TrySignal() error {
	if ok, err := e.ready(unix.POLLOUT); !ok || err != nil {
		return err
	}
	return e.Signal()
}

// ready polls e for ev without waiting: see poll.
func (e EventFD) ready(ev int16) (bool, error) { return e.poll(ev, 0) }
