// Package leaktest checks that an example extension's test leaves no
// goroutine running: an extension stopped by the switch must stop all it
// started.
package leaktest

import (
	"runtime"
	"testing"
	"time"
)

// Check fails t if, two seconds after it ends, more goroutines run than
// when Check was called, and shows their stacks.
func Check(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("%d goroutines, %d before the test:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}
