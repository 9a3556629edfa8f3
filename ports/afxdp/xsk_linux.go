package afxdp

// The AF_XDP socket layer, written on golang.org/x/sys. asavie/xdp's Socket
// is not used because of what FIELD-NOTES and this package's tests found:
// its Transmit panics on sendto errors and kicks once per call (the kernel
// sends at most 32 frames per kick in copy mode, so the rest waited for the
// next call); its Close leaves the ring mappings in place, which keeps the
// socket bound, so a second port on the same queue failed with EBUSY; bind
// flags are package globals; GetDescs scans a free list linearly. The layer
// below keeps the same UMEM split (the first fill-ring-size frames receive,
// the rest transmit) but hands out transmit frames from a stack and recycles
// receive frames straight back to the fill ring.

import (
	"errors"
	"fmt"
	"math/bits"

	"golang.org/x/sys/unix"
)

// xdpPacketHeadroom is XDP_PACKET_HEADROOM: the kernel writes a received
// frame this far into its UMEM frame.
const xdpPacketHeadroom = 256

// xskConfig sizes one socket. All sizes are validated by Config.check.
type xskConfig struct {
	ifindex   int
	queue     int
	frames    uint32
	frameSize uint32
	fillSize  uint32
	compSize  uint32
	rxSize    uint32
	txSize    uint32
	bindFlags uint16 // XDP_COPY or XDP_ZEROCOPY
}

// xsk is one AF_XDP socket with its own UMEM.
type xsk struct {
	fd         int
	umem       []byte
	frameShift uint   // log2(frame size)
	rxFrames   uint32 // frames [0, rxFrames) receive; the rest transmit
	fill       addrRing
	comp       addrRing
	rx         descRing
	tx         descRing
	ringMem    [4][]byte
	zeroCopy   bool
	txBudget   int // frames the kernel sends per kick in copy mode
}

// step names the setup step that failed, for the error message.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

func failed(step string, err error) error { return &stepError{step, err} }

// newXSK creates, maps and binds a socket. On error nothing is left open.
func newXSK(c xskConfig) (_ *xsk, err error) {
	x := &xsk{fd: -1, frameShift: uint(bits.TrailingZeros32(c.frameSize)), rxFrames: c.fillSize}
	defer func() {
		if err != nil {
			x.close()
		}
	}()
	x.fd, err = unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, failed("create AF_XDP socket", err)
	}
	size := int(c.frames) * int(c.frameSize)
	x.umem, err = unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, failed(fmt.Sprintf("map UMEM of %d bytes", size), err)
	}
	if err = registerUMEM(x.fd, x.umem, c.frameSize); err != nil {
		return nil, failed(fmt.Sprintf("register UMEM of %d bytes", size), err)
	}
	for _, r := range []struct {
		opt  int
		size uint32
		name string
	}{
		{unix.XDP_UMEM_FILL_RING, c.fillSize, "fill"},
		{unix.XDP_UMEM_COMPLETION_RING, c.compSize, "completion"},
		{unix.XDP_RX_RING, c.rxSize, "rx"},
		{unix.XDP_TX_RING, c.txSize, "tx"},
	} {
		if err = unix.SetsockoptInt(x.fd, unix.SOL_XDP, r.opt, int(r.size)); err != nil {
			return nil, failed(fmt.Sprintf("size %s ring to %d", r.name, r.size), err)
		}
	}
	off, err := mmapOffsets(x.fd)
	if err != nil {
		return nil, failed("read ring offsets", err)
	}
	maps := []struct {
		pgoff int64
		off   unix.XDPRingOffset
		size  uint32
		elem  uintptr
		name  string
	}{
		{unix.XDP_UMEM_PGOFF_FILL_RING, off.Fr, c.fillSize, addrSize, "fill"},
		{unix.XDP_UMEM_PGOFF_COMPLETION_RING, off.Cr, c.compSize, addrSize, "completion"},
		{unix.XDP_PGOFF_RX_RING, off.Rx, c.rxSize, descSize, "rx"},
		{unix.XDP_PGOFF_TX_RING, off.Tx, c.txSize, descSize, "tx"},
	}
	for i, m := range maps {
		n := int(m.off.Desc) + int(m.size)*int(m.elem)
		x.ringMem[i], err = unix.Mmap(x.fd, m.pgoff, n, unix.PROT_READ|unix.PROT_WRITE,
			unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return nil, failed("map "+m.name+" ring", err)
		}
	}
	x.fill = newAddrRing(x.ringMem[0], off.Fr, c.fillSize)
	x.comp = newAddrRing(x.ringMem[1], off.Cr, c.compSize)
	x.rx = newDescRing(x.ringMem[2], off.Rx, c.rxSize)
	x.tx = newDescRing(x.ringMem[3], off.Tx, c.txSize)

	// Newer kernels (6.18 here) let one kick send more than 32 frames in
	// copy mode; older ones refuse the option and keep 32.
	x.txBudget = 32
	if unix.SetsockoptInt(x.fd, unix.SOL_XDP, unix.XDP_MAX_TX_SKB_BUDGET, int(c.txSize)) == nil {
		x.txBudget = int(c.txSize)
	}

	sa := &unix.SockaddrXDP{
		Flags:   c.bindFlags | unix.XDP_USE_NEED_WAKEUP,
		Ifindex: uint32(c.ifindex),
		QueueID: uint32(c.queue),
	}
	if err = unix.Bind(x.fd, sa); err != nil {
		return nil, failed("bind", err)
	}
	opts, err := options(x.fd)
	if err != nil {
		return nil, failed("read socket options", err)
	}
	x.zeroCopy = opts&unix.XDP_OPTIONS_ZEROCOPY != 0

	// Hand every receive frame to the kernel.
	for i := range c.fillSize {
		x.fill.addrs[i&x.fill.mask] = uint64(i) << x.frameShift
	}
	x.fill.submit(c.fillSize)
	return x, nil
}

// txAddrs returns the UMEM addresses of the transmit frames.
func (x *xsk) txAddrs() []uint64 {
	n := uint32(len(x.umem)>>x.frameShift) - x.rxFrames
	a := make([]uint64, n)
	for i := range n {
		// Highest address first so that the lowest is popped first.
		a[i] = uint64(x.rxFrames+n-1-i) << x.frameShift
	}
	return a
}

// frameMask clears the offset of an address inside its frame.
func (x *xsk) frameMask() uint64 { return ^(uint64(1)<<x.frameShift - 1) }

// stats reads the kernel's counters of the socket.
func (x *xsk) stats() (unix.XDPStatistics, error) { return statistics(x.fd) }

// close unmaps the rings, closes the socket and frees the UMEM. It is safe
// on a partly built xsk and safe to call twice.
func (x *xsk) close() error {
	var errs []error
	// The ring mappings hold a reference to the socket: unmap them first or
	// the socket outlives close and stays bound to the queue.
	for i, m := range x.ringMem {
		if m != nil {
			if err := unix.Munmap(m); err != nil {
				errs = append(errs, fmt.Errorf("unmap ring: %w", err))
			}
			x.ringMem[i] = nil
		}
	}
	x.fill, x.comp, x.rx, x.tx = addrRing{}, addrRing{}, descRing{}, descRing{}
	if x.fd >= 0 {
		if err := unix.Close(x.fd); err != nil {
			errs = append(errs, fmt.Errorf("close socket: %w", err))
		}
		x.fd = -1
	}
	if x.umem != nil {
		if err := unix.Munmap(x.umem); err != nil {
			errs = append(errs, fmt.Errorf("unmap UMEM: %w", err))
		}
		x.umem = nil
	}
	return errors.Join(errs...)
}
