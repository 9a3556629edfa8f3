package sysio

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// PollSet is a set of descriptors to wait on for input with poll(2),
// built when the set changes and waited on many times. The zero value is
// an empty set. A PollSet is used by one goroutine at a time.
type PollSet struct {
	fds []unix.PollFd
}

// Reset empties the set, keeping its memory for the next Adds.
func (s *PollSet) Reset() { s.fds = s.fds[:0] }

// Add adds fd to the set, to wait for it to become readable. It allocates
// only when the set outgrows its memory.
func (s *PollSet) Add(fd int) {
	s.fds = append(s.fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
}

// Len is the number of descriptors in the set.
func (s *PollSet) Len() int { return len(s.fds) }

// Wait blocks until a descriptor of the set is readable (or in error, or
// hung up) or timeout passes, and returns the number of descriptors with
// events. The timeout is rounded down to milliseconds; a negative one
// waits for ever. A wait interrupted by a signal (EINTR) returns 0 and no
// error, like a timeout. One poll(2); nothing allocates unless it fails.
func (s *PollSet) Wait(timeout time.Duration) (int, error) {
	n, err := unix.Poll(s.fds, int(timeout/time.Millisecond))
	switch {
	case err == unix.EINTR:
		return 0, nil
	case err != nil:
		return 0, pollError(len(s.fds), err)
	}
	return n, nil
}

//go:noinline
func pollError(n int, err error) error {
	return fmt.Errorf("poll %d descriptors: %w", n, err)
}

// Epoll is an epoll(7) instance: one descriptor that poll reports
// readable while any descriptor in its interest list is readable, so that
// a set whose members come and go (a guest's kick eventfds) is waited on
// through one stable descriptor. The value is the descriptor number.
type Epoll int

// NewEpoll makes an empty epoll instance, closed on exec.
func NewEpoll() (Epoll, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("epoll_create1: %w", err)
	}
	return Epoll(fd), nil
}

// FD is the descriptor number, for waiting on it (a [PollSet]).
func (ep Epoll) FD() int { return int(ep) }

// Add adds fd to the interest list, for input. Adding a descriptor that
// is already in the list fails with an error matching [os.ErrExist]
// (EEXIST).
func (ep Epoll) Add(fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
	if err := unix.EpollCtl(int(ep), unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("epoll %d: add fd %d: %w", int(ep), fd, err)
	}
	return nil
}

// Remove takes fd out of the interest list. Do so before closing fd: the
// list holds the open file, not the number, and another process holding
// the same file keeps it there. Removing a descriptor that is not in the
// list fails with an error matching [os.ErrNotExist] (ENOENT).
func (ep Epoll) Remove(fd int) error {
	if err := unix.EpollCtl(int(ep), unix.EPOLL_CTL_DEL, fd, nil); err != nil {
		return fmt.Errorf("epoll %d: remove fd %d: %w", int(ep), fd, err)
	}
	return nil
}

// Close closes the epoll descriptor.
func (ep Epoll) Close() error { return Close(int(ep)) }
