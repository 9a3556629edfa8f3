package sysio

import (
	"strconv"

	"golang.org/x/sys/unix"
)

// fdError is the error of a call on one descriptor: "op fd: errno",
// wrapping the errno (a unix.Errno, which errors.Is also matches against
// os.ErrNotExist, os.ErrExist and the like). A struct rather than
// fmt.Errorf, so that building one on a failure path is cheap.
type fdError struct {
	op  string // what failed: "write eventfd"
	fd  int
	err error
}

func (e *fdError) Error() string { return e.op + " " + strconv.Itoa(e.fd) + ": " + e.err.Error() }

func (e *fdError) Unwrap() error { return e.err }

func newFDError(op string, fd int, err error) error { return &fdError{op: op, fd: fd, err: err} }

// Close closes the descriptor fd.
func Close(fd int) error {
	if err := unix.Close(fd); err != nil {
		return newFDError("close fd", fd, err)
	}
	return nil
}

// CheckFD returns nil if fd is an open descriptor of this process, and an
// error (matching unix.EBADF) otherwise. It does not change the
// descriptor.
func CheckFD(fd int) error {
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return newFDError("fcntl F_GETFD fd", fd, err)
	}
	return nil
}

// SetNonblock sets O_NONBLOCK on fd, so that a read with nothing to read
// returns EAGAIN instead of blocking. The flag belongs to the open file,
// which other processes holding the same file (a front-end's eventfd)
// share.
func SetNonblock(fd int) error {
	if err := unix.SetNonblock(fd, true); err != nil {
		return newFDError("set O_NONBLOCK on fd", fd, err)
	}
	return nil
}
