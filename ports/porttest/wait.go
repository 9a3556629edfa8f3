package porttest

import (
	"testing"
	"time"
)

// Eventually polls ok every 10 ms until it holds, and fails t
// (naming what) if it does not within d. Tests use it to wait for an event
// - a counter reaching its value, a loop getting busy - instead of sleeping
// a fixed time, which a loaded machine can outlast.
func Eventually(t testing.TB, what string, d time.Duration, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s: not within %v", what, d)
		}
	}
}
