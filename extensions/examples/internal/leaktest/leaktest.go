// Package leaktest checks that an example extension's test leaves no
// goroutine running: an extension stopped by the switch must stop all it
// started.
package leaktest

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// Check fails t if, two seconds after it ends, more goroutines run than
// when Check was called, and shows their stacks.
func Check(t testing.TB) {
	t.Helper()
	before, _ := goroutines()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for {
			n, stacks := goroutines()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d goroutines, %d before the test:\n%s", n, before, stacks)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// goroutines counts the running goroutines, leaving out the one os/signal
// starts at the first signal.Notify of the process and never stops: it is
// not a leak of whichever test happened to call Notify first.
func goroutines() (int, string) {
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	n := 0
	for _, g := range strings.Split(stacks, "\n\n") {
		if strings.HasPrefix(g, "goroutine ") && !strings.Contains(g, "os/signal.signal_recv") {
			n++
		}
	}
	return n, stacks
}
