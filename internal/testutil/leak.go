package testutil

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// leakGrace is how long the leak checks wait, after a test has ended, for
// what it started to go away: goroutines may still be returning and
// descriptors closing after Close returned. (A variable for this
// package's own tests.)
var leakGrace = 5 * time.Second

// CheckGoroutines fails t if goroutines that started after the call still
// run when t has ended (it waits up to 5 seconds for them to return), and
// shows their stacks. Call it first in a test, before anything registers
// a cleanup: cleanups run last-in first-out, so the check runs after the
// test's own (a port's Close, a peer's teardown). It cannot tell a leak
// from a goroutine of another test running in parallel, so tests that use
// it must not call t.Parallel.
//
// Goroutines are compared by ID, not counted, so a goroutine that ended
// cannot hide one that leaked. The goroutine os/signal starts at the
// process's first signal.Notify and never stops is not counted as a leak.
func CheckGoroutines(t testing.TB) {
	t.Helper()
	before := goroutines()
	t.Cleanup(func() {
		var leaked []string
		for end := time.Now().Add(leakGrace); ; time.Sleep(5 * time.Millisecond) {
			leaked = leaked[:0]
			for id, stack := range goroutines() {
				if _, ok := before[id]; !ok {
					leaked = append(leaked, stack)
				}
			}
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(end) {
				break
			}
		}
		slices.Sort(leaked)
		t.Errorf("%d goroutines outlive the test (%v after it ended):\n\n%s",
			len(leaked), leakGrace, strings.Join(leaked, "\n\n"))
	})
}

// goroutines returns the stack of every goroutine by ID, leaving out the
// one os/signal never stops.
func goroutines() map[uint64]string {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[uint64]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		// "goroutine 42 [chan receive]:\n..."
		rest, ok := strings.CutPrefix(g, "goroutine ")
		if !ok || strings.Contains(g, "os/signal.signal_recv") {
			continue
		}
		idStr, _, _ := strings.Cut(rest, " ")
		id, err := strconv.ParseUint(idStr, 10, 64)
		if err != nil {
			continue
		}
		out[id] = g
	}
	return out
}

// OpenFDs returns the number of file descriptors the process has open.
func OpenFDs(t testing.TB) int {
	t.Helper()
	return len(fds(t))
}

// fds lists the open descriptors: number and what they point to.
func fds(t testing.TB) map[int]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("skipping: cannot count file descriptors: %v", err)
	}
	out := make(map[int]string, len(ents))
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the descriptor ReadDir used, closed by now
		}
		out[n] = target
	}
	return out
}

// CheckFDs fails t if, when t has ended, the process has more file
// descriptors open than when CheckFDs was called (it waits up to 5 seconds
// for them to close), and lists the new ones.
// As with CheckGoroutines, call it before anything registers a cleanup.
//
// The Go runtime opens descriptors of its own the first time a program
// waits for I/O (the netpoller's epoll and eventfd) and keeps them; that
// is not the test's leak, so CheckFDs has the netpoller started before it
// counts.
func CheckFDs(t testing.TB) {
	t.Helper()
	startNetpoller()
	before := fds(t)
	t.Cleanup(func() {
		var now map[int]string
		for end := time.Now().Add(leakGrace); ; time.Sleep(5 * time.Millisecond) {
			now = fds(t)
			if len(now) <= len(before) || time.Now().After(end) {
				break
			}
		}
		if len(now) <= len(before) {
			return
		}
		var added []string
		for n, target := range now {
			if old, ok := before[n]; !ok || old != target {
				added = append(added, fmt.Sprintf("%d -> %s", n, target))
			}
		}
		slices.Sort(added)
		t.Errorf("%d file descriptors open %v after the test, %d before; new: %s",
			len(now), leakGrace, len(before), strings.Join(added, ", "))
	})
}

// startNetpoller makes the runtime set up its netpoller (a pipe's files
// are registered with it), so that its descriptors exist before a count.
func startNetpoller() {
	r, w, err := os.Pipe()
	if err != nil {
		return
	}
	r.Close()
	w.Close()
}

// CheckLeaks is CheckGoroutines and CheckFDs.
func CheckLeaks(t testing.TB) {
	t.Helper()
	CheckGoroutines(t)
	CheckFDs(t)
}
