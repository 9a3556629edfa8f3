package datapath

// Reason names why the module dropped a frame. The String forms are the
// drop reasons users see in xvsctl and Prometheus (the switch counts them
// under the same names).
type Reason uint8

// Drop reasons of the WNV data path.
const (
	DropMalformed       Reason = iota // too short to parse, or an answer that could not be built
	DropNoPolicy                      // no lookup record answers the frame (ARP/ND for an unknown address)
	DropProxied                       // ARP/ND consumed: a request answered, or a VM's reply or announcement absorbed
	DropPoolEmpty                     // no spare buffer for a frame the module had to build or hold
	DropSamePort                      // the destination is behind the port the frame came in on
	DropSpoof                         // source MAC/CA not owned by the ingress port
	DropIsolation                     // destination outside the source's routing domain
	DropTTL                           // TTL or hop limit exhausted while routing
	DropNoUplink                      // destination on another host but no uplink or provider route to it
	DropARPPending                    // the provider next hop did not answer ARP in time, or too many frames waited for it
	DropMTU                           // too large for the uplink once encapsulated
	DropNVGREInvalid                  // NVGRE: malformed, or a header RFC 7637 forbids
	DropNVGRENotOurs                  // NVGRE: outer destination is not one of our PAs
	DropNVGREVSID                     // NVGRE: VSID is not a virtual subnet here
	DropNVGRENoDst                    // NVGRE: inner destination has no local port in the VSID
	DropNVGRESrc                      // NVGRE: outer source PA is not the inner source's host per the policy
	DropRewriteSrc                    // IP rewrite: the source PA maps to no CA that may reach the destination
	DropNeighborChanged               // uplink ARP: a next hop's MAC changed (counted), or an unasked claim to another MAC (dropped)
	DropRAGuard                       // an IPv6 Router Advertisement from a VM (the policy names no VM a router)
	DropDHCPGuard                     // a DHCP or DHCPv6 server message from a VM (the policy names no VM a DHCP server)
	NumReasons
)

var reasonNames = [NumReasons]string{
	DropMalformed:       "malformed",
	DropNoPolicy:        "no-policy",
	DropProxied:         "proxied",
	DropPoolEmpty:       "pool-empty",
	DropSamePort:        "same-port",
	DropSpoof:           "spoof",
	DropIsolation:       "isolation",
	DropTTL:             "ttl",
	DropNoUplink:        "no-uplink",
	DropARPPending:      "arp-pending",
	DropMTU:             "mtu",
	DropNVGREInvalid:    "nvgre-invalid",
	DropNVGRENotOurs:    "nvgre-not-ours",
	DropNVGREVSID:       "nvgre-vsid",
	DropNVGRENoDst:      "nvgre-no-dst",
	DropNVGRESrc:        "nvgre-src",
	DropRewriteSrc:      "rewrite-src",
	DropNeighborChanged: "neighbor-changed",
	DropRAGuard:         "ra-guard",
	DropDHCPGuard:       "dhcp-guard",
}

func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Tally counts drops by reason between two TakeDrops.
type Tally [NumReasons]uint32
