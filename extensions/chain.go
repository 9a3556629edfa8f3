package extensions

import (
	"fmt"
	"time"

	"github.com/xvswitch/xvs/extensions/api"
)

// Link is one loaded extension as the switch's chain holds it: the
// extension and each worker's private state for it (its verdict cache and
// the instance whose rings the worker is attached to). The switch makes
// one per loaded extension and keeps it while the extension is loaded.
type Link struct {
	ext     *Extension
	workers []*linkWorker // by worker id; each owned by that worker's Stage
}

// NewLink returns the chain link of e for a switch with workers workers.
func NewLink(e *Extension, workers int) *Link {
	l := &Link{ext: e}
	for range workers {
		l.workers = append(l.workers, &linkWorker{cache: NewCache(cacheEntries)})
	}
	return l
}

// Extension is the linked extension.
func (l *Link) Extension() *Extension { return l.ext }

// cacheEntries is the size of each worker's verdict cache per extension.
const cacheEntries = 4096

// linkWorker is one worker's private state for one extension.
type linkWorker struct {
	cache         *Cache
	inst          *Instance // the instance whose rings this worker is attached to
	gen           uint64    // the instance's generation last seen
	skip, backoff int       // capture: batches to skip, and the next skip, after a full ring
	draining      bool      // capture: the ring was full; wait until half of it is free
	// Counts not yet added to the extension's counters: the busiest ones
	// are kept here per batch and added once a round (flushCounts), so a
	// batch costs no atomic add.
	hits, captured, captureDrops uint64
	policy                       uint64 // the policy version the cache was filled under
}

// flushCounts adds the counts kept since the last round to c.
func (lw *linkWorker) flushCounts(c *Counters) {
	if lw.hits > 0 {
		c.CacheHits.Add(lw.hits)
		lw.hits = 0
	}
	if lw.captured > 0 {
		c.Captured.Add(lw.captured)
		lw.captured = 0
	}
	if lw.captureDrops > 0 {
		c.CaptureDrops.Add(lw.captureDrops)
		lw.captureDrops = 0
	}
}

// ChainPort is a switch port as the chain knows it: for scopes, for
// injected frames and for frames whose port left while they waited.
type ChainPort struct {
	Index    uint16
	Name     string
	VSID     uint32
	Assigned bool // false: the port has no VSID
}

// Chain is the enabled extensions in ingress order, with the switch's
// ports, as the data path sees them at one moment. It is immutable: the
// switch builds a new one whenever extensions, their order or the ports
// change, and every Stage forgets its cached verdicts when it sees a new
// one (verdicts may depend on ports and VSIDs).
type Chain struct {
	links []*chainLink
	ports []ChainPort // by index; Name "" where no port
}

// chainLink is an extension in a chain.
type chainLink struct {
	link       *Link
	kind       api.Kind
	dirs       Directions
	vsids      map[uint32]bool // nil: all
	ports      []bool          // by port index; nil: all
	failClosed bool
	every      bool
	ttl        uint32 // seconds
	deadline   int64  // ns
}

// NewChain returns the chain of links (the enabled ones, in ingress order)
// over ports.
func NewChain(links []*Link, ports []ChainPort) *Chain {
	c := &Chain{}
	top := 0
	byName := map[string]uint16{}
	for _, p := range ports {
		top = max(top, int(p.Index)+1)
		byName[p.Name] = p.Index
	}
	c.ports = make([]ChainPort, top)
	for _, p := range ports {
		c.ports[p.Index] = p
	}
	for _, l := range links {
		e := l.ext
		cfg := e.Config()
		x := &chainLink{
			link: l, kind: e.Kind(), dirs: cfg.Directions, failClosed: e.FailMode() == FailClosed,
			every: e.EveryFrame(), ttl: uint32(cfg.CacheTTL / time.Second), deadline: int64(cfg.Deadline),
		}
		if len(cfg.VSIDs) > 0 {
			x.vsids = map[uint32]bool{}
			for _, v := range cfg.VSIDs {
				x.vsids[v] = true
			}
		}
		if len(cfg.Ports) > 0 {
			x.ports = make([]bool, top)
			for _, n := range cfg.Ports {
				if i, ok := byName[n]; ok {
					x.ports[i] = true
				}
			}
		}
		c.links = append(c.links, x)
	}
	return c
}

// Len is the number of extensions in the chain.
func (c *Chain) Len() int {
	if c == nil {
		return 0
	}
	return len(c.links)
}

// port returns the port with index i, if there is one.
func (c *Chain) port(i uint16) (ChainPort, bool) {
	if int(i) >= len(c.ports) || c.ports[i].Name == "" {
		return ChainPort{}, false
	}
	return c.ports[i], true
}

// pos is the position of l in the chain, -1 if it is not in it.
func (c *Chain) pos(l *Link) int {
	if c == nil {
		return -1
	}
	for k, x := range c.links {
		if x.link == l {
			return k
		}
	}
	return -1
}

// sees reports whether x's scope covers frames of port and vsid.
func (x *chainLink) sees(port uint16, vsid uint32) bool {
	if x.ports != nil && (int(port) >= len(x.ports) || !x.ports[port]) {
		return false
	}
	return x.vsids == nil || x.vsids[vsid]
}

// Explain describes each extension of the chain as a frame from (or, on
// egress, to) port in VSID vsid in direction dir would meet it: for
// xvsctl trace. Egress lists them in the order they run (reverse).
func (c *Chain) Explain(dir api.Direction, port uint16, vsid uint32) []string {
	var out []string
	n := c.Len()
	for i := range n {
		k := i
		if dir == api.Egress {
			k = n - 1 - i
		}
		x := c.links[k]
		e := x.link.ext
		name := e.Name() + " (" + x.kind.String() + ")"
		switch {
		case dir == api.Ingress && x.dirs&DirIngress == 0, dir == api.Egress && x.dirs&DirEgress == 0:
			out = append(out, name+": not in this direction")
		case dir == api.Egress && x.kind == api.KindForward:
			out = append(out, name+": forwarding runs on ingress only")
		case !x.sees(port, vsid):
			out = append(out, name+": frame out of its scope (ports/VSIDs)")
		case e.Live() == nil || e.Live().Failed():
			if x.failClosed && x.kind != api.KindCapture {
				out = append(out, name+": failed, fail closed: drop (extension-failed)")
			} else {
				out = append(out, name+": failed, fail open: passes")
			}
		case x.kind == api.KindCapture:
			out = append(out, name+": gets a copy")
		case x.every:
			out = append(out, name+": asked for a verdict on every frame")
		default:
			out = append(out, fmt.Sprintf("%s: verdict per flow, asked on its first frame, cached for %v", name, time.Duration(x.ttl)*time.Second))
		}
	}
	return out
}
