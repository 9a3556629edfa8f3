package sdk

import "sync/atomic"

// counters are the SDK's own statistics, merged into the Stats reply under
// the names of counterNames. The frame loop adds per batch where it can;
// rare events are added where they happen.
type counters struct {
	frames         atomic.Uint64 // descriptors read from down rings, good or bad
	captures       atomic.Uint64 // frames given to Capture
	requests       atomic.Uint64 // frames given to Filter or Forward
	verdicts       atomic.Uint64 // verdict descriptors written
	injects        atomic.Uint64 // frames injected
	injectErrors   atomic.Uint64 // Inject calls refused (length, ring full)
	upRingFull     atomic.Uint64 // times an up ring was full and the SDK waited
	verdictsLost   atomic.Uint64 // verdicts not written: up ring full past InjectWait, or stopping
	badDescriptors atomic.Uint64 // down descriptors with a bad slot, offset, length, type or direction
	kindMismatch   atomic.Uint64 // descriptors of a type the extension's kind does not handle
	panics         atomic.Uint64 // callbacks that panicked
	badVerdicts    atomic.Uint64 // verdicts the SDK could not express (bad action, frame length)
	portsTruncated atomic.Uint64 // forwarding verdicts with more than api.MaxPorts ports
	sleeps         atomic.Uint64 // times the loop waited on the doorbell
	wakeups        atomic.Uint64 // times the doorbell woke it
}

// snapshot adds the counters to m.
func (c *counters) snapshot(m map[string]uint64) {
	for _, n := range counterNames(c) {
		m[n.name] = n.v.Load()
	}
}

type namedCounter struct {
	name string
	v    *atomic.Uint64
}

func counterNames(c *counters) []namedCounter {
	return []namedCounter{
		{"sdk_frames", &c.frames},
		{"sdk_captures", &c.captures},
		{"sdk_requests", &c.requests},
		{"sdk_verdicts", &c.verdicts},
		{"sdk_injects", &c.injects},
		{"sdk_inject_errors", &c.injectErrors},
		{"sdk_up_ring_full", &c.upRingFull},
		{"sdk_verdicts_lost", &c.verdictsLost},
		{"sdk_bad_descriptors", &c.badDescriptors},
		{"sdk_kind_mismatch", &c.kindMismatch},
		{"sdk_panics", &c.panics},
		{"sdk_bad_verdicts", &c.badVerdicts},
		{"sdk_ports_truncated", &c.portsTruncated},
		{"sdk_sleeps", &c.sleeps},
		{"sdk_wakeups", &c.wakeups},
	}
}
