package testutil

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/xvswitch/xvs/ring"
)

// recorder is a testing.TB whose failures and cleanups are recorded
// instead of acted on, to test helpers that fail a test.
type recorder struct {
	testing.TB
	failed   []string
	skipped  string
	cleanups []func()
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.failed = append(r.failed, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) { r.Errorf(format, args...) }
func (r *recorder) Skipf(format string, args ...any)  { r.skipped = fmt.Sprintf(format, args...) }
func (r *recorder) Cleanup(f func())                  { r.cleanups = append(r.cleanups, f) }

// end runs the cleanups as the testing package does: last in, first out.
func (r *recorder) end() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

func shortGrace(t *testing.T) {
	old := leakGrace
	leakGrace = 200 * time.Millisecond
	t.Cleanup(func() { leakGrace = old })
}

func TestCheckGoroutines(t *testing.T) {
	shortGrace(t)
	r := &recorder{TB: t}
	CheckGoroutines(r)
	stop := make(chan struct{})
	go func() { <-stop }()
	r.end()
	close(stop)
	if len(r.failed) != 1 || !strings.Contains(r.failed[0], "1 goroutines outlive the test") ||
		!strings.Contains(r.failed[0], "TestCheckGoroutines") {
		t.Fatalf("a goroutine left running: failures %q, want one naming it", r.failed)
	}

	// One that ends within the grace period is no leak, and one that
	// ended before cannot hide one that did not.
	r = &recorder{TB: t}
	CheckGoroutines(r)
	done := make(chan struct{})
	go func() { time.Sleep(50 * time.Millisecond); close(done) }()
	r.end()
	if len(r.failed) != 0 {
		t.Fatalf("a goroutine ending in the grace period: %q", r.failed)
	}

	older := make(chan struct{})
	go func() { <-older }()
	r = &recorder{TB: t}
	CheckGoroutines(r)
	close(older) // one goroutine fewer...
	newer := make(chan struct{})
	go func() { <-newer }() // ...and one more
	r.end()
	close(newer)
	if len(r.failed) != 1 {
		t.Fatalf("a new goroutine while an old one ended: failures %q, want 1", r.failed)
	}
}

func TestCheckFDs(t *testing.T) {
	shortGrace(t)
	r := &recorder{TB: t}
	CheckFDs(r)
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	r.end()
	f.Close()
	if len(r.failed) != 1 || !strings.Contains(r.failed[0], os.DevNull) {
		t.Fatalf("a file left open: failures %q, want one naming %s", r.failed, os.DevNull)
	}

	r = &recorder{TB: t}
	CheckFDs(r)
	f, err = os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	r.end()
	if len(r.failed) != 0 {
		t.Fatalf("a file closed: %q", r.failed)
	}
	if n := OpenFDs(t); n < 3 {
		t.Fatalf("OpenFDs = %d, want at least stdin, stdout and stderr", n)
	}
}

func TestEventually(t *testing.T) {
	calls := 0
	Eventually(t, time.Second, func() bool { calls++; return calls == 3 }, "the third call")
	if calls != 3 {
		t.Fatalf("cond called %d times, want 3", calls)
	}
	r := &recorder{TB: t}
	start := time.Now()
	Eventually(r, 50*time.Millisecond, func() bool { return false }, "counter %s", "x")
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("gave up after %v, before the timeout", d)
	}
	if len(r.failed) != 1 || r.failed[0] != "timed out after 50ms waiting for counter x" {
		t.Fatalf("failures %q", r.failed)
	}
}

func TestNeedCommands(t *testing.T) {
	r := &recorder{TB: t}
	NeedCommands(r, "sh")
	if r.skipped != "" {
		t.Fatalf("skipped with sh in PATH: %s", r.skipped)
	}
	NeedCommands(r, "sh", "xvs-no-such-command")
	if !strings.Contains(r.skipped, "xvs-no-such-command") {
		t.Fatalf("skip message %q does not name the missing command", r.skipped)
	}
}

func TestBatches(t *testing.T) {
	cfg := ring.ArenaConfig{Frames: 2 * ring.BatchSize, FrameSize: 512, Headroom: 128}
	b := RxBatch(t, cfg)
	if b.N != 0 || b.Frames[5].Index != 5 || b.Frames[5].Offset != 128 || len(b.Room(5)) != 384 {
		t.Fatalf("RxBatch: N %d, frame 5 %+v", b.N, b.Frames[5])
	}
	frames := [][]byte{[]byte("first frame"), bytes.Repeat([]byte{7}, 384)}
	LoadAt(b, ring.BatchSize, frames...)
	if b.N != 2 || b.Frames[1].Index != ring.BatchSize+1 || b.Frames[1].Offset != 128 {
		t.Fatalf("LoadAt: N %d, frame 1 %+v", b.N, b.Frames[1])
	}
	got := Frames(b)
	if len(got) != 2 || !bytes.Equal(got[0], frames[0]) || !bytes.Equal(got[1], frames[1]) {
		t.Fatalf("Frames = %q", got)
	}
	got[0][0] = 'X'
	if b.Data(0)[0] != 'f' {
		t.Fatal("Frames returned the arena's bytes, not copies")
	}
	ResetRxAt(b, 3, 200)
	if b.N != 0 || b.Frames[0].Index != 3 || b.Frames[0].Offset != 200 || b.Frames[0].Len != 0 {
		t.Fatalf("ResetRxAt: N %d, frame 0 %+v", b.N, b.Frames[0])
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Load of a frame longer than its room did not panic")
		}
	}()
	Load(b, make([]byte, 385))
}
