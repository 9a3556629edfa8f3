package extensions

import "sync/atomic"

// Counters are an extension's switch-side counters. Workers add per batch.
type Counters struct {
	Sent         atomic.Uint64 // requests (filter, forward) written to the rings
	Captured     atomic.Uint64 // capture copies written to the rings
	CaptureDrops atomic.Uint64 // capture copies dropped: ring full
	CacheHits    atomic.Uint64
	CacheMisses  atomic.Uint64
	Passed       atomic.Uint64 // verdicts pass (incl. modified)
	Dropped      atomic.Uint64 // verdicts drop, and cached drops applied
	Modified     atomic.Uint64
	Forwarded    atomic.Uint64 // forwarding verdicts
	Injected     atomic.Uint64
	Invalid      atomic.Uint64 // descriptors from the extension that failed validation
	// ProtocolErrors counts instances failed for breaking the ring
	// protocol (an index outside the ring's geometry).
	ProtocolErrors atomic.Uint64
	Scope          atomic.Uint64 // injections and forwarding decisions outside the extension's scope
	Busy           atomic.Uint64 // frames not sent: ring or park table full
	FailedFrames   atomic.Uint64 // frames that met the fail mode (passed or dropped)
	DeadlineMiss   atomic.Uint64
	TooBig         atomic.Uint64 // frames longer than a slot
	LatencyCount   atomic.Uint64
	LatencySumNs   atomic.Uint64
	LatencyBucket  [24]atomic.Uint64 // verdict latency, bucket i: [2^i, 2^(i+1)) µs; 0: < 1 µs... see ObserveLatency
}

// ObserveLatency records one verdict's latency in nanoseconds.
func (c *Counters) ObserveLatency(ns int64) {
	if ns < 0 {
		ns = 0
	}
	c.LatencyCount.Add(1)
	c.LatencySumNs.Add(uint64(ns))
	us := uint64(ns) / 1000
	b := 0
	for us > 0 && b < len(c.LatencyBucket)-1 {
		us >>= 1
		b++
	}
	c.LatencyBucket[b].Add(1)
}

// LatencyQuantile estimates quantile q (0..1) of verdict latency in
// microseconds from the histogram (upper bound of the bucket).
func (c *Counters) LatencyQuantile(q float64) uint64 {
	total := c.LatencyCount.Load()
	if total == 0 {
		return 0
	}
	want := uint64(q*float64(total) + 0.5)
	var seen uint64
	for i := range c.LatencyBucket {
		seen += c.LatencyBucket[i].Load()
		if seen >= want && seen > 0 {
			return 1 << i
		}
	}
	return 1 << (len(c.LatencyBucket) - 1)
}

// Map returns the counters by name, for stats.
func (c *Counters) Map() map[string]uint64 {
	m := map[string]uint64{
		"sent": c.Sent.Load(), "captured": c.Captured.Load(), "capture-dropped": c.CaptureDrops.Load(),
		"cache-hits": c.CacheHits.Load(), "cache-misses": c.CacheMisses.Load(),
		"passed": c.Passed.Load(), "dropped": c.Dropped.Load(), "modified": c.Modified.Load(),
		"forwarded": c.Forwarded.Load(), "injected": c.Injected.Load(), "invalid": c.Invalid.Load(),
		"protocol-errors": c.ProtocolErrors.Load(), "out-of-scope": c.Scope.Load(),
		"busy": c.Busy.Load(), "fail-mode-frames": c.FailedFrames.Load(),
		"deadline-missed": c.DeadlineMiss.Load(), "too-big": c.TooBig.Load(),
		"verdicts": c.LatencyCount.Load(),
	}
	if n := c.LatencyCount.Load(); n > 0 {
		m["verdict-latency-avg-us"] = c.LatencySumNs.Load() / n / 1000
		m["verdict-latency-p50-us"] = c.LatencyQuantile(0.5)
		m["verdict-latency-p99-us"] = c.LatencyQuantile(0.99)
	}
	return m
}
