package afxdp

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/vishvananda/netlink"
)

// Threaded NAPI: the device's receive polling, where the XDP program and
// so the fast path run, moves from the softirq of whichever CPU queued
// the frames (on a veth, the CPU of the sending VM, already busy with
// its TCP stack) into a kernel thread the scheduler can place on an idle
// core. Measured on a 2-core VM through the fast path: iperf3 TCP 5.93
// instead of 4.95 Gbit/s, but 64-byte frames 1.1 instead of 2.9 Mpps, the
// threads and the traffic's sender sharing the two cores (bench/RESULTS.md).
// On a veth whose peer has no qdisc (the default, noqueue) the price is
// loss: the peer hands frames to this device's NAPI through a 256-frame
// ring and drops them when the thread, on the other core, falls behind
// (veth_linux.go); 67,000-137,000 TCP retransmits in an iperf3 of 3 s,
// against ~0 in softirq mode or with a qdisc on the peer.

// sysNet is where the devices' sysfs directories are (a variable for
// tests).
var sysNet = "/sys/class/net"

// setThreadedNAPI turns threaded NAPI on or off for link's device and
// returns the previous setting. sysfs shows the devices of the network
// namespace it was mounted in, which need not be ours: the device there
// must have link's ifindex and address, or nothing is written.
func setThreadedNAPI(link netlink.Link, on bool) (prev bool, err error) {
	attrs := link.Attrs()
	dir := filepath.Join(sysNet, attrs.Name)
	idx, err := os.ReadFile(filepath.Join(dir, "ifindex"))
	if err != nil {
		return false, fmt.Errorf("threaded NAPI: %w", err)
	}
	addr, err := os.ReadFile(filepath.Join(dir, "address"))
	if err != nil {
		return false, fmt.Errorf("threaded NAPI: %w", err)
	}
	if n, _ := strconv.Atoi(string(bytes.TrimSpace(idx))); n != attrs.Index ||
		string(bytes.TrimSpace(addr)) != attrs.HardwareAddr.String() {
		return false, fmt.Errorf("threaded NAPI: %s in sysfs is another network namespace's device (mount sysfs in this one)", dir)
	}
	cur, err := os.ReadFile(filepath.Join(dir, "threaded"))
	if err != nil {
		return false, fmt.Errorf("threaded NAPI: %w", err)
	}
	prev = string(bytes.TrimSpace(cur)) != "0"
	v := "0"
	if on {
		v = "1"
	}
	if err := os.WriteFile(filepath.Join(dir, "threaded"), []byte(v), 0); err != nil {
		return prev, fmt.Errorf("threaded NAPI: %w", err)
	}
	return prev, nil
}
