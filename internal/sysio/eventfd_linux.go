package sysio

import (
	"encoding/binary"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// EventFD is an eventfd(2) descriptor: a 64-bit counter that a write of
// eight bytes adds to, a read of eight bytes returns and resets, and that
// poll reports readable while it is not zero. The value is the descriptor
// number, so that the data path holds it without indirection; -1 means
// none, and closing it is up to whoever owns the descriptor.
//
// The methods work on any descriptor with those semantics, whether this
// process made it ([NewEventFD]) or received it (a vhost-user front-end's
// kick and call descriptors, an extension's inherited doorbell). They may
// be called from any goroutine.
type EventFD int

// one is the eight bytes that add one to an eventfd's counter: a
// uint64 in the machine's byte order. Writes only read it.
var one = func() (b [8]byte) {
	binary.NativeEndian.PutUint64(b[:], 1)
	return b
}()

// NewEventFD makes an eventfd with a zero counter, closed on exec. With
// nonblock, Drain and Signal return at once rather than block when the
// counter is zero or full.
func NewEventFD(nonblock bool) (EventFD, error) {
	flags := unix.EFD_CLOEXEC
	if nonblock {
		flags |= unix.EFD_NONBLOCK
	}
	fd, err := unix.Eventfd(0, flags)
	if err != nil {
		return -1, fmt.Errorf("eventfd: %w", err)
	}
	return EventFD(fd), nil
}

// FD is the descriptor number.
func (e EventFD) FD() int { return int(e) }

// Signal adds one to the counter, waking a waiter. A full counter
// (EAGAIN on a non-blocking descriptor) is not an error: the waiter
// already has a signal pending. One write(2); nothing allocates unless
// the write fails.
func (e EventFD) Signal() error {
	_, err := unix.Write(int(e), one[:])
	if err != nil && err != unix.EAGAIN {
		return newFDError("write eventfd", int(e), err)
	}
	return nil
}

// Drain reads the counter, resetting it to zero, so that poll reports the
// descriptor readable again only for signals that come after. An empty
// counter (EAGAIN on a non-blocking descriptor) is not an error; on a
// blocking one Drain waits for a signal. One read(2); nothing allocates
// unless the read fails.
func (e EventFD) Drain() error {
	var b [8]byte
	_, err := unix.Read(int(e), b[:])
	if err != nil && err != unix.EAGAIN {
		return newFDError("read eventfd", int(e), err)
	}
	return nil
}

// Wait blocks until the counter is not zero or timeout passes, then
// drains it, and reports whether it was signalled. The timeout is rounded
// down to milliseconds; a negative one waits for ever. A wait interrupted
// by a signal (EINTR) returns false and no error, like a timeout. An
// error, poll(2) reporting the descriptor in error, hung up or not open,
// or a failed read, means waiting on it again would not block: the caller
// must not retry in a loop. The descriptor may be blocking or not: it is
// read only once poll reported it readable.
func (e EventFD) Wait(timeout time.Duration) (bool, error) {
	if ok, err := e.poll(unix.POLLIN, int(timeout/time.Millisecond)); !ok || err != nil {
		return false, err
	}
	return true, e.Drain()
}

// poll waits up to ms milliseconds (0: not at all, <0: for ever) for ev
// on e. EINTR and a timeout read as not ready; a descriptor in error,
// hung up or not open is an error.
func (e EventFD) poll(ev int16, ms int) (bool, error) {
	pfd := [1]unix.PollFd{{Fd: int32(e), Events: ev}}
	n, err := unix.Poll(pfd[:], ms)
	switch {
	case err == unix.EINTR:
		return false, nil
	case err != nil:
		return false, newFDError("poll eventfd", int(e), err)
	case n == 0:
		return false, nil
	case pfd[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0:
		return false, fmt.Errorf("poll eventfd %d: revents %#x", int(e), pfd[0].Revents)
	}
	return true, nil
}

// Close closes the descriptor.
func (e EventFD) Close() error { return Close(int(e)) }
