package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// twoVMs attaches vm1 and vm2 (VSID 5001) as AF_XDP ports of an xvsd
// whose config has the given extensions: YAML.
func twoVMs(t *testing.T, extYAML string) (*xvsd, vm, vm) {
	tp := newTopo(t)
	a := tp.vethVM("vm1", "10.0.0.1")
	b := tp.vethVM("vm2", "10.0.0.2")
	ports := fmt.Sprintf("  - {name: vm1, type: afxdp, dev: %s, vsid: 5001}\n  - {name: vm2, type: afxdp, dev: %s, vsid: 5001}\n", a.Host, b.Host)
	return startXVSDIn(t, "", ports, extYAML), a, b
}

type extInfo struct {
	Name      string            `json:"name"`
	State     string            `json:"state"`
	PID       int               `json:"pid"`
	Restarts  uint64            `json:"restarts"`
	LastError string            `json:"last_error"`
	Counters  map[string]uint64 `json:"counters"`
}

func (d *xvsd) extension(name string) extInfo {
	d.t.Helper()
	var out []extInfo
	if err := json.Unmarshal([]byte(d.ctl("-o", "json", "extension", "stats", name)), &out); err != nil || len(out) != 1 {
		d.t.Fatalf("xvsctl extension stats %s: %v (%d entries)", name, err, len(out))
	}
	return out[0]
}

func (d *xvsd) portDrops(port, reason string) uint64 {
	d.t.Helper()
	var st []struct {
		Name  string            `json:"name"`
		Drops map[string]uint64 `json:"drops"`
	}
	if err := json.Unmarshal([]byte(d.ctl("-o", "json", "stats", port)), &st); err != nil || len(st) == 0 {
		d.t.Fatalf("xvsctl stats %s: %v", port, err)
	}
	return st[0].Drops[reason]
}

// TestExtensionCaptureMatchesTraffic pings through xvs with pcapcapture on
// ingress and reads the file back with tshark: every echo, with its port
// and VSID in the packet comment.
func TestExtensionCaptureMatchesTraffic(t *testing.T) {
	needRoot(t, "ping", "tshark")
	dir := t.TempDir()
	d, a, b := twoVMs(t, fmt.Sprintf(`extensions:
  - name: cap
    path: %s
    direction: ingress
    config: {dir: %s}
`, filepath.Join(binDir, "pcapcapture"), dir))
	a.exec(t, "ping", "-c", "5", "-i", "0.2", "-W", "2", b.IP)
	time.Sleep(300 * time.Millisecond) // the extension flushes every 200 ms
	d.ctl("extension", "unload", "cap")
	files, _ := filepath.Glob(filepath.Join(dir, "*.pcapng"))
	if len(files) != 1 {
		t.Fatalf("%d capture files, want 1", len(files))
	}
	out, err := try("tshark", "-r", files[0], "-Y", "icmp", "-T", "fields", "-e", "ip.src", "-e", "icmp.type", "-e", "frame.comment")
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	want := map[string]int{
		"10.0.0.1 8 port=vm1 vsid=5001 dir=ingress": 5,
		"10.0.0.2 0 port=vm2 vsid=5001 dir=ingress": 5,
	}
	got := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Split(l, "\t"); len(f) == 3 {
			got[f[0]+" "+f[1]+" "+f[2]]++
		}
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%q: %d packets, want %d; tshark says:\n%s", k, got[k], n, out)
		}
	}
	if len(got) != len(want) {
		t.Errorf("unexpected packets in the capture: %v", got)
	}
}

// TestExtensionACLRulesAndReload blocks ping with an aclfilter rule while
// ARP still passes, then changes the rule file and sees ping pass.
func TestExtensionACLRulesAndReload(t *testing.T) {
	needRoot(t, "ping", "arping")
	rules := filepath.Join(t.TempDir(), "acl.yaml")
	write := func(s string) {
		if err := os.WriteFile(rules+".new", []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(rules+".new", rules); err != nil {
			t.Fatal(err)
		}
	}
	write("default: allow\nrules:\n  - {action: deny, protocol: icmp, dst: 10.0.0.2/32}\n")
	d, a, b := twoVMs(t, fmt.Sprintf(`extensions:
  - name: acl
    path: %s
    fail: closed
    config: {rules: %s}
`, filepath.Join(binDir, "aclfilter"), rules))
	if out, err := a.try("ping", "-c", "2", "-i", "0.2", "-W", "1", b.IP); err == nil {
		t.Fatalf("ping passed a deny rule:\n%s", out)
	}
	if out, err := a.try("arping", "-c", "2", "-W", "0.2", "-w", "3", "-i", "eth0", b.IP); err != nil {
		t.Fatalf("arping blocked, but no rule denies ARP: %v\n%s", err, out)
	}
	if n := d.portDrops("vm1", "extension-drop"); n < 2 {
		t.Errorf("extension-drop on vm1 = %d, want at least 2", n)
	}
	write("default: allow\nrules:\n  - {action: deny, protocol: icmp, dst: 10.0.0.99/32}\n")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := a.try("ping", "-c", "1", "-W", "1", b.IP); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ping still blocked 5s after the rule changed; stats:\n%s", d.ctl("extension", "stats", "acl"))
		}
	}
}

// iperfIntervals runs iperf3 for seconds from a to b with 0.5 s intervals,
// calling during(elapsed) while it runs, and returns the Gbit/s of each
// interval.
func iperfIntervals(t *testing.T, a, b vm, seconds int, during func()) []float64 {
	t.Helper()
	background(t, "ip", "netns", "exec", b.NS, "iperf3", "-s", "-1", "-B", b.IP)
	time.Sleep(300 * time.Millisecond)
	type res struct {
		out string
		err error
	}
	done := make(chan res, 1)
	go func() {
		out, err := a.try("iperf3", "-c", b.IP, "-t", strconv.Itoa(seconds), "-i", "0.5", "-J")
		done <- res{out, err}
	}()
	during()
	r := <-done
	if r.err != nil && !strings.Contains(r.out, "intervals") {
		t.Fatalf("iperf3: %v\n%s", r.err, r.out)
	}
	var j struct {
		Intervals []struct {
			Sum struct {
				Bits float64 `json:"bits_per_second"`
			} `json:"sum"`
		} `json:"intervals"`
	}
	if err := json.Unmarshal([]byte(r.out), &j); err != nil {
		t.Fatalf("iperf3 output: %v\n%s", err, r.out)
	}
	var g []float64
	for _, i := range j.Intervals {
		g = append(g, i.Sum.Bits/1e9)
	}
	return g
}

// TestExtensionKill9DuringIperf kills the aclfilter process during an
// iperf3 run: fail-open keeps TCP flowing, fail-closed drops while the
// extension is down; either way it comes back with a new process and
// traffic flows afterwards.
func TestExtensionKill9DuringIperf(t *testing.T) {
	needRoot(t, "iperf3")
	for _, mode := range []string{"open", "closed"} {
		t.Run(mode, func(t *testing.T) {
			rules := filepath.Join(t.TempDir(), "acl.yaml")
			if err := os.WriteFile(rules, []byte("default: allow\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			d, a, b := twoVMs(t, fmt.Sprintf(`extensions:
  - name: acl
    path: %s
    fail: %s
    config: {rules: %s}
`, filepath.Join(binDir, "aclfilter"), mode, rules))
			before := d.extension("acl")
			var after extInfo
			g := iperfIntervals(t, a, b, 6, func() {
				time.Sleep(2500 * time.Millisecond)
				if err := syscall.Kill(before.PID, syscall.SIGKILL); err != nil {
					t.Errorf("kill -9 %d: %v", before.PID, err)
				}
				deadline := time.Now().Add(5 * time.Second)
				for {
					after = d.extension("acl")
					if after.State == "running" && after.PID != before.PID {
						break
					}
					if time.Now().After(deadline) {
						t.Errorf("extension not back 5s after kill -9: %+v", after)
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
			})
			t.Logf("fail-%s: Gbit/s per 0.5s: %.2f; extension back as pid %d (was %d), last error %q",
				mode, g, after.PID, before.PID, after.LastError)
			failedDrops := d.portDrops("vm1", "extension-failed") + d.portDrops("vm2", "extension-failed")
			if len(g) < 10 || g[len(g)-1] == 0 || g[len(g)-2] == 0 {
				t.Errorf("traffic did not flow after the extension returned: %v", g)
			}
			switch mode {
			case "open":
				for i, x := range g {
					if x == 0 {
						t.Errorf("fail-open: interval %d carried nothing: %v", i, g)
					}
				}
				if failedDrops != 0 {
					t.Errorf("fail-open dropped %d frames as extension-failed", failedDrops)
				}
				if after.Counters["fail-mode-frames"] == 0 {
					t.Errorf("fail-open: no frame met the fail mode (the extension was never seen down?)")
				}
			case "closed":
				if failedDrops == 0 {
					t.Errorf("fail-closed: no frame dropped while the extension was down")
				}
			}
		})
	}
}
