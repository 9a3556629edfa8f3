package vhostuser

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	pktheader "github.com/xvswitch/xvs/header"
	"github.com/xvswitch/xvs/internal/testutil"
	"github.com/xvswitch/xvs/ports"
	"github.com/xvswitch/xvs/ring"
)

// feTraffic checks both directions on pair 0 of a set-up front-end: a
// frame the guest sends reaches Receive, and a frame Transmit sends lands
// in a guest receive buffer with a zero header.
func feTraffic(t *testing.T, p *Port, f *feFrontend, seed byte) {
	t.Helper()
	_, b := newTestBatch(t)

	// Guest -> switch.
	want := feFrame(60+int(seed), seed)
	f.postTx(1, want)
	var got []byte
	testutil.Eventually(t, feTimeout, func() bool {
		testutil.ResetRx(b)
		n, err := p.Receive(b)
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		if n > 0 {
			if n != 1 {
				t.Fatalf("Receive: %d frames, want 1", n)
			}
			got = append([]byte(nil), b.Data(0)...)
			return true
		}
		return false
	}, "the guest's frame")
	if !bytes.Equal(got, want) {
		t.Fatalf("received %x, want %x", got, want)
	}
	if u := f.reap(1); len(u) != 1 || u[0].len != 0 {
		t.Fatalf("tx used entries %+v, want one of length 0", u)
	}

	// Switch -> guest.
	f.postRx(0, 4, feBufSize)
	out := feFrame(100+int(seed), seed+1)
	testutil.LoadAt(b, ring.BatchSize, out)
	if n, err := p.Transmit(b); n != 1 || err != nil {
		t.Fatalf("Transmit = %d, %v; want 1, nil", n, err)
	}
	u := f.reap(0)
	if len(u) != 1 {
		t.Fatalf("rx used entries %+v, want 1", u)
	}
	hl := f.hdrLen()
	if int(u[0].len) != hl+len(out) {
		t.Fatalf("rx used length %d, want %d", u[0].len, hl+len(out))
	}
	off, ok := f.rxBufs[0][uint16(u[0].id)]
	if !ok {
		t.Fatalf("rx used id %d is not a posted buffer", u[0].id)
	}
	buf := f.ram[off : off+uint64(hl+len(out))]
	hdr := make([]byte, hl)
	if hl == virtioNetHdrMrgLen {
		binary.LittleEndian.PutUint16(hdr[virtioNetHdrNumBufOff:], 1)
	}
	if !bytes.Equal(buf[:hl], hdr) || !bytes.Equal(buf[hl:], out) {
		t.Fatalf("guest buffer %x, want header %x and frame %x", buf, hdr, out)
	}
	if !f.called(0) {
		t.Fatal("the guest was not interrupted for its receive queue")
	}
	// The three buffers left are used up by later calls; none is lost.
}

func TestPortServerEndToEnd(t *testing.T) {
	testutil.CheckLeaks(t)
	p := feServer(t, Config{Name: "vm1"})
	if _, err := os.Stat(p.Socket()); err != nil {
		t.Fatalf("socket: %v", err)
	}
	if fi, _ := os.Stat(p.Socket()); fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	_, b := newTestBatch(t)

	// Not connected: nothing to receive, frames to send are dropped.
	testutil.ResetRx(b)
	if n, err := p.Receive(b); n != 0 || err != nil {
		t.Fatalf("Receive unconnected = %d, %v", n, err)
	}
	testutil.LoadAt(b, ring.BatchSize, feFrame(64, 1), feFrame(64, 2))
	if n, err := p.Transmit(b); n != 2 || err != nil {
		t.Fatalf("Transmit unconnected = %d, %v; want 2 (dropped), nil", n, err)
	}

	f := feConnect(t, p.Socket())
	f.handshake(feOpts{})
	feWaitRunning(t, p, 1, 1)
	virtio, proto := p.Features()
	if virtio != f.features || proto != f.protocol {
		t.Errorf("Features = %#x, %#x; want %#x, %#x", virtio, proto, f.features, f.protocol)
	}
	for _, bit := range []uint64{virtioFVersion1, virtioNetFMrgRxbuf, virtioRingFEventIdx, virtioRingFIndirectDesc, virtioNetFMQ, vhostUserFProtocolFeatures} {
		if virtio&bit == 0 {
			t.Errorf("feature %#x not negotiated", bit)
		}
	}
	feTraffic(t, p, f, 1)
	feTraffic(t, p, f, 2)

	s := p.Stats()
	if s.RxFrames != 2 || s.TxFrames != 2 || s.RxBytes != 61+62 || s.TxBytes != 101+102 {
		t.Errorf("stats %+v", s)
	}
	if s.Drops["not-connected"] != 2 {
		t.Errorf("not-connected drops %d, want 2", s.Drops["not-connected"])
	}
	for _, r := range []string{"not-connected", "too-big", "malformed", "queue-error"} {
		if _, ok := s.Drops[r]; !ok {
			t.Errorf("drop reason %q missing from Stats", r)
		}
	}
	// Frames without guest buffers are left to the switch (ring-full).
	if v, ok := s.Drops["rx-no-buffers"]; ok {
		t.Errorf("drop reason rx-no-buffers in Stats (%d): the switch counts those", v)
	}
	cs := p.ControlStats()
	if !cs.Connected || cs.Connects != 1 || cs.ProtocolErrors != 0 {
		t.Errorf("control stats %+v", cs)
	}

	// Close with a front-end connected: it sees the connection end, the
	// socket goes, and a second Close is harmless.
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	f.waitClosed()
	if _, err := os.Stat(p.Socket()); !os.IsNotExist(err) {
		t.Errorf("socket after Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	testutil.ResetRx(b)
	if _, err := p.Receive(b); !errors.Is(err, ports.ErrPortClosed) {
		t.Errorf("Receive after Close: %v", err)
	}
	if _, err := p.Transmit(b); !errors.Is(err, ports.ErrPortClosed) {
		t.Errorf("Transmit after Close: %v", err)
	}
}

// The header is 10 bytes when neither VERSION_1 nor MRG_RXBUF is
// negotiated, and rings start on their kick without PROTOCOL_FEATURES.
func TestPortLegacyHeaderNoProtocolFeatures(t *testing.T) {
	p := feServer(t, Config{})
	f := feConnect(t, p.Socket())
	f.handshake(feOpts{legacy: true, noProtocol: true})
	feWaitRunning(t, p, 1, 1)
	if f.hdrLen() != virtioNetHdrLegacyLen {
		t.Fatalf("test setup: header %d", f.hdrLen())
	}
	feTraffic(t, p, f, 3)
}

// With PROTOCOL_FEATURES negotiated, rings wait for SET_VRING_ENABLE.
func TestPortRingsWaitForEnable(t *testing.T) {
	p := feServer(t, Config{})
	f := feConnect(t, p.Socket())
	f.handshake(feOpts{noEnable: true})
	if rx, tx := feRunning(p); rx != 0 || tx != 0 {
		t.Fatalf("running %d/%d before SET_VRING_ENABLE", rx, tx)
	}
	f.must(ReqSetVringEnable, appendState(nil, vringState{Index: 1, Num: 1}))
	feWaitRunning(t, p, 0, 1)
	f.must(ReqSetVringEnable, appendState(nil, vringState{Index: 0, Num: 1}))
	feWaitRunning(t, p, 1, 1)
	feTraffic(t, p, f, 4)
	// Disabling stops the ring.
	f.must(ReqSetVringEnable, appendState(nil, vringState{Index: 0, Num: 0}))
	feWaitRunning(t, p, 0, 1)
}

// A front-end that goes away and comes back (a VM restart) finds the port
// ready again; its old guest memory is unmapped.
func TestPortReconnect(t *testing.T) {
	testutil.CheckLeaks(t)
	p := feServer(t, Config{})
	for round := range 3 {
		f := feConnect(t, p.Socket())
		f.handshake(feOpts{})
		feWaitRunning(t, p, 1, 1)
		feTraffic(t, p, f, byte(10*round))
		f.close()
		testutil.Eventually(t, feTimeout, func() bool { return p.ControlStats().Disconnects == uint64(round+1) }, "disconnect")
		feWaitRunning(t, p, 0, 0)
		if v, _ := p.Features(); v != 0 {
			t.Fatalf("features %#x after disconnect", v)
		}
	}
	_, b := newTestBatch(t)
	testutil.LoadAt(b, ring.BatchSize, feFrame(64, 0))
	if n, _ := p.Transmit(b); n != 1 {
		t.Fatalf("Transmit while disconnected = %d", n)
	}
	cs := p.ControlStats()
	if cs.Connects != 3 || cs.ProtocolErrors != 0 || cs.Connected {
		t.Errorf("control stats %+v", cs)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

// While a front-end is connected, another is turned away after a grace
// period; one that connects as the first goes away is served.
func TestPortSecondFrontEndRejected(t *testing.T) {
	p := feServer(t, Config{})
	f := feConnect(t, p.Socket())
	f.handshake(feOpts{})
	g := feConnect(t, p.Socket())
	g.waitClosed()
	if r := p.ControlStats().Rejected; r != 1 {
		t.Errorf("rejected %d, want 1", r)
	}
	feWaitRunning(t, p, 1, 1)
	feTraffic(t, p, f, 5)

	// A restart: the new connection is made (it waits in the backlog,
	// or in claim) before the old one ends.
	h := feConnect(t, p.Socket())
	f.close()
	h.handshake(feOpts{})
	feWaitRunning(t, p, 1, 1)
	feTraffic(t, p, h, 6)
	if cs := p.ControlStats(); cs.Rejected != 1 || cs.Connects != 2 {
		t.Errorf("control stats %+v", cs)
	}
}

// Client mode: the port connects to the front-end's socket, waits for it
// to appear, and reconnects when it goes away.
func TestPortClientReconnect(t *testing.T) {
	testutil.CheckLeaks(t)
	path := feSocket(t)
	p, err := New(Config{Socket: path})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	// Nothing listens yet: the port retries until it does.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for round := range 2 {
		ln.SetDeadline(time.Now().Add(feTimeout))
		c, err := ln.AcceptUnix()
		if err != nil {
			t.Fatalf("round %d: accept: %v", round, err)
		}
		f := feNew(t, c)
		f.handshake(feOpts{})
		feWaitRunning(t, p, 1, 1)
		feTraffic(t, p, f, byte(20+round))
		f.close()
		feWaitRunning(t, p, 0, 0)
	}
	// The front-end goes away and its socket with it: the port keeps
	// trying, and connects once it is back.
	ln.Close()
	ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ln.SetDeadline(time.Now().Add(feTimeout))
	c, err := ln.AcceptUnix()
	if err != nil {
		t.Fatalf("accept after the socket came back: %v", err)
	}
	defer c.Close()
	testutil.Eventually(t, feTimeout, func() bool { return p.ControlStats().Connects == 3 }, "the third connection")
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if cs := p.ControlStats(); cs.Connects != 3 || cs.ProtocolErrors != 0 {
		t.Errorf("control stats %+v", cs)
	}
}

// Two queue pairs: Transmit spreads by flow hash, Receive reads both.
func TestPortTwoQueuePairs(t *testing.T) {
	p := feServer(t, Config{QueuePairs: 2})
	f := feConnect(t, p.Socket())
	f.handshake(feOpts{pairs: 2})
	feWaitRunning(t, p, 2, 2)
	if n := f.get(ReqGetQueueNum); n != 2 {
		t.Fatalf("GET_QUEUE_NUM %d", n)
	}
	_, b := newTestBatch(t)

	f.postTx(1, feFrame(70, 1))
	f.postTx(3, feFrame(71, 2))
	seen := map[int]bool{}
	testutil.Eventually(t, feTimeout, func() bool {
		testutil.ResetRx(b)
		n, _ := p.Receive(b)
		for i := range n {
			seen[int(b.Frames[i].Len)] = true
		}
		return seen[70] && seen[71]
	}, "frames of both transmit queues")

	f.postRx(0, 8, feBufSize)
	f.postRx(2, 8, feBufSize)
	frames := [][]byte{feFrame(80, 1), feFrame(81, 2), feFrame(82, 3), feFrame(83, 4)}
	testutil.LoadAt(b, ring.BatchSize, frames...)
	for i := range b.N {
		b.Frames[i].Hash = uint32(i) + 2 // even: queue pair 0, odd: pair 1 (0 would mean "not computed")
	}
	if n, err := p.Transmit(b); n != 4 || err != nil {
		t.Fatalf("Transmit = %d, %v", n, err)
	}
	hl := uint32(f.hdrLen())
	u0, u2 := f.reap(0), f.reap(2)
	if len(u0) != 2 || len(u2) != 2 || u0[0].len != hl+80 || u0[1].len != hl+82 || u2[0].len != hl+81 || u2[1].len != hl+83 {
		t.Fatalf("used: ring 0 %+v, ring 2 %+v", u0, u2)
	}

	// Queue pair 1 runs out of buffers: its frames are not consumed, and
	// the port does not count them (the switch does, as ring-full).
	// Ring 2 has 6 buffers left; ring 0 gets 8 more (14).
	f.postRx(0, 8, feBufSize)
	frames = frames[:0]
	for i := range 16 {
		frames = append(frames, feFrame(90+i, byte(i)))
	}
	testutil.LoadAt(b, ring.BatchSize, frames...)
	for i := range b.N {
		b.Frames[i].Hash = uint32(i) + 2
	}
	if n, err := p.Transmit(b); n != 14 || err != nil {
		t.Fatalf("Transmit with pair 1 short of buffers = %d, %v; want 14, nil", n, err)
	}
	u0, u2 = f.reap(0), f.reap(2)
	if len(u0) != 8 || len(u2) != 6 {
		t.Fatalf("used: ring 0 %+v, ring 2 %+v; want 8 and 6 entries", u0, u2)
	}
	for k, u := range u2 {
		if want := hl + uint32(90+2*k+1); u.len != want {
			t.Errorf("ring 2 used entry %d: length %d, want %d (in order)", k, u.len, want)
		}
	}
	s := p.Stats()
	if s.TxFrames != 4+14 {
		t.Errorf("TxFrames %d, want 18", s.TxFrames)
	}
	for r, v := range s.Drops {
		if v != 0 {
			t.Errorf("drops[%s] = %d, want 0", r, v)
		}
	}
}

// feUDP is an Ethernet/IPv4/UDP frame of n bytes from 10.0.0.1:sport to
// 10.0.0.2:9.
func feUDP(sport uint16, n int) []byte {
	f := make([]byte, n)
	copy(f, []byte{0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00, 0x45})
	binary.BigEndian.PutUint16(f[16:], uint16(n-14))
	f[22], f[23] = 64, 17
	copy(f[26:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	binary.BigEndian.PutUint16(f[34:], sport)
	binary.BigEndian.PutUint16(f[36:], 9)
	binary.BigEndian.PutUint16(f[38:], uint16(n-34))
	return f
}

// TestPortTransmitSpreadsFlows: frames the switch has not hashed (Meta.Hash
// 0) are spread by flow over the guest's receive queues. Each frame goes
// to queue header.FlowHash mod 4, which Transmit writes into its Meta; the
// 16 flows of a batch reach all 4 queues; and the 4 frames of a flow
// arrive on one queue, in order.
func TestPortTransmitSpreadsFlows(t *testing.T) {
	const pairs, flows = 4, 16
	p := feServer(t, Config{QueuePairs: pairs})
	f := feConnect(t, p.Socket())
	f.handshake(feOpts{pairs: pairs})
	feWaitRunning(t, p, pairs, pairs)
	for q := range pairs {
		f.postRx(2*q, ring.BatchSize, feBufSize)
	}
	_, b := newTestBatch(t)
	frames := make([][]byte, ring.BatchSize)
	want := make([]int, ring.BatchSize) // queue of each frame
	for i := range frames {
		frames[i] = feUDP(uint16(40000+i%flows), 60+i) // the length names the frame
		want[i] = int(pktheader.FlowHash(frames[i]) % pairs)
	}
	testutil.LoadAt(b, ring.BatchSize, frames...)
	if n, err := p.Transmit(b); n != len(frames) || err != nil {
		t.Fatalf("Transmit = %d, %v; want %d, nil", n, err, len(frames))
	}
	for i := range b.N {
		if h := b.Frames[i].Hash; h != pktheader.FlowHash(frames[i]) {
			t.Fatalf("frame %d: Meta.Hash %#x, want header.FlowHash %#x", i, h, pktheader.FlowHash(frames[i]))
		}
	}
	hl := uint32(f.hdrLen())
	used := 0
	for q := range pairs {
		last := -1
		u := f.reap(2 * q)
		if len(u) > 0 {
			used++
		}
		for _, e := range u {
			i := int(e.len-hl) - 60
			if i < 0 || i >= len(frames) {
				t.Fatalf("queue %d: a frame of %d bytes was not sent", q, e.len-hl)
			}
			off := f.rxBufs[2*q][uint16(e.id)]
			if got := f.ram[off+uint64(hl) : off+uint64(e.len)]; !bytes.Equal(got, frames[i]) {
				t.Fatalf("queue %d: frame %d arrived changed", q, i)
			}
			if want[i] != q {
				t.Errorf("frame %d (flow %d) on queue %d, want %d", i, i%flows, q, want[i])
			}
			if i <= last {
				t.Errorf("queue %d: frame %d after frame %d", q, i, last)
			}
			last = i
		}
	}
	if used != pairs {
		t.Errorf("%d flows reached %d of %d queues", flows, used, pairs)
	}
}

// Transmit allocates nothing whatever arena a batch comes from (each
// switch worker has its own) on a port with several queues, with a frame
// to drop in each batch; and every good frame arrives.
func TestPortTransmitArenasAllocs(t *testing.T) {
	p := feServer(t, Config{QueuePairs: 2})
	f := feConnect(t, p.Socket())
	f.handshake(feOpts{pairs: 2})
	feWaitRunning(t, p, 2, 2)
	var batches [2]*ring.Batch
	for k := range batches {
		_, batches[k] = newTestBatch(t)
		// Two frames per queue pair and one too short for Ethernet.
		testutil.LoadAt(batches[k], ring.BatchSize, feFrame(100, 1), feFrame(101, 2), feFrame(102, 3), feFrame(103, 4), feFrame(10, 5))
		for i := range batches[k].N {
			batches[k].Frames[i].Hash = uint32(i) + 2
		}
	}
	const runs = 50
	f.postRx(0, feRingSize, feBufSize)
	f.postRx(2, feRingSize, feBufSize)
	calls := 0
	bad := 0
	a := testing.AllocsPerRun(runs, func() {
		b := batches[calls%2]
		calls++
		if n, err := p.Transmit(b); n != 5 || err != nil {
			bad++
		}
	})
	if a != 0 {
		t.Errorf("Transmit allocates %.2f per call with batches from two arenas", a)
	}
	if bad != 0 {
		t.Errorf("%d of %d Transmit calls did not return 5, nil", bad, calls)
	}
	// AllocsPerRun calls once more than runs, to warm up.
	if u0, u2 := f.reap(0), f.reap(2); len(u0) != 2*calls || len(u2) != 2*calls {
		t.Errorf("used entries: ring 0 %d, ring 2 %d; want %d each", len(u0), len(u2), 2*calls)
	}
	s := p.Stats()
	if s.TxFrames != uint64(4*calls) || s.Drops["malformed"] != uint64(calls) {
		t.Errorf("TxFrames %d, malformed %d; want %d, %d", s.TxFrames, s.Drops["malformed"], 4*calls, calls)
	}
}

// Frames Transmit cannot deliver are consumed and counted by reason, but
// for those without guest buffers, which are not consumed.
func TestPortTransmitDrops(t *testing.T) {
	p := feServer(t, Config{MTU: 1000})
	f := feConnect(t, p.Socket())
	f.handshake(feOpts{noMrg: true})
	feWaitRunning(t, p, 1, 1)
	_, b := newTestBatch(t)

	// No receive buffers: nothing consumed, left to the switch.
	testutil.LoadAt(b, ring.BatchSize, feFrame(64, 1), feFrame(64, 2))
	if n, err := p.Transmit(b); n != 0 || err != nil {
		t.Fatalf("Transmit without guest buffers = %d, %v; want 0, nil", n, err)
	}
	// Too big for the MTU, too short for Ethernet, too big for the
	// guest's one buffer (no mergeable buffers), and a good one.
	f.postRx(0, 2, 200)
	testutil.LoadAt(b, ring.BatchSize, feFrame(1000+18+1, 3), feFrame(10, 4), feFrame(500, 5), feFrame(100, 6))
	if n, err := p.Transmit(b); n != 4 || err != nil {
		t.Fatalf("Transmit = %d, %v", n, err)
	}
	u := f.reap(0)
	if len(u) != 1 || u[0].len != uint32(f.hdrLen()+100) {
		t.Fatalf("used %+v, want the 100-byte frame", u)
	}
	s := p.Stats()
	want := map[string]uint64{"too-big": 2, "malformed": 1, "not-connected": 0, "queue-error": 0, "memory-fault": 0}
	if len(s.Drops) != len(want) {
		t.Errorf("drop reasons %v, want those of %v", s.Drops, want)
	}
	for r, v := range want {
		if s.Drops[r] != v {
			t.Errorf("drops[%s] = %d, want %d (%v)", r, s.Drops[r], v, s.Drops)
		}
	}
	if s.TxFrames != 1 || s.TxBytes != 100 {
		t.Errorf("tx %d frames %d bytes, want 1, 100", s.TxFrames, s.TxBytes)
	}
}

// A guest that breaks its ring stops that ring only: the port counts the
// fault and the frames, and the connection stays.
func TestPortBrokenRing(t *testing.T) {
	p, f := feStarted(t)
	// A receive chain whose buffer lies outside guest memory.
	r := &f.rings[0]
	f.putDesc(r, 0, 1<<40, 2048, virtqDescFWrite, 0)
	f.offer(r, 0)
	_, b := newTestBatch(t)
	testutil.LoadAt(b, ring.BatchSize, feFrame(64, 1), feFrame(64, 2))
	for range 3 {
		if n, err := p.Transmit(b); n != 2 || err != nil {
			t.Fatalf("Transmit = %d, %v", n, err)
		}
	}
	if d := p.Stats().Drops["queue-error"]; d != 6 {
		t.Errorf("queue-error drops %d, want 6", d)
	}
	cs := p.ControlStats()
	if cs.RingFaults["out-of-memory"] != 1 || !cs.Connected {
		t.Errorf("control stats %+v", cs)
	}
	// The transmit direction still works, and setting the ring up again
	// repairs it.
	f.setupRing(0)
	f.must(ReqSetVringEnable, appendState(nil, vringState{Index: 0, Num: 1}))
	f.get(ReqGetFeatures)
	feTraffic(t, p, f, 7)
	if cs := p.ControlStats(); cs.RingFaults["out-of-memory"] != 1 {
		t.Errorf("fault count changed: %+v", cs.RingFaults)
	}
}

// Receive and Transmit run flat out while the front-end changes the
// memory table, restarts rings and reconnects: run with -race; a queue
// used after its memory was unmapped would fault.
func TestPortConcurrentReconfigure(t *testing.T) {
	p := feServer(t, Config{})
	// Stop the data path before the port closes (cleanups run last
	// first), also when the test fails early.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var once sync.Once
	halt := func() { once.Do(func() { close(stop); wg.Wait() }) }
	t.Cleanup(halt)
	_, rb := newTestBatch(t)
	_, tb := newTestBatch(t)
	frames := [][]byte{feFrame(64, 1), feFrame(64, 2)}
	feSpin(&wg, stop, func() {
		testutil.ResetRx(rb)
		p.Receive(rb)
	})
	feSpin(&wg, stop, func() {
		testutil.LoadAt(tb, ring.BatchSize, frames...)
		p.Transmit(tb)
	})
	for round := range 4 {
		f := feConnect(t, p.Socket())
		f.handshake(feOpts{})
		feWaitRunning(t, p, 1, 1)
		for k := range 20 {
			f.postRx(0, 2, feBufSize)
			f.postTx(1, feFrame(64, byte(k)))
			switch k % 4 {
			case 0:
				f.setMemTable()
			case 1:
				s := f.stopRing(1)
				f.must(ReqSetVringBase, appendState(nil, vringState{Index: 1, Num: uint32(s)}))
				f.must(ReqSetVringKick, appendVringFD(nil, vringFD{Index: 1}), f.kick[1])
			case 2:
				f.must(ReqSetVringCall, appendVringFD(nil, vringFD{Index: 0}), f.call[0])
			case 3:
				f.must(ReqSetFeatures, appendU64(nil, f.features))
			}
			f.get(ReqGetFeatures)
		}
		// Every frame of the round arrives before it ends: 20 from the
		// guest, and 40 into its 40 receive buffers.
		testutil.Eventually(t, feTimeout, func() bool {
			s := p.Stats()
			return s.RxFrames == uint64(20*(round+1)) && s.TxFrames == uint64(40*(round+1))
		}, "the round's frames")
		if round%2 == 0 {
			f.close()
		} else {
			p.connMu.Lock()
			p.cur.Close() // the back-end side drops
			p.connMu.Unlock()
		}
		feWaitRunning(t, p, 0, 0)
		testutil.Eventually(t, feTimeout, func() bool { return !p.ControlStats().Connected }, "disconnect")
	}
	halt()
	if cs := p.ControlStats(); cs.ProtocolErrors > 2 {
		t.Errorf("control stats %+v", cs)
	}
	// The counts of rings stopped and restarted are kept.
	if s := p.Stats(); s.RxFrames != 80 || s.TxFrames != 160 || s.Drops["queue-error"] != 0 {
		t.Errorf("stats %+v after four rounds: want rx 80, tx 160 frames, no queue errors", s)
	}
}

// feSpin calls step in a new goroutine until stop is closed. It yields
// between calls: two spinning goroutines would starve the protocol's on
// two CPUs.
func feSpin(wg *sync.WaitGroup, stop <-chan struct{}, step func()) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			step()
			runtime.Gosched()
		}
	}()
}

// stopRing sends GET_VRING_BASE and returns the base.
func (f *feFrontend) stopRing(i int) uint32 {
	f.t.Helper()
	f.must(ReqGetVringBase, appendState(nil, vringState{Index: uint32(i)}))
	s, err := decodeState(ReqGetVringBase, f.reply(ReqGetVringBase))
	if err != nil || s.Index != uint32(i) {
		f.t.Fatalf("GET_VRING_BASE reply %+v, %v", s, err)
	}
	return s.Num
}

// GET_VRING_BASE stops the ring and reports where the guest's next
// buffer is; the ring restarts from there on a new kick.
func TestPortGetVringBase(t *testing.T) {
	p, f := feStarted(t)
	feTraffic(t, p, f, 1)
	feTraffic(t, p, f, 2)
	if base := f.stopRing(1); base != 2 {
		t.Fatalf("GET_VRING_BASE of the transmit ring: %d, want 2", base)
	}
	feWaitRunning(t, p, 1, 0)
	f.postTx(1, feFrame(64, 9))
	_, b := newTestBatch(t)
	testutil.ResetRx(b)
	if n, _ := p.Receive(b); n != 0 {
		t.Fatalf("stopped ring received %d frames", n)
	}
	f.must(ReqSetVringBase, appendState(nil, vringState{Index: 1, Num: 2}))
	f.must(ReqSetVringKick, appendVringFD(nil, vringFD{Index: 1}), f.kick[1])
	feWaitRunning(t, p, 1, 1)
	testutil.Eventually(t, feTimeout, func() bool {
		testutil.ResetRx(b)
		n, _ := p.Receive(b)
		return n == 1 && b.Frames[0].Len == 64
	}, "the frame posted while stopped")
}

// SET_MEM_TABLE while the rings run (memory hot-plug): the rings go on
// over the new table from where they were.
func TestPortMemTableReplaced(t *testing.T) {
	p, f := feStarted(t)
	feTraffic(t, p, f, 1)
	f.setMemTable()
	feWaitRunning(t, p, 1, 1)
	feTraffic(t, p, f, 2)
	feTraffic(t, p, f, 3)
}

func TestConfig(t *testing.T) {
	long := "/" + strings.Repeat("x", 120)
	for _, tc := range []struct {
		cfg  Config
		want string // in the error; "" for success
	}{
		{Config{Socket: ""}, "Socket is empty"},
		{Config{Socket: long}, "path too long"},
		{Config{Socket: "/tmp/a", QueuePairs: -1}, "QueuePairs -1"},
		{Config{Socket: "/tmp/a", QueuePairs: MaxQueuePairs + 1}, "QueuePairs 17"},
		{Config{Socket: "/tmp/a", MTU: 20}, "MTU 20"},
		{Config{Socket: "/tmp/a", MTU: 70000}, "MTU 70000"},
		{Config{Socket: "/tmp/a", MAC: net.HardwareAddr{1, 2, 3}}, "6 bytes"},
		{Config{Socket: "/tmp/a", MAC: net.HardwareAddr{1, 2, 3, 4, 5, 6}}, "multicast"},
		{Config{Socket: "/tmp/a", MAC: net.HardwareAddr{0, 0, 0, 0, 0, 0}}, "all zero"},
		{Config{Socket: "/tmp/a", SocketMode: os.ModeDir | 0o700}, "SocketMode"},
		{Config{Socket: "/tmp/a"}, ""},
	} {
		c := tc.cfg
		err := c.normalize()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.cfg, err)
		case tc.want != "" && (err == nil || !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want ErrBadConfig with %q", tc.cfg, err, tc.want)
		}
	}
	c := Config{Socket: "/run/xvs/vm7.sock"}
	if err := c.normalize(); err != nil {
		t.Fatal(err)
	}
	if c.Name != "vm7.sock" || c.MTU != 1500 || c.QueuePairs != 1 || c.SocketMode != 0o600 {
		t.Errorf("defaults: %+v", c)
	}
	if len(c.MAC) != 6 || c.MAC[0] != 0x02 {
		t.Errorf("default MAC %v: want locally administered unicast", c.MAC)
	}
	d := Config{Socket: "/run/xvs/vm7.sock"}
	d.normalize()
	if !bytes.Equal(c.MAC, d.MAC) {
		t.Errorf("default MAC not stable: %v, %v", c.MAC, d.MAC)
	}
}

// New removes a stale socket, but neither a live one nor a file that is
// not a socket.
func TestPortSocketFile(t *testing.T) {
	dir := t.TempDir()

	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	p, err := New(Config{Socket: stale, Server: true})
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	if _, err := New(Config{Socket: stale, Server: true}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("live socket: %v", err)
	}
	p.Close()
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("socket left after Close: %v", err)
	}

	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("keep me"), 0o644)
	if _, err := New(Config{Socket: file, Server: true}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("regular file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Errorf("the file was touched")
	}

	if _, err := New(Config{Socket: filepath.Join(dir, "no", "such", "dir.sock"), Server: true}); err == nil {
		t.Errorf("socket in a missing directory: no error")
	}
}

// Server mode: a socket file removed while the port runs is created
// again, and a front-end connects through it; the connection being
// served is not disturbed. A file that is not a socket put in its place
// is left alone until it goes.
func TestPortSocketRecreated(t *testing.T) {
	testutil.CheckLeaks(t)
	p := feServer(t, Config{SocketMode: 0o660})
	path := p.Socket()
	ino := func() uint64 {
		fi, err := os.Lstat(path)
		if err != nil || fi.Mode().Type() != os.ModeSocket {
			return 0
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}

	// A front-end connected through the first socket.
	f := feConnect(t, path)
	f.handshake(feOpts{})
	feWaitRunning(t, p, 1, 1)

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, feTimeout, func() bool { return ino() != 0 }, "the socket file to come back")
	if fi, _ := os.Lstat(path); fi.Mode().Perm() != 0o660 {
		t.Errorf("recreated socket mode %v, want 0660", fi.Mode().Perm())
	}
	cs := p.ControlStats()
	if cs.SocketRecreated != 1 || !cs.Connected || cs.Disconnects != 0 {
		t.Errorf("control stats %+v", cs)
	}
	// The established connection still carries frames both ways.
	feTraffic(t, p, f, 20)

	// After it ends, a front-end connects through the new socket.
	f.close()
	testutil.Eventually(t, feTimeout, func() bool { return p.ControlStats().Disconnects == 1 }, "disconnect")
	g := feConnect(t, path)
	g.handshake(feOpts{})
	feWaitRunning(t, p, 1, 1)
	feTraffic(t, p, g, 30)
	g.close()
	testutil.Eventually(t, feTimeout, func() bool { return p.ControlStats().Disconnects == 2 }, "disconnect")

	// A regular file in its place is not removed; the socket comes back
	// once the file is gone.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * socketCheck)
	if b, err := os.ReadFile(path); err != nil || string(b) != "keep me" {
		t.Fatalf("the file in the socket's place was touched: %q, %v", b, err)
	}
	if r := p.ControlStats().SocketRecreated; r != 1 {
		t.Errorf("socket recreated %d times, want 1", r)
	}
	os.Remove(path)
	testutil.Eventually(t, feTimeout, func() bool { return ino() != 0 }, "the socket file to come back")
	h := feConnect(t, path)
	h.handshake(feOpts{})
	feWaitRunning(t, p, 1, 1)
	feTraffic(t, p, h, 40)
	if r := p.ControlStats().SocketRecreated; r != 2 {
		t.Errorf("socket recreated %d times, want 2", r)
	}

	// Close removes the socket it created last.
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket left after Close: %v", err)
	}
}

// Close leaves a file that replaced the port's socket.
func TestPortCloseKeepsReplacedFile(t *testing.T) {
	p := feServer(t, Config{})
	path := p.Socket()
	os.Remove(path)
	os.WriteFile(path, []byte("keep me"), 0o644)
	p.Close()
	if b, err := os.ReadFile(path); err != nil || string(b) != "keep me" {
		t.Errorf("file after Close: %q, %v", b, err)
	}
}

// Receive and Transmit allocate nothing in steady state. Every call
// moves exactly one frame, so that an allocation per frame shows as one
// per run (AllocsPerRun divides by the runs).
func TestPortAllocs(t *testing.T) {
	p, f := feStarted(t)
	_, b := newTestBatch(t)
	const runs = 100 // AllocsPerRun calls runs+1 times; the rings hold 256
	testutil.LoadAt(b, ring.BatchSize, feFrame(64, 1))
	f.postRx(0, runs+1, feBufSize)
	bad := 0
	if a := testing.AllocsPerRun(runs, func() {
		if n, err := p.Transmit(b); n != 1 || err != nil {
			bad++
		}
	}); a != 0 {
		t.Errorf("Transmit allocates %.2f per call", a)
	}
	if u := f.reap(0); len(u) != runs+1 || bad != 0 {
		t.Errorf("Transmit: %d frames in the guest, %d calls not 1, nil; want %d, 0", len(u), bad, runs+1)
	}

	frame := feFrame(64, 2)
	if a := testing.AllocsPerRun(runs, func() {
		f.postTx(1, frame)
		testutil.ResetRx(b)
		if n, err := p.Receive(b); n != 1 || err != nil {
			bad++
		}
	}); a != 0 {
		t.Errorf("Receive allocates %.2f per call", a)
	}
	if s := p.Stats(); bad != 0 || s.RxFrames != runs+1 {
		t.Errorf("Receive: %d calls not 1, nil; %d frames; want 0, %d", bad, s.RxFrames, runs+1)
	}
}

// TestPortWaitsForKicks: WaitFDs is readable when the guest kicks a
// running transmit ring after the port found it empty, not before (the old
// kicks were read away when the ring went idle), and not for a ring that
// stopped.
func TestPortWaitsForKicks(t *testing.T) {
	p, f := feStarted(t)
	fds := p.WaitFDs()
	if len(fds) != 1 {
		t.Fatalf("WaitFDs: %v, want one descriptor", fds)
	}
	readable := func(timeoutMs int) bool {
		t.Helper()
		pfd := []unix.PollFd{{Fd: int32(fds[0]), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, timeoutMs)
		if err != nil && err != unix.EINTR {
			t.Fatalf("poll: %v", err)
		}
		return n > 0 && pfd[0].Revents&unix.POLLIN != 0
	}
	kick := func() {
		t.Helper()
		one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
		if _, err := unix.Write(f.kick[1], one); err != nil {
			t.Fatalf("kick: %v", err)
		}
	}
	_, b := newTestBatch(t)
	receive := func() int {
		t.Helper()
		testutil.ResetRx(b)
		n, err := p.Receive(b)
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		return n
	}

	kick() // a kick from before the ring went idle
	if n := receive(); n != 0 {
		t.Fatalf("Receive on an empty ring: %d frames", n)
	}
	if readable(0) {
		t.Fatal("readable after the port found the ring empty: the earlier kick was not read away")
	}
	f.postTx(1, feFrame(64, 1))
	kick()
	if !readable(5000) {
		t.Fatal("not readable after the guest kicked")
	}
	if n := receive(); n != 1 {
		t.Fatalf("Receive after the kick: %d frames, want 1", n)
	}
	if n := receive(); n != 0 {
		t.Fatalf("Receive: %d frames, want 0", n)
	}
	if readable(0) {
		t.Fatal("readable once the ring was idle again")
	}

	f.stopRing(1)
	feWaitRunning(t, p, 1, 0)
	kick()
	if readable(0) {
		t.Fatal("readable for a kick on a stopped ring")
	}
}
