package vswitch

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/xvswitch/xvs/ports"
)

// idleWaiter blocks an idle worker in poll(2) on its ports' descriptors.
// The descriptor set is rebuilt only when the snapshot changes.
type idleWaiter struct {
	snap *snapshot
	fds  []unix.PollFd
	ok   bool // every port of the worker has a descriptor
}

// wait blocks until a port has frames or timeout passes. It returns false
// at once when some port cannot be waited for; the caller sleeps instead.
func (iw *idleWaiter) wait(snap *snapshot, worker int, timeout time.Duration) bool {
	if snap == nil {
		return false
	}
	if snap != iw.snap {
		iw.snap, iw.fds, iw.ok = snap, iw.fds[:0], true
		for _, v := range snap.byWorker[worker] {
			w, isWaiter := v.st.port.(ports.Waiter)
			if !isWaiter {
				iw.ok = false
				break
			}
			for _, fd := range w.WaitFDs() {
				iw.fds = append(iw.fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
			}
		}
	}
	if !iw.ok || len(iw.fds) == 0 {
		return false
	}
	_, err := unix.Poll(iw.fds, int(timeout/time.Millisecond))
	return err == nil || err == unix.EINTR
}
