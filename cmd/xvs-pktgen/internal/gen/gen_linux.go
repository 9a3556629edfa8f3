package gen

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xvswitch/xvs/cmd/xvs-pktgen/internal/frame"
)

// Options configure a generator run.
type Options struct {
	Mode  string // ModeAuto, ModeLive, ModeAFXDP or ModePacket
	Dev   string // device to send on
	Netns string // network namespace of Dev ("" = current)
	// Frame describes the frames. A nil SrcMAC means the device's own.
	Frame    frame.Config
	Count    uint64        // stop after this many frames (0 = no limit)
	Duration time.Duration // stop after this long (0 = no limit)
	Rate     uint64        // frames per second (0 = as fast as possible)
}

// Result describes a finished run.
type Result struct {
	Mode    string        // the mode that sent (ModeAuto resolved)
	Frame   frame.Config  // the frames, defaults filled in
	Sent    uint64        // frames that left (see sender.send)
	Bytes   uint64        // Sent × frame size
	Elapsed time.Duration // from the first frame to the end of the run
	// DevTx and DevTxDropped are how much the device's transmit and
	// transmit-drop counters grew during the run (other traffic included);
	// DevStats says whether they could be read.
	DevStats     bool
	DevTx        uint64
	DevTxDropped uint64
	// Warning says why the run was slower than it could be, or is "".
	Warning string
}

// Generator sends frames on one OS thread of its own until the count or
// the duration is reached, or Stop is called.
type Generator struct {
	o     Options
	sent  atomic.Uint64
	stop  atomic.Bool
	mode  atomic.Value // string
	done  chan struct{}
	res   Result
	err   error
	start time.Time
	// notice is one line for the user about the mode chosen, or "".
	notice string
}

// Start validates o, opens the device and starts sending. It returns once
// the generator is ready (or failed to be).
func Start(o Options) (*Generator, error) {
	if o.Count == 0 && o.Duration == 0 {
		return nil, errors.New("generator: set a count or a duration")
	}
	switch o.Mode {
	case ModeAuto, ModeLive, ModeAFXDP, ModePacket:
	default:
		return nil, fmt.Errorf("generator: mode %q: want auto, live, afxdp or packet", o.Mode)
	}
	g := &Generator{o: o, done: make(chan struct{})}
	g.mode.Store(o.Mode)
	ready := make(chan error, 1)
	go g.loop(ready)
	if err := <-ready; err != nil {
		<-g.done
		return nil, err
	}
	return g, nil
}

// Sent is the number of frames sent so far; safe to call at any time.
func (g *Generator) Sent() uint64 { return g.sent.Load() }

// Mode is the mode sending now (auto is resolved at the first frame).
func (g *Generator) Mode() string { return g.mode.Load().(string) }

// Notice is a line for the user, set before Start returns, saying why
// auto mode passed over a mode (for example "live frames refused by the
// kernel (EPERM) - using afxdp"), or "".
func (g *Generator) Notice() string { return g.notice }

// Stop asks the generator to stop after the burst in progress.
func (g *Generator) Stop() { g.stop.Store(true) }

// Done is closed when the generator has stopped.
func (g *Generator) Done() <-chan struct{} { return g.done }

// Wait waits for the run to end and returns its result; after an error the
// result still counts what was sent.
func (g *Generator) Wait() (Result, error) {
	<-g.done
	return g.res, g.err
}

// resolve looks up the device (in the thread's namespace) and fills in the
// frame defaults.
func resolve(o Options) (*net.Interface, frame.Config, error) {
	c := o.Frame
	ifi, err := lookupDev(o.Dev)
	if err != nil {
		return nil, c, err
	}
	if ifi.Flags&net.FlagUp == 0 {
		return nil, c, fmt.Errorf("dev %s: %w", o.Dev, ErrDown)
	}
	// The kernel reports a new carrier lazily (link watch, up to a second
	// after "ip link set up"): give a device just brought up that long.
	for end := time.Now().Add(carrierWait); ifi.Flags&net.FlagRunning == 0; {
		if time.Now().After(end) {
			return nil, c, fmt.Errorf("dev %s: %w", o.Dev, ErrNoCarrier)
		}
		time.Sleep(20 * time.Millisecond)
		if ifi, err = lookupDev(o.Dev); err != nil {
			return nil, c, err
		}
	}
	if c.SrcMAC == nil {
		c.SrcMAC = ifi.HardwareAddr
		if len(c.SrcMAC) != 6 {
			c.SrcMAC = net.HardwareAddr{0x02, 0x58, 0x56, 0x50, 0x00, 0x01}
		}
	}
	if err := c.Validate(); err != nil {
		return nil, c, err
	}
	if ifi.MTU > 0 && c.Size-frame.EthLen > ifi.MTU {
		return nil, c, fmt.Errorf("size %d: larger than the MTU of %s (%d) plus the %d-byte Ethernet header", c.Size, o.Dev, ifi.MTU, frame.EthLen)
	}
	return ifi, c, nil
}

// carrierWait is how long a send waits for the device's carrier.
const carrierWait = 2 * time.Second

// ErrDown is wrapped when the device is administratively down.
var ErrDown = errors.New("device is down")

// ErrNoCarrier is wrapped when the device is up without a carrier (a veth
// whose peer is down).
var ErrNoCarrier = errors.New("device has no carrier (on a veth: the peer is down)")

func open(mode string, ifi *net.Interface, c frame.Config) (sender, error) {
	switch mode {
	case ModeLive:
		return openLive(ifi, c)
	case ModeAFXDP:
		return openAFXDP(ifi.Index, c)
	case ModePacket:
		return openPacket(ifi.Index, c)
	}
	return nil, fmt.Errorf("generator: mode %q", mode)
}

// autoOrder is the order ModeAuto tries the modes in.
var autoOrder = []string{ModeLive, ModeAFXDP, ModePacket}

// openNext opens the first of modes that works and removes the modes it
// tried. Only ModeAuto moves past a mode that fails with ErrUnsupported.
func (g *Generator) openNext(modes *[]string, ifi *net.Interface, c frame.Config) (sender, error) {
	var errs []error
	for len(*modes) > 0 {
		m := (*modes)[0]
		*modes = (*modes)[1:]
		s, err := open(m, ifi, c)
		if err == nil {
			g.mode.Store(s.mode())
			return s, nil
		}
		errs = append(errs, err)
		if g.o.Mode != ModeAuto || !errors.Is(err, ErrUnsupported) {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func (g *Generator) loop(ready chan<- error) {
	defer close(g.done)
	// The thread stays locked (and is discarded at the end): it may be
	// in another namespace and has signals blocked.
	if err := enterNetns(g.o.Netns); err != nil {
		ready <- err
		return
	}
	if err := blockAsyncSignals(); err != nil {
		ready <- fmt.Errorf("generator: block signals: %w", err)
		return
	}
	ifi, c, err := resolve(g.o)
	if err != nil {
		ready <- err
		return
	}
	g.res.Frame = c
	// A socket for the device's flags, in its namespace.
	ctl, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		ready <- fmt.Errorf("generator: control socket: %w", err)
		return
	}
	defer unix.Close(ctl)
	modes := []string{g.o.Mode}
	if g.o.Mode == ModeAuto {
		modes = autoOrder
	}
	// Ask the kernel once, before anything is sent, whether it runs live
	// frames at all: some refuse them even to root.
	var liveErr error
	if modes[0] == ModeLive {
		if liveErr = ProbeLive(ifi.Index); liveErr != nil {
			if g.o.Mode != ModeAuto || !errors.Is(liveErr, ErrUnsupported) {
				ready <- liveErr
				return
			}
			modes = modes[1:]
		}
	}
	s, err := g.openNext(&modes, ifi, c)
	if err != nil {
		ready <- errors.Join(liveErr, err)
		return
	}
	if liveErr != nil {
		g.notice = fmt.Sprintf("%v - using %s", liveErr, s.mode())
	}
	ready <- nil

	before, statsErr := devStats(ifi.Name)
	var queued uint64
	for {
		err = nil
		if g.o.Mode == ModeAuto && s.mode() == ModeLive && statsErr == nil {
			queued, err = g.probe(s, ifi.Name)
		}
		if err == nil {
			queued, err = g.pump(s, ctl, queued)
		}
		if queued == 0 && errors.Is(err, ErrUnsupported) && len(modes) > 0 {
			// Auto: the first frames showed the mode cannot work here.
			s.close()
			if s, err = g.openNext(&modes, ifi, c); err == nil {
				continue
			}
		}
		break
	}
	if s != nil {
		d, ferr := s.flush(time.Second)
		g.sent.Add(uint64(d))
		if err == nil {
			err = ferr // after a send error, flush fails the same way
		}
	}
	g.res.Elapsed = time.Since(g.start)
	if s != nil {
		err = errors.Join(err, s.close())
		if w, ok := s.(interface{ warn() string }); ok && w.warn() != "" {
			g.res.Warning = w.warn()
		}
	}
	g.err = err
	g.res.Mode = g.Mode()
	g.res.Sent = g.sent.Load()
	g.res.Bytes = g.res.Sent * uint64(c.Size)
	if after, err := devStats(ifi.Name); err == nil && statsErr == nil {
		g.res.DevStats = true
		g.res.DevTx = after.TxPackets - before.TxPackets
		g.res.DevTxDropped = after.TxDropped - before.TxDropped
	}
}

// probeFrames is how many frames auto mode sends to check that a device
// takes live frames.
const probeFrames = 64

// probeWait is how long probe waits for the device to count the frames.
const probeWait = 200 * time.Millisecond

// probe sends a few frames in live mode and checks that the device's
// transmit counter grew: a veth whose peer has no NAPI drops live frames
// without counting them anywhere, and auto mode should then use AF_XDP.
// When the device took them, they count as sent and queued is how many;
// when it did not, the error wraps ErrUnsupported.
func (g *Generator) probe(s sender, dev string) (queued uint64, err error) {
	n := uint64(probeFrames)
	if g.o.Count > 0 {
		n = min(n, g.o.Count)
	}
	before, err := devStats(dev)
	if err != nil {
		return 0, nil // cannot tell: trust the mode
	}
	g.start = time.Now()
	q, d, err := s.send(int(n))
	if err != nil {
		return 0, err
	}
	// A veth counts live frames as transmitted (or dropped, when its
	// peer's ring is full) when the peer's NAPI has taken them: at once
	// when that runs in the sender's softirq, later when the peer polls in
	// a kernel thread (threaded NAPI). So wait a little for the count, and
	// ask for half the probe: the kernel's own frames on the device (IPv6
	// neighbour discovery after link up) move the counter too.
	taken := func(after netlink.LinkStatistics) uint64 {
		return after.TxPackets - before.TxPackets + after.TxDropped - before.TxDropped
	}
	want := (n + 1) / 2
	after, err := devStats(dev)
	for wait := time.Now().Add(probeWait); err == nil && taken(after) < want && time.Now().Before(wait); {
		time.Sleep(probeWait / 50)
		after, err = devStats(dev)
	}
	if err == nil && taken(after) < want {
		g.res.Warning = fmt.Sprintf("live: %s took %d of %d probe frames (on a veth the peer needs NAPI: an XDP program or GRO); trying the next mode", dev, taken(after), n)
		return 0, fmt.Errorf("live: %s takes no XDP frames: %w", dev, ErrUnsupported)
	}
	g.sent.Add(uint64(d))
	return uint64(q), nil
}

// checkEvery is how often pump calls checkDev.
const checkEvery = 100 * time.Millisecond

// checkDev fails when the device is down or has lost its carrier: frames
// sent to such a device vanish in every mode without an error (live
// frames, a veth's transmit to a peer that is down).
func checkDev(ctl int, dev string) error {
	ifr, err := unix.NewIfreq(dev)
	if err != nil {
		return fmt.Errorf("dev %s: %w", dev, err)
	}
	if err := unix.IoctlIfreq(ctl, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("dev %s: flags: %w", dev, err)
	}
	switch flags := ifr.Uint16(); {
	case flags&unix.IFF_UP == 0:
		return fmt.Errorf("dev %s: %w", dev, ErrDown)
	case flags&unix.IFF_RUNNING == 0:
		return fmt.Errorf("dev %s: %w", dev, ErrNoCarrier)
	}
	return nil
}

// pump is the send loop. queued is how many frames were already sent; it
// returns the number queued in all.
func (g *Generator) pump(s sender, ctl int, queued uint64) (uint64, error) {
	o := g.o
	minChunk := uint64(1)
	if o.Rate > 0 {
		// Bursts of about half a millisecond: per-frame pacing would
		// cost a syscall per frame.
		minChunk = min(max(o.Rate/2000, 1), 256)
	}
	if queued == 0 {
		g.start = time.Now()
	}
	deadline := g.start.Add(o.Duration)
	nextCheck := g.start
	for !g.stop.Load() {
		now := time.Now()
		if !now.Before(nextCheck) {
			if err := checkDev(ctl, o.Dev); err != nil {
				return queued, fmt.Errorf("%s: %w", s.mode(), err)
			}
			nextCheck = now.Add(checkEvery)
		}
		if o.Duration > 0 && !now.Before(deadline) {
			return queued, nil
		}
		n := uint64(s.maxBurst())
		if o.Count > 0 {
			if queued >= o.Count {
				return queued, nil
			}
			n = min(n, o.Count-queued)
		}
		if o.Rate > 0 {
			// Frames due by now, the first at t=0.
			due := uint64(now.Sub(g.start).Seconds()*float64(o.Rate)) + 1
			want := queued + min(minChunk, n)
			if due < want {
				wait := time.Duration(float64(want-due) / float64(o.Rate) * float64(time.Second))
				if o.Duration > 0 {
					wait = min(wait, deadline.Sub(now))
				}
				time.Sleep(max(wait, 10*time.Microsecond))
				continue
			}
			n = min(n, due-queued)
		}
		q, d, err := s.send(int(n))
		queued += uint64(q)
		g.sent.Add(uint64(d))
		if err != nil {
			return queued, err
		}
	}
	return queued, nil
}

// devStats reads the device's counters through netlink (in the calling
// thread's network namespace).
func devStats(dev string) (netlink.LinkStatistics, error) {
	l, err := netlink.LinkByName(dev)
	if err != nil {
		return netlink.LinkStatistics{}, err
	}
	st := l.Attrs().Statistics
	if st == nil {
		return netlink.LinkStatistics{}, errors.New("no statistics")
	}
	return *st, nil
}
