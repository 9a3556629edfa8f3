package integration

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fourVMs: vm1, vm2 in VSID 5001; vm3, vm4 in VSID 5002, all in 10.0.0.0/24.
var fourVMs = []struct {
	name, ip string
	vsid     uint32
}{
	{"vm1", "10.0.0.1", 5001},
	{"vm2", "10.0.0.2", 5001},
	{"vm3", "10.0.0.3", 5002},
	{"vm4", "10.0.0.4", 5002},
}

// afxdpTopology attaches four veth VMs as AF_XDP ports.
func afxdpTopology(t *testing.T) (*xvsd, []vm) {
	tp := newTopo(t)
	var vms []vm
	var specs []portSpec
	for _, v := range fourVMs {
		m := tp.vethVM(v.name, v.ip)
		vms = append(vms, m)
		specs = append(specs, portSpec{v.name, "afxdp", m.Host, v.vsid})
	}
	return startXVSD(t, specs...), vms
}

// tapTopology lets xvsd create four TAP devices, then moves each into a
// namespace, as a VM's NIC would be.
func tapTopology(t *testing.T) (*xvsd, []vm) {
	tp := newTopo(t)
	var specs []portSpec
	for _, v := range fourVMs {
		specs = append(specs, portSpec{v.name, "tap", tp.prefix + "t" + v.name, v.vsid})
	}
	d := startXVSD(t, specs...)
	var vms []vm
	for i, v := range fourVMs {
		vms = append(vms, tp.tapVM(v.name, specs[i].dev, v.ip))
	}
	return d, vms
}

func checkReachability(t *testing.T, vms []vm) {
	t.Helper()
	if out, err := vms[0].try("ping", "-c", "3", "-i", "0.2", "-W", "2", vms[1].IP); err != nil {
		t.Errorf("ping vm1 -> vm2 (same VSID) failed: %v\n%s", err, out)
	}
	if out, err := vms[2].try("ping", "-c", "3", "-i", "0.2", "-W", "2", vms[3].IP); err != nil {
		t.Errorf("ping vm3 -> vm4 (same VSID) failed: %v\n%s", err, out)
	}
	if out, err := vms[0].try("ping", "-c", "2", "-i", "0.2", "-W", "1", vms[2].IP); err == nil {
		t.Errorf("ping vm1 -> vm3 crossed VSIDs:\n%s", out)
	}
	if out, err := vms[0].try("arping", "-c", "2", "-W", "0.2", "-w", "3", "-i", "eth0", vms[1].IP); err != nil {
		t.Errorf("arping vm1 -> vm2 failed: %v\n%s", err, out)
	}
	if out, err := vms[3].try("arping", "-c", "2", "-W", "0.2", "-w", "2", "-i", "eth0", vms[1].IP); err == nil {
		t.Errorf("arping vm4 -> vm2 crossed VSIDs:\n%s", out)
	}
}

// iperf runs a TCP iperf3 from a to b and returns Gbit/s.
func iperf(t *testing.T, a, b vm, seconds int) float64 {
	t.Helper()
	background(t, "ip", "netns", "exec", b.NS, "iperf3", "-s", "-1", "-B", b.IP)
	time.Sleep(300 * time.Millisecond)
	var out string
	var err error
	for range 20 { // the server may not be listening yet
		out, err = a.try("iperf3", "-c", b.IP, "-t", strconv.Itoa(seconds), "-J")
		if err == nil || !strings.Contains(out, "connect") {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("iperf3 %s -> %s: %v\n%s", a.NS, b.NS, err, out)
	}
	var res struct {
		End struct {
			SumReceived struct {
				Bits float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("iperf3 output: %v\n%s", err, out)
	}
	return res.End.SumReceived.Bits / 1e9
}

func TestAFXDPPingArpingIperf(t *testing.T) {
	needRoot(t, "ping", "arping", "iperf3")
	d, vms := afxdpTopology(t)
	checkReachability(t, vms)
	gbps := iperf(t, vms[0], vms[1], 3)
	t.Logf("iperf3 TCP vm1 -> vm2 through AF_XDP ports: %.2f Gbit/s", gbps)
	if gbps < 0.1 {
		t.Errorf("iperf3 through xvs: %.3f Gbit/s, want at least 0.1", gbps)
	}
	t.Logf("stats:\n%s", d.ctl("stats"))
}

func TestTAPPingArpingIperf(t *testing.T) {
	needRoot(t, "ping", "arping", "iperf3")
	d, vms := tapTopology(t)
	checkReachability(t, vms)
	gbps := iperf(t, vms[0], vms[1], 3)
	t.Logf("iperf3 TCP vm1 -> vm2 through TAP ports: %.2f Gbit/s", gbps)
	if gbps < 0.05 {
		t.Errorf("iperf3 through xvs: %.3f Gbit/s, want at least 0.05", gbps)
	}
	t.Logf("stats:\n%s", d.ctl("stats"))
}

// systemPython is Debian's python3, which has python3-scapy; a python3
// earlier in PATH (pyenv, venv) may not.
const systemPython = "/usr/bin/python3"

// TestBroadcastStaysInVSID sends marked broadcast frames from vm1 and
// captures with tshark in vm2 (same VSID: must see them) and vm3 (other
// VSID: must not).
func TestBroadcastStaysInVSID(t *testing.T) {
	needRoot(t, "tshark")
	if _, err := try(systemPython, "-c", "import scapy"); err != nil {
		t.Skipf("python3-scapy not installed for %s", systemPython)
	}
	d, vms := afxdpTopology(t)
	dir := t.TempDir()
	defer func() {
		if t.Failed() {
			t.Logf("stats:\n%s", d.ctl("stats"))
		}
	}()
	var caps []*exec.Cmd
	for _, v := range vms[1:3] {
		pcap := filepath.Join(dir, v.NS+".pcap")
		caps = append(caps, background(t, "ip", "netns", "exec", v.NS, "tshark", "-q", "-i", "eth0", "-a", "duration:6", "-f", "ether broadcast", "-w", pcap))
	}
	time.Sleep(2 * time.Second) // tshark needs a moment before it captures
	const marker = "xvs-broadcast-marker"
	script := fmt.Sprintf(`from scapy.all import Ether, Raw, sendp
sendp(Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:01", type=0x88b5)/Raw(b"%s"*2), iface="eth0", count=20, inter=0.02, verbose=False)`, marker)
	vms[0].exec(t, systemPython, "-c", script)
	for _, c := range caps {
		c.Wait()
	}
	count := func(v vm) int {
		// stdout only: tshark warns about running as root on stderr.
		out, err := exec.Command("tshark", "-r", filepath.Join(dir, v.NS+".pcap"), "-Y", fmt.Sprintf(`frame contains "%s"`, marker), "-T", "fields", "-e", "frame.number").Output()
		if err != nil {
			t.Fatalf("tshark -r: %v", err)
		}
		return len(strings.Fields(string(out)))
	}
	if n := count(vms[1]); n != 20 {
		t.Errorf("vm2 (same VSID) captured %d of 20 broadcasts", n)
	}
	if n := count(vms[2]); n != 0 {
		t.Errorf("vm3 (other VSID) captured %d broadcasts from VSID 5001", n)
	}
}

// TestPortChangesDoNotDisturbOthers adds, moves and removes ports while
// vm1 pings vm2, and checks no echo is lost.
func TestPortChangesDoNotDisturbOthers(t *testing.T) {
	needRoot(t, "ping")
	tp := newTopo(t)
	vm1, vm2 := tp.vethVM("vm1", "10.0.0.1"), tp.vethVM("vm2", "10.0.0.2")
	vm3 := tp.vethVM("vm3", "10.0.0.3")
	d := startXVSD(t, portSpec{"vm1", "afxdp", vm1.Host, 5001}, portSpec{"vm2", "afxdp", vm2.Host, 5001})
	vm1.exec(t, "ping", "-c", "1", "-W", "2", vm2.IP) // learn and resolve first
	done := make(chan string, 1)
	go func() {
		out, _ := vm1.try("ping", "-c", "300", "-i", "0.01", "-W", "1", vm2.IP)
		done <- out
	}()
	for range 3 {
		d.ctl("port", "add", "vm3", "--type", "afxdp", "--dev", vm3.Host, "--vsid", "5001")
		if out, err := vm3.try("ping", "-c", "1", "-W", "2", vm2.IP); err != nil {
			t.Errorf("vm3 added at run time cannot reach vm2: %s", out)
		}
		d.ctl("port", "set", "vm3", "--vsid", "5002")
		if out, err := vm3.try("ping", "-c", "1", "-W", "1", vm2.IP); err == nil {
			t.Errorf("vm3 moved to VSID 5002 still reaches vm2: %s", out)
		}
		d.ctl("port", "del", "vm3")
		if xdpAttached(t, vm3.Host) {
			t.Errorf("port del left an XDP program on %s", vm3.Host)
		}
	}
	out := <-done
	if !strings.Contains(out, " 0% packet loss") {
		t.Errorf("ping vm1 -> vm2 lost echoes while other ports changed:\n%s", out)
	}
	// Errors users will meet.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"port", "add", "x", "--type", "afxdp", "--dev", "nosuchdev0", "--vsid", "5001"}, "no such network device"},
		{[]string{"port", "add", "x", "--type", "afxdp", "--dev", vm1.Host, "--vsid", "5001"}, "already attached as port vm1"},
		{[]string{"port", "add", "vm1", "--type", "afxdp", "--dev", vm3.Host, "--vsid", "5001"}, "already exists"},
		{[]string{"port", "del", "nosuch"}, "no such port"},
	} {
		if out, err := d.try(tc.args...); err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("xvsctl %s: %v %q, want an error with %q", strings.Join(tc.args, " "), err, out, tc.want)
		}
	}
	// MTU too large for the frame size.
	sh(t, "ip", "link", "set", vm3.Host, "mtu", "3000")
	if out, err := d.try("port", "add", "big", "--type", "afxdp", "--dev", vm3.Host, "--vsid", "5001"); err == nil || !strings.Contains(strings.ToLower(out), "mtu") {
		t.Errorf("port add with MTU 3000: %v %q, want an MTU error", err, out)
	}
}

// TestKillAndRestart: xvsd killed with SIGKILL leaves its XDP programs on
// the devices; a restarted xvsd takes them over and forwards, and a clean
// stop leaves nothing attached.
func TestKillAndRestart(t *testing.T) {
	needRoot(t, "ping")
	d, vms := afxdpTopology(t)
	vms[0].exec(t, "ping", "-c", "1", "-W", "2", vms[1].IP)
	d.kill9()
	d.start()
	if out, err := vms[0].try("ping", "-c", "3", "-i", "0.2", "-W", "2", vms[1].IP); err != nil {
		t.Fatalf("after kill -9 and restart, vm1 cannot reach vm2: %v\n%s\n%s", err, out, d.logs)
	}
	d.stop()
	for _, v := range vms {
		if xdpAttached(t, v.Host) {
			t.Errorf("after a clean stop %s still has an XDP program", v.Host)
		}
	}
}

// TestFastPath runs the four VMs with the in-kernel fast path on: known
// unicast must bypass the workers (offload counters move), VSIDs must stay
// apart, and a port moved or removed must stop receiving at once - with
// the fast path in the sender's softirq and in NAPI threads (the
// configuration the README recommends for veths).
func TestFastPath(t *testing.T) {
	needRoot(t, "ping", "arping", "iperf3")
	t.Run("softirq", func(t *testing.T) { testFastPath(t, false) })
	t.Run("threaded-napi", func(t *testing.T) { testFastPath(t, true) })
}

func testFastPath(t *testing.T, threaded bool) {
	tp := newTopo(t)
	var vms []vm
	var specs []string
	for _, v := range fourVMs {
		m := tp.vethVM(v.name, v.ip)
		// redirected frames need NAPI on the receiving veth's peer
		m.exec(t, "ethtool", "-K", "eth0", "gro", "on")
		vms = append(vms, m)
		specs = append(specs, fmt.Sprintf("  - {name: %s, type: afxdp, dev: %s, vsid: %d, fast_path: true, threaded_napi: %t}", v.name, m.Host, v.vsid, threaded))
	}
	d := startXVSDConfig(t, strings.Join(specs, "\n"))
	for _, m := range vms {
		if got := napiThreaded(t, m.Host); got != threaded {
			t.Errorf("%s: threaded NAPI %t, want %t", m.Host, got, threaded)
		}
	}
	checkReachability(t, vms)
	gbps := iperf(t, vms[0], vms[1], 3)
	t.Logf("iperf3 TCP vm1 -> vm2 with the fast path (threaded NAPI %t): %.2f Gbit/s", threaded, gbps)
	var st []struct {
		Name            string `json:"name"`
		RxFrames        uint64 `json:"rx_frames"`
		OffloadRxFrames uint64 `json:"offload_rx_frames"`
		OffloadTxFrames uint64 `json:"offload_tx_frames"`
	}
	if err := json.Unmarshal([]byte(d.ctl("-o", "json", "stats")), &st); err != nil {
		t.Fatal(err)
	}
	byName := map[string]int{}
	for i, s := range st {
		byName[s.Name] = i
	}
	if s := st[byName["vm1"]]; s.OffloadRxFrames < 1000 || s.OffloadRxFrames > s.RxFrames {
		t.Errorf("vm1: %d of %d frames took the fast path, want most of the iperf3 stream", s.OffloadRxFrames, s.RxFrames)
	}
	for _, n := range []string{"vm3", "vm4"} {
		if s := st[byName[n]]; s.OffloadRxFrames+s.OffloadTxFrames > 100 {
			t.Errorf("%s (VSID 5002) carried %d fast-path frames during vm1 -> vm2 traffic", n, s.OffloadRxFrames+s.OffloadTxFrames)
		}
	}
	// vm2 moves to VSID 5002: vm1 must lose it at once, learned or not.
	d.ctl("port", "set", "vm2", "--vsid", "5002")
	if out, err := vms[0].try("ping", "-c", "2", "-i", "0.2", "-W", "1", vms[1].IP); err == nil {
		t.Errorf("vm2 moved to VSID 5002 still answers vm1 (stale fast-path entry?):\n%s", out)
	}
	if out, err := vms[3].try("ping", "-c", "3", "-i", "0.2", "-W", "2", vms[1].IP); err != nil {
		t.Errorf("vm2 moved to VSID 5002 does not answer vm4: %v\n%s", err, out)
	}
	d.ctl("port", "del", "vm4")
	if out, err := vms[1].try("ping", "-c", "2", "-i", "0.2", "-W", "1", vms[3].IP); err == nil {
		t.Errorf("removed port vm4 still reachable:\n%s", out)
	}
	if xdpAttached(t, vms[3].Host) {
		t.Errorf("port del left an XDP program on %s", vms[3].Host)
	}
}
