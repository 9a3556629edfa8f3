package conformance

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xvswitch/xvs/internal/testutil"
)

// PacketPeer is the Peer of a port on a kernel network device: an
// AF_PACKET socket on the device at the other end of the port's wire
// (a veth's other end, or the TAP device itself in its namespace), that
// writes frames towards the port and reads those it sent. It sees only
// frames of EtherType.
type PacketPeer struct {
	fd  int
	buf []byte
}

var _ Peer = (*PacketPeer)(nil)

// NewPacketPeer opens a PacketPeer on device dev of network namespace
// netns ("" for the test's own); t's cleanup closes it.
func NewPacketPeer(t testing.TB, netns, dev string) *PacketPeer {
	t.Helper()
	return &PacketPeer{fd: testutil.PacketSocket(t, netns, dev, EtherType), buf: make([]byte, 1<<16)}
}

// Inject implements Peer: one write per frame. A full socket buffer is
// waited for. ENOBUFS means the frame left the socket and the device
// dropped it (a veth does so with a frame longer than its peer's MTU
// allows, and counts it): the frame was sent, and lost on the wire.
func (p *PacketPeer) Inject(t testing.TB, frames ...[]byte) {
	t.Helper()
	for i, f := range frames {
		for end := time.Now().Add(timeout); ; time.Sleep(100 * time.Microsecond) {
			_, err := unix.Write(p.fd, f)
			if err == nil || errors.Is(err, unix.ENOBUFS) {
				break
			}
			if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) || time.Now().After(end) {
				t.Fatalf("peer: send frame %d of %d bytes: %v", i, len(f), err)
			}
		}
	}
}

// Take implements Peer.
func (p *PacketPeer) Take(t testing.TB) [][]byte {
	t.Helper()
	var out [][]byte
	for {
		n, _, err := unix.Recvfrom(p.fd, p.buf, unix.MSG_DONTWAIT)
		switch {
		case err == nil:
			out = append(out, append([]byte(nil), p.buf[:n]...))
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EAGAIN):
			return out
		default:
			t.Fatalf("peer: receive: %v", err)
		}
	}
}
