package tap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xvswitch/xvs/header"
	"github.com/xvswitch/xvs/internal/testutil"
	"github.com/xvswitch/xvs/ports"
	"github.com/xvswitch/xvs/ring"
)

// TestReceiveFromNamespace: a ping in the namespace makes its kernel ask
// for the peer's MAC; the ARP request leaves through the TAP and arrives
// via Receive.
func TestReceiveFromNamespace(t *testing.T) {
	needRoot(t)
	p, ns := portInNS(t, Config{})
	b := testutil.RxBatch(t, ring.DefaultArenaConfig)
	ping := exec.Command("ip", "netns", "exec", ns, "ping", "-c1", "-W1", peerIP.String())
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ping.Process.Kill(); ping.Wait() })

	f := receiveMatch(t, p, b, ring.DefaultArenaConfig.Headroom, 3*time.Second, "ARP request for "+peerIP.String(), func(f []byte) bool {
		a, ok := parseARP(f)
		return ok && a.op == arpRequest && a.tpa.Equal(peerIP) && a.spa.Equal(nsIP)
	})
	a, _ := parseARP(f)
	if !sameMAC(a.sha, p.MAC()) || !sameMAC(f[6:12], p.MAC()) {
		t.Errorf("ARP request from %v (Ethernet source %v), want the device's MAC %v", a.sha, net.HardwareAddr(f[6:12]), p.MAC())
	}
	if !sameMAC(f[0:6], broadcast) {
		t.Errorf("ARP request to %v, want broadcast", net.HardwareAddr(f[0:6]))
	}
	st := p.Stats()
	if st.RxFrames == 0 || st.RxBytes < uint64(len(f)) {
		t.Errorf("stats after receive: %+v", st)
	}
}

// TestTransmitIntoNamespace: an ARP request transmitted through the port is
// received by the namespace's kernel, which answers it; the reply comes
// back via Receive, and the namespace counts the frame.
func TestTransmitIntoNamespace(t *testing.T) {
	needRoot(t)
	p, ns := portInNS(t, Config{})
	b := testutil.RxBatch(t, ring.DefaultArenaConfig)

	testutil.Load(b, arpFrame(arpRequest, broadcast, peerMAC, peerIP, make(net.HardwareAddr, 6), nsIP))
	if n, err := p.Transmit(b); n != 1 || err != nil {
		t.Fatalf("Transmit = %d, %v; want 1, nil", n, err)
	}
	rx := testutil.RxBatch(t, ring.DefaultArenaConfig)
	f := receiveMatch(t, p, rx, ring.DefaultArenaConfig.Headroom, 3*time.Second, "ARP reply", func(f []byte) bool {
		a, ok := parseARP(f)
		return ok && a.op == arpReply && a.spa.Equal(nsIP) && a.tpa.Equal(peerIP)
	})
	if a, _ := parseARP(f); !sameMAC(a.tha, peerMAC) || !sameMAC(f[0:6], peerMAC) {
		t.Errorf("ARP reply to %v (Ethernet %v), want %v", a.tha, net.HardwareAddr(f[0:6]), peerMAC)
	}
	out := run(t, "ip", "netns", "exec", ns, "cat", "/sys/class/net/"+p.Dev()+"/statistics/rx_packets")
	if strings.TrimSpace(out) == "0" {
		t.Errorf("namespace counted no received packets on %s", p.Dev())
	}
	st := p.Stats()
	if st.TxFrames != 1 || st.TxBytes != 42 {
		t.Errorf("tx stats %d frames %d bytes, want 1 and 42", st.TxFrames, st.TxBytes)
	}
}

// TestPingEcho answers the namespace's ping end to end: its ARP request is
// answered with a crafted reply (the namespace's neighbour entry then holds
// peerMAC), its ICMP echo request with an echo reply, and ping succeeds.
func TestPingEcho(t *testing.T) {
	needRoot(t)
	p, ns := portInNS(t, Config{MAC: net.HardwareAddr{0x02, 0x78, 0x76, 0x73, 0x00, 0x01}})
	if got := run(t, "ip", "netns", "exec", ns, "cat", "/sys/class/net/"+p.Dev()+"/address"); strings.TrimSpace(got) != "02:78:76:73:00:01" {
		t.Errorf("device MAC %q, want the configured 02:78:76:73:00:01", strings.TrimSpace(got))
	}
	rx := testutil.RxBatch(t, ring.DefaultArenaConfig)
	tx := testutil.RxBatch(t, ring.DefaultArenaConfig)
	ping := exec.Command("ip", "netns", "exec", ns, "ping", "-c1", "-W3", peerIP.String())
	done := make(chan error, 1)
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- ping.Wait() }()
	t.Cleanup(func() { ping.Process.Kill() })

	f := receiveMatch(t, p, rx, ring.DefaultArenaConfig.Headroom, 3*time.Second, "ARP request", func(f []byte) bool {
		a, ok := parseARP(f)
		return ok && a.op == arpRequest && a.tpa.Equal(peerIP)
	})
	req, _ := parseARP(f)
	testutil.Load(tx, arpFrame(arpReply, req.sha, peerMAC, peerIP, req.sha, req.spa))
	if n, err := p.Transmit(tx); n != 1 || err != nil {
		t.Fatalf("Transmit ARP reply = %d, %v", n, err)
	}

	f = receiveMatch(t, p, rx, ring.DefaultArenaConfig.Headroom, 3*time.Second, "ICMP echo request to peerMAC", func(f []byte) bool {
		ih, icmp, ok := ipv4(f)
		return ok && sameMAC(f[0:6], peerMAC) && ih[9] == 1 && len(icmp) >= 8 && icmp[0] == 8 &&
			net.IP(ih[16:20]).Equal(peerIP)
	})
	testutil.Load(tx, echoReply(f, peerMAC))
	if n, err := p.Transmit(tx); n != 1 || err != nil {
		t.Fatalf("Transmit echo reply = %d, %v", n, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ping in the namespace failed: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ping did not finish")
	}
	neigh := run(t, "ip", "netns", "exec", ns, "ip", "neigh", "show", peerIP.String(), "dev", p.Dev())
	if !strings.Contains(neigh, peerMAC.String()) ||
		!(strings.Contains(neigh, "REACHABLE") || strings.Contains(neigh, "STALE") || strings.Contains(neigh, "DELAY")) {
		t.Fatalf("namespace neighbour entry %q, want %v REACHABLE or STALE", strings.TrimSpace(neigh), peerMAC)
	}
}

// TestReceiveSmallOffset takes the readv path: with Offset below the
// header size the header goes to a scratch and the buffer in front of the
// frame is left alone.
func TestReceiveSmallOffset(t *testing.T) {
	needRoot(t)
	p, _ := portInNS(t, Config{})
	tx := testutil.RxBatch(t, ring.DefaultArenaConfig)
	rx := testutil.RxBatch(t, ring.DefaultArenaConfig)
	for i := range ring.BatchSize {
		buf := rx.Arena().Buffer(uint32(i))
		for j := range 8 {
			buf[j] = 0xa5
		}
	}
	testutil.Load(tx, arpFrame(arpRequest, broadcast, peerMAC, peerIP, make(net.HardwareAddr, 6), nsIP))
	if n, err := p.Transmit(tx); n != 1 || err != nil {
		t.Fatalf("Transmit = %d, %v", n, err)
	}
	receiveMatch(t, p, rx, 4, 3*time.Second, "ARP reply at offset 4", func(f []byte) bool {
		a, ok := parseARP(f)
		return ok && a.op == arpReply && a.spa.Equal(nsIP)
	})
	for i := range ring.BatchSize {
		if buf := rx.Arena().Buffer(uint32(i)); string(buf[:4]) != "\xa5\xa5\xa5\xa5" {
			t.Fatalf("buffer %d: bytes before the frame overwritten: % x", i, buf[:4])
		}
	}
}

// TestTooBig: a frame longer than the buffer's room is dropped and
// counted, and the next frame is received intact.
func TestTooBig(t *testing.T) {
	needRoot(t)
	p, ns := portInNS(t, Config{})
	small := ring.ArenaConfig{Frames: ring.BatchSize, FrameSize: 512, Headroom: 128} // room 384
	rx := testutil.RxBatch(t, small)
	run(t, "ip", "netns", "exec", ns, "ip", "neigh", "add", peerIP.String(), "lladdr", peerMAC.String(), "dev", p.Dev(), "nud", "permanent")
	tryRun("ip", "netns", "exec", ns, "ping", "-c1", "-W0.01", "-s", "1000", peerIP.String())
	tryRun("ip", "netns", "exec", ns, "ping", "-c1", "-W0.01", "-s", "100", peerIP.String())
	receiveMatch(t, p, rx, small.Headroom, 3*time.Second, "small ICMP echo request", func(f []byte) bool {
		ih, icmp, ok := ipv4(f)
		return ok && ih[9] == 1 && len(icmp) == 108 && icmp[0] == 8
	})
	if got := p.Stats().Drops["too-big"]; got != 1 {
		t.Fatalf("too-big drops %d, want 1 (stats %+v)", got, p.Stats())
	}
}

// TestChecksumCompletion turns checksum offload on behind the port's back
// (as a device shared with another program might have): the namespace's UDP
// then arrives with VIRTIO_NET_HDR_F_NEEDS_CSUM and the port must complete
// the checksum.
func TestChecksumCompletion(t *testing.T) {
	needRoot(t)
	p, ns := portInNS(t, Config{})
	if err := setOffload(p.fds[0], unix.TUN_F_CSUM); err != nil {
		t.Fatalf("TUNSETOFFLOAD TUN_F_CSUM: %v", err)
	}
	run(t, "ip", "netns", "exec", ns, "ip", "neigh", "add", peerIP.String(), "lladdr", peerMAC.String(), "dev", p.Dev(), "nud", "permanent")
	run(t, "ip", "netns", "exec", ns, "bash", "-c", "echo hello xvs > /dev/udp/"+peerIP.String()+"/9999")
	rx := testutil.RxBatch(t, ring.DefaultArenaConfig)
	f := receiveMatch(t, p, rx, ring.DefaultArenaConfig.Headroom, 3*time.Second, "UDP to port 9999", func(f []byte) bool {
		ih, udp, ok := ipv4(f)
		return ok && ih[9] == 17 && len(udp) >= 8 && binary.BigEndian.Uint16(udp[2:]) == 9999
	})
	if p.csumDone.Load() == 0 {
		t.Fatal("the frame did not come with NEEDS_CSUM: the test did not exercise checksum completion")
	}
	ih, udp, _ := ipv4(f)
	pseudo := append(append([]byte(nil), ih[12:20]...), 0, 17, byte(len(udp)>>8), byte(len(udp)))
	sum := uint32(refSum(pseudo)) + uint32(refSum(udp))
	if s := uint16(sum&0xffff + sum>>16); s != 0xffff {
		t.Fatalf("UDP checksum %#04x does not verify (sum %#04x)", binary.BigEndian.Uint16(udp[6:]), s)
	}
}

// TestLinkDown: with the device down, frames are consumed and counted as
// link-down drops, not sent and not reported as a full queue.
func TestLinkDown(t *testing.T) {
	needRoot(t)
	p, ns := portInNS(t, Config{})
	run(t, "ip", "netns", "exec", ns, "ip", "link", "set", p.Dev(), "down")
	tx := testutil.RxBatch(t, ring.DefaultArenaConfig)
	f := testFrame(broadcast, peerMAC, "down")
	testutil.Load(tx, f, f, f)
	if n, err := p.Transmit(tx); n != 3 || err != nil {
		t.Fatalf("Transmit on a down device = %d, %v; want 3, nil", n, err)
	}
	st := p.Stats()
	if st.Drops["link-down"] != 3 || st.TxFrames != 0 {
		t.Fatalf("stats %+v, want 3 link-down drops and no tx frames", st)
	}
}

// TestTransmitChecks: frames longer than MTU plus Ethernet and VLAN headers
// or shorter than an Ethernet header are dropped before the kernel sees
// them; the rest of the batch goes out.
func TestTransmitChecks(t *testing.T) {
	needRoot(t)
	p, _ := portInNS(t, Config{MTU: 1000})
	tx := testutil.RxBatch(t, ring.DefaultArenaConfig)
	big := testFrame(broadcast, peerMAC, "big")
	big = append(big, make([]byte, 1018-len(big)+1)...) // 1019 > 1000+18
	edge := append(testFrame(broadcast, peerMAC, "edge"), make([]byte, 1018-60)...)
	testutil.Load(tx, big, []byte{1, 2, 3}, edge)
	if n, err := p.Transmit(tx); n != 3 || err != nil {
		t.Fatalf("Transmit = %d, %v; want 3, nil", n, err)
	}
	st := p.Stats()
	if st.Drops["too-big"] != 1 || st.Drops["malformed"] != 1 || st.TxFrames != 1 || st.TxBytes != 1018 {
		t.Fatalf("stats %+v, want 1 too-big, 1 malformed, 1 frame of 1018 bytes", st)
	}
}

// TestCloseRemovesDevice: Close twice is fine, the port refuses work after
// it, and the device the port created is gone from its namespace.
func TestCloseRemovesDevice(t *testing.T) {
	needRoot(t)
	p, ns := portInNS(t, Config{Queues: 3})
	if !p.Created() {
		t.Fatal("Created() = false for a new device")
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	b := testutil.RxBatch(t, ring.DefaultArenaConfig)
	testutil.ResetRxAt(b, 0, 256)
	if _, err := p.Receive(b); !errors.Is(err, ports.ErrPortClosed) {
		t.Errorf("Receive after Close: %v, want ErrPortClosed", err)
	}
	testutil.Load(b, testFrame(broadcast, peerMAC, "x"))
	if _, err := p.Transmit(b); !errors.Is(err, ports.ErrPortClosed) {
		t.Errorf("Transmit after Close: %v, want ErrPortClosed", err)
	}
	if out, err := tryRun("ip", "netns", "exec", ns, "ip", "link", "show", p.Dev()); err == nil {
		t.Fatalf("device still exists after Close:\n%s", out)
	}
}

// TestCloseWhileBusy closes the port under a running Receive loop and a
// running Transmit loop (run with -race): both stop with ErrPortClosed.
func TestCloseWhileBusy(t *testing.T) {
	needRoot(t)
	p, _ := portInNS(t, Config{Queues: 2})
	rx := testutil.RxBatch(t, ring.DefaultArenaConfig)
	tx := testutil.RxBatch(t, ring.DefaultArenaConfig)
	testutil.Load(tx, testFrame(broadcast, peerMAC, "busy"), testFrame(broadcast, peerMAC, "busy"))
	errs := make(chan error, 2)
	go func() {
		for {
			testutil.ResetRxAt(rx, 0, 256)
			if _, err := p.Receive(rx); err != nil {
				errs <- err
				return
			}
		}
	}()
	go func() {
		for {
			if _, err := p.Transmit(tx); err != nil {
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
		if err := <-errs; !errors.Is(err, ports.ErrPortClosed) {
			t.Errorf("loop ended with %v, want ErrPortClosed", err)
		}
	}
	if p.Stats().TxFrames == 0 {
		t.Error("Transmit loop sent nothing")
	}
}

// TestNoFDLeak: New and Close, and a failing New, leave the process with
// the descriptors it had.
func TestNoFDLeak(t *testing.T) {
	needRoot(t)
	count := func() int { return testutil.OpenFDs(t) }
	before := count()
	p, err := New(Config{Dev: uniqueDev(), Queues: 4})
	if err != nil {
		t.Fatal(err)
	}
	if got := count(); got != before+4 {
		t.Errorf("%d descriptors open with 4 queues, want %d", got, before+4)
	}
	p.Close()
	if _, err := New(Config{Dev: "lo", Queues: 4}); err == nil {
		t.Fatal("New(lo) succeeded")
	}
	if got := count(); got != before {
		t.Fatalf("%d descriptors after Close and a failed New, want %d", got, before)
	}
}

// TestQueues opens several queues; the kernel spreads its frames over them
// and Receive drains them all.
func TestQueues(t *testing.T) {
	needRoot(t)
	p, ns := portInNS(t, Config{Queues: 4})
	if p.Queues() != 4 {
		t.Fatalf("Queues() = %d", p.Queues())
	}
	if out := run(t, "ip", "netns", "exec", ns, "ip", "-d", "link", "show", p.Dev()); !strings.Contains(out, "numqueues 4") {
		t.Fatalf("device does not have 4 queues:\n%s", out)
	}
	// One flow per destination address: several hashes, so several queues.
	for i := 10; i < 18; i++ {
		ip := net.IPv4(10, 98, 0, byte(i)).String()
		run(t, "ip", "netns", "exec", ns, "ip", "neigh", "add", ip, "lladdr", peerMAC.String(), "dev", p.Dev(), "nud", "permanent")
		tryRun("ip", "netns", "exec", ns, "ping", "-c1", "-W0.01", ip)
	}
	rx := testutil.RxBatch(t, ring.DefaultArenaConfig)
	seen := map[byte]bool{}
	deadline := time.Now().Add(3 * time.Second)
	for len(seen) < 8 && time.Now().Before(deadline) {
		testutil.ResetRxAt(rx, 0, 256)
		n, _ := p.Receive(rx)
		for i := range n {
			if ih, icmp, ok := ipv4(rx.Data(i)); ok && ih[9] == 1 && icmp[0] == 8 {
				seen[ih[19]] = true
			}
		}
		if n == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if len(seen) < 8 {
		t.Fatalf("received echo requests to %d of 8 addresses", len(seen))
	}
}

// TestTransmitSpreadsFlows: with several queues, frames the switch has not
// hashed (Meta.Hash 0) go to queue header.FlowHash mod Queues, which
// Transmit writes into their Meta: the 16 flows of a batch use all 4
// queues, and the frames of a flow one queue. The kernel records the queue
// a frame was written to (the skb's queue mapping); packet sockets in a
// PACKET_FANOUT_QM group, one per queue, read it back: the frames of one
// queue reach one socket, and those of different queues different ones.
func TestTransmitSpreadsFlows(t *testing.T) {
	needRoot(t)
	const queues, flows = 4, 16
	p, ns := portInNS(t, Config{Queues: queues})
	socks := fanoutSockets(t, ns, p.Dev(), queues)

	frames := make([][]byte, ring.BatchSize)
	queueOf := make([]int, len(frames))
	used := map[int]bool{}
	for i := range frames {
		frames[i] = spreadFrame(uint16(40000+i%flows), i)
		queueOf[i] = int(header.FlowHash(frames[i]) % queues)
		used[queueOf[i]] = true
	}
	if len(used) != queues {
		t.Fatalf("the test's %d flows hash to %d of %d queues", flows, len(used), queues)
	}
	tx := ring.NewBatch(testutil.NewArena(t, ring.DefaultArenaConfig))
	testutil.Load(tx, frames...)
	if n, err := p.Transmit(tx); n != len(frames) || err != nil {
		t.Fatalf("Transmit = %d, %v; want %d, nil", n, err, len(frames))
	}
	for i := range tx.N {
		if h := tx.Frames[i].Hash; h != header.FlowHash(frames[i]) {
			t.Fatalf("frame %d: Meta.Hash %#x, want header.FlowHash %#x", i, h, header.FlowHash(frames[i]))
		}
	}

	sockOf := make([]int, len(frames)) // the socket that read frame i, +1
	seen := 0
	buf := make([]byte, 2048)
	for deadline := time.Now().Add(3 * time.Second); seen < len(frames) && time.Now().Before(deadline); {
		got := false
		for si, fd := range socks {
			n, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
			if err != nil {
				continue
			}
			got = true
			if i, ok := spreadIndex(buf[:n]); ok && i < len(frames) && sockOf[i] == 0 {
				sockOf[i] = si + 1
				seen++
			}
		}
		if !got {
			time.Sleep(time.Millisecond)
		}
	}
	if seen < len(frames) {
		t.Fatalf("the namespace's packet sockets saw %d of %d frames", seen, len(frames))
	}
	sockOfQueue := map[int]int{}
	queueOfSock := map[int]int{}
	for i := range frames {
		q, s := queueOf[i], sockOf[i]-1
		if s0, ok := sockOfQueue[q]; ok && s0 != s {
			t.Errorf("frames of queue %d (flow %d) reached sockets %d and %d", q, i%flows, s0, s)
		}
		if q0, ok := queueOfSock[s]; ok && q0 != q {
			t.Errorf("socket %d read frames of queues %d and %d", s, q0, q)
		}
		sockOfQueue[q], queueOfSock[s] = s, q
	}
}

// spreadFrame is an IPv4/UDP frame of the flow peerIP:sport > 10.98.0.9:9
// to a foreign MAC (the namespace's kernel drops it after its packet
// sockets saw it), whose payload names it: "spread" and i.
func spreadFrame(sport uint16, i int) []byte {
	f := make([]byte, 64)
	copy(f[0:6], net.HardwareAddr{0x02, 0x78, 0x76, 0x73, 0x00, 0x09})
	copy(f[6:12], peerMAC)
	binary.BigEndian.PutUint16(f[12:], etherTypeIPv4)
	f[14], f[22], f[23] = 0x45, 64, 17
	binary.BigEndian.PutUint16(f[16:], uint16(len(f)-14))
	copy(f[26:30], peerIP)
	copy(f[30:34], net.IPv4(10, 98, 0, 9).To4())
	binary.BigEndian.PutUint16(f[24:], ^refSum(f[14:34]))
	binary.BigEndian.PutUint16(f[34:], sport)
	binary.BigEndian.PutUint16(f[36:], 9)
	binary.BigEndian.PutUint16(f[38:], uint16(len(f)-34))
	copy(f[42:], "spread")
	binary.BigEndian.PutUint16(f[48:], uint16(i))
	return f
}

// spreadIndex returns i of a spreadFrame.
func spreadIndex(f []byte) (int, bool) {
	if len(f) < 50 || binary.BigEndian.Uint16(f[12:]) != etherTypeIPv4 || string(f[42:48]) != "spread" {
		return 0, false
	}
	return int(binary.BigEndian.Uint16(f[48:])), true
}

// fanoutSockets opens n packet sockets in namespace ns, bound to dev and
// joined in a PACKET_FANOUT_QM group: a frame the kernel receives on dev's
// queue q goes to one socket, the same for every frame of q, and frames of
// n different queues go to n different sockets. They close when the test
// ends.
func fanoutSockets(t *testing.T, ns, dev string, n int) []int {
	t.Helper()
	type result struct {
		fds []int
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The thread enters ns and is not unlocked: it exits with this
		// goroutine and is never reused. The sockets stay in ns.
		runtime.LockOSThread()
		var fds []int
		err := func() error {
			nsfd, err := unix.Open("/var/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(nsfd)
			if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("setns %s: %w", ns, err)
			}
			ifi, err := net.InterfaceByName(dev)
			if err != nil {
				return err
			}
			proto := int(binary.BigEndian.Uint16(binary.NativeEndian.AppendUint16(nil, unix.ETH_P_ALL))) // htons
			for range n {
				fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
				if err != nil {
					return fmt.Errorf("packet socket: %w", err)
				}
				fds = append(fds, fd)
				if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifi.Index}); err != nil {
					return fmt.Errorf("bind packet socket to %s: %w", dev, err)
				}
				const group = 1 // the namespace is the test's own
				if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, group|unix.PACKET_FANOUT_QM<<16); err != nil {
					return fmt.Errorf("PACKET_FANOUT_QM: %w", err)
				}
			}
			return nil
		}()
		done <- result{fds, err}
	}()
	r := <-done
	t.Cleanup(func() {
		for _, fd := range r.fds {
			unix.Close(fd)
		}
	})
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.fds
}

// TestAttachExisting attaches to a persistent multi-queue TAP made with ip
// tuntap; Close leaves it in place.
func TestAttachExisting(t *testing.T) {
	needRoot(t)
	dev := uniqueDev()
	run(t, "ip", "tuntap", "add", "dev", dev, "mode", "tap", "multi_queue", "vnet_hdr")
	t.Cleanup(func() { tryRun("ip", "link", "del", dev) })
	p := openPort(t, Config{Dev: dev, Queues: 2})
	if p.Created() {
		t.Fatal("Created() = true for an existing device")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := tryRun("ip", "-d", "link", "show", dev); err != nil || !strings.Contains(out, "numqueues 0") {
		t.Fatalf("persistent device after Close: %v\n%s", err, out)
	}
}

// TestQueuesAreNotAWire shows why a VM must not share the port's device: a
// frame written on one queue goes to the kernel, never to another queue,
// while what the kernel sends is spread over both.
func TestQueuesAreNotAWire(t *testing.T) {
	needRoot(t)
	ns := newNS(t)
	sw := openPort(t, Config{Dev: uniqueDev()})
	vm := openPort(t, Config{Dev: sw.Dev()}) // a second program's queue
	if vm.Created() {
		t.Fatal("second port created the device instead of attaching")
	}
	moveToNS(t, sw.Dev(), ns)

	tx := testutil.RxBatch(t, ring.DefaultArenaConfig)
	testutil.Load(tx, testFrame(broadcast, peerMAC, "from-vm"))
	for range 5 {
		if n, err := vm.Transmit(tx); n != 1 || err != nil {
			t.Fatalf("Transmit = %d, %v", n, err)
		}
	}
	rx := testutil.RxBatch(t, ring.DefaultArenaConfig)
	neverReceive(t, sw, rx, 300*time.Millisecond, "frame written on the sibling queue", isTestFrame("from-vm"))
	if got := run(t, "ip", "netns", "exec", ns, "cat", "/sys/class/net/"+sw.Dev()+"/statistics/rx_packets"); strings.TrimSpace(got) == "0" {
		t.Error("the kernel did not receive the frames written on the sibling queue")
	}
}

// TestBridgedVM is the supported way to reach a VM that owns its own TAP:
// a kernel bridge joins the VM's device (here a second port standing in for
// QEMU) and the switch's device; frames cross in both directions.
func TestBridgedVM(t *testing.T) {
	needRoot(t)
	ns := newNS(t)
	sw := openPort(t, Config{Dev: uniqueDev()})
	vm := openPort(t, Config{Dev: uniqueDev(), MAC: net.HardwareAddr{0x02, 0x78, 0x76, 0x73, 0x00, 0x03}})
	for _, dev := range []string{sw.Dev(), vm.Dev()} {
		run(t, "ip", "link", "set", dev, "netns", ns)
	}
	run(t, "ip", "netns", "exec", ns, "ip", "link", "add", "br0", "type", "bridge")
	for _, dev := range []string{sw.Dev(), vm.Dev()} {
		run(t, "ip", "netns", "exec", ns, "ip", "link", "set", dev, "master", "br0")
		run(t, "ip", "netns", "exec", ns, "ip", "link", "set", dev, "up")
	}
	run(t, "ip", "netns", "exec", ns, "ip", "link", "set", "br0", "up")

	vmMAC := net.HardwareAddr{0x02, 0x56, 0x4d, 0x00, 0x00, 0x01} // the guest NIC
	tx := testutil.RxBatch(t, ring.DefaultArenaConfig)
	rx := testutil.RxBatch(t, ring.DefaultArenaConfig)
	deadline := time.Now().Add(3 * time.Second)
	var got []byte
	for got == nil && time.Now().Before(deadline) {
		testutil.Load(tx, testFrame(broadcast, vmMAC, "vm-to-switch"))
		vm.Transmit(tx)
		testutil.ResetRxAt(rx, 0, 256)
		n, _ := sw.Receive(rx)
		for i := range n {
			if isTestFrame("vm-to-switch")(rx.Data(i)) {
				got = rx.Data(i)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got == nil {
		t.Fatal("VM frame did not reach the switch port through the bridge")
	}
	testutil.Load(tx, testFrame(vmMAC, peerMAC, "switch-to-vm"))
	if n, err := sw.Transmit(tx); n != 1 || err != nil {
		t.Fatalf("Transmit = %d, %v", n, err)
	}
	receiveMatch(t, vm, rx, 256, 3*time.Second, "switch frame at the VM", isTestFrame("switch-to-vm"))
}

// TestBadDevices: names the kernel would refuse and devices that are not
// multi-queue TAPs.
func TestBadDevices(t *testing.T) {
	needRoot(t)
	single := uniqueDev()
	run(t, "ip", "tuntap", "add", "dev", single, "mode", "tap")
	t.Cleanup(func() { tryRun("ip", "link", "del", single) })
	for _, dev := range []string{"lo", single} {
		p, err := New(Config{Dev: dev})
		if err == nil {
			p.Close()
			t.Fatalf("New(Dev %q) succeeded", dev)
		}
		if !strings.Contains(err.Error(), dev) || !strings.Contains(err.Error(), "not a multi-queue TAP") {
			t.Errorf("New(Dev %q): %v", dev, err)
		}
	}
	if out := run(t, "ip", "link", "show", "lo"); !strings.Contains(out, "UP") {
		t.Errorf("lo disturbed: %s", out)
	}
}

// TestPermissionDenied drops CAP_NET_ADMIN on one OS thread and calls New
// there: creating a device must fail with a permission error.
func TestPermissionDenied(t *testing.T) {
	needRoot(t)
	dev := uniqueDev()
	errc := make(chan error, 1)
	go func() {
		// The thread keeps its reduced capabilities; it is not unlocked,
		// so it exits with this goroutine and is never reused.
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		data[0].Effective &^= 1 << unix.CAP_NET_ADMIN
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		p, err := New(Config{Dev: dev})
		if err == nil {
			p.Close()
		}
		errc <- err
	}()
	err := <-errc
	tryRun("ip", "link", "del", dev)
	if err == nil {
		t.Fatal("New without CAP_NET_ADMIN succeeded")
	}
	if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "CAP_NET_ADMIN") {
		t.Fatalf("New without CAP_NET_ADMIN: %v, want a permission error naming CAP_NET_ADMIN", err)
	}
}

// TestNoAllocs: Receive with nothing waiting, Transmit, and a round trip
// with a frame received do not allocate.
func TestNoAllocs(t *testing.T) {
	needRoot(t)
	p, _ := portInNS(t, Config{})
	rx := testutil.RxBatch(t, ring.DefaultArenaConfig)
	tx := testutil.RxBatch(t, ring.DefaultArenaConfig)
	// Drain whatever the namespace sent when the device came up.
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
		testutil.ResetRxAt(rx, 0, 256)
		p.Receive(rx)
	}
	if n := testing.AllocsPerRun(1000, func() {
		rx.N = 0
		p.Receive(rx)
	}); n != 0 {
		t.Errorf("Receive with nothing waiting: %v allocs", n)
	}

	frames := make([][]byte, ring.BatchSize)
	for i := range frames {
		frames[i] = testFrame(peerMAC, peerMAC, "alloc") // unicast to a foreign MAC: dropped by the kernel
	}
	testutil.Load(tx, frames...)
	if n := testing.AllocsPerRun(200, func() {
		if n, _ := p.Transmit(tx); n != ring.BatchSize {
			t.Fatalf("Transmit accepted %d of %d", n, ring.BatchSize)
		}
	}); n != 0 {
		t.Errorf("Transmit: %v allocs", n)
	}

	testutil.Load(tx, arpFrame(arpRequest, broadcast, peerMAC, peerIP, make(net.HardwareAddr, 6), nsIP))
	if n := testing.AllocsPerRun(50, func() {
		p.Transmit(tx)
		for got := 0; got == 0; {
			testutil.ResetRxAt(rx, 0, 256)
			got, _ = p.Receive(rx)
		}
	}); n != 0 {
		t.Errorf("Transmit and Receive of a frame: %v allocs", n)
	}
}

// BenchmarkTransmit writes batches of 64-byte frames that the namespace's
// kernel receives and drops (unicast to a foreign MAC).
func BenchmarkTransmit(b *testing.B) {
	needRoot(b)
	p, _ := portInNS(b, Config{})
	tx := testutil.RxBatch(b, ring.DefaultArenaConfig)
	frames := make([][]byte, ring.BatchSize)
	for i := range frames {
		frames[i] = testFrame(peerMAC, peerMAC, "bench")
	}
	testutil.Load(tx, frames...)
	b.ReportAllocs()
	sent := 0
	for b.Loop() {
		n, _ := p.Transmit(tx)
		sent += n
	}
	b.ReportMetric(float64(sent)/b.Elapsed().Seconds()/1e6, "Mpps")
}

// BenchmarkReceive measures Receive of 64 frames that a second TAP port
// sent through a kernel bridge; the sender's Transmit is outside the timer.
func BenchmarkReceive(b *testing.B) {
	needRoot(b)
	ns := newNS(b)
	sw := openPort(b, Config{Dev: uniqueDev()})
	src := openPort(b, Config{Dev: uniqueDev()})
	for _, dev := range []string{sw.Dev(), src.Dev()} {
		run(b, "ip", "link", "set", dev, "netns", ns)
	}
	run(b, "ip", "netns", "exec", ns, "ip", "link", "add", "br0", "type", "bridge")
	for _, dev := range []string{sw.Dev(), src.Dev(), "br0"} {
		if dev != "br0" {
			run(b, "ip", "netns", "exec", ns, "ip", "link", "set", dev, "master", "br0")
		}
		run(b, "ip", "netns", "exec", ns, "ip", "link", "set", dev, "up")
	}
	tx := testutil.RxBatch(b, ring.DefaultArenaConfig)
	rx := testutil.RxBatch(b, ring.DefaultArenaConfig)
	frames := make([][]byte, ring.BatchSize)
	for i := range frames {
		frames[i] = testFrame(broadcast, peerMAC, "bench")
	}
	testutil.Load(tx, frames...)
	// Wait for the bridge to forward, then drain.
	for got, end := 0, time.Now().Add(3*time.Second); got == 0; {
		if time.Now().After(end) {
			b.Fatal("the bridge forwards nothing")
		}
		src.Transmit(tx)
		time.Sleep(time.Millisecond)
		testutil.ResetRxAt(rx, 0, 256)
		got, _ = sw.Receive(rx)
	}
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
		testutil.ResetRxAt(rx, 0, 256)
		sw.Receive(rx)
	}
	b.ReportAllocs()
	b.ResetTimer()
	received := 0
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		src.Transmit(tx)
		b.StartTimer()
		for got, spins := 0, 0; got < ring.BatchSize && spins < 100000; spins++ {
			testutil.ResetRxAt(rx, 0, 256)
			n, _ := sw.Receive(rx)
			got += n
			received += n
		}
	}
	b.ReportMetric(float64(received)/b.Elapsed().Seconds()/1e6, "Mpps")
}
