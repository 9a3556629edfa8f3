package sdk

import (
	"time"

	"github.com/xvswitch/xvs/internal/sysio"
)

// The doorbell is an eventfd: the switch writes a count to it, a read
// returns the count (8 bytes, native byte order) and resets it, and poll
// reports it readable while the count is not zero. The descriptor may be
// blocking or not: it is only read after poll said it is readable.

// waitDoorbell waits until the doorbell fd rings or timeout passes, and
// consumes the ring. Nothing allocates unless it fails.
func waitDoorbell(fd int, timeout time.Duration) (rang bool, err error) {
	return sysio.EventFD(fd).Wait(timeout)
}

// ringDoorbell adds one to the doorbell's count, waking a waiter. The
// extension rings its own doorbell only to wake its loop for Stop.
func ringDoorbell(fd int) error { return sysio.EventFD(fd).Signal() }

// checkFD returns an error unless fd is an open descriptor.
func checkFD(fd int) error { return sysio.CheckFD(fd) }

func closeFD(fd int) error { return sysio.Close(fd) }
