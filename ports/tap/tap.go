package tap

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/xvswitch/xvs/header"
	"github.com/xvswitch/xvs/ports"
	"github.com/xvswitch/xvs/ring"
)

// Limits of the kernel's TAP driver.
const (
	// MaxQueues is the most queues a TAP device has (MAX_TAP_QUEUES).
	MaxQueues = 256
	// MinMTU and MaxMTU bound Config.MTU (IPv4's minimum; the largest
	// frame, 65535, less the Ethernet header).
	MinMTU = 68
	MaxMTU = 65535 - header.EthernetHeaderLen
	// maxDevLen is IFNAMSIZ less the terminating NUL.
	maxDevLen = 15
)

// ErrBadConfig is wrapped by every error about a Config field.
var ErrBadConfig = errors.New("bad tap configuration")

// Config describes one TAP port.
type Config struct {
	// Name is the port's name in the switch; empty means Dev.
	Name string
	// Dev is the TAP device: created if absent, attached to (as new
	// queues) if it is an existing multi-queue TAP. At most 15 bytes.
	Dev string
	// Queues is the number of queues the port opens; 0 means 1.
	Queues int
	// MTU is set on the device; 0 means 1500.
	MTU int
	// MAC, if set, becomes the device's address; otherwise the device
	// keeps the one it has (random for a new device).
	MAC net.HardwareAddr
	// Logger receives open and close events; the zero value is silent.
	Logger zerolog.Logger
}

// dropReason indexes the port's drop counters.
type dropReason int

const (
	dropTooBig    dropReason = iota // frame longer than the buffer (rx) or MTU (tx)
	dropVnetGSO                     // received a GSO super-packet
	dropMalformed                   // shorter than Ethernet, or bad checksum offsets
	dropLinkDown                    // written while the device was down (EIO)
	dropTxError                     // any other write error
	numDropReasons
	dropNone dropReason = -1
)

var dropNames = [numDropReasons]string{
	dropTooBig:    "too-big",
	dropVnetGSO:   "vnet-gso",
	dropMalformed: "malformed",
	dropLinkDown:  "link-down",
	dropTxError:   "tx-error",
}

// Port is a TAP device port. Receive and Transmit may run concurrently
// with each other (each from one goroutine at a time), and with Stats and
// Close.
type Port struct {
	name    string
	dev     string
	mac     net.HardwareAddr
	mtu     int
	created bool
	log     zerolog.Logger

	// mu is held shared by Receive and Transmit and exclusively by Close,
	// so a descriptor is never closed (and its number reused) under a
	// read or write in progress.
	mu     sync.RWMutex
	closed atomic.Bool
	fds    []int

	rxNext int              // first queue of the next Receive; Receive only
	rxHdr  [vnetHdrLen]byte // header scratch for Offset < vnetHdrLen; Receive only
	txIov  [2][]byte        // {zero header, frame}; Transmit only

	rxFrames, rxBytes, txFrames, txBytes atomic.Uint64
	drops                                [numDropReasons]atomic.Uint64
	csumDone                             atomic.Uint64 // checksums completed on receive (tests)
}

var _ ports.Port = (*Port)(nil)

// zeroVnetHdr is the header written in front of every transmitted frame:
// no flags, no GSO. It is never written to.
var zeroVnetHdr [vnetHdrLen]byte

// New opens the TAP port described by cfg. See the package documentation
// for what it does to the device.
func New(cfg Config) (*Port, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	fds, created, err := openQueues(cfg.Dev, cfg.Queues)
	if err != nil {
		return nil, err
	}
	mac, err := configureDevice(fds[0], cfg.Dev, cfg.MTU, cfg.MAC)
	if err != nil {
		closeQueues(fds)
		return nil, err
	}
	p := &Port{
		name:    cfg.Name,
		dev:     cfg.Dev,
		mac:     mac,
		mtu:     cfg.MTU,
		created: created,
		log:     cfg.Logger,
		fds:     fds,
	}
	p.txIov[0] = zeroVnetHdr[:]
	p.log.Info().Str("port", p.name).Str("dev", p.dev).Int("queues", len(fds)).
		Int("mtu", p.mtu).Str("mac", mac.String()).Bool("created", created).Msg("tap port open")
	return p, nil
}

// normalize fills defaults and checks every field.
func (c *Config) normalize() error {
	if err := checkDevName(c.Dev); err != nil {
		return err
	}
	if c.Name == "" {
		c.Name = c.Dev
	}
	if err := ports.Range("Queues", &c.Queues, 1, 1, MaxQueues); err != nil {
		return fmt.Errorf("tap: %w: %w", ErrBadConfig, err)
	}
	if err := ports.Range("MTU", &c.MTU, 1500, MinMTU, MaxMTU); err != nil {
		return fmt.Errorf("tap: %w: %w", ErrBadConfig, err)
	}
	if c.MAC != nil {
		if err := ports.CheckMAC(c.MAC); err != nil {
			return fmt.Errorf("tap: %w: MAC %v: %w", ErrBadConfig, c.MAC, err)
		}
		c.MAC = append(net.HardwareAddr(nil), c.MAC...)
	}
	return nil
}

// checkDevName accepts what the kernel's dev_valid_name accepts, less '%'
// (a name template: the kernel would pick the name, and Close could not
// tell which device it made).
func checkDevName(dev string) error {
	switch {
	case dev == "":
		return fmt.Errorf("tap: %w: Dev is empty", ErrBadConfig)
	case len(dev) > maxDevLen:
		return fmt.Errorf("tap: %w: Dev %q: device name too long (%d bytes, at most %d)", ErrBadConfig, dev, len(dev), maxDevLen)
	case dev == "." || dev == "..":
		return fmt.Errorf("tap: %w: Dev %q: not a device name", ErrBadConfig, dev)
	case strings.ContainsAny(dev, "/:%\x00 \t\n\v\f\r"):
		return fmt.Errorf("tap: %w: Dev %q: contains '/', ':', '%%', NUL or white space", ErrBadConfig, dev)
	}
	return nil
}

// Name implements ports.Port.
func (p *Port) Name() string { return p.name }

// MAC implements ports.Port: the address of the device's kernel side, read
// (or set) when the port was opened.
func (p *Port) MAC() net.HardwareAddr { return p.mac }

// MTU implements ports.Port.
func (p *Port) MTU() int { return p.mtu }

// Dev is the TAP device's name.
func (p *Port) Dev() string { return p.dev }

// Queues is the number of queues the port holds.
func (p *Port) Queues() int { return len(p.fds) }

// Created reports whether New created the device (and Close will remove
// it) rather than attaching to an existing one.
func (p *Port) Created() bool { return p.created }

// Receive implements ports.Port. It reads until the batch is full or every
// queue is empty; it does not block and does not allocate.
func (p *Port) Receive(b *ring.Batch) (int, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed.Load() {
		return 0, ports.ErrPortClosed
	}
	a := b.Arena()
	nq := len(p.fds)
	n := 0
	var bytes uint64
	var drops [numDropReasons]uint64
	var csums uint64
	var rerr error
	for qi := 0; qi < nq && n < ring.BatchSize; qi++ {
		fd := p.fds[(p.rxNext+qi)%nq]
		for n < ring.BatchSize {
			f := &b.Frames[n]
			buf := a.Buffer(f.Index)
			off := int(f.Offset)
			if off > len(buf) {
				off = len(buf)
			}
			var got int
			var res ioResult
			var err error
			var hdr vnetHdr
			if off >= vnetHdrLen {
				hdr = buf[off-vnetHdrLen : off]
				got, res, err = readQueue(fd, buf[off-vnetHdrLen:])
			} else {
				hdr = p.rxHdr[:]
				got, res, err = readvQueue(fd, hdr, buf[off:])
			}
			if res == ioIntr {
				continue
			}
			if res != ioOK {
				if res != ioAgain && rerr == nil {
					rerr = fmt.Errorf("tap: read %s: %w", p.dev, err)
				}
				break
			}
			flen := got - vnetHdrLen
			switch {
			case flen >= len(buf)-off:
				// The kernel truncates a frame to the buffer and
				// reports the truncated length, so a read that fills
				// the room may have lost bytes: the room must exceed
				// the frame by at least one byte.
				drops[dropTooBig]++
				continue
			case flen < header.EthernetHeaderLen:
				drops[dropMalformed]++
				continue
			}
			reason, csummed := hdr.apply(buf[off : off+flen])
			if reason != dropNone {
				drops[reason]++
				continue
			}
			if csummed {
				csums++
			}
			f.Len = uint16(flen)
			bytes += uint64(flen)
			n++
		}
	}
	if nq > 1 {
		p.rxNext = (p.rxNext + 1) % nq
	}
	b.N = n
	p.rxFrames.Add(uint64(n))
	p.rxBytes.Add(bytes)
	p.addDrops(&drops)
	if csums > 0 {
		p.csumDone.Add(csums)
	}
	if n > 0 {
		// The frames are good; a queue that failed will fail again on
		// the next call, which reports it.
		return n, nil
	}
	return 0, rerr
}

// Transmit implements ports.Port. It writes b.Frames[:b.N] in order, one
// writev each, and returns how many it consumed: it stops early only when a
// queue is full (EAGAIN). With several queues a frame goes to queue
// Meta.Hash mod Queues; a frame whose Hash is 0 (not computed) gets
// header.FlowHash of its bytes, written into its Meta. It does not
// allocate and never writes to the batch's buffers.
func (p *Port) Transmit(b *ring.Batch) (int, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed.Load() {
		return 0, ports.ErrPortClosed
	}
	nq := uint32(len(p.fds))
	maxLen := p.mtu + header.EthernetHeaderLen + header.VLANTagLen
	var frames, bytes uint64
	var drops [numDropReasons]uint64
	i := 0
loop:
	for i < b.N {
		data := b.Data(i)
		switch {
		case len(data) > maxLen:
			drops[dropTooBig]++
			i++
			continue
		case len(data) < header.EthernetHeaderLen:
			drops[dropMalformed]++
			i++
			continue
		}
		fd := p.fds[0]
		if nq > 1 {
			f := &b.Frames[i]
			if f.Hash == 0 {
				f.Hash = header.FlowHash(data)
			}
			fd = p.fds[f.Hash%nq]
		}
		p.txIov[1] = data
		switch writeQueue(fd, p.txIov[:]) {
		case ioOK:
			frames++
			bytes += uint64(len(data))
		case ioIntr:
			continue // the same frame again
		case ioAgain:
			break loop
		case ioDown:
			drops[dropLinkDown]++
		default:
			drops[dropTxError]++
		}
		i++
	}
	p.txIov[1] = nil // keep no reference to the batch
	p.txFrames.Add(frames)
	p.txBytes.Add(bytes)
	p.addDrops(&drops)
	return i, nil
}

func (p *Port) addDrops(d *[numDropReasons]uint64) {
	for r, v := range d {
		if v != 0 {
			p.drops[r].Add(v)
		}
	}
}

// Stats implements ports.Port. Drops holds every reason the port counts,
// zero or not.
func (p *Port) Stats() ports.Stats {
	s := ports.Stats{
		RxFrames: p.rxFrames.Load(),
		RxBytes:  p.rxBytes.Load(),
		TxFrames: p.txFrames.Load(),
		TxBytes:  p.txBytes.Load(),
		Drops:    make(map[string]uint64, numDropReasons),
	}
	for r := range numDropReasons {
		s.Drops[dropNames[r]] = p.drops[r].Load()
	}
	return s
}

// Close implements ports.Port. It closes every queue; a device the port
// created goes away with its last queue. Later calls return nil.
func (p *Port) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	p.mu.Lock()
	fds := p.fds
	p.fds = nil
	p.mu.Unlock()
	err := closeQueues(fds)
	p.log.Info().Str("port", p.name).Str("dev", p.dev).Err(err).Msg("tap port closed")
	if err != nil {
		return fmt.Errorf("tap: close %s: %w", p.dev, err)
	}
	return nil
}

// ioResult classifies the outcome of one read or write on a queue.
type ioResult int

const (
	ioOK    ioResult = iota
	ioAgain          // EAGAIN: queue empty (read) or full (write)
	ioIntr           // EINTR: try again
	ioDown           // EIO: the device is down
	ioError          // anything else
)

// WaitFDs implements ports.Waiter: the queue descriptors, readable when
// frames are waiting.
func (p *Port) WaitFDs() []int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return append([]int(nil), p.fds...)
}

var _ ports.Waiter = (*Port)(nil)
