// Package vhostuserenv starts the peers that xvs's vhost-user end-to-end
// tests talk to: a small QEMU guest (TCG, no KVM needed) built by
// scripts/guest-image.sh, and DPDK's dpdk-testpmd either as a vhost-user
// backend (net_vhost) or as a virtio "guest" (net_virtio_user). Neither
// needs hugepages: testpmd runs with --no-huge, whose memory DPDK backs
// with a memfd that the vhost-user peer can map, and QEMU uses a shared
// memory-backend-memfd.
//
// Every process runs in its own process group; Stop (or cancelling the
// context given to Start*) kills the group and removes the sockets and
// DPDK runtime files that process created.
//
// Packages (Debian 12): qemu-system-x86 (pulls seabios and ipxe-qemu),
// dpdk-dev (dpdk-testpmd and the net_vhost/net_virtio PMDs); the guest
// image needs apt-get and dpkg-deb and downloads linux-image-cloud-amd64
// and busybox-static without installing them.
//
// CPUs: every testpmd forwarding lcore busy-polls one CPU, and a TCG guest
// keeps one busy too. On a 2-CPU machine give each busy poller its own CPU
// (Cores/MainLcore; two testpmds: "0,1" main 0 and "0,1" main 1) and do
// not measure rates while anything else runs: two busy pollers sharing a
// CPU exchange one ring's worth of packets per scheduler slice, so rates
// drop from millions to thousands of packets per second.
package vhostuserenv

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Tool names the helpers run.
const (
	QEMUBinary    = "qemu-system-x86_64"
	TestpmdBinary = "dpdk-testpmd"
)

// DefaultCacheDir is where GuestImage keeps the kernel and initrd when
// given "" and XVS_GUEST_CACHE is unset.
const DefaultCacheDir = "/var/cache/xvs-guest"

// Markers the guest's /init prints on the serial console (see
// scripts/guest-image.sh). They may follow other output on the same line.
const (
	MarkerNetUp    = "XVS-NET-UP"
	MarkerNetFail  = "XVS-NET-FAIL"
	MarkerPingOK   = "XVS-PING-OK"
	MarkerPingFail = "XVS-PING-FAIL"
	MarkerReady    = "XVS-READY"
)

// Missing returns the tools, among QEMU, testpmd and what the guest image
// script needs, that are not on PATH; tests skip when it is not empty.
func Missing(tools ...string) []string {
	if len(tools) == 0 {
		tools = []string{QEMUBinary, TestpmdBinary, "apt-get", "dpkg-deb", "gzip"}
	}
	var missing []string
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	return missing
}

// ---------------------------------------------------------------------------
// Guest image

var guestMu sync.Mutex

// GuestScript returns the path of scripts/guest-image.sh: $XVS_GUEST_SCRIPT
// if set, else found relative to this source file.
func GuestScript() string {
	if s := os.Getenv("XVS_GUEST_SCRIPT"); s != "" {
		return s
	}
	_, file, _, ok := runtime.Caller(0)
	if ok {
		p := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "guest-image.sh")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "scripts/guest-image.sh"
}

// GuestImage returns the guest kernel and initrd in cacheDir (""
// means $XVS_GUEST_CACHE or DefaultCacheDir), running
// scripts/guest-image.sh every time: the script alone decides whether its
// cache is current (it keys the cache on its own contents, so an edited
// /init is rebuilt instead of silently reused). Concurrent callers, also in
// other processes, build it once (flock on the cache dir).
func GuestImage(cacheDir string) (kernel, initrd string, err error) {
	if cacheDir == "" {
		cacheDir = os.Getenv("XVS_GUEST_CACHE")
	}
	if cacheDir == "" {
		cacheDir = DefaultCacheDir
	}
	kernel = filepath.Join(cacheDir, "vmlinuz")
	initrd = filepath.Join(cacheDir, "initrd.gz")
	guestMu.Lock()
	defer guestMu.Unlock()
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", "", err
	}
	lock, err := os.OpenFile(filepath.Join(cacheDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", "", fmt.Errorf("lock %s: %w", cacheDir, err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()
	out, err := exec.Command("bash", GuestScript(), cacheDir).CombinedOutput()
	if err != nil {
		return "", "", fmt.Errorf("guest-image.sh %s: %w\n%s", cacheDir, err, out)
	}
	for _, f := range []string{kernel, initrd} {
		if _, err := os.Stat(f); err != nil {
			return "", "", fmt.Errorf("guest-image.sh left no image in %s: %w\n%s", cacheDir, err, out)
		}
	}
	return kernel, initrd, nil
}

// ---------------------------------------------------------------------------
// Process handle shared by QEMU and testpmd

// Proc is a started process in its own process group with its combined
// stdout and stderr captured.
type Proc struct {
	Cmd *exec.Cmd

	name     string
	out      lockedBuffer
	done     chan struct{}
	waitErr  error
	stopOnce sync.Once
	stopSig  syscall.Signal // sent first by Stop; SIGKILL follows after grace
	grace    time.Duration
	remove   []string // files and directories removed after exit
}

type lockedBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	notify chan struct{} // closed and replaced on every write
	tee    io.Writer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.buf.Write(p)
	if b.notify != nil {
		close(b.notify)
	}
	b.notify = make(chan struct{})
	tee := b.tee
	b.mu.Unlock()
	if tee != nil {
		_, _ = tee.Write(p)
	}
	return len(p), nil
}

// snapshot returns the output so far and a channel closed on the next write.
func (b *lockedBuffer) snapshot() (string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.notify == nil {
		b.notify = make(chan struct{})
	}
	return b.buf.String(), b.notify
}

func startProc(ctx context.Context, name string, args []string, log io.Writer, stopSig syscall.Signal, grace time.Duration) (*Proc, error) {
	p := &Proc{name: name, done: make(chan struct{}), stopSig: stopSig, grace: grace}
	p.out.tee = log
	cmd := exec.Command(name, args...)
	cmd.Stdout = &p.out
	cmd.Stderr = &p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p.Cmd = cmd
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		// Anything left in the group (there should be nothing) goes too.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		p.cleanup()
		close(p.done)
	}()
	if ctx != nil {
		go func() {
			select {
			case <-ctx.Done():
				_ = p.Stop()
			case <-p.done:
			}
		}()
	}
	return p, nil
}

func (p *Proc) cleanup() {
	for _, f := range p.remove {
		_ = os.RemoveAll(f)
	}
}

// Output returns everything the process printed so far.
func (p *Proc) Output() string {
	s, _ := p.out.snapshot()
	return s
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop ends the process: the first signal to its group (SIGINT for
// testpmd, which then prints its final statistics and closes its ports;
// SIGTERM for QEMU), SIGKILL after a grace period, then it waits for the
// exit and removes the process's sockets and runtime files. Safe to call
// more than once and after the process has exited.
func (p *Proc) Stop() error {
	p.stopOnce.Do(func() {
		if p.Exited() {
			return
		}
		pgid := p.Cmd.Process.Pid
		_ = syscall.Kill(-pgid, p.stopSig)
		select {
		case <-p.done:
		case <-time.After(p.grace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.done
		}
	})
	<-p.done
	return nil
}

// WaitFor waits until the output contains one of subs and returns it. It
// fails when ctx ends or the process exits first (after checking the last
// output).
func (p *Proc) WaitFor(ctx context.Context, subs ...string) (string, error) {
	for {
		out, next := p.out.snapshot()
		for _, s := range subs {
			if strings.Contains(out, s) {
				return s, nil
			}
		}
		select {
		case <-next:
		case <-p.done:
			out, _ = p.out.snapshot()
			for _, s := range subs {
				if strings.Contains(out, s) {
					return s, nil
				}
			}
			return "", fmt.Errorf("%s exited (%v) before printing %q; output:\n%s", p.name, p.waitErr, subs, tail(out, 4000))
		case <-ctx.Done():
			return "", fmt.Errorf("%s: waiting for %q: %w; output:\n%s", p.name, subs, ctx.Err(), tail(out, 4000))
		}
	}
}

// WaitForRegexp waits until the output matches re and returns the
// submatches of the first match.
func (p *Proc) WaitForRegexp(ctx context.Context, re *regexp.Regexp) ([]string, error) {
	for {
		out, next := p.out.snapshot()
		if m := re.FindStringSubmatch(out); m != nil {
			return m, nil
		}
		select {
		case <-next:
		case <-p.done:
			out, _ = p.out.snapshot()
			if m := re.FindStringSubmatch(out); m != nil {
				return m, nil
			}
			return nil, fmt.Errorf("%s exited (%v) before matching %s; output:\n%s", p.name, p.waitErr, re, tail(out, 4000))
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: waiting for %s: %w; output:\n%s", p.name, re, ctx.Err(), tail(out, 4000))
		}
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// waitSocket waits until path is a unix socket or the process exits.
func (p *Proc) waitSocket(ctx context.Context, path string) error {
	for {
		if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (%v) before creating %s; output:\n%s", p.name, p.waitErr, path, tail(p.Output(), 4000))
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for socket %s: %w", p.name, path, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitPath waits until path exists.
func waitPath(ctx context.Context, path string, limit time.Duration) error {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", path, ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("%s did not appear in %v", path, limit)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// removeStaleSocket removes path if it is a socket nobody listens on
// (left behind by a killed process), so a server can bind it again.
func removeStaleSocket(path string) {
	if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(path)
	}
}

// ---------------------------------------------------------------------------
// QEMU

// QEMUOpts configures StartQEMU.
type QEMUOpts struct {
	Kernel, Initrd string // from GuestImage

	// Socket is the vhost-user socket. With Server, QEMU listens on it
	// (server=on,wait=off: the guest boots at once and its link comes up
	// when the backend connects) and removes it on Stop; without, QEMU
	// connects to the backend's socket, retrying every second until it
	// exists (reconnect=1). Empty: QEMU user-mode networking instead, to
	// test the guest image alone.
	Socket string
	Server bool

	MAC   string // guest MAC; default 52:54:00:00:00:05
	IP    string // guest address with prefix, e.g. 10.0.0.5/24
	Ping  string // ping this address; XVS-PING-OK / XVS-PING-FAIL
	MemMB int    // guest memory (also the shared memfd); default 256

	PingCount int // default 3
	PingWait  int // seconds ping tries in all; default 20 (the link may come up late)

	Cmd  string // shell command run in the guest (XVS-CMD-RC=<rc>)
	Stay bool   // do not power off: print XVS-READY and keep running

	Machine string   // q35 (default) or pc
	Append  []string // more kernel parameters
	Extra   []string // more QEMU arguments
	Log     io.Writer
}

// QEMU is a running guest. Its Output is the serial console.
type QEMU struct {
	*Proc
	Opts QEMUOpts
}

// qemuArgs returns the qemu-system-x86_64 arguments for o.
func qemuArgs(o QEMUOpts) []string {
	if o.MemMB == 0 {
		o.MemMB = 256
	}
	if o.MAC == "" {
		o.MAC = "52:54:00:00:00:05"
	}
	if o.Machine == "" {
		o.Machine = "q35"
	}
	app := []string{"console=ttyS0", "panic=-1", "quiet"}
	if o.IP != "" {
		app = append(app, "xvs.ip="+o.IP)
	}
	if o.Ping != "" {
		count, wait := o.PingCount, o.PingWait
		if count == 0 {
			count = 3
		}
		if wait == 0 {
			wait = 20
		}
		app = append(app, "xvs.ping="+o.Ping, fmt.Sprintf("xvs.count=%d", count), fmt.Sprintf("xvs.wait=%d", wait))
	}
	if o.Cmd != "" {
		app = append(app, "xvs.cmd64="+base64.StdEncoding.EncodeToString([]byte(o.Cmd)))
	}
	if o.Stay {
		app = append(app, "xvs.stay=1")
	}
	app = append(app, o.Append...)

	args := []string{
		"-machine", o.Machine, "-accel", "tcg", "-smp", "1",
		"-m", fmt.Sprintf("%dM", o.MemMB),
		"-nographic", "-no-reboot",
		"-kernel", o.Kernel, "-initrd", o.Initrd,
		"-append", strings.Join(app, " "),
	}
	if o.Socket == "" {
		args = append(args,
			"-netdev", "user,id=net0",
			"-device", "virtio-net-pci,netdev=net0,mac="+o.MAC)
	} else {
		chardev := "socket,id=chr0,path=" + o.Socket
		if o.Server {
			chardev += ",server=on,wait=off"
		} else {
			chardev += ",reconnect=1"
		}
		args = append(args,
			"-object", fmt.Sprintf("memory-backend-memfd,id=mem,size=%dM,share=on", o.MemMB),
			"-numa", "node,memdev=mem",
			"-chardev", chardev,
			"-netdev", "vhost-user,id=net0,chardev=chr0",
			"-device", "virtio-net-pci,netdev=net0,vectors=0,mac="+o.MAC)
	}
	return append(args, o.Extra...)
}

// StartQEMU boots the guest. With o.Server it returns once QEMU listens on
// o.Socket. Booting to /init takes about 2 s under TCG here; without Stay
// the guest powers off after its tasks and QEMU exits 0.
func StartQEMU(ctx context.Context, o QEMUOpts) (*QEMU, error) {
	if o.Kernel == "" || o.Initrd == "" {
		return nil, errors.New("StartQEMU: Kernel and Initrd are required (see GuestImage)")
	}
	if o.Socket != "" && o.Server {
		removeStaleSocket(o.Socket)
	}
	p, err := startProc(ctx, QEMUBinary, qemuArgs(o), o.Log, syscall.SIGTERM, 3*time.Second)
	if err != nil {
		return nil, err
	}
	q := &QEMU{Proc: p, Opts: o}
	if o.Socket != "" && o.Server {
		p.remove = append(p.remove, o.Socket)
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := p.waitSocket(wctx, o.Socket); err != nil {
			_ = p.Stop()
			return nil, err
		}
	}
	return q, nil
}

// WaitPing waits for the guest's ping verdict: nil for XVS-PING-OK.
func (q *QEMU) WaitPing(ctx context.Context) error {
	m, err := q.WaitFor(ctx, MarkerPingOK, MarkerPingFail)
	if err != nil {
		return err
	}
	if m != MarkerPingOK {
		return fmt.Errorf("guest ping %s failed; console:\n%s", q.Opts.Ping, tail(q.Output(), 4000))
	}
	return nil
}

var reCmdRC = regexp.MustCompile(`XVS-CMD-RC=(\d+)`)

// WaitCmd waits for the exit code of o.Cmd.
func (q *QEMU) WaitCmd(ctx context.Context) (int, error) {
	m, err := q.WaitForRegexp(ctx, reCmdRC)
	if err != nil {
		return -1, err
	}
	rc, _ := strconv.Atoi(m[1])
	return rc, nil
}

// ---------------------------------------------------------------------------
// testpmd

// TestpmdOpts configures StartTestpmd.
type TestpmdOpts struct {
	// Socket is the vhost-user socket. Server: testpmd listens on it (and
	// removes it on exit); otherwise testpmd connects: net_vhost (client=1)
	// retries until the socket appears and reconnects when the server
	// restarts; net_virtio_user as client needs the socket to exist
	// (StartTestpmd waits up to 30 s for it) and does not reconnect: use
	// Server with Virtio to test a backend that restarts.
	Socket string
	Server bool

	// Virtio makes testpmd the guest side (net_virtio_user, what a VM's
	// virtio-net driver does) instead of the vhost-user backend (net_vhost).
	Virtio bool

	// Mode is the forwarding mode: txonly, rxonly, io, macswap, icmpecho
	// (answers ARP and ping, so a guest can ping any address through it),
	// flowgen... Default rxonly.
	Mode string

	// Cores is the EAL core list (-l); the main lcore only prints
	// statistics, the others forward. Default "0,1". MainLcore (--main-lcore)
	// picks the main one, e.g. Cores "0,1" MainLcore "1" forwards on CPU 0.
	Cores     string
	MainLcore string

	// Prefix is the EAL --file-prefix; default a unique xvs-tp-<pid>-<n>.
	// Two testpmds at once need different prefixes.
	Prefix string

	TxPkts int    // --txpkts, frame length without FCS; default 64
	MAC    string // the port's own MAC (net_virtio_user only)
	Queues int    // default 1
	MemMB  int    // -m with --no-huge; default 256
	Mbufs  int    // --total-num-mbufs; default 16384 (the default pool does not fit in 256 MB)

	ExtraEAL []string // more EAL arguments
	Extra    []string // more testpmd arguments (after --)
	Log      io.Writer
}

// PortStats is one "NIC statistics for port N" block of testpmd's periodic
// output (--stats-period 1). The pps figures are testpmd's own, over the
// last period.
type PortStats struct {
	Port                         int
	RxPackets, RxMissed          uint64
	RxBytes, RxErrors, RxNoMbuf  uint64
	TxPackets, TxErrors, TxBytes uint64
	RxPPS, RxBPS, TxPPS, TxBPS   uint64
	At                           time.Time // when it was parsed
}

// Testpmd is a running dpdk-testpmd in non-interactive mode printing port
// statistics every second.
type Testpmd struct {
	*Proc
	Opts TestpmdOpts

	mu    sync.Mutex
	stats map[int][]PortStats // per port, in order
	cond  chan struct{}       // closed and replaced on every new block
}

var prefixSeq atomic.Int64

// testpmdArgs returns the dpdk-testpmd arguments for o.
func testpmdArgs(o TestpmdOpts) []string {
	o = testpmdDefaults(o)
	args := []string{"-l", o.Cores}
	if o.MainLcore != "" {
		args = append(args, "--main-lcore", o.MainLcore)
	}
	// --in-memory would be tidier but DPDK refuses it with --no-huge
	// ("--legacy-mem is not compatible with --in-memory").
	args = append(args, "--no-huge", "-m", strconv.Itoa(o.MemMB))
	args = append(args, "--no-pci", "--no-telemetry", "--no-shconf", "--file-prefix="+o.Prefix)
	var vdev string
	if o.Virtio {
		vdev = fmt.Sprintf("net_virtio_user0,path=%s,queues=%d", o.Socket, o.Queues)
		if o.Server {
			vdev += ",server=1"
		}
		if o.MAC != "" {
			vdev += ",mac=" + o.MAC
		}
	} else {
		vdev = fmt.Sprintf("net_vhost0,iface=%s,queues=%d", o.Socket, o.Queues)
		if !o.Server {
			vdev += ",client=1"
		}
	}
	args = append(args, "--vdev="+vdev)
	args = append(args, o.ExtraEAL...)
	args = append(args, "--",
		"--forward-mode="+o.Mode,
		"--stats-period", "1",
		"--total-num-mbufs="+strconv.Itoa(o.Mbufs),
		"--txpkts="+strconv.Itoa(o.TxPkts),
	)
	return append(args, o.Extra...)
}

func testpmdDefaults(o TestpmdOpts) TestpmdOpts {
	if o.Mode == "" {
		o.Mode = "rxonly"
	}
	if o.Cores == "" {
		o.Cores = "0,1"
	}
	if o.Prefix == "" {
		o.Prefix = fmt.Sprintf("xvs-tp-%d-%d", os.Getpid(), prefixSeq.Add(1))
	}
	if o.TxPkts == 0 {
		o.TxPkts = 64
	}
	if o.Queues == 0 {
		o.Queues = 1
	}
	if o.MemMB == 0 {
		o.MemMB = 256
	}
	if o.Mbufs == 0 {
		o.Mbufs = 16384
	}
	return o
}

// StartTestpmd starts dpdk-testpmd (about 0.6 s to initialise here). It
// forwards from the start and prints statistics every second; Stop sends
// SIGINT so it closes its port cleanly. With Server it returns once the
// socket exists.
func StartTestpmd(ctx context.Context, o TestpmdOpts) (*Testpmd, error) {
	if o.Socket == "" {
		return nil, errors.New("StartTestpmd: Socket is required")
	}
	o = testpmdDefaults(o)
	if o.Server {
		removeStaleSocket(o.Socket)
	} else if o.Virtio {
		// net_vhost client=1 retries until the socket appears, but
		// net_virtio_user gives up at once ("Backend set up fails").
		if err := waitPath(ctx, o.Socket, 30*time.Second); err != nil {
			return nil, err
		}
	}
	t := &Testpmd{Opts: o, stats: map[int][]PortStats{}, cond: make(chan struct{})}
	pr, pw := io.Pipe()
	var log io.Writer = pw
	if o.Log != nil {
		log = io.MultiWriter(pw, o.Log)
	}
	// testpmd's stdout is a pipe, so stdio would buffer 4 KiB (several
	// seconds of statistics) at a time; stdbuf makes it line-buffered so
	// each block is timestamped when it is printed.
	name, args := TestpmdBinary, testpmdArgs(o)
	if sb, err := exec.LookPath("stdbuf"); err == nil {
		name, args = sb, append([]string{"-oL", "-eL", TestpmdBinary}, args...)
	}
	p, err := startProc(ctx, name, args, log, syscall.SIGINT, 5*time.Second)
	if err != nil {
		pw.Close()
		return nil, err
	}
	t.Proc = p
	p.remove = append(p.remove, runtimeDir(o.Prefix))
	if o.Server {
		p.remove = append(p.remove, o.Socket)
	}
	go func() {
		<-p.done
		pw.Close()
	}()
	go t.parse(pr)
	if o.Server {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := p.waitSocket(wctx, o.Socket); err != nil {
			_ = p.Stop()
			return nil, err
		}
	}
	return t, nil
}

// runtimeDir is where DPDK keeps a primary process's runtime files.
func runtimeDir(prefix string) string {
	base := "/var/run/dpdk"
	if os.Geteuid() != 0 {
		if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" {
			base = filepath.Join(x, "dpdk")
		} else {
			base = "/tmp/dpdk"
		}
	}
	return filepath.Join(base, prefix)
}

var (
	reNICStats = regexp.MustCompile(`NIC statistics for port (\d+)`)
	reKV       = regexp.MustCompile(`([A-Za-z]+-[A-Za-z]+):\s+(\d+)`)
)

func (t *Testpmd) parse(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	var cur *PortStats
	for sc.Scan() {
		line := sc.Text()
		if m := reNICStats.FindStringSubmatch(line); m != nil {
			port, _ := strconv.Atoi(m[1])
			cur = &PortStats{Port: port}
			continue
		}
		if cur == nil {
			continue
		}
		if strings.Contains(line, "##########") { // end of the block
			cur.At = time.Now()
			t.mu.Lock()
			t.stats[cur.Port] = append(t.stats[cur.Port], *cur)
			close(t.cond)
			t.cond = make(chan struct{})
			t.mu.Unlock()
			cur = nil
			continue
		}
		for _, kv := range reKV.FindAllStringSubmatch(line, -1) {
			v, _ := strconv.ParseUint(kv[2], 10, 64)
			switch kv[1] {
			case "RX-packets":
				cur.RxPackets = v
			case "RX-missed":
				cur.RxMissed = v
			case "RX-bytes":
				cur.RxBytes = v
			case "RX-errors":
				cur.RxErrors = v
			case "RX-nombuf":
				cur.RxNoMbuf = v
			case "TX-packets":
				cur.TxPackets = v
			case "TX-errors":
				cur.TxErrors = v
			case "TX-bytes":
				cur.TxBytes = v
			case "Rx-pps":
				cur.RxPPS = v
			case "Rx-bps":
				cur.RxBPS = v
			case "Tx-pps":
				cur.TxPPS = v
			case "Tx-bps":
				cur.TxBPS = v
			}
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// Stats returns the latest statistics of port 0 (ok false before the
// first block, about a second after start).
func (t *Testpmd) Stats() (PortStats, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stats[0]
	if len(s) == 0 {
		return PortStats{}, false
	}
	return s[len(s)-1], true
}

// nextStats waits for a statistics block of port newer than after.
func (t *Testpmd) nextStats(ctx context.Context, port int, after time.Time) (PortStats, error) {
	for {
		t.mu.Lock()
		s := t.stats[port]
		cond := t.cond
		t.mu.Unlock()
		if n := len(s); n > 0 && s[n-1].At.After(after) {
			return s[n-1], nil
		}
		select {
		case <-cond:
		case <-t.done:
			return PortStats{}, fmt.Errorf("testpmd exited (%v); output:\n%s", t.waitErr, tail(t.Output(), 4000))
		case <-ctx.Done():
			return PortStats{}, fmt.Errorf("testpmd statistics: %w", ctx.Err())
		}
	}
}

// WaitStats waits until cond holds for a statistics block of port 0 and
// returns that block, e.g.
//
//	tp.WaitStats(ctx, func(s PortStats) bool { return s.RxPackets >= 3 })
func (t *Testpmd) WaitStats(ctx context.Context, cond func(PortStats) bool) (PortStats, error) {
	var after time.Time
	for {
		s, err := t.nextStats(ctx, 0, after)
		if err != nil {
			return s, err
		}
		if cond(s) {
			return s, nil
		}
		after = s.At
	}
}

// WaitConnected waits until the vhost-user connection is up: for net_vhost
// the backend's "virtio is now ready for processing" log line; for
// net_virtio_user, which logs nothing then, the first statistics block
// after the socket exists is the best available sign, so callers should
// rather wait for traffic (WaitStats).
func (t *Testpmd) WaitConnected(ctx context.Context) error {
	if !t.Opts.Virtio {
		_, err := t.WaitFor(ctx, "virtio is now ready for processing")
		return err
	}
	_, err := t.nextStats(ctx, 0, time.Time{})
	return err
}
