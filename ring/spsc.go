package ring

import (
	"fmt"
	"sync/atomic"
)

// cacheLine is the padding unit that keeps the producer's and the
// consumer's indexes on different cache lines (no false sharing).
const cacheLine = 64

// SPSC is a bounded single-producer single-consumer ring of frame
// descriptors. Exactly one goroutine may call the producer methods (Enqueue)
// and exactly one the consumer methods (Dequeue); they may be different
// goroutines. Indexes are free-running uint32 counters: the slot is
// index & mask, and the fill level is head - tail, which stays correct when
// the counters wrap around.
type SPSC struct {
	_ [cacheLine]byte
	// producer's line
	head       atomic.Uint32 // next slot to write; published by the producer
	cachedTail uint32        // producer's last view of tail
	_          [cacheLine - 8]byte
	// consumer's line
	tail       atomic.Uint32 // next slot to read; published by the consumer
	cachedHead uint32        // consumer's last view of head
	_          [cacheLine - 8]byte

	mask  uint32
	slots []Frame
}

// NewSPSC returns a ring of size slots; size must be a power of two.
func NewSPSC(size int) (*SPSC, error) {
	return newSPSCAt(size, 0)
}

// newSPSCAt starts the counters at start, so tests can cross the uint32 wrap.
func newSPSCAt(size int, start uint32) (*SPSC, error) {
	if size < 2 || size > 1<<24 || size&(size-1) != 0 {
		return nil, fmt.Errorf("%w: ring size %d: want a power of two in 2..%d", ErrBadConfig, size, 1<<24)
	}
	r := &SPSC{mask: uint32(size - 1), slots: make([]Frame, size)}
	r.head.Store(start)
	r.tail.Store(start)
	r.cachedHead, r.cachedTail = start, start
	return r, nil
}

// Cap is the number of slots.
func (r *SPSC) Cap() int { return int(r.mask) + 1 }

// Len is the number of queued descriptors as seen at the call; exact only
// from the producer or the consumer when the other side is idle.
func (r *SPSC) Len() int { return int(r.head.Load() - r.tail.Load()) }

// Enqueue copies as many of fs as fit and returns how many it copied.
// Producer only.
func (r *SPSC) Enqueue(fs []Frame) int {
	head := r.head.Load() // own index: no contention
	size := r.mask + 1
	free := size - (head - r.cachedTail)
	if free < uint32(len(fs)) {
		r.cachedTail = r.tail.Load()
		free = size - (head - r.cachedTail)
	}
	n := uint32(len(fs))
	if n > free {
		n = free
	}
	for i := uint32(0); i < n; i++ {
		r.slots[(head+i)&r.mask] = fs[i]
	}
	r.head.Store(head + n) // release: slots are written before head moves
	return int(n)
}

// Dequeue moves up to len(fs) descriptors into fs and returns how many.
// Consumer only.
func (r *SPSC) Dequeue(fs []Frame) int {
	tail := r.tail.Load()
	avail := r.cachedHead - tail
	if avail < uint32(len(fs)) {
		r.cachedHead = r.head.Load()
		avail = r.cachedHead - tail
	}
	n := uint32(len(fs))
	if n > avail {
		n = avail
	}
	for i := uint32(0); i < n; i++ {
		fs[i] = r.slots[(tail+i)&r.mask]
	}
	r.tail.Store(tail + n)
	return int(n)
}
