package afxdp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/xvswitch/xvs/internal/testutil"
	"github.com/xvswitch/xvs/ring"
)

// needRoot skips tests that build namespaces, veths and XDP programs.
func needRoot(t testing.TB) {
	t.Helper()
	testutil.NeedRoot(t, "creates network namespaces, veth pairs and XDP programs")
	if err := Available(); err != nil {
		t.Skipf("skipping: AF_XDP not available: %v", err)
	}
	testutil.NeedCommands(t, "ip")
}

// vethPair is a veth whose host end stays in the test's namespace (ports
// attach there) and whose peer end lives in a namespace of its own, so
// that nothing the tests send reaches eth0.
type vethPair struct {
	ns      string
	host    string
	peer    string
	subnet  int
	hostMAC net.HardwareAddr
	peerMAC net.HardwareAddr
}

var pairSeq atomic.Int32

type pairOpt struct {
	hostMTU int
	peerMTU int
	queues  int
}

func run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newVethPair builds namespace xvs-tafx-<id> with veth xvsafx<id>p in it,
// peered with xvsafx<id>h here, addresses 10.99.<n>.1 and .2, IPv6 off
// (no router solicitations in the way), both up. t.Cleanup removes all.
func newVethPair(t testing.TB, o pairOpt) *vethPair {
	t.Helper()
	n := int(pairSeq.Add(1))
	id := fmt.Sprintf("%d%d", os.Getpid()%1000, n)
	v := &vethPair{
		ns:     "xvs-tafx-" + id,
		host:   "xvsafx" + id + "h",
		peer:   "xvsafx" + id + "p",
		subnet: (os.Getpid()*7 + n) % 250,
	}
	cleanup := func() {
		exec.Command("ip", "link", "del", v.host).Run()
		exec.Command("ip", "netns", "del", v.ns).Run()
	}
	cleanup() // leftovers of a killed run
	t.Cleanup(cleanup)
	run(t, "ip", "netns", "add", v.ns)
	args := []string{"ip", "link", "add", v.host}
	if o.queues > 0 {
		q := fmt.Sprint(o.queues)
		args = append(args, "numtxqueues", q, "numrxqueues", q, "type", "veth", "peer", "name", v.peer, "numtxqueues", q, "numrxqueues", q)
	} else {
		args = append(args, "type", "veth", "peer", "name", v.peer)
	}
	run(t, args...)
	run(t, "ip", "link", "set", v.peer, "netns", v.ns)
	if o.hostMTU != 0 {
		run(t, "ip", "link", "set", v.host, "mtu", fmt.Sprint(o.hostMTU))
	}
	if o.peerMTU != 0 {
		run(t, "ip", "-n", v.ns, "link", "set", v.peer, "mtu", fmt.Sprint(o.peerMTU))
	}
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+v.host+"/disable_ipv6", []byte("1"), 0); err != nil {
		t.Logf("disable IPv6 on %s: %v", v.host, err)
	}
	exec.Command("ip", "netns", "exec", v.ns, "sysctl", "-qw", "net.ipv6.conf."+v.peer+".disable_ipv6=1").Run()
	run(t, "ip", "addr", "add", fmt.Sprintf("10.99.%d.1/24", v.subnet), "dev", v.host)
	run(t, "ip", "-n", v.ns, "addr", "add", fmt.Sprintf("10.99.%d.2/24", v.subnet), "dev", v.peer)
	run(t, "ip", "link", "set", v.host, "up")
	run(t, "ip", "-n", v.ns, "link", "set", v.peer, "up")
	link, err := netlink.LinkByName(v.host)
	if err != nil {
		t.Fatal(err)
	}
	v.hostMAC = link.Attrs().HardwareAddr
	v.withNS(t, func() {
		ifi, err := net.InterfaceByName(v.peer)
		if err != nil {
			t.Fatal(err)
		}
		v.peerMAC = ifi.HardwareAddr
	})
	return v
}

// withNS runs f on a thread that is inside the peer's namespace. A socket
// created there stays in that namespace.
func (v *vethPair) withNS(t testing.TB, f func()) {
	t.Helper()
	if err := v.inNS(func() error { f(); return nil }); err != nil {
		t.Fatal(err)
	}
}

// inNS is withNS for any goroutine: it returns errors instead of failing
// the test.
func (v *vethPair) inNS(f func() error) error { return testutil.InNetNS(v.ns, f) }

// packetSocket opens an AF_PACKET socket on the peer end, inside the
// namespace: it writes frames that arrive at the port and reads the ones
// the port sends. It sees only frames of ethertype testEtherType.
func (v *vethPair) packetSocket(t testing.TB) int {
	t.Helper()
	return testutil.PacketSocket(t, v.ns, v.peer, testEtherType)
}

// testEtherType is IEEE 802 local experimental ethertype 1.
const testEtherType = 0x88b5

var testMagic = []byte("xvsafx!!")

// testFrame builds a frame of size bytes (at least 30) carrying seq.
func testFrame(dst, src net.HardwareAddr, seq uint64, size int) []byte {
	f := make([]byte, size)
	copy(f[0:6], dst)
	copy(f[6:12], src)
	binary.BigEndian.PutUint16(f[12:14], testEtherType)
	copy(f[14:22], testMagic)
	binary.BigEndian.PutUint64(f[22:30], seq)
	for i := 30; i < size; i++ {
		f[i] = byte(seq) + byte(i)
	}
	return f
}

// parseTestFrame returns the sequence number of a test frame.
func parseTestFrame(f []byte) (uint64, bool) {
	if len(f) < 30 || binary.BigEndian.Uint16(f[12:14]) != testEtherType || !bytes.Equal(f[14:22], testMagic) {
		return 0, false
	}
	return binary.BigEndian.Uint64(f[22:30]), true
}

// readFrames reads test frames from a packet socket until want arrived or
// timeout passed.
func readFrames(t testing.TB, fd, want int, timeout time.Duration) [][]byte {
	t.Helper()
	var got [][]byte
	buf := make([]byte, 65536)
	deadline := time.Now().Add(timeout)
	for len(got) < want && time.Now().Before(deadline) {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, 50); err != nil && !errors.Is(err, unix.EINTR) {
			t.Fatal(err)
		}
		for {
			n, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
			if err != nil {
				break
			}
			if _, ok := parseTestFrame(buf[:n]); ok {
				got = append(got, append([]byte(nil), buf[:n]...))
			}
		}
	}
	return got
}

// receiveFrames polls p until want test frames arrived or timeout passed.
func receiveFrames(t testing.TB, p *Port, want int, timeout time.Duration) [][]byte {
	t.Helper()
	b := testutil.RxBatch(t, ring.DefaultArenaConfig)
	var got [][]byte
	deadline := time.Now().Add(timeout)
	for len(got) < want && time.Now().Before(deadline) {
		n, err := p.Receive(b)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			time.Sleep(100 * time.Microsecond)
			continue
		}
		for i := range n {
			if _, ok := parseTestFrame(b.Data(i)); ok {
				got = append(got, append([]byte(nil), b.Data(i)...))
			}
		}
	}
	return got
}

// xdpAttached reports the device's XDP program ID, 0 for none.
func xdpAttached(t testing.TB, dev string) uint32 {
	t.Helper()
	link, err := netlink.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	if x := link.Attrs().Xdp; x != nil && x.Attached {
		if x.ProgId == 0 {
			return ^uint32(0)
		}
		return x.ProgId
	}
	return 0
}

// openPort opens a port on dev and closes it at cleanup.
func openPort(t testing.TB, cfg Config) *Port {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// xdpProgram loads an XDP program that returns action for every frame.
func xdpProgram(t testing.TB, name string, action int32) *ebpf.Program {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         name,
		Type:         ebpf.XDP,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, action), asm.Return()},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

// passProgram is an XDP program that passes every frame.
func passProgram(t testing.TB) *ebpf.Program { return xdpProgram(t, "xvs_pass", 2 /* XDP_PASS */) }

// attachGeneric attaches prog to dev in generic (skb) mode, as another
// tool would have left it.
func attachGeneric(t testing.TB, dev string, prog *ebpf.Program) {
	t.Helper()
	link, err := netlink.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetXdpFdWithFlags(link, prog.FD(), nl.XDP_FLAGS_SKB_MODE); err != nil {
		t.Fatal(err)
	}
}

// netInterface returns the index of dev in the calling thread's namespace.
func netInterface(dev string) (int, error) {
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return 0, err
	}
	return ifi.Index, nil
}

// withoutCaps runs f on a thread whose effective capabilities are empty,
// then restores them (the permitted set is kept, so that is allowed).
func withoutCaps(t testing.TB, f func()) {
	t.Helper()
	runtime.LockOSThread()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var saved, none [2]unix.CapUserData
	if err := unix.Capget(&hdr, &saved[0]); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	none = saved
	none[0].Effective, none[1].Effective = 0, 0
	if err := unix.Capset(&hdr, &none[0]); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer func() {
		if err := unix.Capset(&hdr, &saved[0]); err != nil {
			t.Errorf("restore capabilities: %v", err) // the thread stays locked and dies with its goroutine
			return
		}
		runtime.UnlockOSThread()
	}()
	f()
}
