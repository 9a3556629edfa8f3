package sdk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// The doorbell is an eventfd: the switch writes a count to it, a read
// returns the count (8 bytes, native byte order) and resets it, and poll
// reports it readable while the count is not zero. The descriptor may be
// blocking or not: it is only read after poll said it is readable.

// waitDoorbell waits until the doorbell fd rings or timeout passes, and
// consumes the ring. buf is scratch, so that nothing allocates.
func waitDoorbell(fd int, timeout time.Duration, buf *[8]byte) (rang bool, err error) {
	pfd := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(pfd[:], int(timeout/time.Millisecond))
	if err != nil {
		if errors.Is(err, unix.EINTR) {
			return false, nil
		}
		return false, fmt.Errorf("poll doorbell: %w", err)
	}
	if n == 0 {
		return false, nil
	}
	if pfd[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
		return false, fmt.Errorf("poll doorbell: revents %#x", pfd[0].Revents)
	}
	if _, err := unix.Read(fd, buf[:]); err != nil && !errors.Is(err, unix.EAGAIN) {
		return false, fmt.Errorf("read doorbell: %w", err)
	}
	return true, nil
}

// ringDoorbell adds one to the doorbell's count, waking a waiter. The
// extension rings its own doorbell only to wake its loop for Stop.
func ringDoorbell(fd int) error {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, err := unix.Write(fd, one[:])
	return err
}

// checkFD returns an error unless fd is an open descriptor.
func checkFD(fd int) error {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err
}

func closeFD(fd int) error { return unix.Close(fd) }
