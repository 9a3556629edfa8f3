package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xvswitch/xvs/internal/testutil"
)

// demoWNV runs scripts/demo-wnv.sh (the make demo-wnv topology) and
// removes it at the end.
func demoWNV(t *testing.T, env ...string) {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "pids", "xvs-host1").CombinedOutput(); err == nil && len(strings.TrimSpace(string(out))) > 0 {
		t.Skip("a make demo-wnv is running on this machine; run make demo-wnv-clean first")
	}
	cmd := exec.Command("../scripts/demo-wnv.sh", "up")
	cmd.Env = append(append(os.Environ(), "BIN="+binDir), env...)
	out, err := cmd.CombinedOutput()
	t.Cleanup(func() {
		c := exec.Command("../scripts/demo-wnv.sh", "clean")
		c.Env = append(os.Environ(), "BIN="+binDir)
		c.Run()
	})
	if err != nil {
		t.Fatalf("demo-wnv %v: %v\n%s", env, err, out)
	}
}

// nameServer answers every TCP connection on port 7777 with name.
func nameServer(t *testing.T, ns, name string) {
	background(t, "ip", "netns", "exec", ns, systemPython, "-c", fmt.Sprintf(`
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7777)); s.listen(8)
while True:
    c, _ = s.accept(); c.sendall(b"%s"); c.close()`, name))
}

func askName(ns, addr string) string {
	out, _ := exec.Command("ip", "netns", "exec", ns, systemPython, "-c", fmt.Sprintf(`
import socket
try:
    s = socket.create_connection(("%s", 7777), timeout=2); print(s.recv(64).decode())
except Exception as e:
    print("error:", e)`, addr)).CombinedOutput()
	return strings.TrimSpace(string(out))
}

// TestDemoWNV checks the two-host, two-tenant scenario end to end:
// who answers at each overlapping address, routing, isolation, what the
// fabric carries (decoded by tshark), and what decapsulation refuses.
func TestDemoWNV(t *testing.T) {
	needRoot(t, "ping", "tshark", "iperf3")
	if _, err := exec.Command(systemPython, "-c", "import scapy").CombinedOutput(); err != nil {
		t.Skip("python3-scapy not installed")
	}
	demoWNV(t)
	pcap := filepath.Join(t.TempDir(), "fabric.pcap")
	capture := background(t, "ip", "netns", "exec", "xvs-fabric", "tshark", "-q", "-i", "fabric0", "-a", "duration:10", "-w", pcap)
	// tshark's capture (dumpcap) creates the file once it captures: on a
	// loaded machine that takes seconds, and traffic sent before is lost.
	if !testutil.Poll(20*time.Second, func() bool { _, err := os.Stat(pcap); return err == nil }) {
		t.Fatalf("tshark did not start capturing on the fabric within 20 s")
	}
	time.Sleep(500 * time.Millisecond)
	nameServer(t, "xvs-blue2", "blue2")
	nameServer(t, "xvs-red2", "red2")
	time.Sleep(300 * time.Millisecond)
	if got := askName("xvs-blue1", "10.0.0.7"); got != "blue2" {
		t.Errorf("xvs-blue1 asking 10.0.0.7: %q, want blue2", got)
	}
	if got := askName("xvs-red1", "10.0.0.7"); got != "red2" {
		t.Errorf("xvs-red1 asking 10.0.0.7: %q, want red2", got)
	}
	if out, err := exec.Command("ip", "netns", "exec", "xvs-blue1", "ping", "-c", "2", "-i", "0.2", "-W", "2", "10.0.1.5").CombinedOutput(); err != nil {
		t.Errorf("xvs-blue1 -> 10.0.1.5 (routed to blue3 on the other host): %v\n%s", err, out)
	}
	if out, err := exec.Command("ip", "netns", "exec", "xvs-red1", "ping", "-c", "2", "-i", "0.2", "-W", "1", "10.0.1.5").CombinedOutput(); err == nil {
		t.Errorf("xvs-red1 reached Blue's 10.0.1.5:\n%s", out)
	}
	capture.Wait()

	// The fabric: NVGRE for VSIDs 5001, 5002 and 6001 with several FlowIDs;
	// no ARP from a VM (only for the PAs).
	fields := []string{"-e", "ip.src", "-e", "ip.dst", "-e", "gre.key"}
	out, err := exec.Command("tshark", append([]string{"-r", pcap, "-Y", "gre"}, append([]string{"-T", "fields"}, fields...)...)...).Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	vsids, flows := map[uint64]bool{}, map[uint64]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			continue
		}
		var key uint64
		fmt.Sscanf(f[2], "0x%x", &key)
		vsids[key>>8], flows[key&0xff] = true, true
	}
	for _, v := range []uint64{5001, 5002, 6001} {
		if !vsids[v] {
			t.Errorf("no NVGRE frame with VSID %d on the fabric (saw %v)", v, vsids)
		}
	}
	if len(flows) < 2 {
		t.Errorf("FlowIDs on the fabric: %v, want several", flows)
	}
	if _, err := os.Stat("../../shared/nvgre.lua"); err == nil {
		out, err := exec.Command("tshark", "-r", pcap, "-X", "lua_script:../../shared/nvgre.lua", "-Y", "gre", "-T", "fields", "-e", "nvgre.vsid").Output()
		if err != nil || !strings.Contains(string(out), "6001") {
			t.Errorf("nvgre.lua did not decode VSID 6001: %v\n%s", err, out)
		}
	}
	arps, _ := exec.Command("tshark", "-r", pcap, "-Y", "arp", "-T", "fields", "-e", "arp.src.proto_ipv4").Output()
	for _, a := range strings.Fields(string(arps)) {
		if !strings.HasPrefix(a, "192.168.100.") {
			t.Errorf("ARP from %s on the fabric: VMs' ARP must never leave their host", a)
		}
	}

	// Crafted NVGRE to host 2: wrong VSID, foreign source PA, truncated.
	upMAC, _ := exec.Command("ip", "netns", "exec", "xvs-host2", "cat", "/sys/class/net/uplink/address").Output()
	before := drops(t, "xvs-host2")
	script := fmt.Sprintf(`from scapy.all import *
o = Ether(dst="%s")
inner = Ether(src="02:00:00:00:00:99", dst="ff:ff:ff:ff:ff:ff")/IP(src="10.0.0.5", dst="10.0.0.7")/ICMP()
g = lambda vsid: GRE(key_present=1, key=vsid<<8, proto=0x6558)
sendp(o/IP(src="192.168.100.1", dst="192.168.100.2")/g(9999)/inner, iface="host2", verbose=False)
sendp(o/IP(src="192.168.100.77", dst="192.168.100.2")/g(5001)/inner, iface="host2", verbose=False)
sendp(o/IP(src="192.168.100.1", dst="192.168.100.2", proto=47)/Raw(b"\x20\x00\x65"), iface="host2", verbose=False)
`, strings.TrimSpace(string(upMAC)))
	if out, err := exec.Command("ip", "netns", "exec", "xvs-fabric", systemPython, "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("scapy: %v\n%s", err, out)
	}
	time.Sleep(500 * time.Millisecond)
	after := drops(t, "xvs-host2")
	for _, r := range []string{"nvgre-vsid", "nvgre-src", "nvgre-invalid"} {
		if after[r] <= before[r] {
			t.Errorf("crafted NVGRE for %s was not counted (before %d, after %d)", r, before[r], after[r])
		}
	}
}

var dropRe = regexp.MustCompile(`"([a-z-]+)": (\d+)`)

// drops reads the uplink's drop counters of the demo host's xvsd.
func drops(t *testing.T, host string) map[string]int {
	t.Helper()
	sock := "/run/xvs/wnv-" + strings.TrimPrefix(host, "xvs-") + ".sock"
	out, err := exec.Command(filepath.Join(binDir, "xvsctl"), "--socket", sock, "-o", "json", "stats", "uplink").Output()
	if err != nil {
		t.Fatalf("xvsctl stats: %v", err)
	}
	m := map[string]int{}
	for _, g := range dropRe.FindAllStringSubmatch(string(out), -1) {
		var n int
		fmt.Sscan(g[2], &n)
		m[g[1]] = n
	}
	return m
}

// TestDemoWNVIperf: TCP across the hosts with NVGRE and with IP rewrite.
func TestDemoWNVIperf(t *testing.T) {
	needRoot(t, "iperf3")
	for _, env := range [][]string{{"REWRITE=0"}, {"REWRITE=1"}} {
		t.Run(env[0], func(t *testing.T) {
			demoWNV(t, env...)
			b1 := vm{NS: "xvs-blue1", IP: "10.0.0.5"}
			b2 := vm{NS: "xvs-blue2", IP: "10.0.0.7"}
			gbps := iperf(t, b1, b2, 2)
			t.Logf("iperf3 blue1 -> blue2 across hosts (%s): %.2f Gbit/s", env[0], gbps)
			if gbps < 0.1 {
				t.Errorf("iperf3 across hosts (%s): %.3f Gbit/s", env[0], gbps)
			}
		})
	}
}

// TestDemoWNVMove: blue2 "moves" to host 1 (a new VM with its MAC and
// address appears there, the old one goes away) and the lookup records
// are changed on both hosts with xvsctl: traffic from blue1 follows within
// a second, nothing restarted.
func TestDemoWNVMove(t *testing.T) {
	needRoot(t, "ping")
	demoWNV(t)
	ctl := func(host string, args ...string) {
		t.Helper()
		out, err := exec.Command(filepath.Join(binDir, "xvsctl"), append([]string{"--socket", "/run/xvs/wnv-" + host + ".sock"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("xvsctl %s %s: %v\n%s", host, strings.Join(args, " "), err, out)
		}
	}
	nameServer(t, "xvs-blue2", "blue2")
	time.Sleep(300 * time.Millisecond)
	if got := askName("xvs-blue1", "10.0.0.7"); got != "blue2" {
		t.Fatalf("before the move: %q, want blue2", got)
	}
	mac := strings.TrimSpace(sh(t, "ip", "netns", "exec", "xvs-blue2", "cat", "/sys/class/net/eth0/address"))
	// the VM on its new host: same MAC and address, attached to host1
	const ns = "xvs-blue2moved"
	sh(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	sh(t, "ip", "link", "add", "blue2m", "type", "veth", "peer", "name", "eth0", "netns", ns)
	sh(t, "ip", "link", "set", "blue2m", "netns", "xvs-host1")
	sh(t, "ip", "-n", "xvs-host1", "link", "set", "blue2m", "up")
	sh(t, "ip", "-n", ns, "link", "set", "eth0", "address", mac)
	sh(t, "ip", "-n", ns, "addr", "add", "10.0.0.7/24", "dev", "eth0")
	sh(t, "ip", "-n", ns, "link", "set", "eth0", "up")
	sh(t, "ip", "-n", ns, "route", "add", "default", "via", "10.0.0.1")
	sh(t, "ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tx", "off")
	nameServer(t, ns, "blue2-moved")
	sh(t, "ip", "-n", "xvs-blue2", "link", "set", "eth0", "down")
	ctl("host1", "port", "add", "blue2m", "--type", "afxdp", "--dev", "blue2m", "--vsid", "5001")
	start := time.Now()
	for _, h := range []string{"host1", "host2"} {
		ctl(h, "lookup-record", "remove", "--vsid", "5001", "--ca", "10.0.0.7")
		ctl(h, "lookup-record", "add", "--vsid", "5001", "--ca", "10.0.0.7", "--mac", mac, "--pa", "192.168.100.1", "--port", "blue2m")
	}
	var got string
	for time.Since(start) < 3*time.Second {
		if got = askName("xvs-blue1", "10.0.0.7"); got == "blue2-moved" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(start)
	t.Logf("traffic followed the moved VM after %v", took.Round(time.Millisecond))
	if got != "blue2-moved" || took > time.Second+500*time.Millisecond {
		t.Fatalf("after the move: %q after %v, want blue2-moved within about 1 s", got, took)
	}
}
