package vswitch

import (
	"time"

	"github.com/xvswitch/xvs/internal/sysio"
	"github.com/xvswitch/xvs/ports"
)

// idleWaiter blocks an idle worker in poll(2) on its ports' descriptors.
// The descriptor set is rebuilt only when the snapshot changes.
type idleWaiter struct {
	snap *snapshot
	fds  sysio.PollSet
	ok   bool // every port of the worker has a descriptor
}

// wait blocks until a port has frames or timeout passes. It returns false
// at once when some port cannot be waited for; the caller sleeps instead.
func (iw *idleWaiter) wait(snap *snapshot, worker int, timeout time.Duration) bool {
	if snap == nil {
		return false
	}
	if snap != iw.snap {
		iw.snap, iw.ok = snap, true
		iw.fds.Reset()
		for _, v := range snap.byWorker[worker] {
			w, isWaiter := v.st.port.(ports.Waiter)
			if !isWaiter {
				iw.ok = false
				break
			}
			for _, fd := range w.WaitFDs() {
				iw.fds.Add(fd)
			}
		}
	}
	if !iw.ok || iw.fds.Len() == 0 {
		return false
	}
	_, err := iw.fds.Wait(timeout) // EINTR is a wait cut short, not an error
	return err == nil
}
