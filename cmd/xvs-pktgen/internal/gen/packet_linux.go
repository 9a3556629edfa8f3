package gen

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xvswitch/xvs/cmd/xvs-pktgen/internal/frame"
)

const packetBurst = 64

// packetSender writes frames to an AF_PACKET raw socket bound to the
// device, one write per frame: slow (a syscall and an skb per frame), but
// it sends any size up to the MTU, which the other modes cannot.
type packetSender struct {
	fd  int
	c   frame.Config
	buf []byte
	seq uint64
}

func openPacket(ifindex int, c frame.Config) (*packetSender, error) {
	// Protocol 0: the socket sends only, it receives nothing.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("packet: socket: %w", wrapPerm(err))
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifindex}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("packet: bind to ifindex %d: %w", ifindex, err)
	}
	s := &packetSender{fd: fd, c: c, buf: make([]byte, c.Size)}
	c.Frame(s.buf, 0)
	return s, nil
}

func (s *packetSender) send(n int) (int, int, error) {
	done := 0
	for range n {
		if s.c.Flows > 1 {
			s.c.Frame(s.buf, int(s.seq%uint64(s.c.Flows)))
		}
		s.seq++
		_, err := unix.Write(s.fd, s.buf)
		switch {
		case err == nil:
			done++
		case errors.Is(err, unix.ENOBUFS), errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			// The device or its peer dropped it: counted as not sent.
		default:
			return n, done, fmt.Errorf("packet: write: %w", err)
		}
	}
	return n, done, nil
}

func (s *packetSender) flush(time.Duration) (int, error) { return 0, nil }
func (s *packetSender) maxBurst() int                    { return packetBurst }
func (s *packetSender) mode() string                     { return ModePacket }

func (s *packetSender) close() error {
	if s.fd < 0 {
		return nil
	}
	err := unix.Close(s.fd)
	s.fd = -1
	return err
}
