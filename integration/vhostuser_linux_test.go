package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	vue "github.com/xvswitch/xvs/integration/vhostuser_env"
	"github.com/xvswitch/xvs/vswitch"
)

// needVhostUser skips unless root and the peers' tools are installed.
func needVhostUser(t *testing.T, tools ...string) {
	t.Helper()
	needRoot(t)
	if m := vue.Missing(tools...); len(m) > 0 {
		t.Skipf("vhost-user test: %s not installed (see .ci/run for the packages)", strings.Join(m, ", "))
	}
}

func vhostPorts(ports ...string) string { return strings.Join(ports, "\n") + "\n" }

// startTestpmd starts dpdk-testpmd, stopped at cleanup, and with wait
// waits until it is attached (WaitConnected).
func startTestpmd(t *testing.T, ctx context.Context, o vue.TestpmdOpts, wait bool) *vue.Testpmd {
	t.Helper()
	tp, err := vue.StartTestpmd(ctx, o)
	if err != nil {
		t.Fatalf("testpmd on %s: %v", o.Socket, err)
	}
	t.Cleanup(func() { tp.Stop() })
	if wait {
		if err := tp.WaitConnected(ctx); err != nil {
			t.Fatalf("testpmd on %s: %v\n%s", o.Socket, err, tail(tp.Output(), 30))
		}
	}
	return tp
}

// portStats returns xvsd's counters of one port.
func portStats(t *testing.T, d *xvsd, name string) vswitch.PortStats {
	t.Helper()
	var st []vswitch.PortStats
	out := d.ctl("-o", "json", "stats", name)
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st) != 1 {
		t.Fatalf("xvsctl stats %s: %v\n%s", name, err, out)
	}
	return st[0]
}

// waitPortStats polls xvsd's counters of a port until cond holds.
func waitPortStats(t *testing.T, ctx context.Context, d *xvsd, name string, cond func(vswitch.PortStats) bool) {
	t.Helper()
	for {
		s := portStats(t, d, name)
		if cond(s) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("port %s: %v; last counters %+v\nstats:\n%s", name, ctx.Err(), s, d.ctl("stats"))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestVhostUserTestpmd attaches three DPDK virtio-user "guests" (dpdk-testpmd
// net_virtio_user) over vhost-user: tp1 and tp2 in VSID 5001 bounce frames
// to each other (macswap, tp1 starts with a burst), so each receives what
// the other sent through xvs; tp3 in VSID 5002 must receive nothing.
func TestVhostUserTestpmd(t *testing.T) {
	needVhostUser(t, "dpdk-testpmd")
	dir := t.TempDir()
	sock := func(n string) string { return filepath.Join(dir, n+".sock") }
	d := startXVSDIn(t, "", vhostPorts(
		fmt.Sprintf("  - {name: vu1, type: vhostuser, socket: %s, vsid: 5001}", sock("vu1")),
		fmt.Sprintf("  - {name: vu2, type: vhostuser, socket: %s, vsid: 5001}", sock("vu2")),
		fmt.Sprintf("  - {name: vu3, type: vhostuser, socket: %s, vsid: 5002}", sock("vu3")),
	), "")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := func(name, mode, main string) *vue.Testpmd {
		// Each one sends a first burst (--tx-first) so that xvs counting
		// frames from its port shows the port attached.
		return startTestpmd(t, ctx, vue.TestpmdOpts{Socket: sock(name), Virtio: true, Mode: mode,
			Cores: "0,1", MainLcore: main, Mbufs: 4096, Extra: []string{"--tx-first"},
			MAC: "02:00:00:00:10:0" + name[len(name)-1:]}, true)
	}
	received := func(s vswitch.PortStats) bool { return s.RxFrames > 0 }
	// vu3 must be attached, or its receiving nothing below proves nothing.
	tp3 := start("vu3", "rxonly", "1")
	waitPortStats(t, ctx, d, "vu3", received)
	// Frames from vu2 mean xvs has vu2's rings, its receive queue among
	// them, so tp1's first burst, the one that bounces, reaches tp2.
	tp2 := start("vu2", "macswap", "1")
	waitPortStats(t, ctx, d, "vu2", received)
	tp1 := start("vu1", "macswap", "0")
	for _, tp := range []*vue.Testpmd{tp1, tp2} {
		if _, err := tp.WaitStats(ctx, func(s vue.PortStats) bool { return s.RxPackets > 1000 }); err != nil {
			t.Fatalf("%s: frames did not come back through xvs: %v\n%s\nstats:\n%s", tp.Opts.Socket, err, tail(tp.Output(), 30), d.ctl("stats"))
		}
	}
	s3, ok := tp3.Stats()
	if !ok {
		t.Fatalf("tp3 printed no statistics\n%s", tail(tp3.Output(), 30))
	}
	x3 := portStats(t, d, "vu3")
	t.Logf("vu1 <-> vu2 bouncing; vu3 (other VSID) sent %d, received %d (xvs: rx %d tx %d)\n%s",
		s3.TxPackets, s3.RxPackets, x3.RxFrames, x3.TxFrames, d.ctl("stats"))
	if s3.RxPackets != 0 || x3.TxFrames != 0 {
		t.Errorf("vu3 in VSID 5002 received frames of VSID 5001: testpmd %d, xvs sent %d", s3.RxPackets, x3.TxFrames)
	}
}

// TestVhostUserReconnect restarts the guest side (a new testpmd on the same
// socket, as a restarted VM would) and, with xvs as the client, restarts
// xvsd while the guest waits: traffic flows again each time.
func TestVhostUserReconnect(t *testing.T) {
	needVhostUser(t, "dpdk-testpmd")
	dir := t.TempDir()
	srv, cli := filepath.Join(dir, "srv.sock"), filepath.Join(dir, "cli.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	// The guest listening (QEMU server=on): xvs connects as client.
	guestSrv := startTestpmd(t, ctx, vue.TestpmdOpts{Socket: cli, Server: true, Virtio: true, Mode: "rxonly",
		Cores: "0,1", MainLcore: "1", Mbufs: 4096}, false)
	d := startXVSDIn(t, "", vhostPorts(
		fmt.Sprintf("  - {name: vs, type: vhostuser, socket: %s, vsid: 5001}", srv),
		fmt.Sprintf("  - {name: vc, type: vhostuser, socket: %s, mode: client, vsid: 5001}", cli),
	), "")
	received := func(what string) {
		t.Helper()
		before, _ := guestSrv.Stats()
		sender := startTestpmd(t, ctx, vue.TestpmdOpts{Socket: srv, Virtio: true, Mode: "txonly",
			Cores: "0,1", MainLcore: "0", Mbufs: 4096}, false)
		// Gone before the next guest attaches to the same socket.
		defer sender.Stop()
		if _, err := guestSrv.WaitStats(ctx, func(s vue.PortStats) bool { return s.RxPackets > before.RxPackets+1000 }); err != nil {
			t.Fatalf("%s: no traffic: %v\nstats:\n%s", what, err, d.ctl("stats"))
		}
	}
	received("first guest")
	received("guest restarted on the same socket")
	d.stop()
	d.start()
	received("xvsd restarted while the client-mode guest waited")
}

// TestVhostUserSocketRecreated removes a server-mode port's socket file
// while xvsd runs (as a careless cleanup of the socket directory would):
// xvsd creates it again within a second, and a guest that then connects
// through it reaches the guest on another port.
func TestVhostUserSocketRecreated(t *testing.T) {
	needVhostUser(t, "dpdk-testpmd")
	dir := t.TempDir()
	srv, rx := filepath.Join(dir, "srv.sock"), filepath.Join(dir, "rx.sock")
	d := startXVSDIn(t, "", vhostPorts(
		fmt.Sprintf("  - {name: vs, type: vhostuser, socket: %s, vsid: 5001}", srv),
		fmt.Sprintf("  - {name: vr, type: vhostuser, socket: %s, vsid: 5001}", rx),
	), "")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	receiver := startTestpmd(t, ctx, vue.TestpmdOpts{Socket: rx, Virtio: true, Mode: "rxonly",
		Cores: "0,1", MainLcore: "1", Mbufs: 4096}, true)

	ino := func() uint64 {
		fi, err := os.Lstat(srv)
		if err != nil || fi.Mode().Type() != os.ModeSocket {
			return 0
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	if ino() == 0 {
		t.Fatalf("xvsd did not create %s", srv)
	}
	if err := os.Remove(srv); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for ino() == 0 {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("%s not created again within 5s\nstats:\n%s", srv, d.ctl("stats"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("socket created again after %v", time.Since(start).Round(time.Millisecond))

	startTestpmd(t, ctx, vue.TestpmdOpts{Socket: srv, Virtio: true, Mode: "txonly",
		Cores: "0,1", MainLcore: "0", Mbufs: 4096}, true)
	if _, err := receiver.WaitStats(ctx, func(s vue.PortStats) bool { return s.RxPackets > 1000 }); err != nil {
		t.Fatalf("no traffic through the recreated socket: %v\nstats:\n%s", err, d.ctl("stats"))
	}
	s, _ := receiver.Stats()
	t.Logf("vr received %d frames from the guest on the recreated socket", s.RxPackets)
}

// TestVhostUserQEMUGuests boots small Linux guests under QEMU (TCG) with
// virtio-net over vhost-user: one pings a namespace behind an AF_XDP port
// in its VSID, a second guest in the same VSID is reachable, and a guest in
// another VSID is not.
func TestVhostUserQEMUGuests(t *testing.T) {
	needVhostUser(t, "qemu-system-x86_64")
	kernel, initrd, err := vue.GuestImage("")
	if err != nil {
		t.Skipf("guest image: %v", err)
	}
	dir := t.TempDir()
	tp := newTopo(t)
	ns := tp.vethVM("ns1", "10.0.0.1")
	sock := func(n string) string { return filepath.Join(dir, n+".sock") }
	d := startXVSDIn(t, "", vhostPorts(
		fmt.Sprintf("  - {name: ns1, type: afxdp, dev: %s, vsid: 5001}", ns.Host),
		fmt.Sprintf("  - {name: g1, type: vhostuser, socket: %s, vsid: 5001}", sock("g1")),
		fmt.Sprintf("  - {name: g2, type: vhostuser, socket: %s, mode: client, vsid: 5001}", sock("g2")),
		fmt.Sprintf("  - {name: g3, type: vhostuser, socket: %s, vsid: 5002}", sock("g3")),
	), "")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// g2 stays up (QEMU as the vhost-user server, xvs connects) and is pinged.
	g2, err := vue.StartQEMU(ctx, vue.QEMUOpts{Kernel: kernel, Initrd: initrd, Socket: sock("g2"), Server: true,
		MAC: "52:54:00:00:00:02", IP: "10.0.0.2/24", Stay: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g2.Stop() })
	if _, err := g2.WaitFor(ctx, vue.MarkerReady); err != nil {
		t.Fatalf("g2 did not boot: %v\n%s", err, tail(g2.Output(), 40))
	}
	g1, err := vue.StartQEMU(ctx, vue.QEMUOpts{Kernel: kernel, Initrd: initrd, Socket: sock("g1"),
		MAC: "52:54:00:00:00:01", IP: "10.0.0.5/24", Ping: "10.0.0.1",
		Cmd: "ping -c 3 -W 5 10.0.0.2"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g1.Stop() })
	if err := g1.WaitPing(ctx); err != nil {
		t.Fatalf("guest g1 -> namespace 10.0.0.1 through xvs: %v\n%s\nstats:\n%s", err, tail(g1.Output(), 40), d.ctl("stats"))
	}
	if rc, err := g1.WaitCmd(ctx); err != nil || rc != 0 {
		t.Fatalf("guest g1 -> guest g2 (same VSID): rc %d %v\n%s", rc, err, tail(g1.Output(), 40))
	}
	g3, err := vue.StartQEMU(ctx, vue.QEMUOpts{Kernel: kernel, Initrd: initrd, Socket: sock("g3"),
		MAC: "52:54:00:00:00:03", IP: "10.0.0.3/24", Ping: "10.0.0.2", PingCount: 2, PingWait: 6})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g3.Stop() })
	// The failed ping proves isolation only if g3's network came up and its
	// frames reached xvs, so require that evidence too.
	verdict, err := g3.WaitFor(ctx, vue.MarkerPingOK, vue.MarkerPingFail)
	switch out := g3.Output(); {
	case err != nil:
		t.Fatalf("guest g3 gave no ping verdict: %v", err)
	case verdict == vue.MarkerPingOK:
		t.Fatalf("guest g3 in VSID 5002 reached g2 in VSID 5001\n%s", tail(out, 30))
	case !strings.Contains(out, vue.MarkerNetUp) || strings.Contains(out, vue.MarkerNetFail):
		t.Fatalf("guest g3's network did not come up, so its failed ping proves nothing\n%s", tail(out, 30))
	}
	if s := portStats(t, d, "g3"); s.RxFrames == 0 {
		t.Fatalf("xvs received nothing from guest g3, so its failed ping proves nothing\nstats:\n%s", d.ctl("stats"))
	}
	if out, err := ns.try("ping", "-c", "2", "-W", "2", "10.0.0.2"); err != nil {
		t.Errorf("namespace -> guest g2: %v\n%s", err, out)
	}
	// The guest behind g1 reboots (a new QEMU on the same socket): it
	// attaches again and reaches the namespace.
	g1.Stop()
	g1b, err := vue.StartQEMU(ctx, vue.QEMUOpts{Kernel: kernel, Initrd: initrd, Socket: sock("g1"),
		MAC: "52:54:00:00:00:01", IP: "10.0.0.5/24", Ping: "10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g1b.Stop() })
	if err := g1b.WaitPing(ctx); err != nil {
		t.Fatalf("rebooted guest g1 -> namespace: %v\n%s", err, tail(g1b.Output(), 40))
	}
	// xvsd restarts while QEMU (g2, the vhost-user server) waits: xvs
	// connects again and the guest is reachable.
	d.stop()
	d.start()
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	for {
		out, err := ns.try("ping", "-c", "1", "-W", "1", "10.0.0.2")
		if err == nil {
			break
		}
		select {
		case <-rctx.Done():
			t.Fatalf("namespace -> guest g2 after xvsd restarted: %v (%v)\n%s\nstats:\n%s", err, rctx.Err(), out, d.ctl("stats"))
		case <-time.After(200 * time.Millisecond): // a ping that fails at once must not spin
		}
	}
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
