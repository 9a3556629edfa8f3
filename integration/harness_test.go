package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xvswitch/xvs/internal/testutil"
)

var binDir string // xvsd, xvsctl and the example extensions, built once by TestMain

func TestMain(m *testing.M) {
	code := func() int {
		if !testutil.IsRoot() {
			return m.Run() // every test skips
		}
		dir, err := os.MkdirTemp("", "xvs-it-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		out, err := exec.Command("go", "build", "-o", dir+"/", "../cmd/xvsd", "../cmd/xvsctl",
			"../extensions/examples/pcapcapture", "../extensions/examples/aclfilter", "../extensions/examples/mirror").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
			return 1
		}
		binDir = dir
		return m.Run()
	}()
	os.Exit(code)
}

// needRoot skips an integration test unless it runs as root and finds ip,
// ethtool and tools (see .ci/run for the packages).
func needRoot(t *testing.T, tools ...string) {
	t.Helper()
	testutil.NeedRoot(t, "integration test: network namespaces, AF_XDP and TAP")
	testutil.NeedCommands(t, append([]string{"ip", "ethtool"}, tools...)...)
}

// sh runs a command and fails the test when it fails.
func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// try runs a command and returns its output and error.
func try(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// vm is a network namespace standing for a VM: eth0 inside, Host outside.
type vm struct {
	NS   string // namespace name
	Host string // the host end: a veth, or the TAP device once moved
	IP   string // address of eth0, without prefix
}

func (v vm) exec(t *testing.T, args ...string) string {
	t.Helper()
	return sh(t, "ip", append([]string{"netns", "exec", v.NS}, args...)...)
}

func (v vm) try(args ...string) (string, error) {
	return try("ip", append([]string{"netns", "exec", v.NS}, args...)...)
}

// topo names and cleans up a test's namespaces and devices.
type topo struct {
	t      *testing.T
	prefix string
}

func newTopo(t *testing.T) *topo {
	b := make([]byte, 2)
	rand.Read(b)
	tp := &topo{t: t, prefix: "xi" + hex.EncodeToString(b)}
	return tp
}

// namespace makes a namespace with lo up, removed at cleanup.
func (tp *topo) namespace(name string) string {
	t := tp.t
	ns := "xvs-it-" + tp.prefix + "-" + name
	sh(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { try("ip", "netns", "del", ns) })
	sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
	return ns
}

// vethVM makes a namespace with eth0 (addr/24) whose peer stays on the
// host, up, without addresses, ready for an AF_XDP port.
func (tp *topo) vethVM(name, addr string) vm {
	t := tp.t
	ns := tp.namespace(name)
	host := tp.prefix + name // at most 15 bytes: "xi" + 4 + name
	sh(t, "ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
	t.Cleanup(func() { try("ip", "link", "del", host) })
	sh(t, "sysctl", "-qw", "net.ipv6.conf."+host+".disable_ipv6=1")
	sh(t, "ip", "link", "set", host, "up")
	v := vm{NS: ns, Host: host, IP: addr}
	setupGuest(t, v)
	return v
}

// setupGuest addresses eth0 in the namespace and turns off the TX checksum
// offload that AF_XDP would leave unfilled.
func setupGuest(t *testing.T, v vm) {
	sh(t, "ip", "-n", v.NS, "addr", "add", v.IP+"/24", "dev", "eth0")
	sh(t, "ip", "-n", v.NS, "link", "set", "eth0", "up")
	v.exec(t, "ethtool", "-K", "eth0", "tx", "off")
	v.exec(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
}

// tapVM moves a TAP device xvsd created into a new namespace as eth0.
func (tp *topo) tapVM(name, tapDev, addr string) vm {
	t := tp.t
	ns := tp.namespace(name)
	sh(t, "ip", "link", "set", tapDev, "netns", ns)
	sh(t, "ip", "-n", ns, "link", "set", tapDev, "name", "eth0")
	v := vm{NS: ns, Host: tapDev, IP: addr}
	setupGuest(t, v)
	return v
}

// xvsd is a running daemon with a private socket.
type xvsd struct {
	t      *testing.T
	ns     string // network namespace it runs in; "" for the test's
	dir    string
	socket string
	config string
	cmd    *exec.Cmd
	logs   *bytes.Buffer
	done   chan error
}

type portSpec struct {
	name, typ, dev string
	vsid           uint32
}

func startXVSD(t *testing.T, ports ...portSpec) *xvsd {
	t.Helper()
	var b strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&b, "  - {name: %s, type: %s, dev: %s, vsid: %d}\n", p.name, p.typ, p.dev, p.vsid)
	}
	return startXVSDConfig(t, b.String())
}

// startXVSDConfig starts xvsd with the given YAML lines under ports:.
func startXVSDConfig(t *testing.T, portLines string) *xvsd {
	return startXVSDIn(t, "", portLines, "")
}

// startXVSDIn starts xvsd inside network namespace ns ("" for the test's
// own) with the given ports and any more top-level YAML (e.g. policy:).
func startXVSDIn(t *testing.T, ns, portLines, more string) *xvsd {
	t.Helper()
	dir := t.TempDir()
	d := &xvsd{t: t, dir: dir, ns: ns, socket: filepath.Join(dir, "xvsd.sock"), config: filepath.Join(dir, "xvsd.yaml")}
	cfg := fmt.Sprintf("api_socket: %s\nmetrics_address: \"\"\nlog_level: debug\nports:\n%s\n%s\n", d.socket, portLines, more)
	if err := os.WriteFile(d.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	d.start()
	t.Cleanup(d.stop)
	return d
}

func (d *xvsd) start() {
	t := d.t
	t.Helper()
	d.logs = &bytes.Buffer{}
	d.cmd = exec.Command(filepath.Join(binDir, "xvsd"), "--config", d.config)
	if d.ns != "" {
		// ip netns exec execs xvsd in place: signals reach it directly
		d.cmd = exec.Command("ip", "netns", "exec", d.ns, filepath.Join(binDir, "xvsd"), "--config", d.config)
	}
	d.cmd.Stderr = d.logs
	d.cmd.Stdout = d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.done = make(chan error, 1)
	go func(c *exec.Cmd, done chan error) { done <- c.Wait() }(d.cmd, d.done)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := d.try("version"); err == nil {
			return
		}
		select {
		case err := <-d.done:
			d.cmd = nil
			t.Fatalf("xvsd exited at start: %v\n%s", err, d.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("xvsd did not answer within 15s\n%s", d.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits: xvsd must exit 0.
func (d *xvsd) stop() {
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			d.t.Errorf("xvsd exited with %v after SIGTERM\n%s", err, d.logs)
		}
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
		d.t.Errorf("xvsd ignored SIGTERM for 15s\n%s", d.logs)
	}
	d.cmd = nil
}

// kill9 kills xvsd without giving it a chance to clean up.
func (d *xvsd) kill9() {
	d.cmd.Process.Kill()
	<-d.done
	d.cmd = nil
}

func (d *xvsd) try(args ...string) (string, error) {
	return try(filepath.Join(binDir, "xvsctl"), append([]string{"--socket", d.socket}, args...)...)
}

func (d *xvsd) ctl(args ...string) string {
	d.t.Helper()
	out, err := d.try(args...)
	if err != nil {
		d.t.Fatalf("xvsctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// background starts a command that is killed at cleanup.
func background(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	return cmd
}

// xdpAttached reports whether dev has an XDP program attached.
func xdpAttached(t *testing.T, dev string) bool {
	t.Helper()
	out := sh(t, "ip", "-d", "link", "show", "dev", dev)
	return strings.Contains(out, "prog/xdp") || strings.Contains(out, "xdpgeneric") || strings.Contains(out, " xdp ")
}

// napiThreaded says whether dev (in the test's namespace) polls in NAPI
// threads.
func napiThreaded(t *testing.T, dev string) bool {
	t.Helper()
	b, err := os.ReadFile("/sys/class/net/" + dev + "/threaded")
	if err != nil {
		t.Fatalf("threaded NAPI of %s: %v", dev, err)
	}
	return strings.TrimSpace(string(b)) != "0"
}
