package testutil

import (
	"fmt"
	"testing"
	"time"
)

// Eventually polls cond until it holds, and fails t (with Fatalf) if it
// does not within timeout; the message is format and args, as for
// Printf, and says what was waited for. Tests use it to wait for an event
// - a counter reaching its value, a loop getting busy, a device coming up
// - instead of sleeping a fixed time, which a loaded machine can outlast.
//
// It polls every 100µs at first and backs off to every 10ms, so a quick
// event is seen quickly and a slow one costs little. cond runs on the
// test's goroutine; it may call t.Fatal. Eventually must be called from
// the test's goroutine.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	if !Poll(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, fmt.Sprintf(format, args...))
	}
}

// Poll is Eventually without the test: it reports whether cond held
// within timeout, for callers that fail in their own words or that run on
// a goroutine other than the test's.
func Poll(timeout time.Duration, cond func() bool) bool {
	end := time.Now().Add(timeout)
	for pause := 100 * time.Microsecond; !cond(); pause = min(2*pause, 10*time.Millisecond) {
		if time.Now().After(end) {
			return false
		}
		time.Sleep(pause)
	}
	return true
}
