package afxdp

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/xvswitch/xvs/internal/testutil"
	"github.com/xvswitch/xvs/ports"
	"github.com/xvswitch/xvs/ring"
)

func testLogger(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t))
}

func TestReceive(t *testing.T) {
	needRoot(t)
	v := newVethPair(t, pairOpt{})
	p := openPort(t, Config{Dev: v.host, Logger: testLogger(t)})
	t.Logf("xdp mode %s, zero-copy %v", p.XDPMode(), p.ZeroCopy())
	if p.Name() != v.host || p.MTU() != 1500 || !bytes.Equal(p.MAC(), v.hostMAC) {
		t.Errorf("Name %q MTU %d MAC %v, want %q 1500 %v", p.Name(), p.MTU(), p.MAC(), v.host, v.hostMAC)
	}
	fd := v.packetSocket(t)
	const count = 300
	var want [][]byte
	for i := range count {
		f := testFrame(v.hostMAC, v.peerMAC, uint64(i), 60+i%1400)
		want = append(want, f)
		if _, err := unix.Write(fd, f); err != nil {
			t.Fatalf("send frame %d: %v", i, err)
		}
	}
	got := receiveFrames(t, p, count, 5*time.Second)
	if len(got) != count {
		t.Fatalf("received %d frames, want %d; stats %+v", len(got), count, p.Stats())
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d differs:\n got %x\nwant %x", i, got[i], want[i])
		}
	}
	if st := p.Stats(); st.RxFrames < count {
		t.Errorf("RxFrames %d, want at least %d", st.RxFrames, count)
	}
}

func TestTransmit(t *testing.T) {
	needRoot(t)
	v := newVethPair(t, pairOpt{})
	p := openPort(t, Config{Dev: v.host, Logger: testLogger(t)})
	fd := v.packetSocket(t)
	b := testutil.RxBatch(t, ring.DefaultArenaConfig)
	const batches = 8
	var want [][]byte
	for k := range batches {
		var frames [][]byte
		for i := range ring.BatchSize {
			seq := uint64(k*ring.BatchSize + i)
			frames = append(frames, testFrame(v.peerMAC, v.hostMAC, seq, 60+int(seq)%1400))
		}
		want = append(want, frames...)
		testutil.Load(b, frames...)
		kicks := p.kicks()
		n, err := p.Transmit(b)
		if err != nil || n != len(frames) {
			t.Fatalf("Transmit = %d, %v; want %d, nil", n, err, len(frames))
		}
		if k == 0 {
			t.Logf("%d frames per Transmit took %d sendto (kernel sends %d per kick)", n, p.kicks()-kicks, p.x.txBudget)
		}
	}
	got := readFrames(t, fd, len(want), 5*time.Second)
	if len(got) != len(want) {
		t.Fatalf("namespace received %d frames, want %d; stats %+v", len(got), len(want), p.Stats())
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d differs:\n got %x\nwant %x", i, got[i], want[i])
		}
	}
	st := p.Stats()
	if st.TxFrames != uint64(len(want)) {
		t.Errorf("TxFrames %d, want %d", st.TxFrames, len(want))
	}
	for _, k := range []string{"rx-dropped", "rx-invalid", "tx-invalid", "rx-ring-full", "fill-ring-empty", "link-down", "tx-error"} {
		if _, ok := st.Drops[k]; !ok {
			t.Errorf("Stats().Drops has no %q: %v", k, st.Drops)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no device", Config{}},
		{"frame size", Config{Dev: "lo", FrameSize: 3000}},
		{"ring not a power of two", Config{Dev: "lo", RxRingSize: 1000}},
		{"ring too small", Config{Dev: "lo", TxRingSize: 16}},
		{"no transmit frames", Config{Dev: "lo", NumFrames: 2048}},
		{"negative queue", Config{Dev: "lo", Queue: -1}},
		{"mode", Config{Dev: "lo", Mode: 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(tc.cfg)
			if !errors.Is(err, ErrBadConfig) {
				if p != nil {
					p.Close()
				}
				t.Fatalf("New(%+v) = %v, want ErrBadConfig", tc.cfg, err)
			}
		})
	}
}

func TestUnknownDevice(t *testing.T) {
	_, err := New(Config{Dev: "xvsafx-nodev"})
	if !errors.Is(err, ErrNoDevice) || !strings.Contains(err.Error(), "xvsafx-nodev") {
		t.Fatalf("New on a missing device = %v, want ErrNoDevice naming it", err)
	}
	t.Log(err)
}

func TestMTUTooLarge(t *testing.T) {
	needRoot(t)
	v := newVethPair(t, pairOpt{hostMTU: 3000})
	_, err := New(Config{Dev: v.host})
	if !errors.Is(err, ErrMTUTooLarge) || !strings.Contains(err.Error(), "3000") || !strings.Contains(err.Error(), "2048") {
		t.Fatalf("New with MTU 3000 and frame size 2048 = %v, want ErrMTUTooLarge naming both", err)
	}
	t.Log(err)
	if id := xdpAttached(t, v.host); id != 0 {
		t.Errorf("refused attach left XDP program %d", id)
	}
	p := openPort(t, Config{Dev: v.host, FrameSize: 4096})
	if p.MTU() != 3000 {
		t.Errorf("MTU %d, want 3000", p.MTU())
	}
}

func TestCloseDetaches(t *testing.T) {
	needRoot(t)
	v := newVethPair(t, pairOpt{})
	for round := range 2 { // the second round proves the socket was released
		p, err := New(Config{Dev: v.host, Logger: testLogger(t)})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if xdpAttached(t, v.host) == 0 {
			t.Fatal("no XDP program attached after New")
		}
		if out := run(t, "ip", "-d", "link", "show", "dev", v.host); !strings.Contains(out, "xdp") {
			t.Fatalf("ip -d link show has no xdp while the port is open:\n%s", out)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if id := xdpAttached(t, v.host); id != 0 {
			t.Fatalf("XDP program %d still attached after Close", id)
		}
		if out := run(t, "ip", "-d", "link", "show", "dev", v.host); strings.Contains(out, "xdp") {
			t.Fatalf("ip -d link show still shows xdp after Close:\n%s", out)
		}
		b := testutil.RxBatch(t, ring.DefaultArenaConfig)
		if _, err := p.Receive(b); !errors.Is(err, ports.ErrPortClosed) {
			t.Errorf("Receive after Close: %v", err)
		}
		if _, err := p.Transmit(b); !errors.Is(err, ports.ErrPortClosed) {
			t.Errorf("Transmit after Close: %v", err)
		}
		_ = p.Stats() // still answers, with the last kernel counters
	}
}

func TestTransmitLinkDown(t *testing.T) {
	needRoot(t)
	v := newVethPair(t, pairOpt{})
	p := openPort(t, Config{Dev: v.host, Logger: testLogger(t)})
	fd := v.packetSocket(t)
	b := testutil.RxBatch(t, ring.DefaultArenaConfig)
	frames := make([][]byte, ring.BatchSize)
	for i := range frames {
		frames[i] = testFrame(v.peerMAC, v.hostMAC, uint64(i), 64)
	}
	run(t, "ip", "link", "set", v.host, "down")
	for range 3 {
		testutil.Load(b, frames...)
		n, err := p.Transmit(b)
		if err != nil || n != len(frames) {
			t.Fatalf("Transmit on a down link = %d, %v; want %d (counted as dropped), nil", n, err, len(frames))
		}
	}
	if d := p.Stats().Drops["link-down"]; d != 3*uint64(len(frames)) {
		t.Errorf("link-down drops %d, want %d", d, 3*len(frames))
	}
	run(t, "ip", "link", "set", v.host, "up")
	// Frames sent after the link is up arrive (with, possibly, the ones
	// left in the ring when it went down).
	deadline := time.Now().Add(5 * time.Second)
	var got [][]byte
	for len(got) == 0 && time.Now().Before(deadline) {
		testutil.Load(b, frames...)
		if _, err := p.Transmit(b); err != nil {
			t.Fatal(err)
		}
		got = readFrames(t, fd, 1, 100*time.Millisecond)
	}
	if len(got) == 0 {
		t.Fatalf("nothing arrived after the link came back up; stats %+v", p.Stats())
	}
}

func TestReplacesGenericProgram(t *testing.T) {
	needRoot(t)
	v := newVethPair(t, pairOpt{})
	prog := passProgram(t)
	attachGeneric(t, v.host, prog)
	if xdpAttached(t, v.host) == 0 {
		t.Fatal("generic program not attached")
	}
	done := make(chan struct{})
	var p *Port
	var err error
	go func() {
		defer close(done)
		p, err = New(Config{Dev: v.host, Logger: testLogger(t)})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("New hangs with a generic-mode program attached")
	}
	if err != nil {
		t.Fatal(err)
	}
	if p.XDPMode() != ModeNative {
		t.Errorf("XDP mode %s, want native", p.XDPMode())
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if id := xdpAttached(t, v.host); id != 0 {
		t.Fatalf("XDP program %d left after Close", id)
	}
}

func TestGenericMode(t *testing.T) {
	needRoot(t)
	v := newVethPair(t, pairOpt{})
	p := openPort(t, Config{Dev: v.host, Mode: ModeGeneric, Logger: testLogger(t)})
	if p.XDPMode() != ModeGeneric || p.ZeroCopy() {
		t.Fatalf("mode %s zero-copy %v, want generic copy", p.XDPMode(), p.ZeroCopy())
	}
	if out := run(t, "ip", "-d", "link", "show", "dev", v.host); !strings.Contains(out, "xdpgeneric") {
		t.Errorf("ip -d link show has no xdpgeneric:\n%s", out)
	}
	fd := v.packetSocket(t)
	for i := range 10 {
		if _, err := unix.Write(fd, testFrame(v.hostMAC, v.peerMAC, uint64(i), 100)); err != nil {
			t.Fatal(err)
		}
	}
	if got := receiveFrames(t, p, 10, 5*time.Second); len(got) != 10 {
		t.Fatalf("received %d frames in generic mode, want 10", len(got))
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if id := xdpAttached(t, v.host); id != 0 {
		t.Fatalf("XDP program %d left after Close", id)
	}
}

func TestTwoQueuesShareProgram(t *testing.T) {
	needRoot(t)
	v := newVethPair(t, pairOpt{queues: 2})
	p0 := openPort(t, Config{Name: "q0", Dev: v.host, Queue: 0})
	p1, err := New(Config{Name: "q1", Dev: v.host, Queue: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Name: "again", Dev: v.host, Queue: 1}); !errors.Is(err, unix.EBUSY) {
		t.Errorf("second port on queue 1: %v, want EBUSY", err)
	}
	if err := p1.Close(); err != nil {
		t.Fatal(err)
	}
	if xdpAttached(t, v.host) == 0 {
		t.Fatal("closing queue 1 detached the program queue 0 still uses")
	}
	if err := p0.Close(); err != nil {
		t.Fatal(err)
	}
	if id := xdpAttached(t, v.host); id != 0 {
		t.Fatalf("XDP program %d left after both ports closed", id)
	}
}

func TestNoAllocs(t *testing.T) {
	needRoot(t)
	v := newVethPair(t, pairOpt{})
	p := openPort(t, Config{Dev: v.host})
	fd := v.packetSocket(t)
	b := testutil.RxBatch(t, ring.DefaultArenaConfig)
	if n := testing.AllocsPerRun(100, func() { testutil.ResetRx(b); p.Receive(b) }); n != 0 {
		t.Errorf("Receive with nothing waiting allocates %v per call", n)
	}
	frame := testFrame(v.hostMAC, v.peerMAC, 1, 64)
	if n := testing.AllocsPerRun(50, func() {
		for range 8 {
			unix.Write(fd, frame)
		}
		testutil.ResetRx(b)
		p.Receive(b)
	}) - testing.AllocsPerRun(50, func() {
		for range 8 {
			unix.Write(fd, frame)
		}
	}); n > 0 {
		t.Errorf("Receive of frames allocates %v per call", n)
	}
	frames := make([][]byte, ring.BatchSize)
	for i := range frames {
		frames[i] = testFrame(v.peerMAC, v.hostMAC, uint64(i), 64)
	}
	testutil.Load(b, frames...)
	if n := testing.AllocsPerRun(100, func() { p.Transmit(b) }); n != 0 {
		t.Errorf("Transmit allocates %v per call", n)
	}
}

func TestReceiveTooBig(t *testing.T) {
	needRoot(t)
	v := newVethPair(t, pairOpt{})
	p := openPort(t, Config{Dev: v.host})
	fd := v.packetSocket(t)
	a, err := ring.NewArena(ring.ArenaConfig{Frames: ring.BatchSize, FrameSize: 512, Headroom: 128})
	if err != nil {
		t.Fatal(err)
	}
	b := ring.NewBatch(a)
	for i, size := range []int{100, 600, 200} { // 600 does not fit 512-128
		if _, err := unix.Write(fd, testFrame(v.hostMAC, v.peerMAC, uint64(i), size)); err != nil {
			t.Fatal(err)
		}
	}
	var sizes []int
	deadline := time.Now().Add(5 * time.Second)
	for len(sizes) < 2 && time.Now().Before(deadline) {
		testutil.ResetRx(b)
		n, err := p.Receive(b)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			sizes = append(sizes, len(b.Data(i)))
		}
	}
	if len(sizes) != 2 || sizes[0] != 100 || sizes[1] != 200 {
		t.Fatalf("received sizes %v, want [100 200]", sizes)
	}
	if d := p.Stats().Drops["too-big"]; d != 1 {
		t.Errorf("too-big drops %d, want 1", d)
	}
}

func TestBindFailureCleansUp(t *testing.T) {
	needRoot(t)
	v := newVethPair(t, pairOpt{}) // one active queue
	_, err := New(Config{Dev: v.host, Queue: 1})
	if err == nil {
		t.Fatal("New on an inactive queue succeeded")
	}
	t.Log(err)
	if id := xdpAttached(t, v.host); id != 0 {
		t.Fatalf("failed New left XDP program %d", id)
	}
	// The device is usable afterwards.
	openPort(t, Config{Dev: v.host})
}

// TestCloseWhileBusy closes a port while Receive and Transmit run in
// other goroutines: Close waits for them, they then see ErrPortClosed,
// and no file descriptor is left behind.
func TestCloseWhileBusy(t *testing.T) {
	needRoot(t)
	v := newVethPair(t, pairOpt{})
	fdsBefore := testutil.OpenFDs(t)
	p, err := New(Config{Dev: v.host})
	if err != nil {
		t.Fatal(err)
	}
	frames := make([][]byte, ring.BatchSize)
	for i := range frames {
		frames[i] = testFrame(v.peerMAC, v.hostMAC, uint64(i), 64)
	}
	errs := make(chan error, 2)
	go func() {
		b := testutil.RxBatch(t, ring.DefaultArenaConfig)
		for {
			testutil.ResetRx(b)
			if _, err := p.Receive(b); err != nil {
				errs <- err
				return
			}
		}
	}()
	go func() {
		b := testutil.RxBatch(t, ring.DefaultArenaConfig)
		testutil.Load(b, frames...)
		for {
			if _, err := p.Transmit(b); err != nil {
				errs <- err
				return
			}
		}
	}()
	// Close while both loops are busy: once frames have gone out.
	testutil.Eventually(t, 5*time.Second, func() bool { return p.Stats().TxFrames > 0 }, "frames sent by the Transmit loop")
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case err := <-errs:
			if !errors.Is(err, ports.ErrPortClosed) {
				t.Errorf("after Close: %v, want ErrPortClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Receive or Transmit still running 5s after Close")
		}
	}
	if after := testutil.OpenFDs(t); after != fdsBefore {
		t.Errorf("%d file descriptors open after Close, %d before New", after, fdsBefore)
	}
	if st := p.Stats(); st.TxFrames == 0 {
		t.Errorf("no frames sent while busy: %+v", st)
	}
}

// TestVethPeerMTU: native XDP on a veth needs the peer's MTU at most 3506.
func TestVethPeerMTU(t *testing.T) {
	needRoot(t)
	v := newVethPair(t, pairOpt{})
	run(t, "ip", "-n", v.ns, "link", "set", v.peer, "mtu", "4000")
	_, err := New(Config{Dev: v.host, Mode: ModeNative})
	if !errors.Is(err, unix.ERANGE) || !strings.Contains(err.Error(), "3506") {
		t.Fatalf("native attach with peer MTU 4000 = %v, want ERANGE naming 3506", err)
	}
	t.Log(err)
	if id := xdpAttached(t, v.host); id != 0 {
		t.Fatalf("refused attach left XDP program %d", id)
	}
	p := openPort(t, Config{Dev: v.host, Logger: testLogger(t)})
	if p.XDPMode() != ModeGeneric {
		t.Fatalf("ModeAuto with peer MTU 4000 attached in %s mode, want generic", p.XDPMode())
	}
}

// TestNoPermission runs New and Available on a thread without effective
// capabilities (capabilities are per thread in Linux).
func TestNoPermission(t *testing.T) {
	needRoot(t)
	v := newVethPair(t, pairOpt{})
	var availErr, newErr error
	withoutCaps(t, func() {
		availErr = Available()
		var p *Port
		p, newErr = New(Config{Dev: v.host})
		if p != nil {
			p.Close()
		}
	})
	if !errors.Is(availErr, unix.EPERM) {
		t.Errorf("Available without capabilities = %v, want EPERM", availErr)
	}
	if !errors.Is(newErr, unix.EPERM) || !strings.Contains(newErr.Error(), v.host) {
		t.Errorf("New without capabilities = %v, want EPERM naming the device", newErr)
	}
	t.Log(availErr)
	t.Log(newErr)
	if id := xdpAttached(t, v.host); id != 0 {
		t.Fatalf("refused attach left XDP program %d", id)
	}
}

func TestErrorHints(t *testing.T) {
	for _, tc := range []struct {
		errno unix.Errno
		want  string
	}{
		{unix.EPERM, "CAP_NET_RAW"},
		{unix.ENOMEM, "RLIMIT_MEMLOCK"},
		{unix.EAFNOSUPPORT, "CONFIG_XDP_SOCKETS"},
	} {
		err := hint(failed("register UMEM", tc.errno))
		if !errors.Is(err, tc.errno) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("hint(%v) = %v, want it wrapped with %q", tc.errno, err, tc.want)
		}
	}
	// asavie/xdp formats errors with %v; errnoOf gets the errno back.
	lost := errors.New("ebpf.NewMap qidconf_map failed (try increasing RLIMIT_MEMLOCK): map create: operation not permitted")
	if err := errnoOf(lost); !errors.Is(err, unix.EPERM) || err.Error() != lost.Error() {
		t.Errorf("errnoOf(%q) = %v, want EPERM with the same text", lost, err)
	}
}

func TestWaitFDs(t *testing.T) {
	needRoot(t)
	v := newVethPair(t, pairOpt{})
	p := openPort(t, Config{Dev: v.host})
	fds := p.WaitFDs()
	if len(fds) != 1 {
		t.Fatalf("WaitFDs = %v, want one descriptor", fds)
	}
	pfd := []unix.PollFd{{Fd: int32(fds[0]), Events: unix.POLLIN}}
	if n, err := unix.Poll(pfd, 50); err != nil || n != 0 {
		t.Fatalf("poll with nothing waiting = %d, %v (revents %#x), want a timeout", n, err, pfd[0].Revents)
	}
	fd := v.packetSocket(t)
	go func() {
		time.Sleep(20 * time.Millisecond)
		unix.Write(fd, testFrame(v.hostMAC, v.peerMAC, 7, 64))
	}()
	start := time.Now()
	n, err := unix.Poll(pfd, 5000)
	if err != nil || n != 1 || pfd[0].Revents&unix.POLLIN == 0 {
		t.Fatalf("poll = %d, %v (revents %#x), want POLLIN", n, err, pfd[0].Revents)
	}
	t.Logf("woke %v after the frame was sent", time.Since(start)-20*time.Millisecond)
	if got := receiveFrames(t, p, 1, time.Second); len(got) != 1 {
		t.Fatal("POLLIN but no frame")
	}
	p.Close()
	if fds := p.WaitFDs(); fds != nil {
		t.Errorf("WaitFDs after Close = %v, want nil", fds)
	}
}

// TestThreadedNAPI: a port with ThreadedNAPI turns the device's threaded
// NAPI on while it is open, frames still arrive, and Close restores the
// device's setting; a device that had it on keeps it.
func TestThreadedNAPI(t *testing.T) {
	needRoot(t)
	v := newVethPair(t, pairOpt{})
	threaded := func() string {
		b, err := os.ReadFile("/sys/class/net/" + v.host + "/threaded")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	if got := threaded(); got != "0" {
		t.Skipf("%s starts with threaded NAPI %q", v.host, got)
	}
	p, err := New(Config{Dev: v.host, ThreadedNAPI: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if got := threaded(); got != "1" {
		t.Fatalf("threaded NAPI %q while the port is open, want 1", got)
	}
	fd := v.packetSocket(t)
	for i := range 8 {
		f := testFrame(v.hostMAC, v.peerMAC, uint64(i), 64)
		if _, err := unix.Write(fd, f); err != nil {
			t.Fatal(err)
		}
	}
	if got := receiveFrames(t, p, 8, 2*time.Second); len(got) != 8 {
		t.Fatalf("%d frames received with threaded NAPI, want 8", len(got))
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if got := threaded(); got != "0" {
		t.Fatalf("threaded NAPI %q after Close, want 0 (restored)", got)
	}
	// A device already threaded stays so. (A veth has NAPI without an XDP
	// program only with GRO on.)
	run(t, "ethtool", "-K", v.host, "gro", "on")
	if err := os.WriteFile("/sys/class/net/"+v.host+"/threaded", []byte("1"), 0); err != nil {
		t.Fatalf("turn threaded NAPI on with GRO on: %v", err)
	}
	p = openPort(t, Config{Dev: v.host, ThreadedNAPI: true, Logger: testLogger(t)})
	p.Close()
	if got := threaded(); got != "1" {
		t.Fatalf("threaded NAPI %q after Close, want 1 (as it was)", got)
	}
}
