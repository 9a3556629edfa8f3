package sysio

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func newEventFD(t testing.TB, nonblock bool) EventFD {
	t.Helper()
	e, err := NewEventFD(nonblock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// counter reads e's counter (resetting it), or 0 when it is zero.
func counter(t *testing.T, e EventFD) uint64 {
	t.Helper()
	var b [8]byte
	n, err := unix.Read(e.FD(), b[:])
	if err == unix.EAGAIN {
		return 0
	}
	if err != nil || n != 8 {
		t.Fatalf("read eventfd: %d, %v", n, err)
	}
	return binary.NativeEndian.Uint64(b[:])
}

func TestEventFDSignalDrain(t *testing.T) {
	e := newEventFD(t, true)
	for range 3 {
		if err := e.Signal(); err != nil {
			t.Fatal(err)
		}
	}
	if got := counter(t, e); got != 3 {
		t.Fatalf("counter %d after three signals, want 3", got)
	}
	if err := e.Drain(); err != nil {
		t.Fatalf("drain of an empty non-blocking eventfd: %v, want nil", err)
	}
	e.Signal()
	if err := e.Drain(); err != nil {
		t.Fatal(err)
	}
	if got := counter(t, e); got != 0 {
		t.Fatalf("counter %d after drain, want 0", got)
	}
}

// A full counter is a pending signal, not an error.
func TestEventFDSignalFull(t *testing.T) {
	e := newEventFD(t, true)
	var max [8]byte
	for i := range max {
		max[i] = 0xff
	}
	max[0] = 0xfe // 0xffff_ffff_ffff_fffe, the largest count
	if _, err := unix.Write(e.FD(), max[:]); err != nil {
		t.Fatal(err)
	}
	if err := e.Signal(); err != nil {
		t.Fatalf("signal of a full eventfd: %v, want nil", err)
	}
}

// waitLong waits for e to be signalled, again after an interrupted wait
// (EINTR: the runtime's preemption signals cut waits short).
func waitLong(t *testing.T, e EventFD) (bool, error) {
	t.Helper()
	for end := time.Now().Add(time.Minute); time.Now().Before(end); {
		if rang, err := e.Wait(time.Minute); rang || err != nil {
			return rang, err
		}
	}
	return false, nil
}

func TestEventFDWait(t *testing.T) {
	e := newEventFD(t, false)
	if rang, err := e.Wait(20 * time.Millisecond); rang || err != nil {
		t.Fatalf("wait with no signal = %v, %v; want false, nil", rang, err)
	}
	go func() {
		time.Sleep(10 * time.Millisecond)
		e.Signal()
	}()
	if rang, err := waitLong(t, e); !rang || err != nil {
		t.Fatalf("wait for a signal = %v, %v; want true, nil", rang, err)
	}
	// Wait drained it: the next one times out (the blocking descriptor
	// would otherwise be read and block).
	if rang, err := e.Wait(0); rang || err != nil {
		t.Fatalf("wait after the drain = %v, %v; want false, nil", rang, err)
	}
}

func TestEventFDErrors(t *testing.T) {
	e, err := NewEventFD(true)
	if err != nil {
		t.Fatal(err)
	}
	fd := e.FD()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func() error{
		"signal": e.Signal,
		"drain":  e.Drain,
		"close":  e.Close,
		"check":  func() error { return CheckFD(fd) },
		"wait": func() error {
			_, err := e.Wait(0)
			return err
		},
	} {
		err := f()
		if !errors.Is(err, unix.EBADF) && name != "wait" {
			t.Errorf("%s of a closed eventfd: %v, want EBADF", name, err)
		}
		if err == nil {
			t.Errorf("%s of a closed eventfd: no error", name)
		}
	}
}

func TestMemFD(t *testing.T) {
	for _, seal := range []bool{false, true} {
		f, err := MemFD("xvs-sysio-test", 3*4096, seal)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		st, err := Stat(int(f.Fd()))
		if err != nil {
			t.Fatal(err)
		}
		if st.Size != 3*4096 || !st.Regular() {
			t.Fatalf("memfd: %+v, want a regular file of %d bytes", st, 3*4096)
		}
		a, err := Map(int(f.Fd()), 0, 3*4096)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Map(int(f.Fd()), 4096, 4096)
		if err != nil {
			t.Fatal(err)
		}
		a[4096+7] = 42
		if b[7] != 42 {
			t.Fatalf("a store through one mapping is not seen through the other")
		}
		if err := Unmap(a); err != nil {
			t.Fatal(err)
		}
		if err := Unmap(b); err != nil {
			t.Fatal(err)
		}
		err = f.Truncate(4096)
		if seal && !errors.Is(err, unix.EPERM) {
			t.Errorf("shrinking a sealed memfd: %v, want EPERM", err)
		}
		if !seal && err != nil {
			t.Errorf("shrinking an unsealed memfd: %v", err)
		}
		if seal {
			// The seals cannot be lifted or added to.
			if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_WRITE); !errors.Is(err, unix.EPERM) {
				t.Errorf("adding a seal: %v, want EPERM (F_SEAL_SEAL)", err)
			}
		}
	}
}

func TestMapErrors(t *testing.T) {
	f, err := MemFD("xvs-sysio-test", 4096, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := Map(int(f.Fd()), 1, 4096); !errors.Is(err, unix.EINVAL) {
		t.Errorf("map at an unaligned offset: %v, want EINVAL", err)
	}
	if _, err := Stat(-1); !errors.Is(err, unix.EBADF) {
		t.Errorf("stat of -1: %v, want EBADF", err)
	}
}

// waitSet waits on s until a descriptor is ready, again after an
// interrupted wait.
func waitSet(s *PollSet) (int, error) {
	for end := time.Now().Add(time.Minute); time.Now().Before(end); {
		if n, err := s.Wait(time.Minute); n != 0 || err != nil {
			return n, err
		}
	}
	return 0, nil
}

func TestPollSet(t *testing.T) {
	a, b := newEventFD(t, true), newEventFD(t, true)
	var s PollSet
	if n, err := s.Wait(0); n != 0 || err != nil {
		t.Fatalf("wait on an empty set = %d, %v", n, err)
	}
	s.Add(a.FD())
	s.Add(b.FD())
	if s.Len() != 2 {
		t.Fatalf("len %d, want 2", s.Len())
	}
	if n, err := s.Wait(10 * time.Millisecond); n != 0 || err != nil {
		t.Fatalf("wait with nothing readable = %d, %v; want 0, nil", n, err)
	}
	b.Signal()
	if n, err := waitSet(&s); n != 1 || err != nil {
		t.Fatalf("wait with one readable = %d, %v; want 1, nil", n, err)
	}
	s.Reset()
	s.Add(a.FD())
	if n, err := s.Wait(0); n != 0 || err != nil || s.Len() != 1 {
		t.Fatalf("wait on the reset set = %d, %v (len %d); want 0, nil (1)", n, err, s.Len())
	}
}

func TestEpoll(t *testing.T) {
	ep, err := NewEpoll()
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	a, b := newEventFD(t, true), newEventFD(t, true)
	for _, e := range []EventFD{a, b} {
		if err := ep.Add(e.FD()); err != nil {
			t.Fatal(err)
		}
	}
	if err := ep.Add(a.FD()); !errors.Is(err, os.ErrExist) {
		t.Errorf("adding a descriptor twice: %v, want os.ErrExist", err)
	}
	var s PollSet
	s.Add(ep.FD())
	if n, _ := s.Wait(0); n != 0 {
		t.Fatalf("epoll readable with no member readable")
	}
	b.Signal()
	if n, _ := waitSet(&s); n != 1 {
		t.Fatalf("epoll not readable with a member readable")
	}
	if err := ep.Remove(b.FD()); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Wait(0); n != 0 {
		t.Fatalf("epoll readable after its only readable member was removed")
	}
	if err := ep.Remove(b.FD()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("removing a descriptor twice: %v, want os.ErrNotExist", err)
	}
}

func TestSetNonblock(t *testing.T) {
	e := newEventFD(t, false)
	if err := SetNonblock(e.FD()); err != nil {
		t.Fatal(err)
	}
	fl, err := unix.FcntlInt(uintptr(e.FD()), unix.F_GETFL, 0)
	if err != nil || fl&unix.O_NONBLOCK == 0 {
		t.Fatalf("flags %#x, %v: want O_NONBLOCK", fl, err)
	}
	if err := e.Drain(); err != nil { // would block without the flag
		t.Fatal(err)
	}
	if err := SetNonblock(-1); !errors.Is(err, unix.EBADF) {
		t.Errorf("SetNonblock(-1): %v, want EBADF", err)
	}
}

// The data path's calls allocate nothing when they succeed.
func TestDataPathAllocs(t *testing.T) {
	if raceOn {
		t.Skip("the race detector makes Drain's buffer escape")
	}
	e := newEventFD(t, true)
	var s PollSet
	s.Add(e.FD())
	for name, f := range map[string]func(){
		"Signal":       func() { e.Signal() },
		"Drain":        func() { e.Drain() },
		"Signal+Wait":  func() { e.Signal(); e.Wait(0) },
		"PollSet.Wait": func() { s.Wait(0) },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations, want 0", name, n)
		}
	}
}

func BenchmarkSignal(b *testing.B) {
	e := newEventFD(b, true)
	b.ReportAllocs()
	for b.Loop() {
		e.Signal()
	}
}

// BenchmarkRawWrite is what Signal wraps, for comparison.
func BenchmarkRawWrite(b *testing.B) {
	e := newEventFD(b, true)
	one := [8]byte{1}
	b.ReportAllocs()
	for b.Loop() {
		unix.Write(e.FD(), one[:])
	}
}

func BenchmarkDrain(b *testing.B) {
	e := newEventFD(b, true)
	b.ReportAllocs()
	for b.Loop() {
		e.Drain()
	}
}

func BenchmarkPollSetWait(b *testing.B) {
	e := newEventFD(b, true)
	e.Signal()
	var s PollSet
	s.Add(e.FD())
	b.ReportAllocs()
	for b.Loop() {
		s.Wait(0)
	}
}
