// Command aclfilter is an xvs filter extension: it allows or denies frames
// by VSID, direction and 5-tuple, with rules read from a YAML file that it
// reloads when the file changes.
//
// xvsd starts it; run by hand it explains that it is a plugin and exits.
// Load it from the switch configuration:
//
//	extensions:
//	  - name: acl
//	    path: /usr/local/lib/xvs/aclfilter
//	    fail: closed          # open | closed (filters default to closed)
//	    config:
//	      rules: /etc/xvs/acl.yaml
//
// # Configuration
//
//	rules   required: path of the YAML rules file
//
// Any other key is refused, so that a misspelt key fails at start.
//
// # Rules
//
// The first rule that matches a frame decides; default decides when none
// does (allow when absent). A field that is absent matches anything.
//
//	default: allow          # or deny: what happens when no rule matches
//	rules:
//	  - action: deny        # allow | deny (required)
//	    vsid: 5001          # 0 or 4096..16777214
//	    direction: ingress  # ingress | egress | any (default any)
//	    protocol: tcp       # tcp | udp | sctp | icmp | icmpv6 | any | a number 0..255
//	    src: 10.0.0.0/24    # IPv4 or IPv6 prefix, or a single address
//	    dst: 10.0.0.2/32
//	    sport: 1024-65535   # N or N-M; needs protocol tcp, udp, sctp or any
//	    dport: 5201
//	  - action: allow
//	    protocol: icmpv6
//
// testdata/acl.yaml beside this file is a fuller example. Unknown keys
// are refused, and every error names the rule (numbered from
// 1, as in the counter rule-N), the line, the field and the value:
//
//	load rules /etc/xvs/acl.yaml: rule 2: line 9: dport "70000": want a port 0..65535 or a range N-M
//
// A rule with a protocol, a prefix or a port matches IPv4 and IPv6 frames
// only; a rule without them matches every frame, so ARP passes under
// default allow and is dropped under default deny unless a rule such as
// "- action: allow" with only a vsid lets it through. Ports belong to TCP,
// UDP and SCTP only: a rule with ports (and protocol any) matches only
// those, and never a non-first IPv4 fragment, which has no ports.
//
// # What the parser reads
//
// Ethernet with at most one 802.1Q tag, then IPv4 (header length and total
// length checked) or IPv6. For IPv6 only the fixed header is read:
// extension headers are not followed, so the protocol a rule sees is the
// first Next Header (0 hop-by-hop, 43 routing, 44 fragment, 60 destination
// options) and such packets have no ports. A rule "protocol: tcp, dport:
// 22, action: deny" therefore does not stop TCP to port 22 sent behind an
// IPv6 extension header; under default allow, add rules denying protocols
// 0, 43, 44 and 60 if that matters, or use default deny. Frames whose
// IP headers claim more bytes than they hold, or TCP/UDP/SCTP packets too
// short for their ports, are dropped without caching (counter malformed).
//
// # Verdicts and the switch's cache
//
// The filter returns plain pass or drop, and the switch caches it for the
// flow: VSID, direction, switch ports, addresses, protocol and ports —
// exactly the fields a rule can test, so one verdict is right for every
// frame of the flow. The exception is a frame with an 802.1Q tag: the
// switch keys it by MAC addresses, so its verdict (decided on the IP
// header behind the tag) is returned uncached.
//
// # Reloading
//
// The file is checked every 500 ms (size, modification time and identity,
// so an editor's rename over it is seen) and read once a change has stayed
// for one check, so a file written in place is not read half-written; a
// change takes effect within a second. SIGHUP re-reads it at once (the pid
// is in "xvsctl extension list"). A valid new file replaces the rules at
// once, and the switch is told to forget the verdicts it cached for this
// extension. An invalid file is logged with its error and line, the
// previous rules stay, and the file is not retried until it changes again.
// A writer that pauses for longer than a check can still be read
// half-written: to be sure, write a new file and rename it over the old one.
//
// # Counters
//
// "xvsctl extension stats acl" shows allowed, denied, malformed (dropped
// as unparseable), reloads, reload-errors, rule-N (frames decided by rule
// N since the rules were loaded) and default (frames no rule matched).
// Verdicts are cached per flow by the switch, so the counters count flows
// (first frames), not every frame.
package main

import "github.com/xvswitch/xvs/extensions/sdk"

func main() { sdk.Serve(&ACL{}) }
