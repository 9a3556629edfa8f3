package vhostuser

import (
	"encoding/binary"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xvswitch/xvs/internal/testutil"
	"github.com/xvswitch/xvs/ring"
)

// Tests in which the front-end attacks the switch: each checks that the
// process stays up, that the attacked port refuses or stops (with its
// counter), and that another port, served meanwhile, keeps forwarding.

// within runs fn and fails the test if it does not return in time: a
// data-path call that blocks.
func within(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(feTimeout):
		t.Fatalf("%s blocked", what)
	}
}

// blockingEventFD returns an eventfd without O_NONBLOCK, closed at the
// end of the test.
func blockingEventFD(t *testing.T) int {
	t.Helper()
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// A kick, call or err descriptor that is not an eventfd is a protocol
// error: the connection drops and the other port goes on.
func TestHostileVringFDNotEventFD(t *testing.T) {
	other, of := feStarted(t)
	p := feServer(t, Config{})
	kinds := map[string]func() int{
		"pipe": func() int {
			var fds [2]int
			if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
			return fds[1]
		},
		"socket": func() int {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
			return fds[0]
		},
	}
	errs := uint64(0)
	for name, mk := range kinds {
		for _, req := range []Request{ReqSetVringCall, ReqSetVringKick, ReqSetVringErr} {
			f := feConnect(t, p.Socket())
			f.handshake(feOpts{})
			feWaitRunning(t, p, 1, 1)
			f.must(req, appendVringFD(nil, vringFD{Index: 0}), mk())
			f.waitClosed()
			errs++
			testutil.Eventually(t, feTimeout, func() bool { return p.ControlStats().ProtocolErrors == errs }, "%s as %v: protocol error", name, req)
			feWaitRunning(t, p, 0, 0)
			f.close()
			feTraffic(t, other, of, byte(errs))
		}
	}
}

// A call eventfd the front-end made blocking and filled to its maximum:
// Transmit delivers without waiting to interrupt the guest.
func TestHostileBlockingFullCallFD(t *testing.T) {
	other, of := feStarted(t)
	p, f := feStarted(t)
	call := blockingEventFD(t)
	var full [8]byte
	binary.NativeEndian.PutUint64(full[:], ^uint64(0)-1)
	if _, err := unix.Write(call, full[:]); err != nil {
		t.Fatal(err)
	}
	f.must(ReqSetVringCall, appendVringFD(nil, vringFD{Index: 0}), call)
	f.get(ReqGetFeatures)
	feWaitRunning(t, p, 1, 1)

	_, b := newTestBatch(t)
	for round := range 3 {
		f.postRx(0, 1, feBufSize)
		testutil.LoadAt(b, ring.BatchSize, feFrame(64, byte(round)))
		within(t, "Transmit with a full blocking call eventfd", func() {
			if n, err := p.Transmit(b); n != 1 || err != nil {
				t.Errorf("Transmit = %d, %v; want 1, nil", n, err)
			}
		})
		if u := f.reap(0); len(u) != 1 {
			t.Fatalf("round %d: used entries %+v, want 1", round, u)
		}
	}
	if cs := p.ControlStats(); !cs.Connected || cs.ProtocolErrors != 0 {
		t.Errorf("control stats %+v", cs)
	}
	feTraffic(t, other, of, 1)
}

// A kick eventfd whose O_NONBLOCK the front-end cleared (the flag is the
// open file's, shared with the port): Receive, finding nothing and reading
// the kick empty, does not wait.
func TestHostileKickFDMadeBlocking(t *testing.T) {
	other, of := feStarted(t)
	p, f := feStarted(t)
	if err := unix.SetNonblock(f.kick[1], false); err != nil {
		t.Fatal(err)
	}
	kick := blockingEventFD(t) // and one that never was non-blocking
	_, b := newTestBatch(t)
	for _, step := range []func(){
		func() {},
		func() {
			f.must(ReqSetVringKick, appendVringFD(nil, vringFD{Index: 1}), kick)
			f.get(ReqGetFeatures)
			feWaitRunning(t, p, 1, 1)
		},
	} {
		step()
		within(t, "Receive with a blocking kick eventfd", func() {
			for range 10 {
				testutil.ResetRx(b)
				if n, err := p.Receive(b); n != 0 || err != nil {
					t.Errorf("Receive = %d, %v; want 0, nil", n, err)
				}
			}
		})
	}
	feTraffic(t, p, f, 3)
	feTraffic(t, other, of, 4)
	if cs := p.ControlStats(); !cs.Connected || cs.ProtocolErrors != 0 {
		t.Errorf("control stats %+v", cs)
	}
}

// The front-end shrinks guest memory's file (a memfd without seals, as
// DPDK's --no-huge memory is) while frames flow: the port's next access to
// it faults. The port stops and drops the connection; the process and the
// other port go on.
func TestHostileMemoryTruncated(t *testing.T) {
	other, of := feStarted(t)
	for _, dir := range []string{"transmit", "receive"} {
		t.Run(dir, func(t *testing.T) {
			p, f := feStarted(t)
			feTraffic(t, p, f, 9)
			_, b := newTestBatch(t)
			if dir == "transmit" {
				f.postRx(0, 4, feBufSize)
			} else {
				f.postTx(1, feFrame(80, 1))
			}
			// From here the test must not touch f.ram: it would fault too.
			if err := unix.Ftruncate(f.memfd, 0); err != nil {
				t.Fatal(err)
			}
			if dir == "transmit" {
				testutil.LoadAt(b, ring.BatchSize, feFrame(64, 1), feFrame(64, 2))
				if n, err := p.Transmit(b); n != 2 || err != nil {
					t.Fatalf("Transmit = %d, %v; want 2, nil", n, err)
				}
				if d := p.Stats().Drops["memory-fault"]; d != 2 {
					t.Errorf("memory-fault drops %d, want 2", d)
				}
			} else {
				testutil.ResetRx(b)
				if n, err := p.Receive(b); n != 0 || err != nil {
					t.Fatalf("Receive = %d, %v; want 0, nil", n, err)
				}
			}
			if cs := p.ControlStats(); cs.MemoryFaults != 1 {
				t.Errorf("memory faults %d, want 1", cs.MemoryFaults)
			}
			f.waitClosed()
			feWaitRunning(t, p, 0, 0)
			testutil.Eventually(t, feTimeout, func() bool { return !p.ControlStats().Connected }, "disconnected")
			// The data path goes on without the queues.
			testutil.LoadAt(b, ring.BatchSize, feFrame(64, 3))
			if n, err := p.Transmit(b); n != 1 || err != nil {
				t.Errorf("Transmit after the fault = %d, %v", n, err)
			}
			feTraffic(t, other, of, 10)
			// A new connection with sound memory works again.
			f.close()
			g := feConnect(t, p.Socket())
			g.handshake(feOpts{})
			feWaitRunning(t, p, 1, 1)
			feTraffic(t, p, g, 11)
		})
	}
}

// The protocol goroutine faults too when the memory shrank before a ring
// starts (NewQueue reads the rings): a protocol error, not a crash.
func TestHostileMemoryTruncatedBeforeStart(t *testing.T) {
	other, of := feStarted(t)
	p := feServer(t, Config{})
	f := feConnect(t, p.Socket())
	f.handshake(feOpts{noEnable: true})
	if err := unix.Ftruncate(f.memfd, 0); err != nil {
		t.Fatal(err)
	}
	f.must(ReqSetVringEnable, appendState(nil, vringState{Index: 1, Num: 1}))
	f.waitClosed()
	testutil.Eventually(t, feTimeout, func() bool { return p.ControlStats().ProtocolErrors == 1 }, "protocol error")
	feTraffic(t, other, of, 12)
}
