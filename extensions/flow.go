package extensions

import (
	"encoding/binary"
	"math/bits"

	"github.com/xvswitch/xvs/extensions/api"
	"github.com/xvswitch/xvs/header"
	"github.com/xvswitch/xvs/ring"
)

// FlowKey names a flow for the verdict cache: VSID, direction, ports of
// the switch, EtherType, protocol, addresses and transport ports. Frames
// that are not IP are keyed by their MAC addresses. Two frames with equal
// keys get the same verdict.
type FlowKey struct {
	Meta  uint64 // vsid<<32 | dir<<24 | proto<<16 | ethertype
	Ports uint64 // in<<48 | out<<32 | sport<<16 | dport
	Src   [2]uint64
	Dst   [2]uint64
}

// MakeFlowKey fills k from a frame and its metadata (a frame shorter than
// an Ethernet header gets a key of its metadata alone). The flow is read
// by header.ReadFiveTuple. An untagged IPv4 or IPv6 frame
// is keyed by its addresses, its protocol, and its TCP/UDP/SCTP ports or
// ICMP/ICMPv6 type and code (none for a fragment other than the first).
// Any other frame is keyed by its MAC addresses: not IP, 802.1Q-tagged, or
// with an IP version or header length that does not hold together.
//
// The key is of what the frame holds: the ports are read where the IP
// header puts them even when the packet's length field disagrees with the
// frame (TransportWord, not Ports). RunKey masks the length field, and
// frames with equal run keys must have equal flow keys. A filter that
// needs a well-formed packet checks it and does not let its verdict be
// cached for a malformed one (the aclfilter example).
func MakeFlowKey(k *FlowKey, frame []byte, vsid uint32, dir api.Direction, in, out uint16) {
	// The metadata goes into k first: fewer values live across the call.
	k.Meta, k.Ports = uint64(vsid)<<32|uint64(dir)<<24, uint64(in)<<48|uint64(out)<<32
	if a, proto, w, ok := header.QuickIPv4(frame); ok { // inlined: most frames stop here
		sport, dport := l4ports(uint64(proto), w)
		k.Src[0], k.Src[1], k.Dst[0], k.Dst[1] = a&0xffffffff, 0, a>>32, 0
		k.Meta |= uint64(proto)<<16 | header.EtherTypeIPv4
		k.Ports |= sport<<16 | dport
		return
	}
	k.fromTuple(frame)
}

// fromTuple fills k's frame part from header.ReadFiveTuple (k.Meta and
// k.Ports hold the metadata already): the path of every frame QuickIPv4
// does not take, and the reference its quick path is tested against.
func (k *FlowKey) fromTuple(frame []byte) {
	t, _ := header.ReadFiveTuple(frame) // a length error leaves the tuple: see above
	et, a := uint64(t.EtherType()), t.Addrs()
	if t.Tagged() {
		et, a = header.EtherTypeVLAN, nil
	}
	var proto, sport, dport uint64
	switch len(a) {
	case 8:
		k.Src[0], k.Src[1] = uint64(binary.LittleEndian.Uint32(a[0:4])), 0
		k.Dst[0], k.Dst[1] = uint64(binary.LittleEndian.Uint32(a[4:8])), 0
	case 32:
		k.Src[0], k.Src[1] = binary.LittleEndian.Uint64(a[0:8]), binary.LittleEndian.Uint64(a[8:16])
		k.Dst[0], k.Dst[1] = binary.LittleEndian.Uint64(a[16:24]), binary.LittleEndian.Uint64(a[24:32])
	default:
		k.setMACs(frame)
	}
	if a != nil {
		proto = uint64(t.Protocol())
		if w, ok := t.TransportWord(); ok {
			sport, dport = l4ports(proto, w)
		}
	}
	k.Meta |= proto<<16 | et
	k.Ports |= sport<<16 | dport
}

// setMACs keys a frame by its source and destination MAC addresses.
func (k *FlowKey) setMACs(frame []byte) {
	k.Src[0], k.Src[1], k.Dst[0], k.Dst[1] = 0, 0, 0, 0
	if len(frame) >= header.EthernetHeaderLen {
		k.Src[0] = uint64(binary.BigEndian.Uint32(frame[6:10]))<<16 | uint64(binary.BigEndian.Uint16(frame[10:12]))
		k.Dst[0] = uint64(binary.BigEndian.Uint32(frame[0:4]))<<16 | uint64(binary.BigEndian.Uint16(frame[4:6]))
	}
}

// l4ports returns TCP/UDP/SCTP ports, or ICMP type and code, from the
// first word of the transport header.
func l4ports(proto uint64, w uint32) (uint64, uint64) {
	switch proto {
	case header.ProtocolTCP, header.ProtocolUDP, header.ProtocolSCTP:
		return uint64(w >> 16), uint64(w & 0xffff)
	case header.ProtocolICMP, header.ProtocolICMPv6:
		return uint64(w >> 24), uint64(w >> 16 & 0xff)
	}
	return 0, 0
}

// Hash mixes the key into 32 bits.
//
// Each word is multiplied by its own odd constant and the products are
// combined: six independent multiplies run side by side, where a chain
// of dependent ones would delay the lookup that waits for the hash.
func (k *FlowKey) Hash() uint32 {
	const (
		m1 = 0x9E3779B97F4A7C15
		m2 = 0xC2B2AE3D27D4EB4F
		m3 = 0x165667B19E3779F9
		m4 = 0xD6E8FEB86659FD93
		m5 = 0xFF51AFD7ED558CCD
		m6 = 0xC4CEB9FE1A85EC53
	)
	h := (k.Meta*m1 ^ k.Ports*m2) ^ (k.Src[0]*m3 ^ k.Dst[0]*m4) ^ (k.Src[1]*m5 ^ k.Dst[1]*m6)
	h ^= h >> 32
	h *= m1
	return uint32(h >> 32)
}

// CacheEntry is one cached verdict.
type CacheEntry struct {
	Gen     uint32 // cache generation it was stored in; 0: empty
	Tag     uint32 // on ingress, the flow tag its frames carry on (ring.Meta.Flow); 0: none
	Key     FlowKey
	Expires uint32 // switch clock (seconds)
	Verdict uint8
	Flags   uint8
	NPorts  uint8
	Ports   [api.MaxPorts]uint16
}

// VerdictPending marks a cache entry whose verdict was asked for and has
// not come back: later frames of the flow wait for it instead of asking
// again.
const VerdictPending = 0xFF

// cacheWays is the associativity: a few flows whose hashes collide do not
// evict each other forever.
const cacheWays = 4

// Cache is a set-associative table of verdicts, owned by one worker for
// one extension: no locks. Invalidate is O(1): entries of an older
// generation are misses. The hashes of a set's entries sit together in
// tags, 16 bytes a set, so a lookup finds the way in one line and then
// reads only the entry whose hash matches.
type Cache struct {
	tags    []uint32 // per entry, cacheWays a set: the hash of its key
	entries []CacheEntry
	mask    uint32 // of the set index
	gen     uint32
	victim  uint32           // round-robin replacement within a set
	runs    [2][runSlots]Run // by direction, then by the batch's port
	byTag   []tagEntry       // egress verdicts by flow tag and egress port
	tagBits uint32
}

// tagEntry is an egress verdict for the frames that carry an ingress
// flow tag and leave by one port. Such frames have equal egress keys
// (see Run), so the verdict of one is the verdict of all: an egress
// filter finds it with one load instead of a key, a hash and a lookup.
type tagEntry struct {
	tag     uint32
	gen     uint32
	expires uint32
	out     uint16
	verdict uint8
}

// NewCache returns a cache of size entries (a power of two, at least 4).
func NewCache(size int) *Cache {
	size = max(size, cacheWays)
	tagBits := uint32(bits.Len(uint(size/cacheWays)) - 1)
	return &Cache{tags: make([]uint32, size), entries: make([]CacheEntry, size), mask: uint32(size/cacheWays - 1), gen: 1,
		byTag: make([]tagEntry, 1<<tagBits), tagBits: tagBits}
}

// Lookup returns the live entry for k (hash h), or nil.
func (c *Cache) Lookup(k *FlowKey, h, now uint32) *CacheEntry {
	base := (h & c.mask) * cacheWays
	t := (*[cacheWays]uint32)(c.tags[base:])
	for w := range uint32(cacheWays) {
		if t[w] == h {
			e := &c.entries[base+w]
			if e.Gen == c.gen && e.Key.equal(k) && now < e.Expires {
				return e
			}
		}
	}
	return nil
}

// Slot returns the entry to overwrite for k (hash h), already keyed: its
// own entry if present, else a free or expired one, else the next victim.
func (c *Cache) Slot(k *FlowKey, h, now, expires uint32) *CacheEntry {
	base := (h & c.mask) * cacheWays
	set := c.entries[base : base+cacheWays]
	tags := c.tags[base : base+cacheWays]
	w := -1
	for i := range set {
		if set[i].Gen == c.gen && tags[i] == h && set[i].Key.equal(k) {
			w = i
			break
		}
	}
	if w < 0 {
		for i := range set {
			if set[i].Gen != c.gen || now >= set[i].Expires {
				w = i
				break
			}
		}
	}
	if w < 0 {
		c.victim++
		w = int(c.victim % cacheWays)
	}
	e := &set[w]
	tags[w] = h
	e.Key, e.Gen, e.Expires = *k, c.gen, expires
	return e
}

// equal compares field by field: the compiler's == on the struct calls
// memequal, which costs more than the six words.
func (k *FlowKey) equal(o *FlowKey) bool {
	return k.Meta == o.Meta && k.Ports == o.Ports && k.Src[0] == o.Src[0] && k.Dst[0] == o.Dst[0] &&
		k.Src[1] == o.Src[1] && k.Dst[1] == o.Dst[1]
}

// Invalidate forgets every entry.
func (c *Cache) Invalidate() {
	c.runs = [2][runSlots]Run{}
	c.gen++
	if c.gen == 0 { // wrapped: entries of generation 1 might look live again
		clear(c.entries)
		clear(c.byTag)
		c.gen = 1
	}
}

// RunKey returns the bytes of an IPv4 frame (without IP options) that its
// flow key is made of, with the fields that change from packet to packet
// (length, ID, TTL, checksum) masked out, or ok false for other frames.
// Equal run keys (with equal metadata) mean equal flow keys, so a frame
// that continues the previous frame's run can reuse its verdict without a
// hash or a cache lookup: four loads and compares instead. It returns
// scalars, not an array: an array result goes through the stack in a way
// that stalls store-to-load forwarding, which cost more than the rest.
func RunKey(frame []byte) (k0, k1, k2, k3 uint64, ok bool) {
	if len(frame) < runKeyLen {
		return 0, 0, 0, 0, false
	}
	k0 = binary.LittleEndian.Uint64(frame[12:20]) & runMask0 // EtherType, version/IHL, TOS
	if k0&0xFFFFFF != 0x450008 {                             // IPv4 (08 00) without options (45)
		return 0, 0, 0, 0, false
	}
	k1 = binary.LittleEndian.Uint64(frame[20:28]) & runMask1 // fragment, protocol, source (half)
	k2 = binary.LittleEndian.Uint64(frame[28:36])            // source (half), destination, source port
	k3 = uint64(binary.LittleEndian.Uint16(frame[36:38]))    // destination port
	return k0, k1, k2, k3, true
}

// Run is the flow of the frame a filter last let pass from the cache,
// kept across batches, one per direction. Frames that continue it pass
// with a few loads and compares: no key, hash or lookup. That is what
// makes a cached filter nearly free for bulk flows.
//
// On ingress, a frame continues the run if its RunKey is the run's (the
// frames of an ingress batch share their port and VSID, checked once per
// batch); Scan then marks it with the flow's tag (ring.Meta.Flow: the Tag
// of its cache entry), as a frame found by lookup is marked. On egress, a
// run started by a tagged frame is the frames out of the same port
// carrying the same tag: frames of one cached ingress flow have equal
// flow keys, so they have equal egress keys too (the stages between apply
// the same policy to equal keys). A run started by an untagged frame is
// matched by RunKey as on ingress.
//
// The run is forgotten with the cache (Invalidate) and when its entry
// expires.
type Run struct {
	k0, k1, k2, k3 uint64
	in             uint16 // of its frames
	port           uint16 // of its batches: ingress or egress port
	vsid           uint32
	expires        uint32
	gen            uint32 // 0: no run
	flow           uint32 // tag: written into frames (ingress), matched (egress)
	ingress        bool
	byFlow         bool // egress: match the tag, not the bytes
}

// runMask0 and runMask1 keep the flow's fields of the first two RunKey
// words (see RunKey).
const (
	runMask0 = 0x00000000FFFFFFFF
	runMask1 = 0xFFFF0000FF00FFFF
)

// runKeyLen is how much of a frame RunKey reads.
const runKeyLen = 38

// runSlots is how many runs a cache keeps per direction, one per batch
// port (modulo): a worker polling a few busy ports keeps each one's run.
const runSlots = 4

// PassRun returns the live run of passing frames in direction dir for a
// batch of port (the ingress port on ingress, the egress port on egress),
// or nil.
func (c *Cache) PassRun(now uint32, dir api.Direction, port uint16) *Run {
	r := &c.runs[dir&1][port%runSlots]
	if r.gen != c.gen || now >= r.expires || r.port != port {
		return nil
	}
	return r
}

// StartPassRun makes the flow of a frame whose cached verdict is pass
// (until expires) the run of direction dir and returns it, or nil if the
// frame cannot start one. flow is, on ingress, the tag of the flow's cache
// entry, for the run's frames to carry, and on egress the frame's
// Meta.Flow. Without a tag a frame starts a run only if RunKey matches it
// (IPv4 without options).
func (c *Cache) StartPassRun(frame []byte, dir api.Direction, in, out uint16, vsid, flow, expires uint32) *Run {
	port := in
	if dir == api.Egress {
		port = out
	}
	r := &c.runs[dir&1][port%runSlots]
	if dir == api.Egress && flow != 0 {
		*r = Run{port: port, expires: expires, gen: c.gen, flow: flow, byFlow: true}
		return r
	}
	k0, k1, k2, k3, ok := RunKey(frame)
	if !ok {
		return nil
	}
	if dir == api.Egress {
		flow = 0 // egress frames are not tagged
	}
	*r = Run{k0: k0, k1: k1, k2: k2, k3: k3, in: in, port: port, vsid: vsid, expires: expires, gen: c.gen, flow: flow, ingress: dir == api.Ingress}
	return r
}

func (c *Cache) tagSlot(flow uint32, out uint16) *tagEntry {
	h := (flow ^ uint32(out)<<20) * 0x9E3779B1
	return &c.byTag[h>>(32-c.tagBits)&(1<<c.tagBits-1)]
}

// LookupTag returns the egress verdict recorded by SetTag for the frames
// tagged flow that leave by port out.
func (c *Cache) LookupTag(flow uint32, out uint16, now uint32) (verdict uint8, expires uint32, ok bool) {
	t := c.tagSlot(flow, out)
	if t.tag != flow || t.out != out || t.gen != c.gen || now >= t.expires || flow == 0 {
		return 0, 0, false
	}
	return t.verdict, t.expires, true
}

// SetTag records the egress verdict of e (not pending) for the frames
// tagged flow that leave by port out.
func (c *Cache) SetTag(flow uint32, out uint16, e *CacheEntry) {
	*c.tagSlot(flow, out) = tagEntry{tag: flow, gen: c.gen, expires: e.Expires, out: out, verdict: e.Verdict}
}

// scanFlow is Scan for a run matched by flow tag.
func (r *Run) scanFlow(b *ring.Batch, i int) int {
	flow := r.flow
	frames := b.Frames[:b.N]
	// four at a time: one bounds check and one branch for four frames
	for ; i+4 <= len(frames); i += 4 {
		q := frames[i : i+4 : i+4]
		if q[0].Flow != flow || q[1].Flow != flow || q[2].Flow != flow || q[3].Flow != flow {
			break
		}
	}
	for ; i < len(frames) && frames[i].Flow == flow; i++ {
	}
	return i
}
