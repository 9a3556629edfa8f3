// Package sdk is how an xvs extension is written.
//
// An extension is a small program of your own that the switch (xvsd)
// starts as a separate process, hands frames to, and — for filters and
// forwarding — asks for a decision about them. It runs outside the switch
// so that a bug in it cannot corrupt the switch, and so that it can be
// written, restarted and upgraded on its own. You write a type with a few
// methods and call [Serve] from main; the SDK does the rest: the
// hashicorp/go-plugin handshake, the control RPC, and the frame loop over
// the shared memory (package extensions/api describes that contract, but
// an extension author never needs it beyond [api.Direction] and a few
// constants).
//
// # The three kinds
//
// Every extension implements [Extension] (its [Info]) and exactly one of:
//
//   - [Capture]: sees a copy of every frame and cannot change its fate.
//     For taps, flow logs, intrusion detection. Copies are cut to the
//     shared memory's slot size; Meta.OrigLen is the real length.
//   - [Filter]: answers each frame with a [Verdict]: [Pass], [Drop] or
//     [Modified] (the frame changed in place, or a replacement in
//     Verdict.Frame). A filter may also send frames of its own with
//     [Host.Inject]. For firewalls, NAT, rewriting.
//   - [Forward]: decides where frames of the VSIDs it claims
//     ([Host.Claim]) go, as [Destinations]: port indexes, the switch's own
//     choice ([Destinations.Default]), or nowhere. At most one per switch.
//
// Optionally it implements [Starter] (setup with the [Host] handle, before
// any frame), [Stopper] (cleanup) and [Stater] (its own counters, shown by
// xvsctl next to the SDK's, which are named sdk_*).
//
// # Order
//
// Extensions form one chain, in the order the switch configuration lists
// them (xvsctl can change it). An ingress frame goes through the chain in
// that order once the switch has given it its VSID, before routing and
// forwarding; an egress frame goes through it in reverse order just before
// it leaves on [Meta.OutPort]: like nested layers, the first extension on
// the way in is the last on the way out. Each extension sees a frame as the
// ones before it left it: a frame a filter drops goes no further, and a
// capture placed after a filter sees only what the filter passed, as it
// modified it. The forwarding extension is consulted on ingress only. The
// configuration also chooses which directions, VSIDs and ports an
// extension sees at all: frames it does not want never cost it anything.
//
// # Verdict caching
//
// A round trip to another process costs microseconds; the switch's budget
// per frame is tens of nanoseconds. So the switch caches each verdict for
// the frame's flow — VSID, direction, addresses, protocol and ports — and
// a filter or forwarding extension normally sees only the first frame of
// each flow. Three ways to see more:
//
//   - Verdict.NoCache / Destinations.NoCache: this answer holds for this
//     frame only. Use it when the decision depends on something the flow key
//     does not contain (TCP flags, an ICMP type, the payload). Modified
//     verdicts are never cached.
//   - Info.EveryFrame: every frame comes to the extension. It costs a round
//     trip per frame; prefer NoCache on the frames that need it.
//   - [Host.Invalidate]: call it when your decisions change (rules
//     reloaded, a block list updated): the switch forgets every cached
//     verdict of this extension and asks again.
//
// Cached verdicts also expire after the switch's cache TTL.
//
// # When things go wrong
//
// What the switch does with frames while an extension cannot answer —
// crashed, restarting, or slower than the verdict deadline — is the
// switch's configuration, not the extension's: fail open (frames continue
// as if the extension were absent) or fail closed (they are dropped). By
// default filters fail closed, capture and forwarding fail open. The switch
// restarts a failed extension with backoff.
//
// Inside the process, a panic in Capture, Filter or Forward does not kill
// it: the SDK recovers, logs it (at most once a second, with a stack),
// counts it (sdk_panics) and answers the frame with a drop that is not
// cached. A verdict the SDK cannot express (a replacement frame longer than
// a slot, an unknown Action) is answered the same way and counted
// (sdk_bad_verdicts).
//
// # Threads and ownership
//
// All frame callbacks run on one goroutine, one frame at a time, so state
// that only they touch needs no lock. [Stater.Stats] and your own
// goroutines run concurrently with them. A callback must not block: while
// it runs no other frame is seen and the switch's rings fill.
//
// A callback's *Meta and frame are valid only during the call: frame lies
// in the shared memory and is reused for later frames; copy what you keep.
// A filter may modify frame in place and return [Modified]. Host methods
// are safe from any goroutine.
//
// Log through [Host.Logger]: lines go to standard error as JSON, and the
// switch writes them into its own log with their level. Never log per
// frame: count (Stater) instead.
//
// # Example
//
// A filter that drops pings (ICMP echo requests) on one VSID, chosen by
// the setting vsid in the switch configuration. ICMP verdicts are not
// cached because the flow key of an ICMP frame has no ICMP type: a cached
// drop of an echo request would also drop the errors between the same
// hosts.
//
//	package main
//
//	import (
//		"encoding/binary"
//		"fmt"
//		"strconv"
//
//		"github.com/xvswitch/xvs/extensions/sdk"
//	)
//
//	type noPing struct{ vsid uint32 }
//
//	func (*noPing) Info() sdk.Info {
//		return sdk.Info{Name: "noping", Description: "drops IPv4 pings on one VSID"}
//	}
//
//	func (p *noPing) Start(h *sdk.Host) error {
//		v, err := strconv.ParseUint(h.Config()["vsid"], 10, 32)
//		if err != nil {
//			return fmt.Errorf("setting vsid: %w", err)
//		}
//		p.vsid = uint32(v)
//		return nil
//	}
//
//	func (p *noPing) Filter(m *sdk.Meta, f []byte) sdk.Verdict {
//		// Ethernet (14 bytes), IPv4 (EtherType 0x0800), protocol 1: ICMP.
//		if m.VSID != p.vsid || len(f) < 34 || binary.BigEndian.Uint16(f[12:14]) != 0x0800 || f[23] != 1 {
//			return sdk.Pass // cached: the flow's next frames do not come here
//		}
//		if ihl := int(f[14]&0x0f) * 4; len(f) > 14+ihl && f[14+ihl] == 8 {
//			return sdk.Verdict{Action: sdk.ActionDrop, NoCache: true} // echo request
//		}
//		return sdk.Verdict{Action: sdk.ActionPass, NoCache: true}
//	}
//
//	func main() { sdk.Serve(&noPing{}) }
//
// Build it with go build, then name the executable and its settings
// (vsid=5001) in the switch's extension configuration; that is also where
// its fail mode, directions, VSIDs and ports are chosen. Run by hand, the
// program says that it is a plugin and exits.
package sdk
