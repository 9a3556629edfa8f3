//go:build 386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm

package vhostuser

// This file holds the pointer tricks of the virtqueues: atomic access to
// the 16-bit index and flag fields of rings in guest memory, which another
// process (the guest's driver, through QEMU's mapping) reads and writes
// concurrently.
//
// sync/atomic has no 16-bit operations, so a field is accessed through the
// naturally aligned 32-bit word that holds it. The invariants:
//
//   - Byte order: virtio 1.x rings are little-endian, and so is every
//     architecture this file builds on, so the field at the lower address
//     is the low half of the word. (Legacy virtio uses the guest's byte
//     order; a big-endian guest on a little-endian host is not supported.)
//   - Bounds: a word is only made from a slice that holds all four of its
//     bytes (the whole mapping of the region holding the ring), so the
//     neighbouring half may lie outside the ring, never outside the region.
//   - Lifetime: the pointers are valid while the region is mapped; the
//     owner of the mapping keeps it until no Queue over it is used.
//   - Ordering: Go's atomics are sequentially consistent. A load of an
//     index orders the plain reads of ring entries after it (acquire); a
//     store orders the plain writes of used entries before it (release);
//     a store followed by a load (publishing an index, then reading the
//     other side's event index or flags) is not reordered either.

import (
	"sync/atomic"
	"unsafe"
)

// ring16 is a 16-bit field of a ring: avail->flags, avail->idx,
// avail->used_event or used->avail_event.
type ring16 struct {
	w     *uint32 // the aligned word holding the field
	shift uint32  // 0: the field is the word's low half; 16: the high half
}

// newRing16 returns the field at offset off of region. ok is false if the
// field is not 2-byte aligned in our mapping, or its word does not lie
// inside region.
func newRing16(region []byte, off uint64) (f ring16, ok bool) {
	n := uint64(len(region))
	if off > n || n-off < 2 {
		return ring16{}, false
	}
	base := unsafe.Pointer(unsafe.SliceData(region))
	switch (uintptr(base) + uintptr(off)) & 3 {
	case 0:
		if n-off < 4 {
			return ring16{}, false
		}
		return ring16{w: (*uint32)(unsafe.Add(base, off)), shift: 0}, true
	case 2:
		if off < 2 {
			return ring16{}, false
		}
		return ring16{w: (*uint32)(unsafe.Add(base, off-2)), shift: 16}, true
	}
	return ring16{}, false
}

// load reads the field atomically.
func (f ring16) load() uint16 { return uint16(atomic.LoadUint32(f.w) >> f.shift) }

// store writes the field atomically without changing the other half of
// the word, which may belong to the guest: a compare-and-swap that writes
// the other half back unchanged. A guest that keeps changing the other half
// could make it fail forever, so it gives up after a few tries and reports
// false.
func (f ring16) store(v uint16) bool {
	for range 8 {
		old := atomic.LoadUint32(f.w)
		nw := old&^(0xffff<<f.shift) | uint32(v)<<f.shift
		if atomic.CompareAndSwapUint32(f.w, old, nw) {
			return true
		}
	}
	return false
}

// usedHead is the first word of the used ring: flags (low half) and idx
// (high half). Only the device writes either field, so both are stored
// together with one plain atomic store.
type usedHead struct{ w *uint32 }

// newUsedHead returns the head of the used ring at offset off of region;
// ok is false unless it is 4-byte aligned in our mapping and inside region.
func newUsedHead(region []byte, off uint64) (h usedHead, ok bool) {
	n := uint64(len(region))
	if off > n || n-off < 4 {
		return usedHead{}, false
	}
	p := unsafe.Add(unsafe.Pointer(unsafe.SliceData(region)), off)
	if uintptr(p)&3 != 0 {
		return usedHead{}, false
	}
	return usedHead{w: (*uint32)(p)}, true
}

// load reads flags and idx.
func (h usedHead) load() (flags, idx uint16) {
	v := atomic.LoadUint32(h.w)
	return uint16(v), uint16(v >> 16)
}

// store publishes flags and idx.
func (h usedHead) store(flags, idx uint16) {
	atomic.StoreUint32(h.w, uint32(flags)|uint32(idx)<<16)
}
