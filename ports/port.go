// Package ports defines the seam between the switch and the things it
// forwards between: NICs and veths (AF_XDP), TAP devices and vhost-user VMs.
//
// A [Port] moves whole batches of frames. The switch owns the frame memory
// (a [ring.Arena] per worker); a port copies frames into the buffers the
// switch hands it on receive, and copies them out on transmit. That keeps
// ownership simple: after Receive or Transmit returns, the port holds no
// reference to the batch. Implementations live in sub-packages; in-memory
// ports for tests are in [github.com/xvswitch/xvs/ports/porttest].
package ports

import (
	"errors"
	"net"

	"github.com/xvswitch/xvs/ring"
)

// ErrPortClosed is returned by Receive and Transmit after Close.
var ErrPortClosed = errors.New("port closed")

// Port is one attachment of the switch.
//
// Receive and Transmit are each called by one goroutine at a time, but a
// Receive may run concurrently with a Transmit.
type Port interface {
	// Name is unique within a switch.
	Name() string
	// MAC is the port's own address (the device's, or the VM's NIC).
	MAC() net.HardwareAddr
	// MTU is the largest frame payload (without the 14-byte Ethernet
	// header) the port sends and receives.
	MTU() int

	// Receive copies up to ring.BatchSize waiting frames into b. On entry
	// b.N is 0 and every b.Frames[i] names a buffer (Index) and the offset
	// at which to write (Offset); b.Room(i) is the writable space. Receive
	// sets Len of each frame it writes, sets b.N and returns it. It does
	// not block: with nothing waiting it returns 0. Frames that do not fit
	// their buffer are dropped and counted in Stats.
	Receive(b *ring.Batch) (int, error)

	// Transmit sends b.Frames[:b.N], in order, copying their bytes; it
	// keeps no reference to b after it returns. It returns how many it
	// accepted; the caller counts the rest as dropped (ring-full).
	Transmit(b *ring.Batch) (int, error)

	// Stats are the port's own counters (what the switch cannot see, such
	// as frames the kernel dropped before the port read them).
	Stats() Stats

	// Close releases the port. It is safe to call more than once.
	Close() error
}

// Stats are a port's own counters. Drops are keyed by reason, in the same
// lowercase-with-dashes vocabulary as the switch's drop reasons.
type Stats struct {
	RxFrames uint64
	RxBytes  uint64
	TxFrames uint64
	TxBytes  uint64
	Drops    map[string]uint64

	// Offload counters: frames the port forwarded below the switch (an
	// in-kernel fast path) on its behalf, received on this port and sent
	// out of it. The switch adds them to its own counters.
	OffloadRxFrames, OffloadRxBytes uint64
	OffloadTxFrames, OffloadTxBytes uint64
}

// Waiter is implemented by ports whose arrivals can be waited for: WaitFDs
// are file descriptors that poll(2) reports readable (POLLIN) when frames
// are waiting. The switch asks for them only when its ports change. An idle worker whose ports are all Waiters blocks in one
// poll instead of sleeping and polling, so an idle switch costs almost
// nothing and still wakes at the first frame.
type Waiter interface {
	WaitFDs() []int
}
