package afxdp

// A veth's far end (the "peer": a VM's or container's eth0) hands its
// frames to this end through a ring of 256 frames once this end has NAPI,
// and an XDP program gives it NAPI. When the ring is full the peer drops
// the frame and counts it in its own tx_dropped, where neither this
// device's counters nor the socket's statistics show it; only with a
// qdisc on the peer does the kernel (6.16 and later) stop the peer's
// queue instead, so the sender waits. With threaded NAPI the ring's
// consumer (this device's NAPI thread, which runs the fast path and the
// receiving namespace's softirq) and its producer (the sender's TCP
// stack) run on different CPUs, and a peer without a qdisc loses frames
// whenever the sender outruns the thread: on the 2-core development VM,
// iperf3 through the fast path with threaded NAPI lost 9-15% of its
// segments there (67,000-137,000 TCP retransmits in 3 s) and none with
// pfifo_fast on the peers. In softirq mode the consumer runs on the
// sender's CPU right after the sender queues, which holds it back.
//
// So the port reads the peer's qdisc and tx_dropped (Port.Stats:
// "peer-dropped") through RTM_GETLINK, in the peer's namespace by its
// netnsid, and New warns about a threaded port whose peer has none.

import (
	"fmt"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// vethPeer is the other end of a veth, as this namespace names it.
type vethPeer struct {
	ifindex int   // in the peer's namespace
	nsid    int32 // the peer's namespace as seen from here; -1: this one
}

// peerState is what a peer's RTM_GETLINK tells.
type peerState struct {
	name      string
	qdisc     string // "noqueue": no qdisc, nothing holds the sender back
	txDropped uint64
}

// findVethPeer returns the peer of the veth with ifindex, or ok false for
// a device that is not a veth or whose peer is unknown.
func findVethPeer(ifindex int) (p vethPeer, ok bool, err error) {
	attrs, err := getLink(ifindex, -1)
	if err != nil {
		return p, false, err
	}
	p.nsid = -1
	var kind string
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.IFLA_LINK:
			if len(a.Value) >= 4 {
				p.ifindex = int(native.Uint32(a.Value))
			}
		case unix.IFLA_LINK_NETNSID:
			if len(a.Value) >= 4 {
				p.nsid = int32(native.Uint32(a.Value))
			}
		case unix.IFLA_LINKINFO:
			info, err := nl.ParseRouteAttr(a.Value)
			if err != nil {
				return p, false, fmt.Errorf("veth peer: %w", err)
			}
			for _, i := range info {
				if i.Attr.Type == nl.IFLA_INFO_KIND {
					kind = string(trimNUL(i.Value))
				}
			}
		}
	}
	return p, kind == "veth" && p.ifindex > 0, nil
}

// state reads the peer's qdisc and tx_dropped.
func (p vethPeer) state() (peerState, error) {
	var s peerState
	attrs, err := getLink(p.ifindex, p.nsid)
	if err != nil {
		return s, err
	}
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.IFLA_IFNAME:
			s.name = string(trimNUL(a.Value))
		case unix.IFLA_QDISC:
			s.qdisc = string(trimNUL(a.Value))
		case unix.IFLA_STATS64:
			// struct rtnl_link_stats64: tx_dropped is the 8th u64
			if len(a.Value) >= 64 {
				s.txDropped = native.Uint64(a.Value[56:])
			}
		}
	}
	return s, nil
}

// getLink is RTM_GETLINK for ifindex in the namespace with nsid (-1: this
// one), returning the link's attributes.
func getLink(ifindex int, nsid int32) ([]netlinkAttr, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, 0)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(ifindex)
	req.AddData(msg)
	if nsid >= 0 {
		req.AddData(nl.NewRtAttr(unix.IFLA_TARGET_NETNSID, nl.Uint32Attr(uint32(nsid))))
	}
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return nil, fmt.Errorf("get link %d (netnsid %d): %w", ifindex, nsid, err)
	}
	if len(msgs) != 1 || len(msgs[0]) < unix.SizeofIfInfomsg {
		return nil, fmt.Errorf("get link %d (netnsid %d): %d answers", ifindex, nsid, len(msgs))
	}
	return nl.ParseRouteAttr(msgs[0][unix.SizeofIfInfomsg:])
}

type netlinkAttr = syscall.NetlinkRouteAttr

var native = nl.NativeEndian()

func trimNUL(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// peerOf is findVethPeer for a link already looked up.
func peerOf(link netlink.Link) (vethPeer, bool) {
	if link.Type() != "veth" {
		return vethPeer{}, false
	}
	p, ok, err := findVethPeer(link.Attrs().Index)
	return p, ok && err == nil
}
