// Package vhostuser is a [ports.Port] for virtual machines (QEMU) and DPDK
// virtio-user over vhost-user: the front-end shares the guest's memory and
// the virtio-net virtqueues with the switch through a Unix socket, and the
// switch moves frames in and out of the guest's rings itself, without the
// kernel.
//
// # Guest memory and virtqueues
//
// [Memory] translates guest physical and front-end virtual addresses to
// the switch's mappings of guest memory; a buffer must lie inside one
// region. [Queue] is one split virtqueue (virtio 1.x, little-endian):
// Dequeue copies the frames of a guest transmit queue into a [ring.Batch],
// Enqueue copies a batch into the buffers of a guest receive queue. Both
// work a batch at a time: avail->idx is read and used->idx written once
// per call, the guest is interrupted at most once per call, and neither
// allocates.
//
// Guest memory is untrusted and changes under the switch. A queue reads
// every descriptor once into a local before checking it, bounds chains
// (loops, length, indexes, indirect tables) and checks every buffer
// against the memory table. A guest that breaks the rules stops its queue
// ([Queue.Err], counted by kind in [QueueStats.Faults]); it cannot make
// the switch read or write outside its memory, nor panic.
//
// The device offers VIRTIO_F_VERSION_1, ANY_LAYOUT, INDIRECT_DESC,
// EVENT_IDX and MRG_RXBUF, and no checksum or segmentation offload: a
// guest sends complete frames, and the header in front of a received frame
// is zero apart from num_buffers.
//
// # The vhost-user protocol and the port
//
// [New] opens a [Port] on a unix socket (QEMU docs/interop/vhost-user.rst;
// the switch is the back-end). With Config.Server the port listens and
// the front-end connects; otherwise the front-end listens and the port
// connects, retrying from 100 ms to 5 s apart while it is absent and
// whenever the connection drops. One front-end is served at a time: a
// second connection waits up to a second for the first to end (a VM
// restarting) and is then closed. A stale socket file is replaced; a live
// one, or a path that is not a socket, is an error. A server port whose
// socket file is removed or replaced while it runs notices within a
// quarter second and creates it again, on the same terms (a file that is
// not a socket is left alone, logged, and retried); the connection being
// served goes on. For example:
//
//	# xvs listens (Config{Socket: "/run/xvs/vm1.sock", Server: true}):
//	qemu-system-x86_64 ... \
//	  -object memory-backend-memfd,id=mem,size=2G,share=on -numa node,memdev=mem \
//	  -chardev socket,id=c0,path=/run/xvs/vm1.sock,reconnect=1 \
//	  -netdev vhost-user,id=n0,chardev=c0,queues=1 \
//	  -device virtio-net-pci,netdev=n0,mac=02:00:00:00:00:01
//	# QEMU listens (Server false): -chardev socket,id=c0,path=...,server=on,wait=off
//	# DPDK: --vdev=virtio_user0,path=/run/xvs/vm1.sock (add server=1 for Server false)
//
// Guest RAM must be shared (share=on). The device offers the queue
// features above, VIRTIO_NET_F_MQ (GET_QUEUE_NUM answers
// Config.QueuePairs), VIRTIO_NET_F_MTU (NET_SET_MTU up to Config.MTU is
// accepted) and VHOST_USER_F_PROTOCOL_FEATURES with the protocol features
// MQ, REPLY_ACK and MTU. Not offered: CONFIG (GET_CONFIG is answered with
// an empty payload, SET_CONFIG with a failure), migration (VHOST_F_LOG_ALL,
// LOG_SHMFD: QEMU then blocks migration), RARP, IOMMU, packed rings,
// CONFIGURE_MEM_SLOTS (so at most 8 memory regions), inflight tracking
// and in-band notifications. A request the device does not grant is
// answered with a failure status if the front-end asked for one
// (NEED_REPLY) and otherwise logged and ignored; the connection stays.
//
// Every value from the front-end is checked. A malformed message (bad
// header or size, a payload of the wrong length, features that were not
// offered, a ring index, size or base out of range, descriptors missing or
// in excess, a region whose descriptor is not a regular file holding the
// whole region, overlapping regions, rings outside guest memory or
// misaligned) ends the connection: it is logged and counted
// ([Port.ControlStats]), the device is reset, and the port waits for the
// next front-end. SET_MEM_TABLE maps each region (MAP_SHARED, read and
// write) at its mmap offset, aligned to the file's block size so that
// hugetlbfs works.
//
// A ring runs when it has memory, a size, addresses and a kick (an
// eventfd, or polling), and is enabled: by SET_VRING_ENABLE once
// VHOST_USER_F_PROTOCOL_FEATURES is negotiated, else from its kick on.
// GET_VRING_BASE stops it and answers where it stopped; any change to a
// running ring (its size, base, addresses, call descriptor, the features
// or the memory table) stops it and starts it again from where it was.
// Ring 2k is pair k's guest receive queue (Transmit), 2k+1 its transmit
// queue (Receive). The device polls its rings; a transmit ring's kick
// descriptor is read only to empty it when the ring goes idle, and the
// port is a [ports.Waiter] on those descriptors (kicks.go), so an idle
// worker blocks instead of polling.
//
// Concurrency: one goroutine per connection owns the device. The data
// path sees the running queues through two slices, one per direction,
// each guarded by a mutex that Receive (or Transmit) holds for a whole
// batch and the device takes only to replace the slice. So once the device
// has withdrawn a queue, no batch uses it, and guest memory is unmapped
// only after every queue over it was withdrawn. Receive reads the
// transmit queues round-robin, and drops a guest frame longer than the
// MTU plus Ethernet and one VLAN tag (too-big); Transmit sends a frame to
// receive queue Meta.Hash mod the running ones (computing the flow hash
// when the frame has none). Frames it cannot deliver are counted by
// reason in [Port.Stats] (not-connected, too-big, malformed, queue-error),
// except those the guest posted no receive buffers for, which Transmit
// does not consume and the switch counts as ring-full. A guest that breaks a
// ring stops that ring only, until the front-end sets it up again.
//
// A front-end that shrinks a memory region's file after SET_MEM_TABLE
// makes the switch fault (SIGBUS) when it touches the lost pages; the
// front-end is trusted not to (QEMU does not).
package vhostuser
