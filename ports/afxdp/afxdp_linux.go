package afxdp

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xvswitch/xvs/ports"
	"github.com/xvswitch/xvs/ring"
)

// Defaults of Config. See the package documentation for why.
const (
	DefaultFrameSize          = 2048
	DefaultFillRingSize       = 2048
	DefaultRxRingSize         = 2048
	DefaultTxRingSize         = 1024
	DefaultCompletionRingSize = 1024
	// DefaultNumFrames gives the receive side DefaultFillRingSize frames
	// and the transmit side DefaultCompletionRingSize.
	DefaultNumFrames = DefaultFillRingSize + DefaultCompletionRingSize
)

// maxRingSize bounds every ring; the kernel's own limit is higher.
const maxRingSize = 1 << 16

// EthOverhead is what a frame adds to the device MTU: the Ethernet header
// and one 802.1Q tag.
const EthOverhead = 18

var (
	// ErrBadConfig is wrapped by every error about a Config field.
	ErrBadConfig = errors.New("bad afxdp configuration")
	// ErrNoDevice is wrapped when Config.Dev names no network device.
	ErrNoDevice = errors.New("no such network device")
	// ErrMTUTooLarge is wrapped when the device's frames would not fit a
	// UMEM frame: the kernel would drop them without telling anyone.
	ErrMTUTooLarge = errors.New("device MTU too large for the frame size")
)

// Config describes one port: one AF_XDP socket on one queue of a device.
type Config struct {
	// Name is the port's name in the switch; it defaults to Dev.
	Name string
	// Dev is the network interface, e.g. "eth1" or a veth.
	Dev string
	// Queue is the device's rx/tx queue the socket binds to.
	Queue int

	// NumFrames is the number of UMEM frames. The first FillRingSize
	// receive; the others transmit. Default DefaultNumFrames.
	NumFrames int
	// FrameSize is the size of a UMEM frame: 2048 or 4096. A received
	// frame starts 256 bytes in (XDP_PACKET_HEADROOM), so 2048 carries
	// frames of up to 1792 bytes (MTU 1774) and 4096 up to 3840 bytes
	// (MTU 3822). Default 2048.
	FrameSize int
	// Ring sizes, in descriptors: powers of two from 64 to 65536.
	// FillRingSize is also the number of receive frames.
	FillRingSize       int
	RxRingSize         int
	TxRingSize         int
	CompletionRingSize int

	// Mode is how the steering XDP program is attached. Default ModeAuto.
	Mode XDPMode
	// Copy forces copy mode. By default zero-copy is tried first.
	Copy bool

	// Logger receives setup and teardown lines, and sampled data-path
	// errors. The zero value is silent.
	Logger zerolog.Logger

	// FastPath, if set, puts the switch's in-kernel fast path in front of
	// the socket (see FastPath). All queues of a device must agree.
	FastPath *FastPath

	// ThreadedNAPI has the device poll in kernel threads of its own
	// (/sys/class/net/DEV/threaded) while the port's program is attached,
	// so that its XDP program runs on whichever core is free rather than
	// in the softirq of the CPU that queued the frames; the device's
	// previous setting is restored when the last port on it closes. The
	// first port on a device decides. Refusal is logged, not an error.
	// On a veth, the peer needs a qdisc, or it drops frames whenever the
	// thread falls behind (see "peer-dropped" in Stats); New warns.
	ThreadedNAPI bool
}

func (c *Config) normalize() error {
	if c.Dev == "" {
		return fmt.Errorf("%w: Dev is empty", ErrBadConfig)
	}
	if c.Name == "" {
		c.Name = c.Dev
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.FrameSize, DefaultFrameSize)
	def(&c.FillRingSize, DefaultFillRingSize)
	def(&c.RxRingSize, DefaultRxRingSize)
	def(&c.TxRingSize, DefaultTxRingSize)
	def(&c.CompletionRingSize, DefaultCompletionRingSize)
	def(&c.NumFrames, c.FillRingSize+c.CompletionRingSize)
	switch {
	case c.Queue < 0:
		return fmt.Errorf("%w: Queue %d: want 0 or more", ErrBadConfig, c.Queue)
	case c.FrameSize != 2048 && c.FrameSize != 4096:
		return fmt.Errorf("%w: FrameSize %d: want 2048 or 4096", ErrBadConfig, c.FrameSize)
	case c.Mode < ModeAuto || c.Mode > ModeGeneric:
		return fmt.Errorf("%w: Mode %d: want ModeAuto, ModeNative or ModeGeneric", ErrBadConfig, int(c.Mode))
	}
	for _, r := range []struct {
		name string
		n    int
	}{{"FillRingSize", c.FillRingSize}, {"RxRingSize", c.RxRingSize}, {"TxRingSize", c.TxRingSize}, {"CompletionRingSize", c.CompletionRingSize}} {
		if r.n < ring.BatchSize || r.n > maxRingSize || r.n&(r.n-1) != 0 {
			return fmt.Errorf("%w: %s %d: want a power of two from %d to %d", ErrBadConfig, r.name, r.n, ring.BatchSize, maxRingSize)
		}
	}
	if tx := c.NumFrames - c.FillRingSize; tx < ring.BatchSize || c.NumFrames > 1<<20 {
		return fmt.Errorf("%w: NumFrames %d: want FillRingSize (%d) + at least %d transmit frames, at most %d in all",
			ErrBadConfig, c.NumFrames, c.FillRingSize, ring.BatchSize, 1<<20)
	}
	return nil
}

// MaxMTU is the largest device MTU whose frames fit a UMEM frame of
// frameSize bytes.
func MaxMTU(frameSize int) int { return frameSize - xdpPacketHeadroom - EthOverhead }

// Port is an AF_XDP port. See the package documentation.
type Port struct {
	name    string
	dev     string
	ifindex int
	fp      *FastPath
	queue   int
	mac     net.HardwareAddr
	mtu     int
	log     zerolog.Logger
	hot     zerolog.Logger // sampled: the data path logs only through it

	x         *xsk
	prog      *program
	xdpMode   XDPMode
	frameSize int
	frameMask uint64
	umemLen   uint64
	rxLimit   uint64 // addresses below are receive frames
	maxKicks  int

	mu     sync.Mutex // Close against Stats
	closed atomic.Bool
	final  unix.XDPStatistics // kernel counters read at Close

	// A veth's other end: its tx_dropped when the port opened and when
	// last read (see veth_linux.go), under mu.
	peer                  vethPeer
	hasPeer               bool
	peerDrop0, peerDropAt uint64

	_ [64]byte
	// Receive side: one goroutine at a time.
	rxBusy    atomic.Bool
	rxPending []uint64 // receive frames waiting for room in the fill ring
	rxFrames  atomic.Uint64
	rxBytes   atomic.Uint64
	rxTooBig  atomic.Uint64
	rxBadDesc atomic.Uint64

	_ [64]byte
	// Transmit side: one goroutine at a time.
	txBusy     atomic.Bool
	txFree     []uint64 // free transmit frames, a stack of UMEM addresses
	txDown     bool     // the last kick said ENETDOWN
	txFrames   atomic.Uint64
	txBytes    atomic.Uint64
	txTooBig   atomic.Uint64
	txLinkDown atomic.Uint64
	txDropped  atomic.Uint64
	txErrors   atomic.Uint64
	txKicks    atomic.Uint64
}

var (
	_ ports.Port   = (*Port)(nil)
	_ ports.Waiter = (*Port)(nil)
)

// New opens a port: it attaches the steering XDP program to cfg.Dev (or
// shares the one another port attached), creates the socket and its UMEM,
// binds it to cfg.Queue (zero-copy if the driver allows, else copy mode)
// and registers it with the program.
func New(cfg Config) (*Port, error) {
	if err := cfg.normalize(); err != nil {
		return nil, fmt.Errorf("afxdp: %w", err)
	}
	dev := cfg.Dev
	link, err := netlink.LinkByName(dev)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("afxdp: attach %s: %w", dev, ErrNoDevice)
		}
		return nil, fmt.Errorf("afxdp: attach %s: %w", dev, err)
	}
	attrs := link.Attrs()
	if attrs.MTU > MaxMTU(cfg.FrameSize) {
		return nil, fmt.Errorf("afxdp: attach %s: MTU %d needs frames of %d bytes plus %d of headroom, frame size %d allows MTU %d at most (use FrameSize 4096 for MTU up to %d): %w",
			dev, attrs.MTU, attrs.MTU+EthOverhead, xdpPacketHeadroom, cfg.FrameSize, MaxMTU(cfg.FrameSize), MaxMTU(4096), ErrMTUTooLarge)
	}
	if attrs.NumRxQueues > 0 && cfg.Queue >= attrs.NumRxQueues {
		return nil, fmt.Errorf("afxdp: attach %s: %w: Queue %d: the device has %d rx queues", dev, ErrBadConfig, cfg.Queue, attrs.NumRxQueues)
	}

	att, err := acquireProgram(link, cfg.Queue, cfg.Mode, cfg.FastPath, cfg.ThreadedNAPI)
	if err != nil {
		return nil, fmt.Errorf("afxdp: attach %s: %w", dev, hint(err))
	}
	prog := att.prog
	fail := func(err error) (*Port, error) {
		if rerr := releaseProgram(prog, cfg.Queue); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nil, fmt.Errorf("afxdp: attach %s: %w", dev, err)
	}

	xc := xskConfig{
		ifindex:   attrs.Index,
		queue:     cfg.Queue,
		frames:    uint32(cfg.NumFrames),
		frameSize: uint32(cfg.FrameSize),
		fillSize:  uint32(cfg.FillRingSize),
		compSize:  uint32(cfg.CompletionRingSize),
		rxSize:    uint32(cfg.RxRingSize),
		txSize:    uint32(cfg.TxRingSize),
		bindFlags: unix.XDP_COPY,
	}
	var x *xsk
	var zcErr error
	switch {
	case cfg.Copy:
		zcErr = errors.New("Config.Copy is set")
	case prog.mode == ModeGeneric:
		zcErr = errors.New("the XDP program is in generic mode")
	default:
		zc := xc
		zc.bindFlags = unix.XDP_ZEROCOPY
		x, zcErr = openXSK(zc)
	}
	if x == nil {
		if x, err = openXSK(xc); err != nil {
			if errors.Is(err, unix.EINVAL) {
				err = fmt.Errorf("%w (is queue %d one of the device's active queues? see ethtool -l)", err, cfg.Queue)
			}
			return fail(hint(err))
		}
	}
	if err := prog.register(cfg.Queue, x.fd); err != nil {
		x.close()
		return fail(err)
	}

	p := &Port{
		name:      cfg.Name,
		dev:       dev,
		ifindex:   attrs.Index,
		fp:        cfg.FastPath,
		queue:     cfg.Queue,
		mac:       slices.Clone(attrs.HardwareAddr),
		mtu:       attrs.MTU,
		log:       cfg.Logger,
		hot:       cfg.Logger.Sample(&zerolog.BurstSampler{Burst: 1, Period: 10 * time.Second}),
		x:         x,
		prog:      prog,
		xdpMode:   prog.mode,
		frameSize: cfg.FrameSize,
		frameMask: x.frameMask(),
		umemLen:   uint64(len(x.umem)),
		rxLimit:   uint64(x.rxFrames) << x.frameShift,
		// A kick sends up to txBudget frames; EBUSY costs one kick per
		// frame the device dropped. Bound the loop by both.
		maxKicks:  cfg.TxRingSize/x.txBudget + ring.BatchSize + 4,
		rxPending: make([]uint64, 0, cfg.FillRingSize),
		txFree:    x.txAddrs(),
	}

	if p.fp != nil {
		if err := p.fp.join(p); err != nil {
			x.close()
			return fail(err)
		}
	}
	var peerNoQdisc string
	if peer, ok := peerOf(link); ok {
		if st, err := peer.state(); err == nil {
			p.peer, p.hasPeer = peer, true
			p.peerDrop0, p.peerDropAt = st.txDropped, st.txDropped
			if st.qdisc == "noqueue" {
				peerNoQdisc = st.name
			}
		}
	}
	ev := p.log.Info().Str("port", p.name).Str("dev", dev).Int("queue", cfg.Queue).
		Str("xdp_mode", prog.mode.String()).Bool("fast_path", p.fp != nil)
	if att.fellBack != nil {
		ev = ev.Str("native_refused", att.fellBack.Error())
	}
	if att.threadedErr != nil {
		ev = ev.Str("threaded_napi_refused", att.threadedErr.Error())
	} else if prog.threaded {
		ev = ev.Bool("threaded_napi", true)
	}
	if x.zeroCopy {
		ev = ev.Str("bind_mode", "zero-copy")
	} else {
		ev = ev.Str("bind_mode", "copy").Str("zero_copy_refused", zcErr.Error())
	}
	ev.Int("frame_size", cfg.FrameSize).Int("frames", cfg.NumFrames).
		Int("fill_ring", cfg.FillRingSize).Int("rx_ring", cfg.RxRingSize).
		Int("tx_ring", cfg.TxRingSize).Int("completion_ring", cfg.CompletionRingSize).
		Int("tx_frames_per_kick", x.txBudget).Msg("afxdp port attached")
	if peerNoQdisc != "" && (prog.threaded || prog.threadedPrev) {
		p.log.Warn().Str("port", p.name).Str("dev", dev).Str("peer", peerNoQdisc).
			Msg("afxdp: threaded NAPI on a veth whose peer has no qdisc: the peer drops what it sends faster than the NAPI thread takes it (peer-dropped, TCP retransmits); give the peer one, e.g. tc qdisc replace dev PEER root pfifo_fast, so the kernel holds the sender back instead")
	}
	if att.replaced != 0 {
		p.log.Warn().Str("dev", dev).Uint32("prog_id", att.replaced).Msg("afxdp: replaced the XDP program that was attached")
	}
	return p, nil
}

// openXSK is newXSK, retried for a while when the queue is busy: the
// kernel releases a closed socket's claim on its queue from a work queue,
// a little after close returns, so a port reopened right after Close
// would otherwise fail with EBUSY.
func openXSK(c xskConfig) (*xsk, error) {
	deadline := time.Now().Add(time.Second)
	for {
		x, err := newXSK(c)
		if err == nil || !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return x, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// hint adds what to do to the errors a user can fix.
func hint(err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w (AF_XDP needs CAP_NET_RAW, the XDP program CAP_BPF and CAP_NET_ADMIN; run as root)", err)
	case errors.Is(err, unix.ENOMEM), errors.Is(err, unix.ENOBUFS):
		return fmt.Errorf("%w (UMEM is locked memory: raise RLIMIT_MEMLOCK, e.g. ulimit -l unlimited, or lower NumFrames)", err)
	case errors.Is(err, unix.EAFNOSUPPORT):
		return fmt.Errorf("%w (kernel without AF_XDP: CONFIG_XDP_SOCKETS)", err)
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("%w (another AF_XDP socket is bound to this queue)", err)
	}
	return err
}

// Available reports whether this process can open AF_XDP sockets. The
// error wraps EPERM without the privilege and EAFNOSUPPORT on a kernel
// without AF_XDP.
func Available() error {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("afxdp: %w", hint(failed("create AF_XDP socket", err)))
	}
	unix.Close(fd)
	return nil
}

// Name implements ports.Port.
func (p *Port) Name() string { return p.name }

// MAC implements ports.Port: the device's address.
func (p *Port) MAC() net.HardwareAddr { return p.mac }

// MTU implements ports.Port: the device's MTU when the port was opened.
func (p *Port) MTU() int { return p.mtu }

// ZeroCopy reports whether the socket is bound in zero-copy mode.
func (p *Port) ZeroCopy() bool { return p.x.zeroCopy }

// XDPMode reports how the steering program is attached: ModeNative or
// ModeGeneric.
func (p *Port) XDPMode() XDPMode { return p.xdpMode }

// WaitFDs implements ports.Waiter: the socket, which poll(2) reports
// readable (POLLIN) while the rx ring holds frames. The poll also does
// the socket's pending work: in zero-copy mode it wakes the driver when
// the driver asked for it. WaitFDs returns nil after Close.
func (p *Port) WaitFDs() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return nil
	}
	return []int{p.x.fd}
}

// enter marks one direction busy, or reports that the port is closed. With
// Close doing the opposite (closed, then wait for busy to clear), one of
// the two always sees the other: Go's atomics are sequentially consistent.
func (p *Port) enter(busy *atomic.Bool) bool {
	busy.Store(true)
	if p.closed.Load() {
		busy.Store(false)
		return false
	}
	return true
}

// Receive implements ports.Port. It copies up to ring.BatchSize frames
// from the rx ring into b and gives their UMEM frames straight back to
// the kernel through the fill ring, in one publication per call.
func (p *Port) Receive(b *ring.Batch) (int, error) {
	b.N = 0
	if !p.enter(&p.rxBusy) {
		return 0, ports.ErrPortClosed
	}
	defer p.rxBusy.Store(false)
	x := p.x
	n := x.rx.avail(ring.BatchSize)
	if n == 0 {
		if len(p.rxPending) > 0 {
			p.refill()
		}
		if x.fill.needWakeup() {
			wakeRx(x.fd)
		}
		return 0, nil
	}
	// The fill ring always has room for the frames just received (they
	// came from it), except in the short window before the kernel
	// publishes its fill consumer index: then they wait in rxPending.
	direct := len(p.rxPending) == 0 && x.fill.free(n) >= n
	fp := x.fill.prod
	k := 0
	var bytes, tooBig, bad uint64
	for i := range n {
		d := x.rx.descs[(x.rx.cons+i)&x.rx.mask]
		end := d.Addr + uint64(d.Len)
		if d.Addr >= p.rxLimit || end > p.umemLen || end < d.Addr {
			bad++ // not a frame of ours: never recycle it
			continue
		}
		if room := b.Room(k); int(d.Len) <= len(room) {
			copy(room, x.umem[d.Addr:end])
			b.Frames[k].Len = uint16(d.Len)
			bytes += uint64(d.Len)
			k++
		} else {
			tooBig++
		}
		if a := d.Addr & p.frameMask; direct {
			x.fill.addrs[fp&x.fill.mask] = a
			fp++
		} else {
			p.rxPending = append(p.rxPending, a)
		}
	}
	x.rx.release(n)
	if direct {
		x.fill.submit(fp - x.fill.prod)
	} else {
		p.refill()
	}
	b.N = k
	p.rxFrames.Add(uint64(k))
	p.rxBytes.Add(bytes)
	if tooBig != 0 {
		p.rxTooBig.Add(tooBig)
	}
	if bad != 0 {
		p.rxBadDesc.Add(bad)
	}
	return k, nil
}

// refill moves pending receive frames to the fill ring, as many as fit.
func (p *Port) refill() {
	x := p.x
	n := min(x.fill.free(uint32(len(p.rxPending))), uint32(len(p.rxPending)))
	for i := range n {
		x.fill.addrs[(x.fill.prod+i)&x.fill.mask] = p.rxPending[i]
	}
	x.fill.submit(n)
	p.rxPending = p.rxPending[:copy(p.rxPending, p.rxPending[n:])]
}

// Transmit implements ports.Port. It reclaims completed transmit frames,
// copies b's frames into free ones, publishes them in one go and kicks the
// kernel: in copy mode the kernel sends during the kick, so Transmit kicks
// until the tx ring is drained (one kick for the whole batch where the
// kernel accepts XDP_MAX_TX_SKB_BUDGET, one per 32 frames elsewhere).
//
// The count returned includes frames the port dropped and counted itself
// (Stats().Drops "tx-too-big", "link-down"), so that the caller does not
// count them again; frames beyond it found no free transmit frame.
// Frames queued when the link turns out to be down are counted as
// "link-down" and may still leave once it is up again.
func (p *Port) Transmit(b *ring.Batch) (int, error) {
	if !p.enter(&p.txBusy) {
		return 0, ports.ErrPortClosed
	}
	defer p.txBusy.Store(false)
	if b.N <= 0 {
		return 0, nil
	}
	x := p.x
	p.reclaim()
	if p.txDown {
		// Probe with one kick: it also sends what the ring still holds.
		if e := p.kickOnce(); e == unix.ENETDOWN {
			p.txLinkDown.Add(uint64(b.N))
			return b.N, nil
		}
		p.txDown = false
		p.hot.Info().Str("port", p.name).Msg("afxdp: link up again")
		p.reclaim()
	}
	limit := min(uint32(len(p.txFree)), x.tx.free(uint32(b.N)))
	var queued uint32
	var bytes, tooBig uint64
	accepted := 0
	for i := 0; i < b.N; i++ {
		data := b.Data(i)
		if len(data) > p.mtu+EthOverhead {
			tooBig++
			accepted++
			continue
		}
		if queued == limit {
			break
		}
		top := len(p.txFree) - 1
		addr := p.txFree[top]
		p.txFree = p.txFree[:top]
		copy(x.umem[addr:addr+uint64(len(data))], data)
		x.tx.descs[(x.tx.prod+queued)&x.tx.mask] = unix.XDPDesc{Addr: addr, Len: uint32(len(data))}
		queued++
		accepted++
		bytes += uint64(len(data))
	}
	if tooBig != 0 {
		p.txTooBig.Add(tooBig)
	}
	if queued == 0 {
		return accepted, nil
	}
	x.tx.submit(queued)
	if p.flush() == unix.ENETDOWN {
		p.txDown = true
		p.txLinkDown.Add(uint64(queued))
		p.hot.Warn().Str("port", p.name).Str("dev", p.dev).Msg("afxdp: link down, dropping transmitted frames")
		return accepted, nil
	}
	p.txFrames.Add(uint64(queued))
	p.txBytes.Add(bytes)
	return accepted, nil
}

// reclaim moves every completed transmit frame back to the free stack.
func (p *Port) reclaim() {
	x := p.x
	n := x.comp.avail(x.comp.size)
	if n == 0 {
		return
	}
	for i := range n {
		a := x.comp.addrs[(x.comp.cons+i)&x.comp.mask] & p.frameMask
		if a < p.rxLimit || a >= p.umemLen || len(p.txFree) == cap(p.txFree) {
			continue // not a transmit frame of ours: the kernel is confused, do not reuse it
		}
		p.txFree = append(p.txFree, a)
	}
	x.comp.release(n)
}

// flush gets the tx ring sent. It returns ENETDOWN when the link is down;
// other errors are counted by kickOnce.
func (p *Port) flush() unix.Errno {
	x := p.x
	if x.zeroCopy {
		// The driver sends from the ring on its own; it needs a kick only
		// when it says so.
		if !x.tx.needWakeup() {
			return 0
		}
		return p.kickOnce()
	}
	for range p.maxKicks {
		switch e := p.kickOnce(); e {
		case 0, unix.EAGAIN, unix.EINTR, unix.ENOBUFS, unix.EBUSY:
		default:
			return e // ENETDOWN, or an error kicking again will not cure
		}
		p.reclaim()
		if x.tx.drained() {
			break
		}
	}
	return 0
}

// kickOnce is one sendto, with its errno sorted into counters.
func (p *Port) kickOnce() unix.Errno {
	p.txKicks.Add(1)
	e := kick(p.x.fd)
	switch e {
	case 0, unix.EAGAIN, unix.EINTR, unix.ENOBUFS:
		// Sent what it could (EAGAIN: budget used or completion ring
		// full; ENOBUFS: no skb): reclaim and kick again.
	case unix.EBUSY:
		// The device dropped one frame ("completed but not sent").
		p.txDropped.Add(1)
	case unix.ENETDOWN:
	default:
		p.txErrors.Add(1)
		p.hot.Error().Err(e).Str("port", p.name).Msg("afxdp: sendto failed")
	}
	return e
}

// Stats implements ports.Port. Drops holds the kernel's counters of the
// socket (struct xdp_statistics) and the port's own:
//
//	rx-dropped       kernel: frames dropped for lack of a fill buffer or too big for a UMEM frame
//	rx-invalid       kernel: invalid descriptors in the fill ring
//	tx-invalid       kernel: invalid descriptors in the tx ring
//	rx-ring-full     kernel: frames dropped because the rx ring was full
//	fill-ring-empty  kernel: times a frame found the fill ring empty (overlaps rx-dropped)
//	too-big          received frames larger than the batch buffer
//	rx-bad-desc      rx descriptors outside the receive frames (never expected)
//	tx-too-big       frames longer than MTU + EthOverhead, never sent
//	link-down        frames transmitted while the link was down
//	tx-dropped       frames the device refused (sendto EBUSY)
//	tx-error         sendto errors other than the above
//	peer-dropped     veth only: the tx_dropped of the veth's other end since the port
//	                 opened, frames lost before they reached the device (mostly: its
//	                 256-frame XDP ring was full; see veth_linux.go)
func (p *Port) Stats() ports.Stats {
	p.mu.Lock()
	st := p.final
	if !p.closed.Load() {
		if s, err := p.x.stats(); err == nil {
			st = s
		}
		if p.hasPeer {
			if ps, err := p.peer.state(); err == nil && ps.txDropped >= p.peerDrop0 {
				p.peerDropAt = ps.txDropped
			}
		}
	}
	peerDropped := p.peerDropAt - p.peerDrop0
	hasPeer := p.hasPeer
	p.mu.Unlock()
	var fc fastPathCounters
	if p.fp != nil && !p.closed.Load() {
		fc = p.fp.counters(p)
	}
	s := ports.Stats{
		OffloadRxFrames: fc.RxFrames, OffloadRxBytes: fc.RxBytes,
		OffloadTxFrames: fc.TxFrames, OffloadTxBytes: fc.TxBytes,
		RxFrames: p.rxFrames.Load(),
		RxBytes:  p.rxBytes.Load(),
		TxFrames: p.txFrames.Load(),
		TxBytes:  p.txBytes.Load(),
		Drops: map[string]uint64{
			"rx-dropped":      st.Rx_dropped,
			"rx-invalid":      st.Rx_invalid_descs,
			"tx-invalid":      st.Tx_invalid_descs,
			"rx-ring-full":    st.Rx_ring_full,
			"fill-ring-empty": st.Rx_fill_ring_empty_descs,
			"too-big":         p.rxTooBig.Load(),
			"rx-bad-desc":     p.rxBadDesc.Load(),
			"tx-too-big":      p.txTooBig.Load(),
			"link-down":       p.txLinkDown.Load(),
			"tx-dropped":      p.txDropped.Load(),
			"tx-error":        p.txErrors.Load(),
		},
	}
	if hasPeer {
		s.Drops["peer-dropped"] = peerDropped
	}
	return s
}

// Close implements ports.Port. It waits for a running Receive or Transmit
// to return, unregisters the socket, detaches the XDP program if no other
// port uses it (leaving the device with no XDP program in any mode) and
// frees the socket and its UMEM. It is safe to call more than once.
func (p *Port) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return nil
	}
	p.closed.Store(true)
	for p.rxBusy.Load() || p.txBusy.Load() {
		time.Sleep(20 * time.Microsecond)
	}
	if st, err := p.x.stats(); err == nil {
		p.final = st
	}
	if p.hasPeer {
		if ps, err := p.peer.state(); err == nil && ps.txDropped >= p.peerDrop0 {
			p.peerDropAt = ps.txDropped
		}
	}
	if p.fp != nil {
		p.fp.leave(p)
	}
	err := errors.Join(releaseProgram(p.prog, p.queue), p.x.close())
	if err != nil {
		p.log.Error().Err(err).Str("port", p.name).Str("dev", p.dev).Msg("afxdp port closed with errors")
		return fmt.Errorf("afxdp: close %s: %w", p.name, err)
	}
	p.log.Info().Str("port", p.name).Str("dev", p.dev).Int("queue", p.queue).Msg("afxdp port closed")
	return nil
}

// kicks is the number of sendto calls so far (for tests and benchmarks).
func (p *Port) kicks() uint64 { return p.txKicks.Load() }
