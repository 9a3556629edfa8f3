package tap

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xvswitch/xvs/internal/testutil"
	"github.com/xvswitch/xvs/ring"
)

// Addresses inside each test's private namespace. Every test has its own
// namespace, so they never meet; nothing here is routed to eth0.
var (
	nsIP   = net.IPv4(10, 98, 0, 1).To4() // the namespace's end of the TAP
	peerIP = net.IPv4(10, 98, 0, 2).To4() // a station "behind the switch"
	// peerMAC is the station's address: locally administered unicast.
	peerMAC = net.HardwareAddr{0x02, 0x78, 0x76, 0x73, 0x00, 0x02}
)

var seq atomic.Int32

// needRoot skips tests that create devices and namespaces.
func needRoot(t testing.TB) {
	t.Helper()
	testutil.NeedRoot(t, "TAP tests create TAP devices and network namespaces (CAP_NET_ADMIN)")
	testutil.NeedCommands(t, "ip", "ping")
}

// uniqueDev returns an unused TAP name: xvstap + pid + sequence, at most 14
// bytes.
func uniqueDev() string {
	return fmt.Sprintf("xvstap%05d%03d", os.Getpid()%100000, seq.Add(1)%1000)
}

// run runs a command and returns its combined output; it fails the test on
// error.
func run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// tryRun runs a command, ignoring errors (cleanup).
func tryRun(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	return string(out), err
}

// newNS creates a network namespace that is deleted when the test ends.
func newNS(t testing.TB) string {
	t.Helper()
	ns := fmt.Sprintf("xvs-ttap-%d-%d", os.Getpid(), seq.Add(1))
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { tryRun("ip", "netns", "del", ns) })
	run(t, "ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
	// No IPv6 chatter (router solicitations, MLD) on the TAP.
	run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
	run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
	return ns
}

// openPort opens a port whose cleanup (Close, and deleting the device if
// it is still in the root namespace) runs before its namespace is deleted
// when the namespace was created first.
func openPort(t testing.TB, cfg Config) *Port {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(func() {
		p.Close()
		if p.Created() {
			tryRun("ip", "link", "del", p.Dev())
		}
	})
	return p
}

// moveToNS moves the port's device into ns, addresses it with nsIP/24 and
// brings it up (the move takes it down).
func moveToNS(t testing.TB, dev, ns string) {
	t.Helper()
	run(t, "ip", "link", "set", dev, "netns", ns)
	run(t, "ip", "netns", "exec", ns, "ip", "addr", "add", nsIP.String()+"/24", "dev", dev)
	run(t, "ip", "netns", "exec", ns, "ip", "link", "set", dev, "up")
}

// portInNS creates a namespace and a port whose device lives in it.
func portInNS(t testing.TB, cfg Config) (*Port, string) {
	t.Helper()
	ns := newNS(t)
	if cfg.Dev == "" {
		cfg.Dev = uniqueDev()
	}
	p := openPort(t, cfg)
	moveToNS(t, p.Dev(), ns)
	return p, ns
}

// receiveMatch polls p until a frame satisfies match and returns a copy.
func receiveMatch(t testing.TB, p *Port, b *ring.Batch, off int, timeout time.Duration, what string, match func([]byte) bool) []byte {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		testutil.ResetRxAt(b, 0, off)
		n, err := p.Receive(b)
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		if n != b.N {
			t.Fatalf("Receive returned %d but b.N is %d", n, b.N)
		}
		for i := range n {
			if match(b.Data(i)) {
				return bytes.Clone(b.Data(i))
			}
		}
		if n == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	t.Fatalf("no %s received within %v", what, timeout)
	return nil
}

// neverReceive polls p for d and fails if a frame satisfies match.
func neverReceive(t testing.TB, p *Port, b *ring.Batch, d time.Duration, what string, match func([]byte) bool) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); {
		testutil.ResetRxAt(b, 0, b.Arena().Headroom())
		n, err := p.Receive(b)
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		for i := range n {
			if match(b.Data(i)) {
				t.Fatalf("%s received: % x", what, b.Data(i))
			}
		}
		if n == 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

const (
	etherTypeIPv4 = 0x0800
	etherTypeARP  = 0x0806
	etherTypeTest = 0x88b5 // IEEE local experimental: the kernel ignores it
	arpRequest    = 1
	arpReply      = 2
)

func sameMAC(a, b []byte) bool { return bytes.Equal(a, b) }

var broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// arpFrame builds an Ethernet ARP frame for IPv4.
func arpFrame(op uint16, dst, src net.HardwareAddr, spa net.IP, tha net.HardwareAddr, tpa net.IP) []byte {
	f := make([]byte, 0, 42)
	f = append(f, dst...)
	f = append(f, src...)
	f = binary.BigEndian.AppendUint16(f, etherTypeARP)
	f = binary.BigEndian.AppendUint16(f, 1) // Ethernet
	f = binary.BigEndian.AppendUint16(f, etherTypeIPv4)
	f = append(f, 6, 4)
	f = binary.BigEndian.AppendUint16(f, op)
	f = append(f, src...)
	f = append(f, spa.To4()...)
	f = append(f, tha...)
	f = append(f, tpa.To4()...)
	return f
}

// arpView is the part of an ARP frame the tests check.
type arpView struct {
	op       uint16
	sha, tha net.HardwareAddr
	spa, tpa net.IP
}

func parseARP(f []byte) (arpView, bool) {
	if len(f) < 42 || binary.BigEndian.Uint16(f[12:]) != etherTypeARP ||
		binary.BigEndian.Uint16(f[16:]) != etherTypeIPv4 || f[18] != 6 || f[19] != 4 {
		return arpView{}, false
	}
	return arpView{
		op:  binary.BigEndian.Uint16(f[20:]),
		sha: net.HardwareAddr(f[22:28]),
		spa: net.IP(f[28:32]),
		tha: net.HardwareAddr(f[32:38]),
		tpa: net.IP(f[38:42]),
	}, true
}

// testFrame is a frame of the experimental EtherType carrying tag.
func testFrame(dst, src net.HardwareAddr, tag string) []byte {
	f := make([]byte, 0, 60)
	f = append(f, dst...)
	f = append(f, src...)
	f = binary.BigEndian.AppendUint16(f, etherTypeTest)
	f = append(f, tag...)
	for len(f) < 60 {
		f = append(f, 0)
	}
	return f
}

func isTestFrame(tag string) func([]byte) bool {
	return func(f []byte) bool {
		return len(f) >= 14+len(tag) && binary.BigEndian.Uint16(f[12:]) == etherTypeTest &&
			string(f[14:14+len(tag)]) == tag
	}
}

// ipv4 returns the IPv4 header and payload of an Ethernet frame.
func ipv4(f []byte) (hdr, payload []byte, ok bool) {
	if len(f) < 34 || binary.BigEndian.Uint16(f[12:]) != etherTypeIPv4 || f[14]>>4 != 4 {
		return nil, nil, false
	}
	ihl := int(f[14]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(f[16:]))
	if ihl < 20 || total < ihl || 14+total > len(f) {
		return nil, nil, false
	}
	return f[14 : 14+ihl], f[14+ihl : 14+total], true
}

// echoReply turns an ICMP echo request frame into the reply from mac.
func echoReply(req []byte, mac net.HardwareAddr) []byte {
	r := bytes.Clone(req)
	copy(r[0:6], req[6:12])
	copy(r[6:12], mac)
	ih, icmp, _ := ipv4(r)
	src := bytes.Clone(ih[12:16])
	copy(ih[12:16], ih[16:20]) // swapping addresses keeps the IPv4 checksum
	copy(ih[16:20], src)
	icmp[0] = 0 // echo reply
	icmp[2], icmp[3] = 0, 0
	binary.BigEndian.PutUint16(icmp[2:], ^refSum(icmp))
	return r
}
