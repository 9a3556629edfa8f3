//go:build linux

package afxdp

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr, which x/sys/unix does not define.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// frameSender sends many frames per system call (sendmmsg) on a socket
// bound to a device, so that the test's traffic generator is not the
// bottleneck. Its buffers are set up once; send allocates nothing.
type frameSender struct {
	fd   int
	msgs []mmsghdr
	iovs []unix.Iovec
	bufs [][]byte
}

func newFrameSender(fd, batch, size int) *frameSender {
	s := &frameSender{fd: fd, msgs: make([]mmsghdr, batch), iovs: make([]unix.Iovec, batch), bufs: make([][]byte, batch)}
	for i := range batch {
		s.bufs[i] = make([]byte, size)
		s.iovs[i].Base = &s.bufs[i][0]
		s.iovs[i].SetLen(size)
		s.msgs[i].hdr.Iov = &s.iovs[i]
		s.msgs[i].hdr.SetIovlen(1)
	}
	return s
}

// send sends bufs[:n] and returns how many the kernel took.
func (s *frameSender) send(n int) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&s.msgs[0])), uintptr(n), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}
