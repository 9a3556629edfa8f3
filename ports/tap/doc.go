// Package tap is a [ports.Port] over a Linux TAP device: the switch holds
// the device's queue file descriptors (/dev/net/tun) and the kernel side of
// the device is the far end of the wire. A frame the port transmits is
// received by the kernel on the device; a frame the kernel sends out of the
// device is what the port receives.
//
// # What the port owns
//
// [New] opens Config.Queues queues of the device Config.Dev with
// IFF_TAP|IFF_NO_PI|IFF_VNET_HDR|IFF_MULTI_QUEUE, all non-blocking. If no
// device of that name exists it is created (non-persistent) and the port is
// its owner; if a multi-queue TAP of that name exists (made by
// `ip tuntap add dev DEV mode tap multi_queue vnet_hdr`, or by another
// port), the port attaches its queues to it. A device that exists but is
// not a multi-queue TAP (a veth, "lo", a TAP made without multi_queue) is
// an error. The device name is looked up in the caller's network namespace:
// attach before moving a device elsewhere, or New creates a new one. New
// then sets the MTU and, if given, the MAC address of the device and brings
// it up.
//
// Close closes the queue descriptors. A non-persistent device disappears
// when its last queue is closed, so a device the port created vanishes on
// Close, even after it was moved to another network namespace (unless some
// other process attached queues to it too: it then goes with their last
// queue). An existing persistent device is left in place.
//
// Moving the device to another network namespace (`ip link set DEV netns
// NS`) keeps the queues working, but the kernel takes the device down on the
// move: bring it up again in the namespace. Until then Transmit counts its
// frames as "link-down" drops and Receive finds nothing.
//
// # virtio-net header and offloads
//
// Every frame on a queue is preceded by the 10-byte struct virtio_net_hdr
// (TUNSETVNETHDRSZ 10, little-endian via TUNSETVNETLE). New sets
// TUNSETOFFLOAD to 0: the device then advertises no checksum, scatter-gather
// or segmentation offload, so the kernel completes checksums and segments
// GSO packets before handing them to us. Because the offload setting belongs
// to the device, attaching to an existing device turns its offloads off for
// every queue. Receive still checks each header:
//
//   - gso_type other than NONE: the frame is a segmentation super-packet the
//     switch cannot forward as is; it is dropped and counted as "vnet-gso".
//   - VIRTIO_NET_HDR_F_NEEDS_CSUM: the L4 checksum is completed in place
//     (ones' complement sum from csum_start to the end of the frame, stored
//     at csum_start+csum_offset), as the kernel would before a real NIC
//     without offload. A csum_start inside the Ethernet header, an odd
//     csum_offset or a checksum field past the end of the frame is dropped
//     as "malformed".
//   - DATA_VALID and any other flag are ignored.
//
// Transmit writes an all-zero header (no offload requested, checksum
// already complete) in front of each frame.
//
// # Data path
//
// Receive reads one frame per read(2), which is inherent to TAP, until the
// batch is full or every queue returns EAGAIN; it never blocks. It reads
// the header and the frame in one call directly into the switch's buffer at
// Offset-10, so the frame lands at Offset and the header in the headroom in
// front of it (the headroom of a buffer being received into is the
// receiver's scratch space); the kernel's copy is the only one. With an
// Offset below 10 it falls back to readv into a header scratch plus the
// buffer. The kernel silently truncates a frame longer than the buffer and
// reports the truncated length, so a read that fills the buffer's whole
// room is dropped as "too-big": the room (FrameSize - Offset) must exceed
// the largest frame, MTU+18, by at least one byte (the default arena's
// 1792 bytes do for MTU 1500). Queues are drained round-robin, starting one
// queue later on each call.
//
// Transmit writes each frame with writev(2) of a static zero header and the
// frame bytes, so the frame's buffer, headroom included, is never written:
// the same buffer may be in flight to several ports during a flood. A frame
// goes to queue Meta.Hash mod Queues, which keeps a flow in order; the port
// computes the hash (header.FlowHash) of a frame that has none. EAGAIN
// stops the batch and the rest is reported as not accepted (the switch
// counts it as ring-full); EIO (device down) is counted as "link-down" and
// other write errors as "tx-error", and those frames count as accepted
// (consumed). A frame longer than MTU+18 (Ethernet header and one VLAN tag)
// is dropped as "too-big", one shorter than an Ethernet header as
// "malformed". Neither path allocates.
//
// # Virtual machines
//
// The queues of one TAP device are peers, not the two ends of a wire: the
// kernel spreads what it sends out of the device over all queues, and what
// any queue writes is received by the kernel. So a VM must not share the
// port's device: if QEMU opens the same DEV, the VM and the switch each see
// part of the host's traffic and never each other's frames (a test in this
// package shows that a frame written on one queue never reaches another).
// A VM reaches the switch through a device of its own:
//
//	qemu-system-x86_64 ... \
//	  -netdev tap,id=n0,ifname=vm0,script=no,downscript=no,vhost=off,queues=2 \
//	  -device virtio-net-pci,netdev=n0,mq=on,vectors=6
//
// QEMU creates vm0 (or attaches to a persistent one made with
// `ip tuntap add dev vm0 mode tap multi_queue vnet_hdr`) and owns its
// queues. The kernel side of vm0 is then joined to the switch in one of
// these ways:
//
//   - preferred: no TAP at all, a vhost-user port (ports/vhostuser), which
//     shares the VM's virtqueues with the switch;
//   - an AF_XDP port (ports/afxdp) on vm0's kernel side;
//   - a kernel bridge joining vm0 and this package's port: `ip link add br-vm0
//     type bridge; ip link set vm0 master br-vm0; ip link set SWDEV master
//     br-vm0`, all up, where SWDEV is Config.Dev. It needs no extra code and
//     costs one kernel forwarding hop per frame (tested here with two TAP
//     ports standing in for QEMU and the switch).
//
// Without a VM, the port attaches a network namespace or the host stack to
// the switch: move the device into the namespace and address it there.
//
// # Privileges
//
// Creating a device, or attaching to one owned by another user, needs
// CAP_NET_ADMIN; without it New returns an error that matches
// [os.ErrPermission].
package tap
