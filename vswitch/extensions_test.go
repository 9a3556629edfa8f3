package vswitch

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xvswitch/xvs/extensions"
	"github.com/xvswitch/xvs/extensions/exttest"
	"github.com/xvswitch/xvs/internal/testutil"
)

// These tests run real extension processes: the example extensions and
// the misbehaving ones of extensions/internal/testplugins, built once per
// test binary.

// plugin builds an extension binary (see exttest.Build).
func plugin(t *testing.T, pkg string) string { return exttest.Build(t, pkg) }

func TestMain(m *testing.M) {
	code := m.Run()
	exttest.Cleanup()
	os.Exit(code)
}

// extUDP builds an Ethernet/IPv4/UDP frame from src to dst with the given
// ports and a zeroed payload of n bytes.
func extUDP(dst, src net.HardwareAddr, sip, dip string, sport, dport uint16, n int) []byte {
	f := make([]byte, 14+20+8+n)
	copy(f, dst)
	copy(f[6:], src)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+n))
	copy(ip[12:], net.ParseIP(sip).To4())
	copy(ip[16:], net.ParseIP(dip).To4())
	binary.BigEndian.PutUint16(ip[20:], sport)
	binary.BigEndian.PutUint16(ip[22:], dport)
	binary.BigEndian.PutUint16(ip[24:], uint16(8+n))
	return f
}

// extRig is a started switch of two workers (so each extension serves two
// ring pairs) with queue ports vm1, vm2 (VSID 5001) and mon (VSID 0).
func extRig(t *testing.T) *rig {
	t.Helper()
	r := newRig(t, Config{Workers: 2}, map[string]uint32{"vm1": 5001, "vm2": 5001, "mon": 0})
	if err := r.sw.Start(); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) load(cfg extensions.Config) {
	r.t.Helper()
	if err := r.sw.LoadExtension(cfg, -1); err != nil {
		r.t.Fatal(err)
	}
}

// expectVia sends f on port in and checks that exactly want frames arrive on
// port out (waiting up to a second for them, then a little for extras).
func (r *rig) expectVia(in, out string, f []byte, want int) [][]byte {
	r.t.Helper()
	r.p[in].Inject(f)
	if want == 0 {
		time.Sleep(150 * time.Millisecond)
		if got := r.p[out].Sent(); len(got) != 0 {
			r.t.Fatalf("%s -> %s: %d frames arrived, want none", in, out, len(got))
		}
		return nil
	}
	got, err := r.p[out].WaitSent(want, 2*time.Second)
	if err != nil {
		r.t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	got = append(got, r.p[out].Sent()...)
	if len(got) != want {
		r.t.Fatalf("%s -> %s: %d frames, want %d", in, out, len(got), want)
	}
	return got
}

func (r *rig) extInfo(name string) ExtensionInfo {
	r.t.Helper()
	for _, x := range r.sw.Extensions() {
		if x.Name == name {
			return x
		}
	}
	r.t.Fatalf("extension %s not loaded", name)
	return ExtensionInfo{}
}

func TestExtensionChainOrder(t *testing.T) {
	r := extRig(t)
	tagger := plugin(t, "extensions/internal/testplugins/tagger")
	r.load(extensions.Config{Name: "a", Path: tagger, Settings: map[string]string{"tag": "A"}})
	r.load(extensions.Config{Name: "b", Path: tagger, Settings: map[string]string{"tag": "B"}})
	got := r.expectVia("vm1", "vm2", extUDP(macB, macA, "10.0.0.1", "10.0.0.2", 1000, 2000, 8), 1)
	if p := got[0][42:46]; string(p) != "ABBA" {
		t.Fatalf("payload %q: want ABBA (ingress a then b, egress b then a)", p)
	}
	if err := r.sw.OrderExtensions([]string{"b", "a"}); err != nil {
		t.Fatal(err)
	}
	got = r.expectVia("vm1", "vm2", extUDP(macB, macA, "10.0.0.1", "10.0.0.2", 1000, 2000, 8), 1)
	if p := got[0][42:46]; string(p) != "BAAB" {
		t.Fatalf("after reorder: payload %q: want BAAB", p)
	}
	if err := r.sw.SetExtensionEnabled("a", false); err != nil {
		t.Fatal(err)
	}
	got = r.expectVia("vm1", "vm2", extUDP(macB, macA, "10.0.0.1", "10.0.0.2", 1000, 2000, 8), 1)
	if p := got[0][42:46]; string(p) != "BB\x00\x00" {
		t.Fatalf("with a disabled: payload %q: want BB", p)
	}
	if err := r.sw.OrderExtensions([]string{"b"}); err == nil {
		t.Fatal("an order that leaves an extension out was accepted")
	}
}

// A filter's injected frame enters as if received on the port it names:
// forwarded within that port's VSID, through the rest of the chain.
func TestExtensionInject(t *testing.T) {
	r := extRig(t)
	tagger := plugin(t, "extensions/internal/testplugins/tagger")
	r.load(extensions.Config{Name: "inj", Path: tagger, Settings: map[string]string{"tag": "X", "inject": "vm1"}})
	got, err := r.p["vm2"].WaitSent(1, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(got[0][14:], []byte("injX")) {
		t.Fatalf("vm2 got %q, want the injected frame", got[0][14:18])
	}
	if n := r.extInfo("inj").Counters["injected"]; n != 1 {
		t.Fatalf("injected counter %d, want 1", n)
	}
	if got := r.p["mon"].Sent(); len(got) != 0 {
		t.Fatalf("an injected frame of VSID 5001 reached VSID 0")
	}
}

func writeRules(t *testing.T, path, rules string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestExtensionACL(t *testing.T) {
	r := extRig(t)
	rules := filepath.Join(t.TempDir(), "acl.yaml")
	writeRules(t, rules, "default: allow\nrules:\n  - action: deny\n    protocol: udp\n    dport: 7\n")
	r.load(extensions.Config{Name: "acl", Path: plugin(t, "extensions/examples/aclfilter"),
		Settings: map[string]string{"rules": rules}})
	to7 := extUDP(macB, macA, "10.0.0.1", "10.0.0.2", 1000, 7, 8)
	to8 := extUDP(macB, macA, "10.0.0.1", "10.0.0.2", 1000, 8, 8)
	for range 3 { // the first frame asks the extension, the others hit the cache
		r.expectVia("vm1", "vm2", to7, 0)
		r.expectVia("vm1", "vm2", to8, 1)
	}
	if n := r.drops("vm1", DropExtension); n != 3 {
		t.Fatalf("extension-drop on vm1 = %d, want 3", n)
	}
	c := r.extInfo("acl").Counters
	// One request per flow and direction: to7 on ingress; to8 on ingress
	// and on egress (it passed); every later frame hits the cache.
	if c["sent"] != 3 || c["cache-hits"] != 6 {
		t.Fatalf("sent %d cache-hits %d: want 3 and 6 (one request per flow and direction)", c["sent"], c["cache-hits"])
	}
	// A rule change reaches cached flows too.
	writeRules(t, rules, "default: allow\nrules:\n  - action: deny\n    protocol: udp\n    dport: 8\n")
	testutil.Eventually(t, 5*time.Second, func() bool {
		r.p["vm1"].Inject(to8)
		time.Sleep(50 * time.Millisecond)
		return len(r.p["vm2"].Sent()) == 0
	}, "rule reload")
	r.expectVia("vm1", "vm2", to7, 1)
	r.expectVia("vm1", "vm2", to8, 0)
}

// TestExtensionACLRuns interleaves flows in each batch, with rules that
// differ by direction: a verdict reused for the frames of a run (ingress by
// their bytes, egress by the run's flow tag) must never carry over to
// another flow or to the other direction.
func TestExtensionACLRuns(t *testing.T) {
	r := extRig(t)
	rules := filepath.Join(t.TempDir(), "acl.yaml")
	writeRules(t, rules, "default: allow\nrules:\n"+
		"  - action: deny\n    direction: egress\n    protocol: udp\n    dport: 7\n"+
		"  - action: deny\n    direction: ingress\n    protocol: udp\n    dport: 9\n")
	r.load(extensions.Config{Name: "acl", Path: plugin(t, "extensions/examples/aclfilter"),
		Settings: map[string]string{"rules": rules}})
	a := extUDP(macB, macA, "10.0.0.1", "10.0.0.2", 1000, 8, 8)       // passes
	egress7 := extUDP(macB, macA, "10.0.0.1", "10.0.0.2", 1000, 7, 8) // passes ingress, denied on egress
	ingress9 := extUDP(macB, macA, "10.0.0.1", "10.0.0.2", 1000, 9, 8)
	d := extUDP(macB, macA, "10.0.0.1", "10.0.0.2", 1001, 8, 8) // passes
	var batch [][]byte
	for _, run := range []struct {
		f []byte
		n int
	}{{a, 4}, {egress7, 3}, {a, 2}, {ingress9, 2}, {d, 3}, {a, 1}} {
		for range run.n {
			batch = append(batch, run.f)
		}
	}
	const rounds = 5
	for round := range rounds {
		r.p["vm1"].Inject(batch...)
		got, err := r.p["vm2"].WaitSent(10, 2*time.Second)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		time.Sleep(30 * time.Millisecond)
		got = append(got, r.p["vm2"].Sent()...)
		var na, nd int
		for _, f := range got {
			switch {
			case bytes.Equal(f, a):
				na++
			case bytes.Equal(f, d):
				nd++
			default:
				t.Fatalf("round %d: a frame of a denied flow arrived (UDP port %d)", round, binary.BigEndian.Uint16(f[36:]))
			}
		}
		if na != 7 || nd != 3 {
			t.Fatalf("round %d: %d frames of flow a (want 7) and %d of flow d (want 3)", round, na, nd)
		}
	}
	if n := r.drops("vm1", DropExtension); n != 2*rounds {
		t.Errorf("extension-drop on vm1 (ingress, port 9) = %d, want %d", n, 2*rounds)
	}
	if n := r.drops("vm2", DropExtension); n != 3*rounds {
		t.Errorf("extension-drop on vm2 (egress, port 7) = %d, want %d", n, 3*rounds)
	}
	if c := r.extInfo("acl").Counters; c["cache-hits"] == 0 || c["sent"] > 2*4 {
		t.Errorf("cache-hits %d, sent %d: want hits and at most one request per flow and direction", c["cache-hits"], c["sent"])
	}
}

func TestExtensionMirror(t *testing.T) {
	r := extRig(t)
	r.addPort("vm3", 5002)
	r.addPort("vm4", 5002)
	r.load(extensions.Config{Name: "mirror", Path: plugin(t, "extensions/examples/mirror"),
		Settings: map[string]string{"monitor": "mon", "vsids": "5001"}})
	f := extUDP(macB, macA, "10.0.0.1", "10.0.0.2", 1000, 2000, 8)
	for range 2 {
		r.expectVia("vm1", "vm2", f, 1)
		if got, err := r.p["mon"].WaitSent(1, time.Second); err != nil || !bytes.Equal(got[0], f) {
			t.Fatalf("monitor port: %v %d frames", err, len(got))
		}
	}
	// VSID 5002 is not mirrored.
	r.expectVia("vm3", "vm4", f, 1)
	if got := r.p["mon"].Sent(); len(got) != 0 {
		t.Fatalf("monitor got %d frames of an unmirrored VSID", len(got))
	}
	if err := r.sw.LoadExtension(extensions.Config{Name: "mirror2", Path: plugin(t, "extensions/examples/mirror"),
		Settings: map[string]string{"monitor": "mon", "vsids": "5002"}}, -1); err == nil {
		t.Fatal("a second forwarding extension was loaded")
	}
}

func TestExtensionCapture(t *testing.T) {
	r := extRig(t)
	dir := t.TempDir()
	r.load(extensions.Config{Name: "cap", Path: plugin(t, "extensions/examples/pcapcapture"),
		Directions: extensions.DirIngress, Settings: map[string]string{"dir": dir}})
	for i := range 10 {
		r.expectVia("vm1", "vm2", extUDP(macB, macA, "10.0.0.1", "10.0.0.2", 1000, uint16(2000+i), 8), 1)
	}
	testutil.Eventually(t, 2*time.Second, func() bool { return r.extInfo("cap").Counters["captured"] == 10 }, "10 captured")
	if err := r.sw.UnloadExtension("cap"); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.pcapng"))
	if len(files) == 0 {
		t.Fatal("no pcapng file written")
	}
	if _, err := r.sw.ExtensionStats("cap"); err == nil {
		t.Fatal("stats of an unloaded extension")
	}
}

// A filter that never answers is failed at its deadline; fail-open passes
// its frames, fail-closed drops them, and it is restarted.
func TestExtensionSleeperFailsOpenAndClosed(t *testing.T) {
	for _, mode := range []extensions.FailMode{extensions.FailOpen, extensions.FailClosed} {
		t.Run(mode.String(), func(t *testing.T) {
			r := extRig(t)
			r.load(extensions.Config{Name: "zz", Path: plugin(t, "extensions/internal/testplugins/sleeper"),
				Fail: mode, Deadline: 100 * time.Millisecond})
			r.p["vm1"].Inject(extUDP(macB, macA, "10.0.0.1", "10.0.0.2", 1000, 2000, 8))
			testutil.Eventually(t, 3*time.Second, func() bool { return r.extInfo("zz").LastError != "" }, "failure detected")
			got, _ := r.p["vm2"].WaitSent(1, 500*time.Millisecond)
			if mode == extensions.FailOpen && len(got) != 1 {
				t.Fatalf("fail-open: the waiting frame did not pass")
			}
			if mode == extensions.FailClosed && len(got) != 0 {
				t.Fatalf("fail-closed: the waiting frame passed")
			}
			testutil.Eventually(t, 5*time.Second, func() bool { return r.extInfo("zz").Restarts >= 1 }, "restart")
		})
	}
}

// Garbage from an extension is counted, never trusted, and never crashes
// the switch.
func TestExtensionGarbageDescriptors(t *testing.T) {
	r := extRig(t)
	r.load(extensions.Config{Name: "junk", Path: plugin(t, "extensions/internal/testplugins/garbage"),
		Fail: extensions.FailOpen})
	for i := range 2000 {
		r.p["vm1"].Inject(extUDP(macB, macA, "10.0.0.1", "10.0.0.2", uint16(i), 2000, 8))
		if i%64 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	testutil.Eventually(t, 3*time.Second, func() bool {
		return r.extInfo("junk").Counters["invalid"] > 100
	}, "invalid descriptors counted")
	if err := r.sw.UnloadExtension("junk"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // frames still waiting for a verdict pass (unloaded = absent)
	r.p["vm2"].Sent()
	r.expectVia("vm1", "vm2", extUDP(macB, macA, "10.0.0.1", "10.0.0.2", 1, 2, 8), 1)
}

// kill -9 of an extension: it comes back with a new process.
func TestExtensionKilledIsRestarted(t *testing.T) {
	r := extRig(t)
	rules := filepath.Join(t.TempDir(), "acl.yaml")
	writeRules(t, rules, "default: allow\n")
	r.load(extensions.Config{Name: "acl", Path: plugin(t, "extensions/examples/aclfilter"),
		Fail: extensions.FailOpen, Settings: map[string]string{"rules": rules}})
	pid := r.extInfo("acl").PID
	if pid == 0 {
		t.Fatal("no pid")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		x := r.extInfo("acl")
		return x.State == "running" && x.PID != pid && x.PID != 0
	}, "restart after kill -9")
	r.expectVia("vm1", "vm2", extUDP(macB, macA, "10.0.0.1", "10.0.0.2", 1, 2, 8), 1)
	if x := r.extInfo("acl"); x.Restarts != 1 || x.LastError != "process exited" {
		t.Fatalf("restarts %d last error %q", x.Restarts, x.LastError)
	}
}

func TestLoadExtensionErrors(t *testing.T) {
	r := extRig(t)
	for _, tc := range []struct {
		cfg  extensions.Config
		want string
	}{
		{extensions.Config{Name: "x", Path: "/nonexistent/ext"}, "executable"},
		{extensions.Config{Name: "bad name", Path: "/bin/true"}, "name"},
		{extensions.Config{Name: "x", Path: "relative"}, "absolute"},
		{extensions.Config{Name: "x", Path: "/bin/true"}, "start"}, // not a plugin
	} {
		err := r.sw.LoadExtension(tc.cfg, -1)
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
			t.Errorf("%+v: error %v, want one mentioning %q", tc.cfg, err, tc.want)
		}
	}
	if len(r.sw.Extensions()) != 0 {
		t.Fatal("a failed load left an extension behind")
	}
}

// rogueRig is extRig with vm3 and vm4 in VSID 5002, and the rogue test
// extension loaded in mode for VSID 5001 only (failing open), its second
// argument target.
func rogueRig(t *testing.T, mode, target string, deadline time.Duration) *rig {
	r := extRig(t)
	r.addPort("vm3", 5002)
	r.addPort("vm4", 5002)
	r.load(extensions.Config{Name: "rogue", Path: plugin(t, "extensions/internal/testplugins/rogue"),
		Args: []string{mode, target}, VSIDs: []uint32{5001}, Fail: extensions.FailOpen, Deadline: deadline})
	return r
}

// attack sends frames of new flows into the rogue's scope (vm1) until
// done, checking after each burst that VSID 5002 (vm3 -> vm4), outside
// its scope, still forwards.
func (r *rig) attack(what string, done func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; !done(); i++ {
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: not seen within 5s", what)
		}
		for j := range 16 {
			r.p["vm1"].Inject(extUDP(macB, macA, "10.0.0.1", "10.0.0.2", uint16(16*i+j), 2000, 8))
		}
		r.expectVia("vm3", "vm4", extUDP(macB, macA, "10.0.0.3", "10.0.0.4", 1, 2, 8), 1)
	}
}

// An extension that moves its ring indexes out of the ring's geometry is
// failed for a protocol error and restarted; the switch stays up.
func TestExtensionRogueRingIndexes(t *testing.T) {
	for _, mode := range []string{"move-consumer-index", "move-producer-index"} {
		t.Run(mode, func(t *testing.T) {
			r := rogueRig(t, mode, "", time.Second)
			r.attack("protocol error", func() bool { return r.extInfo("rogue").Counters["protocol-errors"] > 0 })
			testutil.Eventually(t, 5*time.Second, func() bool { return r.extInfo("rogue").Restarts >= 1 }, "restart")
			if e := r.extInfo("rogue").LastError; !strings.Contains(e, "protocol error") {
				t.Fatalf("last error %q, want a protocol error", e)
			}
			r.expectVia("vm3", "vm4", extUDP(macB, macA, "10.0.0.3", "10.0.0.4", 1, 2, 8), 1)
		})
	}
}

// An injection on a port outside the extension's scope is dropped and
// counted (extension-scope on that port, out-of-scope on the extension).
func TestExtensionRogueInjectOutOfScope(t *testing.T) {
	r := rogueRig(t, "inject-out-of-scope", "vm3", time.Second)
	r.attack("extension-scope drop", func() bool { return r.drops("vm3", DropExtensionScope) > 0 })
	if n := r.extInfo("rogue").Counters["out-of-scope"]; n == 0 {
		t.Fatal("out-of-scope not counted on the extension")
	}
	if n := r.extInfo("rogue").Counters["injected"]; n != 0 {
		t.Fatalf("%d frames injected out of scope", n)
	}
	time.Sleep(50 * time.Millisecond)
	for _, f := range r.p["vm4"].Sent() {
		if bytes.Contains(f, []byte{10, 0, 0, 1}) {
			t.Fatal("a frame of VSID 5001 reached VSID 5002")
		}
	}
}

// A forwarding decision naming a port of another VSID is dropped as
// extension-scope on the port the frame came in on.
func TestExtensionRogueForwardOutOfVSID(t *testing.T) {
	r := rogueRig(t, "forward-out-of-vsid", "vm3", time.Second)
	r.attack("extension-scope drop", func() bool { return r.drops("vm1", DropExtensionScope) > 0 })
	time.Sleep(50 * time.Millisecond)
	for _, f := range r.p["vm3"].Sent() {
		if bytes.Contains(f, []byte{10, 0, 0, 1}) {
			t.Fatal("a frame of VSID 5001 left by a port of VSID 5002")
		}
	}
}
