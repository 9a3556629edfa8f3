package vhostuser

import (
	"errors"
	"fmt"
	"slices"
)

// MaxRegions is the most regions a [Memory] accepts: what one
// SET_MEM_TABLE carries (VHOST_MEMORY_BASELINE_NREGIONS). More take
// VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS, which the device does not
// offer.
const MaxRegions = maxRegions

// ErrBadMemory is wrapped by every error of [NewMemory].
var ErrBadMemory = errors.New("bad guest memory table")

// Region is one region of guest memory, as the front-end describes it in
// VHOST_USER_SET_MEM_TABLE (or ADD_MEM_REG), together with our mapping of
// it.
type Region struct {
	GuestPhys uint64 // guest physical address of the region's start
	Size      uint64 // bytes
	UserAddr  uint64 // the front-end's (QEMU's) virtual address of the start: vring addresses use it
	// Mem is our mapping of the region, len(Mem) == Size. Whoever made
	// the mapping (the protocol side mmaps the region's fd at its
	// MmapOffset) owns it and must keep it mapped while any Memory or
	// Queue built over it is in use.
	Mem []byte
}

// Memory translates guest physical and front-end virtual addresses to our
// mappings of guest memory. It is immutable after [NewMemory] and safe for
// concurrent use. The bytes it returns are shared with the guest, which may
// change them at any time: read a field once into a local before checking
// and using it.
type Memory struct {
	guest []memSpan // sorted by start, no overlaps
	user  []memSpan // the same regions, by front-end virtual address
}

// memSpan is one region in one address space.
type memSpan struct {
	start, size uint64
	mem         []byte // len(mem) == size
}

// NewMemory checks regions and returns a Memory over them. Each region
// must be non-empty, have len(Mem) == Size and not wrap around the 64-bit
// address space; no two may overlap, neither in guest physical nor in
// front-end virtual addresses. At most [MaxRegions]; none is valid (every
// translation then fails). NewMemory keeps its own copy of the slice.
func NewMemory(regions []Region) (*Memory, error) {
	if len(regions) > MaxRegions {
		return nil, fmt.Errorf("new memory: %d regions, want at most %d: %w", len(regions), MaxRegions, ErrBadMemory)
	}
	m := &Memory{
		guest: make([]memSpan, 0, len(regions)),
		user:  make([]memSpan, 0, len(regions)),
	}
	for i, r := range regions {
		switch {
		case r.Size == 0:
			return nil, fmt.Errorf("new memory: region %d: size 0: %w", i, ErrBadMemory)
		case uint64(len(r.Mem)) != r.Size:
			return nil, fmt.Errorf("new memory: region %d: size %d but mapping of %d bytes: %w", i, r.Size, len(r.Mem), ErrBadMemory)
		case r.Size-1 > ^uint64(0)-r.GuestPhys:
			return nil, fmt.Errorf("new memory: region %d: guest address %#x size %#x wraps: %w", i, r.GuestPhys, r.Size, ErrBadMemory)
		case r.Size-1 > ^uint64(0)-r.UserAddr:
			return nil, fmt.Errorf("new memory: region %d: user address %#x size %#x wraps: %w", i, r.UserAddr, r.Size, ErrBadMemory)
		}
		mem := r.Mem[:r.Size:r.Size]
		m.guest = append(m.guest, memSpan{start: r.GuestPhys, size: r.Size, mem: mem})
		m.user = append(m.user, memSpan{start: r.UserAddr, size: r.Size, mem: mem})
	}
	for _, sp := range []struct {
		name  string
		spans []memSpan
	}{{"guest", m.guest}, {"user", m.user}} {
		slices.SortFunc(sp.spans, func(a, b memSpan) int {
			switch {
			case a.start < b.start:
				return -1
			case a.start > b.start:
				return 1
			}
			return 0
		})
		for i := 1; i < len(sp.spans); i++ {
			prev, cur := sp.spans[i-1], sp.spans[i]
			if prev.start+(prev.size-1) >= cur.start { // no overflow: checked above
				return nil, fmt.Errorf("new memory: %s ranges %#x+%#x and %#x+%#x overlap: %w",
					sp.name, prev.start, prev.size, cur.start, cur.size, ErrBadMemory)
			}
		}
	}
	return m, nil
}

// Guest returns the n bytes at guest physical address gpa. ok is false
// unless all of them lie inside one region (a buffer that spans two
// adjacent regions is refused too: it would not be contiguous in our
// mappings). With n == 0, ok reports whether gpa is inside a region. The
// slice aliases guest memory; its capacity is n.
func (m *Memory) Guest(gpa, n uint64) ([]byte, bool) { return lookup(m.guest, gpa, n) }

// User is [Memory.Guest] for front-end virtual addresses (the addresses of
// VHOST_USER_SET_VRING_ADDR).
func (m *Memory) User(uva, n uint64) ([]byte, bool) { return lookup(m.user, uva, n) }

// userRegion returns the mapping of the whole region holding the n bytes at
// uva, and the offset of uva in it.
func (m *Memory) userRegion(uva, n uint64) (mem []byte, off uint64, ok bool) {
	s, off, ok := locate(m.user, uva, n)
	if !ok {
		return nil, 0, false
	}
	return s.mem, off, true
}

// lookup translates [addr, addr+n) through spans.
func lookup(spans []memSpan, addr, n uint64) ([]byte, bool) {
	s, off, ok := locate(spans, addr, n)
	if !ok {
		return nil, false
	}
	return s.mem[off : off+n : off+n], true
}

// locate finds the span holding all of [addr, addr+n) and the offset of
// addr in it. Every comparison is written so that it cannot overflow:
// off < size, then n <= size-off.
func locate(spans []memSpan, addr, n uint64) (s *memSpan, off uint64, ok bool) {
	// The span with the greatest start <= addr. There are at most
	// MaxRegions spans, so a linear scan.
	for i := len(spans) - 1; i >= 0; i-- {
		if spans[i].start <= addr {
			s = &spans[i]
			break
		}
	}
	if s == nil {
		return nil, 0, false
	}
	off = addr - s.start // start <= addr
	if off >= s.size || n > s.size-off {
		return nil, 0, false
	}
	return s, off, true
}
