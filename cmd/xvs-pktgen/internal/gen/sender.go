package gen

import (
	"errors"
	"time"
)

// Modes of transmission.
const (
	ModeAuto   = "auto"   // live, else afxdp, else packet
	ModeLive   = "live"   // BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES
	ModeAFXDP  = "afxdp"  // AF_XDP socket, copy mode (github.com/asavie/xdp)
	ModePacket = "packet" // AF_PACKET raw socket, one write per frame
)

// ErrUnsupported is wrapped by a sender that cannot work on this device or
// with this frame size; ModeAuto then tries the next mode.
var ErrUnsupported = errors.New("not supported")

// sender transmits copies of prepared frames on one device. It is used by
// one goroutine, on the OS thread (and in the network namespace) it was
// opened on.
type sender interface {
	// send queues up to n frames (1 <= n <= maxBurst()) and returns how
	// many it queued and how many frames (of this or earlier calls) are
	// now known to have left: for live mode the frames the kernel ran the
	// program on and handed to the device's transmit function, for afxdp
	// the frames the kernel completed, for packet the frames the socket
	// accepted. It returns an error wrapping ErrUnsupported, having
	// queued nothing, when the mode cannot work here.
	send(n int) (queued, done int, err error)
	// flush waits up to timeout for queued frames to leave and returns
	// how many more did.
	flush(timeout time.Duration) (done int, err error)
	// maxBurst is the largest n worth asking for in one call.
	maxBurst() int
	mode() string
	close() error
}
