package sysio

import (
	"strconv"

	"golang.org/x/sys/unix"
)

// FDError is the error of a call on one descriptor: "op fd: errno". Err
// is the errno (a unix.Errno), which errors.Is matches against
// os.ErrNotExist, os.ErrExist and the like. The data path's calls build
// it only when they fail, and cheaply enough to stay inlinable.
type FDError struct {
	Op  string // what failed: "write eventfd"
	FD  int
	Err error
}

func (e *FDError) Error() string { return e.Op + " " + strconv.Itoa(e.FD) + ": " + e.Err.Error() }

// Unwrap returns the errno.
func (e *FDError) Unwrap() error { return e.Err }

func fdError(op string, fd int, err error) error { return &FDError{Op: op, FD: fd, Err: err} }

// Close closes the descriptor fd.
func Close(fd int) error {
	if err := unix.Close(fd); err != nil {
		return fdError("close fd", fd, err)
	}
	return nil
}

// CheckFD returns nil if fd is an open descriptor of this process, and an
// error (matching unix.EBADF) otherwise. It does not change the
// descriptor.
func CheckFD(fd int) error {
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return fdError("fcntl F_GETFD fd", fd, err)
	}
	return nil
}

// SetNonblock sets O_NONBLOCK on fd, so that a read with nothing to read
// returns EAGAIN instead of blocking. The flag belongs to the open file,
// which other processes holding the same file (a front-end's eventfd)
// share.
func SetNonblock(fd int) error {
	if err := unix.SetNonblock(fd, true); err != nil {
		return fdError("set O_NONBLOCK on fd", fd, err)
	}
	return nil
}
