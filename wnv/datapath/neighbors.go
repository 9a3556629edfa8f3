package datapath

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
)

// The provider next hops' MACs, learned from ARP on uplinks. Anyone on the
// provider network can send ARP, so the table believes little:
//
//   - an entry is made only for an address xvs asked for (an ARP request
//     it sent for a next hop) or for a host that asks for one of our PAs
//     (its own request, as hosts learn each other);
//   - a reply is believed only while xvs is asking (solicited); an
//     unsolicited reply or request claiming another MAC for a known next
//     hop is refused and counted (neighbor-changed), its frame dropped;
//   - an entry older than neighborStale is asked for again (still used
//     meanwhile), so a next hop that really changed its MAC is followed
//     from its reply, counted and logged;
//   - requests for one next hop go out at most once per askEvery second;
//   - at most maxNeighbors entries: beyond, nothing new is learned.
//
// Readers (per flow, not per frame: the flow cache keeps the way to a
// host until the table's version changes) take no lock: the table is an
// open-addressed array of pointers to immutable entries. Writers take a
// mutex and replace one entry: O(1).

const (
	maxNeighbors      = 4096
	neighborSlots     = 2 * maxNeighbors // a power of two
	askEvery          = 1                // seconds between requests for one next hop
	solicitWindow     = 3                // seconds a reply is awaited after a request
	neighborStale     = 300              // seconds before an entry is confirmed again
	maxNeighborEvents = 64
)

type neighborEntry struct {
	addr    netip.Addr
	mac     [6]byte
	known   bool   // mac is valid
	learned uint32 // when mac was learned or last confirmed (switch clock, s)
	asked   uint32 // when a request was last sent, plus one (0: never)
}

// NeighborEvent is a next hop's MAC change, applied or refused.
type NeighborEvent struct {
	Addr     netip.Addr
	Old, New [6]byte
	Refused  bool // an unsolicited claim, not believed
}

type neighbors struct {
	mu     sync.Mutex
	slots  [neighborSlots]atomic.Pointer[neighborEntry]
	n      int
	ver    atomic.Uint64 // changes whenever a MAC does, for caches
	events []NeighborEvent
}

func neighborSlot(a netip.Addr) uint32 {
	b := a.As16()
	h := (binary.LittleEndian.Uint64(b[8:]) ^ binary.LittleEndian.Uint64(b[:8])*0xC2B2AE3D27D4EB4F) * 0x9E3779B97F4A7C15
	return uint32(h>>32) & (neighborSlots - 1)
}

// find returns a's entry, or nil.
func (n *neighbors) find(a netip.Addr) *neighborEntry {
	for i, probes := neighborSlot(a), 0; probes < neighborSlots; i, probes = (i+1)&(neighborSlots-1), probes+1 {
		e := n.slots[i].Load()
		if e == nil || e.addr == a {
			return e
		}
	}
	return nil
}

// storeLocked puts e in a's slot (a new one if a has none); false when the
// table is full.
func (n *neighbors) storeLocked(e *neighborEntry) bool {
	for i, probes := neighborSlot(e.addr), 0; probes < neighborSlots; i, probes = (i+1)&(neighborSlots-1), probes+1 {
		old := n.slots[i].Load()
		if old == nil {
			if n.n == maxNeighbors {
				return false
			}
			n.n++
			n.slots[i].Store(e)
			return true
		}
		if old.addr == e.addr {
			n.slots[i].Store(e)
			return true
		}
	}
	return false
}

func (n *neighbors) lookup(a netip.Addr) ([6]byte, bool) {
	if e := n.find(a); e != nil && e.known {
		return e.mac, true
	}
	return [6]byte{}, false
}

// want says whether to send a request for a now: it is not known or is
// stale, and was not asked for in the last askEvery seconds. It records
// the request, which makes the reply to it believable.
func (n *neighbors) want(a netip.Addr, now uint32) bool {
	e := n.find(a)
	if e != nil && e.known && now-e.learned < neighborStale {
		return false
	}
	if e != nil && e.asked != 0 && now+1-e.asked < askEvery {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	next := &neighborEntry{addr: a, asked: now + 1}
	if e := n.find(a); e != nil {
		if e.asked != 0 && now+1-e.asked < askEvery { // another worker asked meanwhile
			return false
		}
		c := *e
		c.asked = next.asked
		next = &c
	}
	return n.storeLocked(next)
}

// learnResult says what an ARP message did to the table.
type learnResult uint8

const (
	learnIgnored learnResult = iota // nothing to learn from it
	learnStored                     // learned or refreshed
	learnChanged                    // a next hop's MAC changed, in answer to our request
	learnRefused                    // claimed another MAC for a known next hop unasked
)

// observe learns from an ARP message from spa at sha: a reply (reply) or
// a request for one of our PAs (reqForUs).
func (n *neighbors) observe(spa netip.Addr, sha [6]byte, reply, reqForUs bool, now uint32) learnResult {
	if !spa.IsValid() || spa.IsUnspecified() || (!reply && !reqForUs) {
		return learnIgnored
	}
	e := n.find(spa)
	solicited := reply && e != nil && e.asked != 0 && now+1-e.asked <= solicitWindow
	switch {
	case e != nil && e.known && e.mac == sha:
		if now-e.learned < neighborStale/2 && !solicited {
			return learnStored // fresh already: no write
		}
	case e != nil && e.known && !solicited:
		n.event(NeighborEvent{Addr: spa, Old: e.mac, New: sha, Refused: true})
		return learnRefused
	case e == nil && !reqForUs, e != nil && !e.known && !solicited && !reqForUs:
		return learnIgnored // an answer to nothing we asked
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	cur := n.find(spa)
	if !n.storeLocked(&neighborEntry{addr: spa, mac: sha, known: true, learned: now}) {
		return learnIgnored // full
	}
	switch {
	case cur != nil && cur.known && cur.mac != sha:
		n.eventLocked(NeighborEvent{Addr: spa, Old: cur.mac, New: sha})
		n.ver.Add(1)
		return learnChanged
	case cur == nil || !cur.known:
		n.ver.Add(1)
	}
	return learnStored
}

func (n *neighbors) event(ev NeighborEvent) {
	n.mu.Lock()
	n.eventLocked(ev)
	n.mu.Unlock()
}

func (n *neighbors) eventLocked(ev NeighborEvent) {
	if len(n.events) < maxNeighborEvents {
		n.events = append(n.events, ev)
	}
}

func (n *neighbors) takeEvents() []NeighborEvent {
	n.mu.Lock()
	defer n.mu.Unlock()
	ev := n.events
	n.events = nil
	return ev
}
