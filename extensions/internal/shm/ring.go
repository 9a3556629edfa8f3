package shm

import (
	"sync/atomic"
	"unsafe"

	"github.com/xvswitch/xvs/extensions/api"
)

// Ring is one single-producer single-consumer descriptor ring in shared
// memory. One process produces, the other consumes; each side keeps its
// own Ring value and uses only its half of the methods. A Ring is used by
// one goroutine at a time.
//
// The peer is not trusted: the consumer copies each descriptor out before
// it is read, and Slot checks the descriptor's slot, offset and length.
// Every index read from shared memory is checked against the ring's
// geometry before use: a producer index more than a ring ahead of what
// the consumer read, or a consumer index behind what the producer could
// have published or ahead of what it published, breaks the protocol. The
// ring then says so (Broken) and stops moving descriptors: Reserve and
// Next fail, Free and Pending are 0. The side that owns the ring decides
// what to do with the peer.
type Ring struct {
	prod, cons *uint32 // shared indexes
	descs      []byte
	slots      []byte
	mask       uint32
	slotSize   uint32

	// the side's private view
	head   uint32 // producer: next position to write; consumer: next to read
	cached uint32 // producer: the consumer index last seen; consumer: the producer index last seen
	broken bool   // the peer published an index outside the ring's geometry
}

func newRing(ctl []byte, prodOff, consOff int, descs, slots []byte, size, slotSize int) Ring {
	return Ring{
		prod:     (*uint32)(unsafe.Pointer(&ctl[prodOff])),
		cons:     (*uint32)(unsafe.Pointer(&ctl[consOff])),
		descs:    descs,
		slots:    slots,
		mask:     uint32(size - 1),
		slotSize: uint32(slotSize),
	}
}

// Attach makes r's private view match the shared indexes, for a side that
// starts (or restarts) on a ring: the producer continues after what it
// published, the consumer after what it consumed.
func (r *Ring) AttachProducer() {
	r.head = atomic.LoadUint32(r.prod)
	r.cached = atomic.LoadUint32(r.cons)
	r.broken = r.head-r.cached > r.mask+1
}

// AttachConsumer is Attach for the consuming side.
func (r *Ring) AttachConsumer() {
	r.head = atomic.LoadUint32(r.cons)
	r.cached = atomic.LoadUint32(r.prod)
	r.broken = r.cached-r.head > r.mask+1
}

// Broken reports whether the peer published an index outside the ring's
// geometry (see Ring). A broken ring stays broken until the next Attach.
func (r *Ring) Broken() bool { return r.broken }

// loadCons reads the consumer's index for the producer, or reports the
// ring broken when the index is not within one ring behind the producer's.
func (r *Ring) loadCons() bool {
	c := atomic.LoadUint32(r.cons)
	if r.head-c > r.mask+1 {
		r.broken = true
		return false
	}
	r.cached = c
	return true
}

// loadProd reads the producer's index for the consumer, or reports the
// ring broken when it is more than one ring ahead of the consumer.
func (r *Ring) loadProd() bool {
	p := atomic.LoadUint32(r.prod)
	if p-r.head > r.mask+1 {
		r.broken = true
		return false
	}
	r.cached = p
	return true
}

func (r *Ring) desc(pos uint32) *api.Desc {
	return (*api.Desc)(unsafe.Pointer(&r.descs[int(pos&r.mask)*api.DescSize]))
}

// SlotSize is the bytes of one slot.
func (r *Ring) SlotSize() int { return int(r.slotSize) }

// Reserve returns the next free descriptor and its slot (whose index the
// descriptor must name in Slot), or ok false when the ring is full. The
// descriptor becomes visible to the consumer at the next Publish.
func (r *Ring) Reserve() (d *api.Desc, slot []byte, ok bool) {
	if r.broken {
		return nil, nil, false
	}
	if r.head-r.cached > r.mask {
		if !r.loadCons() || r.head-r.cached > r.mask {
			return nil, nil, false
		}
	}
	pos := r.head
	r.head++
	i := pos & r.mask
	d = r.desc(pos)
	*d = api.Desc{Slot: i}
	off := i * r.slotSize
	return d, r.slots[off : off+r.slotSize : off+r.slotSize], true
}

// Publish makes every reserved descriptor visible to the consumer.
func (r *Ring) Publish() { atomic.StoreUint32(r.prod, r.head) }

// Cap is the number of descriptors in the ring.
func (r *Ring) Cap() int { return int(r.mask + 1) }

// Free is the number of descriptors the producer could reserve now.
func (r *Ring) Free() int {
	if r.broken || !r.loadCons() {
		return 0
	}
	return int(r.mask + 1 - (r.head - r.cached))
}

// Next copies the next published descriptor into d and returns true, or
// returns false when there is none. The descriptor's slot stays valid
// until Release.
func (r *Ring) Next(d *api.Desc) bool {
	if r.broken {
		return false
	}
	if r.head == r.cached {
		// A producer cannot be more than a ring ahead; if it claims to be,
		// it is broken (loadProd): nothing more is read.
		if !r.loadProd() || r.head == r.cached {
			return false
		}
	}
	*d = *r.desc(r.head)
	r.head++
	return true
}

// Release hands every descriptor read so far (and its slot) back to the
// producer.
func (r *Ring) Release() { atomic.StoreUint32(r.cons, r.head) }

// Pending is the number of published descriptors not yet read.
func (r *Ring) Pending() int {
	if r.broken || !r.loadProd() {
		return 0
	}
	return int(r.cached - r.head)
}

// Slot returns the frame bytes d names, or ok false when its slot, offset
// or length fall outside the ring's slot area.
func (r *Ring) Slot(d *api.Desc) (b []byte, ok bool) {
	if d.Slot > r.mask || d.Offset > r.slotSize || d.Len > r.slotSize-d.Offset {
		return nil, false
	}
	off := d.Slot*r.slotSize + d.Offset
	return r.slots[off : off+d.Len : off+d.Len], true
}

// Backlog is how many published descriptors the consumer has not released,
// and the consumer's index, read from shared memory: for a watchdog that
// sees whether the consumer makes progress.
func (r *Ring) Backlog() (n, consumer uint32) {
	c := atomic.LoadUint32(r.cons)
	return atomic.LoadUint32(r.prod) - c, c
}
