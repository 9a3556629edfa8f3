package sysio

import (
	"encoding/binary"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A peer's descriptor that it made blocking: neither TryDrain on an empty
// counter nor TrySignal on a full one may wait.
func TestTryDrainSignalBlocking(t *testing.T) {
	e := newEventFD(t, false) // blocking, as a peer may leave it
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := e.TryDrain(); err != nil {
			t.Errorf("TryDrain on an empty counter: %v", err)
		}
		var full [8]byte
		binary.NativeEndian.PutUint64(full[:], ^uint64(0)-1) // the most an eventfd holds
		if _, err := unix.Write(e.FD(), full[:]); err != nil {
			t.Errorf("fill: %v", err)
		}
		if err := e.TrySignal(); err != nil {
			t.Errorf("TrySignal on a full counter: %v", err)
		}
		if err := e.TryDrain(); err != nil {
			t.Errorf("TryDrain on a full counter: %v", err)
		}
		if err := e.TrySignal(); err != nil {
			t.Errorf("TrySignal after drain: %v", err)
		}
		if ok, _ := e.Wait(0); !ok {
			t.Error("TrySignal after drain did not signal")
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("TryDrain or TrySignal blocked on a blocking eventfd")
	}
}

func TestIsEventFD(t *testing.T) {
	e := newEventFD(t, true)
	if ok, err := IsEventFD(e.FD()); !ok || err != nil {
		t.Errorf("IsEventFD(eventfd) = %v, %v; want true", ok, err)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if ok, err := IsEventFD(p[1]); ok || err != nil {
		t.Errorf("IsEventFD(pipe) = %v, %v; want false", ok, err)
	}
	if _, err := IsEventFD(-1); err == nil {
		t.Error("IsEventFD(-1): no error")
	}
}

func TestTryAllocs(t *testing.T) {
	if raceOn {
		t.Skip("the race detector makes buffers escape")
	}
	e := newEventFD(t, false)
	if n := testing.AllocsPerRun(100, func() { e.TrySignal(); e.TryDrain() }); n != 0 {
		t.Errorf("TrySignal+TryDrain: %v allocations, want 0", n)
	}
}
