//go:build linux

package afxdp

// This file holds every pointer trick of the package: views of the four
// AF_XDP rings over their mmap'ed memory, and the raw socket calls that pass
// pointers to the kernel. Each view is valid while its mapping is: the
// mappings are made in newXSK and removed in (*xsk).close, which runs only
// after Close has waited for Receive and Transmit to return.

import (
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ringHead is one single-producer single-consumer ring shared with the
// kernel. Producer and consumer are free-running uint32 indexes; the ring
// size is a power of two and an index selects slot idx&mask.
//
// For a ring the port produces to (fill, tx), prod is the port's own
// producer index and cons a cached copy of the kernel's consumer; for a ring
// the port consumes (rx, completion) it is the other way round. Caching the
// other side's index means the shared cache line is read only when the cache
// says the ring is full (or empty), as libxdp does.
type ringHead struct {
	producer *uint32
	consumer *uint32
	flags    *uint32
	mask     uint32
	size     uint32
	prod     uint32
	cons     uint32
}

func newRingHead(mem []byte, off unix.XDPRingOffset, size uint32) ringHead {
	base := unsafe.Pointer(unsafe.SliceData(mem))
	r := ringHead{
		producer: (*uint32)(unsafe.Add(base, off.Producer)),
		consumer: (*uint32)(unsafe.Add(base, off.Consumer)),
		flags:    (*uint32)(unsafe.Add(base, off.Flags)),
		mask:     size - 1,
		size:     size,
	}
	r.prod = atomic.LoadUint32(r.producer)
	r.cons = atomic.LoadUint32(r.consumer)
	return r
}

// free returns how many slots a producer may fill, reading the kernel's
// consumer index only when the cached one leaves fewer than want.
func (r *ringHead) free(want uint32) uint32 {
	n := r.size - (r.prod - r.cons)
	if n < want {
		r.cons = atomic.LoadUint32(r.consumer)
		n = r.size - (r.prod - r.cons)
	}
	return n
}

// submit publishes n produced slots. The atomic store orders the slot
// writes before the index (a release store; x86 stores are not reordered
// and the Go compiler does not move plain stores past an atomic one).
func (r *ringHead) submit(n uint32) {
	r.prod += n
	atomic.StoreUint32(r.producer, r.prod)
}

// drained reports whether the kernel consumed everything produced.
func (r *ringHead) drained() bool {
	r.cons = atomic.LoadUint32(r.consumer)
	return r.cons == r.prod
}

// avail returns how many slots a consumer may read, at most want, reading
// the kernel's producer index only when the cached one shows fewer. The
// atomic load orders the index before the slot reads that follow.
func (r *ringHead) avail(want uint32) uint32 {
	n := r.prod - r.cons
	if n < want {
		r.prod = atomic.LoadUint32(r.producer)
		n = r.prod - r.cons
	}
	if n > r.size { // a corrupt producer index: never read beyond one lap
		n = r.size
	}
	return min(n, want)
}

// release hands n consumed slots back to the kernel.
func (r *ringHead) release(n uint32) {
	r.cons += n
	atomic.StoreUint32(r.consumer, r.cons)
}

// needWakeup reports the kernel's XDP_RING_NEED_WAKEUP flag.
func (r *ringHead) needWakeup() bool {
	return atomic.LoadUint32(r.flags)&unix.XDP_RING_NEED_WAKEUP != 0
}

// addrRing is a fill or completion ring: UMEM addresses.
type addrRing struct {
	ringHead
	addrs []uint64
}

func newAddrRing(mem []byte, off unix.XDPRingOffset, size uint32) addrRing {
	p := (*uint64)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(mem)), off.Desc))
	return addrRing{ringHead: newRingHead(mem, off, size), addrs: unsafe.Slice(p, size)}
}

// descRing is an rx or tx ring: address, length and options.
type descRing struct {
	ringHead
	descs []unix.XDPDesc
}

func newDescRing(mem []byte, off unix.XDPRingOffset, size uint32) descRing {
	p := (*unix.XDPDesc)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(mem)), off.Desc))
	return descRing{ringHead: newRingHead(mem, off, size), descs: unsafe.Slice(p, size)}
}

const (
	addrSize = unsafe.Sizeof(uint64(0))
	descSize = unsafe.Sizeof(unix.XDPDesc{})
)

// registerUMEM passes the UMEM area to the kernel (XDP_UMEM_REG).
func registerUMEM(fd int, umem []byte, frameSize uint32) error {
	reg := unix.XDPUmemReg{
		Addr: uint64(uintptr(unsafe.Pointer(unsafe.SliceData(umem)))),
		Len:  uint64(len(umem)),
		Size: frameSize,
	}
	return setsockopt(fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg))
}

// mmapOffsets reads where the indexes and slots of each ring are.
func mmapOffsets(fd int) (unix.XDPMmapOffsets, error) {
	var off unix.XDPMmapOffsets
	err := getsockopt(fd, unix.XDP_MMAP_OFFSETS, unsafe.Pointer(&off), unsafe.Sizeof(off))
	return off, err
}

// statistics reads struct xdp_statistics (XDP_STATISTICS).
func statistics(fd int) (unix.XDPStatistics, error) {
	var st unix.XDPStatistics
	err := getsockopt(fd, unix.XDP_STATISTICS, unsafe.Pointer(&st), unsafe.Sizeof(st))
	return st, err
}

// options reads XDP_OPTIONS (whether the socket is in zero-copy mode).
func options(fd int) (uint32, error) {
	var opt uint32
	err := getsockopt(fd, unix.XDP_OPTIONS, unsafe.Pointer(&opt), unsafe.Sizeof(opt))
	return opt, err
}

func setsockopt(fd int, opt uintptr, val unsafe.Pointer, size uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, opt, uintptr(val), size, 0)
	if e != 0 {
		return e
	}
	return nil
}

func getsockopt(fd int, opt uintptr, val unsafe.Pointer, size uintptr) error {
	n := uint32(size)
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, opt, uintptr(val), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		return e
	}
	return nil
}

// kick asks the kernel to process the tx ring: sendto(fd, NULL, 0,
// MSG_DONTWAIT, NULL, 0). It returns the errno (0 on success) without
// allocating; the caller decides what each errno means.
func kick(fd int) syscall.Errno {
	_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	return e
}

// wakeRx tells the driver the fill ring has buffers again (zero-copy
// drivers that set XDP_RING_NEED_WAKEUP on the fill ring).
func wakeRx(fd int) syscall.Errno {
	_, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	return e
}
