package vswitch

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// macTable maps a MAC address to a port index for one VSID.
//
// It is an open-addressing hash table with linear probing over a fixed
// array sized at creation (twice the learn cap, rounded up to a power of
// two), so it never grows and never allocates after creation. Lookups and
// refreshes of existing entries are lock-free (atomic loads and stores);
// inserting a new entry and removing entries take mu, which only learning
// of a new address and the control plane touch.
//
// A slot is published by storing its key last: a reader that sees the key
// also sees the port stored before it.
type macTable struct {
	slots []macSlot
	mask  uint64
	shift uint
	limit int32
	count atomic.Int32 // live entries
	mu    sync.Mutex
}

type macSlot struct {
	key  atomic.Uint64 // 0: empty; keyTomb: removed; else mac|keyLive
	port atomic.Uint32
	seen atomic.Uint32 // switch clock (seconds) when last seen as a source
}

const (
	keyLive = uint64(1) << 63
	keyTomb = uint64(1) << 62
)

func newMACTable(limit int) *macTable {
	size := 16
	for size < 2*limit {
		size <<= 1
	}
	return &macTable{
		slots: make([]macSlot, size),
		mask:  uint64(size - 1),
		shift: uint(64 - bits.TrailingZeros(uint(size))),
		limit: int32(limit),
	}
}

func (t *macTable) home(mac uint64) uint64 {
	return (mac * 0x9E3779B97F4A7C15) >> t.shift
}

// lookup returns the slot of mac, or nil.
func (t *macTable) lookup(mac uint64) *macSlot {
	want := mac | keyLive
	i := t.home(mac)
	for range len(t.slots) {
		s := &t.slots[i]
		k := s.key.Load()
		if k == want {
			return s
		}
		if k == 0 {
			return nil
		}
		i = (i + 1) & t.mask
	}
	return nil
}

// learnResult says what learn did.
type learnResult uint8

const (
	learnKnown learnResult = iota // present already, refreshed
	learnMoved                    // present already, behind another port now
	learnNew                      // inserted
	learnFull                     // not inserted: at the cap
)

// learn records that mac was seen as a source on port at time now.
func (t *macTable) learn(mac uint64, port uint32, now uint32) learnResult {
	if s := t.lookup(mac); s != nil {
		res := learnKnown
		if s.port.Load() != port {
			s.port.Store(port) // the station moved
			res = learnMoved
		}
		if s.seen.Load() != now {
			s.seen.Store(now)
		}
		return res
	}
	if t.count.Load() >= t.limit {
		return learnFull
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lookup(mac) != nil { // another worker inserted it meanwhile
		return learnKnown
	}
	if t.count.Load() >= t.limit {
		return learnFull
	}
	i := t.home(mac)
	for range len(t.slots) {
		s := &t.slots[i]
		if k := s.key.Load(); k == 0 || k == keyTomb {
			s.port.Store(port)
			s.seen.Store(now)
			s.key.Store(mac | keyLive)
			t.count.Add(1)
			return learnNew
		}
		i = (i + 1) & t.mask
	}
	return learnFull // unreachable: the table is twice the cap
}

// removeIf removes the entries for which drop returns true, calls removed
// (if not nil) for each, and returns how many it removed. Control plane only.
func (t *macTable) removeIf(drop func(port uint32, seen uint32) bool, removed func(mac uint64)) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for i := range t.slots {
		s := &t.slots[i]
		if s.key.Load()&keyLive == 0 {
			continue
		}
		if k := s.key.Load(); drop(s.port.Load(), s.seen.Load()) {
			s.key.Store(keyTomb)
			n++
			if removed != nil {
				removed(k &^ keyLive)
			}
		}
	}
	t.count.Add(int32(-n))
	t.compactLocked()
	return n
}

// compactLocked turns tombstones back into empty slots where that cannot
// break a probe chain: a tombstone followed by an empty slot ends every
// chain through it, so it can be emptied, walking backwards.
func (t *macTable) compactLocked() {
	// Two backward passes: the second catches chains that wrap past the end.
	for range 2 {
		for i := len(t.slots) - 1; i >= 0; i-- {
			s := &t.slots[i]
			if s.key.Load() == keyTomb && t.slots[(uint64(i)+1)&t.mask].key.Load() == 0 {
				s.key.Store(0)
			}
		}
	}
}

// entries calls fn for every live entry. Control plane only.
func (t *macTable) entries(fn func(mac uint64, port uint32, seen uint32)) {
	for i := range t.slots {
		s := &t.slots[i]
		if k := s.key.Load(); k&keyLive != 0 {
			fn(k&^keyLive, s.port.Load(), s.seen.Load())
		}
	}
}
