package main

// Integration tests: each builds two network namespaces joined by a veth
// pair (names start with xvs-tpg / xvspg; never the host's devices), runs
// the CLI in process (or as a child process for signals) and checks what
// the sink, the kernel and an independent capture saw. They need root and
// skip otherwise.
//
// Exact counts: without a rate limit, a small --count (1000) must arrive
// exactly, in every mode. Larger runs may lose frames when the peer's
// 256-slot XDP ring overflows on a loaded machine (dev_tx_dropped counts
// them), so they are held to 99%.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/xvswitch/xvs/cmd/xvs-pktgen/internal/gen"
	"github.com/xvswitch/xvs/internal/testutil"
)

// runMainEnv makes the test binary act as xvs-pktgen (for tests that need
// a process of their own: signals, another user).
const runMainEnv = "XVS_PKTGEN_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// topo is a veth pair devA/devB between namespaces nsA and nsB.
type topo struct {
	nsA, nsB   string
	devA, devB string
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func newTopo(t *testing.T) *topo {
	t.Helper()
	testutil.NeedRoot(t, "network namespaces, XDP, BPF")
	testutil.NeedCommands(t, "ip")
	var r [3]byte
	rand.Read(r[:])
	id := hex.EncodeToString(r[:])
	tp := &topo{nsA: "xvs-tpg-" + id + "-a", nsB: "xvs-tpg-" + id + "-b", devA: "xvspg0", devB: "xvspg1"}
	for _, ns := range []string{tp.nsA, tp.nsB} {
		ipCmd(t, "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	ipCmd(t, "link", "add", tp.devA, "netns", tp.nsA, "type", "veth", "peer", "name", tp.devB, "netns", tp.nsB)
	ipCmd(t, "-n", tp.nsA, "addr", "add", "198.18.0.1/30", "dev", tp.devA)
	ipCmd(t, "-n", tp.nsB, "addr", "add", "198.18.0.2/30", "dev", tp.devB)
	ipCmd(t, "-n", tp.nsA, "link", "set", tp.devA, "up")
	ipCmd(t, "-n", tp.nsB, "link", "set", tp.devB, "up")
	return tp
}

// hasXDP says whether dev in ns has an XDP program attached.
func hasXDP(t *testing.T, ns, dev string) bool {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "link", "show", dev).CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show: %v: %s", err, out)
	}
	return bytes.Contains(out, []byte("prog/xdp"))
}

// cli runs xvs-pktgen in process.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

// summary is the JSON summary; pointer fields are the optional ones.
type summary struct {
	Mode          string   `json:"mode"`
	Dev           string   `json:"dev"`
	Size          int      `json:"size"`
	Flows         int      `json:"flows"`
	Rate          uint64   `json:"rate"`
	DurationS     float64  `json:"duration_s"`
	Sent          uint64   `json:"sent"`
	SentPPS       float64  `json:"sent_pps"`
	SentMbps      float64  `json:"sent_mbps"`
	DevTx         *uint64  `json:"dev_tx"`
	DevTxDropped  *uint64  `json:"dev_tx_dropped"`
	SinkDev       string   `json:"sink_dev"`
	Received      *uint64  `json:"received"`
	ReceivedPPS   *float64 `json:"received_pps"`
	ReceivedMbps  *float64 `json:"received_mbps"`
	ReceivedAll   *uint64  `json:"received_all"`
	LossPct       *float64 `json:"loss_pct"`
	ReceivedFlows *int     `json:"received_flows"`
}

// send runs "send --json --quiet" on tp.devA with a sink on tp.devB
// (unless noSink) and returns the summary.
func (tp *topo) send(t *testing.T, noSink bool, args ...string) summary {
	t.Helper()
	a := []string{"send", "--dev", tp.devA, "--netns", tp.nsA, "--json", "--quiet"}
	if !noSink {
		a = append(a, "--sink-dev", tp.devB, "--sink-netns", tp.nsB)
	}
	code, out, errOut := cli(t, append(a, args...)...)
	if code != exitOK {
		t.Fatalf("xvs-pktgen %s: exit %d: %s", strings.Join(a, " "), code, errOut)
	}
	return parseSummary(t, out)
}

// parseSummary decodes the one JSON summary that stdout must hold.
func parseSummary(t *testing.T, out string) summary {
	t.Helper()
	var s summary
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("summary %q: %v", out, err)
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON value: %q", out)
	}
	return s
}

func TestSendExactCountEachMode(t *testing.T) {
	tp := newTopo(t)
	for _, mode := range []string{gen.ModeLive, gen.ModeAFXDP, gen.ModePacket} {
		t.Run(mode, func(t *testing.T) {
			if mode == gen.ModeLive {
				requireLive(t)
			}
			s := tp.send(t, false, "--mode", mode, "--count", "1000")
			if s.Mode != mode || s.Sent != 1000 || s.Received == nil || *s.Received != 1000 {
				t.Errorf("mode %s sent %d received %v, want %s 1000 1000", s.Mode, s.Sent, deref(s.Received), mode)
			}
			if s.LossPct == nil || *s.LossPct != 0 {
				t.Errorf("loss_pct %v, want 0", deref(s.LossPct))
			}
			if s.DevTx == nil || *s.DevTx < 1000 {
				t.Errorf("dev_tx %v, want >= 1000", deref(s.DevTx))
			}
			if hasXDP(t, tp.nsB, tp.devB) {
				t.Error("the sink's XDP program is still attached")
			}
		})
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return "<absent>"
	}
	return *p
}

func TestSendLargeCountLive(t *testing.T) {
	requireLive(t)
	tp := newTopo(t)
	const n = 500000
	s := tp.send(t, false, "--mode", "live", "--count", fmt.Sprint(n), "--size", "128")
	if s.Sent != n {
		t.Fatalf("sent %d, want exactly %d", s.Sent, n)
	}
	if *s.Received < n*99/100 || *s.Received > n {
		t.Errorf("received %d of %d (dev_tx_dropped %v), want at least 99%%", *s.Received, n, deref(s.DevTxDropped))
	}
	if want := float64(s.Sent) / s.DurationS; s.SentPPS < want*0.99 || s.SentPPS > want*1.01 {
		t.Errorf("sent_pps %.0f, want sent/duration_s = %.0f", s.SentPPS, want)
	}
	if want := s.SentPPS * 128 * 8 / 1e6; s.SentMbps < want*0.99 || s.SentMbps > want*1.01 {
		t.Errorf("sent_mbps %.2f, want %.2f", s.SentMbps, want)
	}
	t.Logf("live, 128 B: %.2f Mpps", s.SentPPS/1e6)
}

// TestAutoFallsBackWithoutPeerNAPI: a generic-mode sink gives the peer no
// NAPI, so the device drops live frames; auto must notice (probe) and
// send with AF_XDP instead, and every frame must arrive.
func TestAutoFallsBackWithoutPeerNAPI(t *testing.T) {
	requireLive(t)
	tp := newTopo(t)
	code, out, errOut := cli(t, "send", "--dev", tp.devA, "--netns", tp.nsA, "--count", "1000", "--json", "--quiet",
		"--sink-dev", tp.devB, "--sink-netns", tp.nsB, "--sink-xdp-mode", "generic")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var s summary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	if s.Mode != gen.ModeAFXDP || s.Sent != 1000 || *s.Received != 1000 {
		t.Errorf("mode %s sent %d received %d, want afxdp 1000 1000", s.Mode, s.Sent, *s.Received)
	}
	if !strings.Contains(errOut, "probe frames") {
		t.Errorf("no warning about the failed probe on stderr: %q", errOut)
	}
}

// TestAutoKeepsLiveWithThreadedNAPI: when the peer polls in a kernel
// thread, the device counts live frames only after that thread has run;
// auto must not take that delay for a device that drops them.
func TestAutoKeepsLiveWithThreadedNAPI(t *testing.T) {
	requireLive(t)
	tp := newTopo(t)
	set := func(v string) error {
		return exec.Command("ip", "netns", "exec", tp.nsB, "sh", "-c", "echo "+v+" > /sys/class/net/"+tp.devB+"/threaded").Run()
	}
	// A veth has NAPI, and so a threaded setting, once GRO is on.
	if out, err := exec.Command("ip", "netns", "exec", tp.nsB, "ethtool", "-K", tp.devB, "gro", "on").CombinedOutput(); err != nil {
		t.Skipf("ethtool -K %s gro on: %v: %s", tp.devB, err, out)
	}
	if err := set("1"); err != nil {
		t.Fatalf("cannot turn threaded NAPI on: %v", err)
	}
	t.Cleanup(func() { set("0") })
	for i := range 3 {
		s := tp.send(t, false, "--count", "1000")
		// A kernel thread may fall behind the sender and the device drop
		// some: those must be counted, none lost unseen.
		if s.Mode != gen.ModeLive || s.Sent != 1000 || s.DevTxDropped == nil || *s.Received+*s.DevTxDropped != 1000 {
			t.Fatalf("run %d: mode %s sent %d received %d dropped %v, want live, 1000 sent = received + dropped", i, s.Mode, s.Sent, *s.Received, deref(s.DevTxDropped))
		}
	}
}

func TestAutoFallsBackForLargeFrames(t *testing.T) {
	tp := newTopo(t)
	ipCmd(t, "-n", tp.nsA, "link", "set", tp.devA, "mtu", "9000")
	ipCmd(t, "-n", tp.nsB, "link", "set", tp.devB, "mtu", "9000")
	// Where the kernel refuses live frames, auto starts at afxdp.
	first := gen.ModeLive
	if err := gen.ProbeLive(1); err != nil {
		first = gen.ModeAFXDP
	}
	for size, mode := range map[int]string{1514: first, 4000: gen.ModeAFXDP, 9000: gen.ModePacket} {
		s := tp.send(t, false, "--count", "100", "--size", fmt.Sprint(size))
		if s.Mode != mode || s.Sent != 100 || *s.Received != 100 {
			t.Errorf("size %d: mode %s sent %d received %d, want %s 100 100", size, s.Mode, s.Sent, *s.Received, mode)
		}
		// The sink counts bytes itself (fragments included for 9000).
		if *s.ReceivedMbps != s.SentMbps {
			t.Errorf("size %d: received_mbps %.2f, sent_mbps %.2f; want equal", size, *s.ReceivedMbps, s.SentMbps)
		}
	}
}

func TestSinkCountsFlows(t *testing.T) {
	tp := newTopo(t)
	for _, mode := range []string{gen.ModeLive, gen.ModeAFXDP} {
		t.Run(mode, func(t *testing.T) {
			if mode == gen.ModeLive {
				requireLive(t)
			}
			s := tp.send(t, false, "--mode", mode, "--count", "20000", "--flows", "100", "--count-flows")
			if s.ReceivedFlows == nil || *s.ReceivedFlows != 100 {
				t.Errorf("%s: received_flows %v, want 100", mode, deref(s.ReceivedFlows))
			}
		})
	}
	s := tp.send(t, false, "--count", "1000", "--flows", "10", "--vary", "port", "--count-flows")
	if *s.ReceivedFlows != 10 {
		t.Errorf("vary port: received_flows %d, want 10", *s.ReceivedFlows)
	}
}

// TestFlowsOnTheWire captures the frames of the first mode auto takes
// (live, or afxdp where the kernel refuses live frames) on the peer with
// an AF_PACKET socket and decodes them independently: every frame valid,
// the flows distinct and equally used.
func TestFlowsOnTheWire(t *testing.T) {
	tp := newTopo(t)
	const flows, perFlow = 50, 40

	frames := make(chan [][]byte, 1)
	ready := make(chan error, 1)
	go capture(tp.nsB, tp.devB, flows*perFlow, ready, frames)
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	s := tp.send(t, true, "--count", fmt.Sprint(flows*perFlow), "--flows", fmt.Sprint(flows),
		"--src-ip", "10.0.0.250", "--src-port", "65530")
	if s.Sent != flows*perFlow {
		t.Fatalf("sent %d", s.Sent)
	}
	got := <-frames
	if len(got) != flows*perFlow {
		t.Fatalf("captured %d generator frames, want %d", len(got), flows*perFlow)
	}
	perTuple := map[string]int{}
	for _, f := range got {
		tuple, err := checkFrame(f, 64)
		if err != nil {
			t.Fatalf("frame %x: %v", f, err)
		}
		perTuple[tuple]++
	}
	if len(perTuple) != flows {
		t.Errorf("%d distinct flows on the wire, want %d", len(perTuple), flows)
	}
	for tuple, n := range perTuple {
		if n != perFlow {
			t.Errorf("flow %s: %d frames, want %d", tuple, n, perFlow)
		}
	}
}

// capture attaches an XDP_PASS program to dev (a veth needs one, or GRO,
// to take live frames) and reads frames carrying "XVSP" at offset 42 from
// an AF_PACKET socket until it has want of them or 5 s pass.
func capture(ns, dev string, want int, ready chan<- error, frames chan<- [][]byte) {
	runtime.LockOSThread() // the thread moves to ns and is discarded
	defer close(frames)
	fail := func(err error) { ready <- err }
	fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY, 0)
	if err != nil {
		fail(err)
		return
	}
	err = unix.Setns(fd, unix.CLONE_NEWNET)
	unix.Close(fd)
	if err != nil {
		fail(err)
		return
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* XDP_PASS */), asm.Return()}})
	if err != nil {
		fail(err)
		return
	}
	defer prog.Close()
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		fail(err)
		return
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifi.Index})
	if err != nil {
		fail(err)
		return
	}
	defer l.Close()
	const ethPAll = 0x0300 // htons(ETH_P_ALL)
	sock, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, ethPAll)
	if err != nil {
		fail(err)
		return
	}
	defer unix.Close(sock)
	unix.SetsockoptInt(sock, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20)
	if err := unix.Bind(sock, &unix.SockaddrLinklayer{Protocol: ethPAll, Ifindex: ifi.Index}); err != nil {
		fail(err)
		return
	}
	tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
	unix.SetsockoptTimeval(sock, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	ready <- nil
	var got [][]byte
	buf := make([]byte, 65536)
	end := time.Now().Add(5 * time.Second)
	for len(got) < want && time.Now().Before(end) {
		n, _, err := unix.Recvfrom(sock, buf, 0)
		if err != nil {
			continue
		}
		if n >= 46 && string(buf[42:46]) == "XVSP" {
			got = append(got, append([]byte(nil), buf[:n]...))
		}
	}
	frames <- got
}

// checkFrame decodes an Ethernet/IPv4/UDP frame by hand (RFC 791/768/1071)
// and returns its flow tuple (source MAC, IP, port).
func checkFrame(b []byte, size int) (string, error) {
	if len(b) != size {
		return "", fmt.Errorf("%d bytes, want %d", len(b), size)
	}
	if b[12] != 0x08 || b[13] != 0x00 || b[14] != 0x45 || b[23] != 17 {
		return "", fmt.Errorf("not IPv4 (IHL 5) / UDP")
	}
	var sum uint32
	for i := 14; i < 34; i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	if sum != 0xffff {
		return "", fmt.Errorf("bad IPv4 checksum (sum %#x)", sum)
	}
	if tl := int(b[16])<<8 | int(b[17]); tl != size-14 {
		return "", fmt.Errorf("IPv4 total length %d", tl)
	}
	if ul := int(b[38])<<8 | int(b[39]); ul != size-34 {
		return "", fmt.Errorf("UDP length %d", ul)
	}
	return fmt.Sprintf("%x/%d.%d.%d.%d/%d", b[6:12], b[26], b[27], b[28], b[29], int(b[34])<<8|int(b[35])), nil
}

func TestRateLimit(t *testing.T) {
	tp := newTopo(t)
	for _, mode := range []string{gen.ModeLive, gen.ModeAFXDP} {
		t.Run(mode, func(t *testing.T) {
			if mode == gen.ModeLive {
				requireLive(t)
			}
			s := tp.send(t, false, "--mode", mode, "--rate", "20000", "--duration", "1s")
			if s.Rate != 20000 || s.Sent < 18000 || s.Sent > 22000 {
				t.Errorf("%s: rate %d sent %d in %.3f s, want about 20000", mode, s.Rate, s.Sent, s.DurationS)
			}
			if *s.Received != s.Sent {
				t.Errorf("%s: received %d of %d at a low rate", mode, *s.Received, s.Sent)
			}
		})
	}
}

// TestTextOutput checks the text format that scripts parse.
func TestTextOutput(t *testing.T) {
	tp := newTopo(t)
	code, out, errOut := cli(t, "send", "--dev", tp.devA, "--netns", tp.nsA, "--duration", "1.1s", "--interval", "250ms",
		"--rate", "100000", "--sink-dev", tp.devB, "--sink-netns", tp.nsB)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 4 {
		t.Fatalf("want >= 3 progress lines and a summary, got %q", out)
	}
	progressKeys := "t sent sent_pps sent_mbps received received_pps received_mbps loss_pct"
	for _, l := range lines[:len(lines)-1] {
		if got := keys(t, l); got != progressKeys {
			t.Errorf("progress line %q: keys %q, want %q", l, got, progressKeys)
		}
	}
	sum, ok := strings.CutPrefix(lines[len(lines)-1], "summary ")
	if !ok {
		t.Fatalf("last line %q does not start with \"summary \"", lines[len(lines)-1])
	}
	want := "mode dev size flows rate duration_s sent sent_pps sent_mbps dev_tx dev_tx_dropped sink_dev received received_pps received_mbps received_all loss_pct"
	if got := keys(t, sum); got != want {
		t.Errorf("summary keys %q, want %q", got, want)
	}

	// The sink command, text and JSON.
	code, out, errOut = cli(t, "sink", "--dev", tp.devB, "--netns", tp.nsB, "--duration", "300ms", "--interval", "100ms")
	if code != exitOK {
		t.Fatalf("sink: exit %d: %s", code, errOut)
	}
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if got := keys(t, lines[0]); got != "t received received_pps received_mbps received_all" {
		t.Errorf("sink progress keys %q", got)
	}
	sum, _ = strings.CutPrefix(lines[len(lines)-1], "summary ")
	if got := keys(t, sum); got != "mode dev duration_s received received_pps received_mbps received_all" {
		t.Errorf("sink summary keys %q", got)
	}
	code, out, _ = cli(t, "sink", "--dev", tp.devB, "--netns", tp.nsB, "--duration", "100ms", "--json", "--count-flows")
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); code != exitOK || err != nil || m["mode"] != "sink" || m["received_flows"] != 0.0 {
		t.Errorf("sink --json: exit %d, %q: %v", code, out, err)
	}
}

// keys returns the keys of a "k=v k=v" line, checking every value is
// non-empty and every pair has one "=".
func keys(t *testing.T, line string) string {
	t.Helper()
	var ks []string
	for _, kv := range strings.Split(line, " ") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || v == "" || strings.Contains(v, "=") {
			t.Errorf("bad pair %q in %q", kv, line)
		}
		ks = append(ks, k)
	}
	return strings.Join(ks, " ")
}

func TestErrors(t *testing.T) {
	tp := newTopo(t)
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"send", "--dev", "xvspg-none", "--netns", tp.nsA, "--count", "1"}, exitError, "dev xvspg-none: no such device"},
		{[]string{"sink", "--dev", "xvspg-none", "--netns", tp.nsB, "--duration", "1ms"}, exitError, "no such device"},
		{[]string{"send", "--dev", tp.devA, "--netns", "xvs-tpg-none", "--count", "1"}, exitError, "netns xvs-tpg-none"},
		{[]string{"send", "--dev", tp.devA, "--netns", tp.nsA, "--count", "1", "--size", "1600"}, exitError, "MTU"},
		{[]string{"send", "--dev", tp.devA, "--netns", tp.nsA, "--count", "1", "--sink-dev", "xvspg-none", "--sink-netns", tp.nsB}, exitError, "no such device"},
		{[]string{"send", "--count", "1"}, exitUsage, "--dev is required"},
		{[]string{"send", "--dev", "x", "--size", "63"}, exitUsage, "size 63"},
		{[]string{"send", "--dev", "x", "--flows", "70000"}, exitUsage, "flows 70000"},
		{[]string{"send", "--dev", "x", "--mode", "turbo"}, exitUsage, "--mode"},
		{[]string{"send", "--dev", "x", "--src-ip", "::1"}, exitUsage, "not an IPv4 address"},
		{[]string{"send", "--dev", "x", "--dst-mac", "01:02"}, exitUsage, "not a 6-byte MAC"},
		{[]string{"send", "--dev", "x", "--vary", "vlan"}, exitUsage, "unknown field"},
		{[]string{"sink", "--dev", "x", "--xdp-mode", "hw"}, exitUsage, "--xdp-mode"},
		{[]string{"frobnicate"}, exitUsage, "unknown command"},
	} {
		code, _, errOut := cli(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, errOut, tc.code, tc.msg)
		}
	}

	// XDP attach refused: the device already has a program.
	first, err := gen.OpenSink(gen.SinkOptions{Dev: tp.devB, Netns: tp.nsB})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	code, _, errOut := cli(t, "sink", "--dev", tp.devB, "--netns", tp.nsB, "--duration", "1ms")
	if code != exitError || !strings.Contains(errOut, "attach xdp to "+tp.devB) || !strings.Contains(errOut, "another XDP program") {
		t.Errorf("second sink: exit %d, %q; want exit 1 naming the attach failure", code, errOut)
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"send", "--help"}, {"help"}, {"help", "sink"}, {"sink", "-h"}} {
		code, out, _ := cli(t, args...)
		if code != exitOK {
			t.Errorf("%v: exit %d", args, code)
		}
		for _, want := range []string{"usage:", "OPTIONS", "-dev", "OUTPUT", "received_flows", "EXAMPLES"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: help lacks %q", args, want)
			}
		}
	}
}

// child starts the test binary as xvs-pktgen.
func child(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	return cmd, &o, &e
}

func TestNotRoot(t *testing.T) {
	testutil.NeedRoot(t, "to run xvs-pktgen as someone else")
	// The test binary must be reachable by "nobody".
	dir, err := os.MkdirTemp("", "xvs-tpg-bin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "xvs-pktgen")
	data, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"send", "--dev", "lo", "--count", "1"}, {"sink", "--dev", "lo"}} {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{runMainEnv + "=1"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != exitError || !strings.Contains(string(out), "needs root") {
			t.Errorf("%v as nobody: %v, %q; want exit 1 saying it needs root", args, err, out)
		}
	}
}

// TestSinkSIGINT runs the sink in a process of its own, sends frames to
// it, interrupts it and checks it reported them and detached.
func TestSinkSIGINT(t *testing.T) {
	tp := newTopo(t)
	cmd, out, errOut := child(t, "sink", "--dev", tp.devB, "--netns", tp.nsB, "--json", "--quiet")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	testutil.Eventually(t, 10*time.Second, func() bool { return hasXDP(t, tp.nsB, tp.devB) }, "the sink to attach: %s", errOut)
	s := tp.send(t, true, "--count", "1000")
	if s.Sent != 1000 {
		t.Fatalf("sent %d", s.Sent)
	}
	time.Sleep(100 * time.Millisecond)
	cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("sink exited with %v: %s", err, errOut)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("sink did not exit on SIGINT")
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil || m["received"] != 1000.0 {
		t.Errorf("sink summary %q (%v), want received 1000", out, err)
	}
	if hasXDP(t, tp.nsB, tp.devB) {
		t.Error("XDP program still attached after SIGINT")
	}
}

// TestNoLeaks runs the CLI in process and checks it leaves no file
// descriptor, goroutine or XDP program behind.
func TestNoLeaks(t *testing.T) {
	tp := newTopo(t)
	tp.send(t, false, "--count", "10", "--flows", "4", "--count-flows") // warm up
	fds := testutil.OpenFDs(t)
	testutil.CheckGoroutines(t)
	modes := []string{gen.ModeLive, gen.ModeAFXDP, gen.ModePacket}
	if err := gen.ProbeLive(1); err != nil {
		t.Logf("live mode left out: %v", err)
		modes = modes[1:]
	}
	for _, mode := range modes {
		tp.send(t, false, "--mode", mode, "--count", "1000", "--flows", "4", "--count-flows")
	}
	if n := testutil.OpenFDs(t); n != fds {
		t.Errorf("open file descriptors: %d before, %d after", fds, n)
	}
	if hasXDP(t, tp.nsA, tp.devA) || hasXDP(t, tp.nsB, tp.devB) {
		t.Error("an XDP program is left attached")
	}
}

// TestDeviceGoesDown: a device that is down, or goes down while sending,
// ends the run with an error naming it, in every mode.
func TestDeviceGoesDown(t *testing.T) {
	tp := newTopo(t)
	args := []string{"send", "--dev", tp.devA, "--netns", tp.nsA, "--quiet", "--json"}
	for _, mode := range []string{gen.ModeLive, gen.ModeAFXDP, gen.ModePacket} {
		t.Run(mode, func(t *testing.T) {
			if mode == gen.ModeLive {
				requireLive(t)
			}
			ipCmd(t, "-n", tp.nsA, "link", "set", tp.devA, "down")
			code, _, errOut := cli(t, append(args, "--mode", mode, "--count", "10")...)
			if code != exitError || !strings.Contains(errOut, "device is down") {
				t.Errorf("down from the start: exit %d, %q", code, errOut)
			}
			ipCmd(t, "-n", tp.nsA, "link", "set", tp.devA, "up")
			waitCarrier(t, tp.nsA, tp.devA, true)
			go func() {
				time.Sleep(300 * time.Millisecond)
				exec.Command("ip", "-n", tp.nsA, "link", "set", tp.devA, "down").Run()
			}()
			start := time.Now()
			code, out, errOut := cli(t, append(args, "--mode", mode, "--duration", "5s", "--sink-dev", tp.devB, "--sink-netns", tp.nsB)...)
			if code != exitError || !strings.Contains(errOut, "down") || time.Since(start) > 3*time.Second {
				t.Errorf("going down: exit %d after %v, %q", code, time.Since(start), errOut)
			}
			if !strings.Contains(out, `"sent":`) {
				t.Errorf("no summary of what was sent before: %q", out)
			}
			ipCmd(t, "-n", tp.nsA, "link", "set", tp.devA, "up")
		})
	}
	t.Run("peer", func(t *testing.T) {
		ipCmd(t, "-n", tp.nsB, "link", "set", tp.devB, "down")
		waitCarrier(t, tp.nsA, tp.devA, false)
		code, _, errOut := cli(t, append(args, "--count", "10")...)
		if code != exitError || !strings.Contains(errOut, "no carrier") {
			t.Errorf("peer down: exit %d, %q", code, errOut)
		}
		ipCmd(t, "-n", tp.nsB, "link", "set", tp.devB, "up")
		// Frames to a veth whose peer is down vanish without an error in
		// every mode: the generator must notice by itself.
		for _, mode := range []string{gen.ModeLive, gen.ModeAFXDP, gen.ModePacket} {
			t.Run(mode, func(t *testing.T) {
				if mode == gen.ModeLive {
					requireLive(t)
				}
				ipCmd(t, "-n", tp.nsB, "link", "set", tp.devB, "up")
				waitCarrier(t, tp.nsA, tp.devA, true)
				go func() {
					time.Sleep(300 * time.Millisecond)
					exec.Command("ip", "-n", tp.nsB, "link", "set", tp.devB, "down").Run()
				}()
				// The live probe needs NAPI on the peer: a sink gives it.
				code, _, errOut := cli(t, append(args, "--mode", mode, "--duration", "5s", "--sink-dev", tp.devB, "--sink-netns", tp.nsB)...)
				if code != exitError || !strings.Contains(errOut, "no carrier") {
					t.Errorf("peer going down: exit %d, %q", code, errOut)
				}
			})
		}
	})
}

// waitCarrier waits until the kernel reports dev's carrier as on (or
// off): it does so lazily, up to a second after the change.
func waitCarrier(t *testing.T, ns, dev string, on bool) {
	t.Helper()
	testutil.Eventually(t, 3*time.Second, func() bool {
		out, err := exec.Command("ip", "-n", ns, "link", "show", dev).CombinedOutput()
		if err != nil {
			t.Fatalf("ip link show: %v: %s", err, out)
		}
		return bytes.Contains(out, []byte("LOWER_UP")) == on
	}, "%s: carrier %v", dev, on)
}

// TestLoop: frames injected between the two ends of a veth pair circulate
// for the whole run, both reflectors see them, none is lost on a plain
// veth pair, and nothing stays attached. It needs no live frames.
func TestLoop(t *testing.T) {
	tp := newTopo(t)
	code, out, errOut := cli(t, "loop", "--dev", tp.devA, "--netns", tp.nsA, "--peer-dev", tp.devB, "--peer-netns", tp.nsB,
		"--frames", "64", "--duration", "500ms", "--warmup", "100ms", "--json", "--quiet")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var s struct {
		Mode         string  `json:"mode"`
		Injected     uint64  `json:"injected"`
		Forwarded    uint64  `json:"forwarded"`
		ForwardedPPS float64 `json:"forwarded_pps"`
		DevReceived  uint64  `json:"dev_received"`
		PeerReceived uint64  `json:"peer_received"`
		FramesLeft   uint64  `json:"frames_left"`
		DurationS    float64 `json:"duration_s"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("summary %q: %v", out, err)
	}
	if s.Mode != "loop" || s.Injected != 64 || s.FramesLeft != 64 {
		t.Errorf("mode %s injected %d frames_left %d, want loop 64 64 (a veth pair loses none)", s.Mode, s.Injected, s.FramesLeft)
	}
	// Each frame goes to one end, then the other: the two counts differ
	// by the frames in flight and what passes between the readings of the
	// two ends' counters (microseconds apart at tens of Mpps).
	if s.Forwarded < 10000 || s.DevReceived+s.PeerReceived != s.Forwarded || max(s.DevReceived, s.PeerReceived)-min(s.DevReceived, s.PeerReceived) > max(64, s.Forwarded/100) {
		t.Errorf("forwarded %d = %d + %d, want many, split evenly", s.Forwarded, s.DevReceived, s.PeerReceived)
	}
	if want := float64(s.Forwarded) / s.DurationS; s.ForwardedPPS < want*0.99 || s.ForwardedPPS > want*1.01 {
		t.Errorf("forwarded_pps %.0f, want forwarded/duration_s = %.0f", s.ForwardedPPS, want)
	}
	if hasXDP(t, tp.nsA, tp.devA) || hasXDP(t, tp.nsB, tp.devB) {
		t.Error("a reflector is left attached")
	}
	t.Logf("veth loop: %.2f Mpps", s.ForwardedPPS/1e6)

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"loop", "--dev", tp.devA}, "--peer-dev"},
		{[]string{"loop", "--dev", "a", "--peer-dev", "a"}, "same device"},
		{[]string{"loop", "--dev", "a", "--peer-dev", "b", "--frames", "0"}, "--frames 0"},
	} {
		if code, _, errOut := cli(t, tc.args...); code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, %q; want exit %d naming %s", tc.args, code, errOut, exitUsage, tc.want)
		}
	}
}
