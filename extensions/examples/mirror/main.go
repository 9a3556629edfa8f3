// Command mirror is an xvs forwarding extension: it sends the frames of
// chosen VSIDs to a monitor port as well as to wherever the switch would
// send them, so that an analyser (an IDS, tcpdump in a VM) attached to
// that port sees the virtual subnets' traffic.
//
// xvsd starts it; run by hand it explains that it is a plugin and exits.
// A switch runs at most one forwarding extension. Load it from the switch
// configuration:
//
//	ports:
//	  - {name: vm1, type: afxdp, dev: veth-vm1, vsid: 5001}
//	  - {name: ids, type: tap, dev: tap-ids, vsid: 5001}
//	extensions:
//	  - name: mirror
//	    path: /usr/local/lib/xvs/mirror
//	    fail: open            # if the mirror fails, frames still flow
//	    config:
//	      monitor: ids
//	      vsids: 5001,5002
//
// # Configuration
//
//	monitor  required: name of the monitor port
//	vsids    required: comma-separated VSIDs to mirror (0 or 4096..16777214)
//
// Any other key is refused. The extension claims the listed VSIDs at
// start: the switch asks it about their frames only, and forwards every
// other VSID itself. (The switch-level vsids key, beside config, decides
// which frames the extension is shown at all; leave it out or list the
// same VSIDs.)
//
// # Decisions
//
// For the first frame of each flow of a claimed VSID the answer is "the
// switch's own destinations, plus the monitor port"; the switch caches it
// for the flow. A frame that came in on the monitor port is not sent back
// to it. The monitor port may be added after the extension starts: until
// it exists, frames are forwarded normally, counted as monitor-missing,
// and their answer is not cached, so that flows are mirrored as soon as
// the port appears. The port is looked up again every 500 ms; if it goes
// away or changes its index, the switch is told to forget the answers it
// cached, which name the old index.
//
// The mirror copies whole frames as the switch forwards them, on ingress;
// a frame dropped by a filter earlier in the chain is not mirrored.
//
// # Counters
//
// "xvsctl extension stats mirror" shows mirrored (flows sent to the
// monitor port), monitor-missing (frames not mirrored because the port
// did not exist) and from-monitor (flows that came in on the monitor
// port).
package main

import "github.com/xvswitch/xvs/extensions/sdk"

func main() { sdk.Serve(&Mirror{}) }
