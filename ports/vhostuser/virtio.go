package vhostuser

// Constants of the virtio 1.x specification (split virtqueues, network
// device), as in include/uapi/linux/virtio_ring.h, virtio_config.h and
// virtio_net.h. Every multi-byte field in guest memory is little-endian.

// Feature bits, as masks of the 64-bit feature word.
const (
	virtioNetFMTU           uint64 = 1 << 3  // VIRTIO_NET_F_MTU: config space holds the MTU
	virtioNetFMrgRxbuf      uint64 = 1 << 15 // VIRTIO_NET_F_MRG_RXBUF: a received frame may span buffers
	virtioNetFMQ            uint64 = 1 << 22 // VIRTIO_NET_F_MQ: several queue pairs
	virtioFAnyLayout        uint64 = 1 << 27 // VIRTIO_F_ANY_LAYOUT: headers need no descriptor of their own
	virtioRingFIndirectDesc uint64 = 1 << 28 // VIRTIO_RING_F_INDIRECT_DESC
	virtioRingFEventIdx     uint64 = 1 << 29 // VIRTIO_RING_F_EVENT_IDX: used_event / avail_event
	virtioFVersion1         uint64 = 1 << 32 // VIRTIO_F_VERSION_1: virtio 1.x, little-endian rings
)

// virtioQueueFeatures are the ring and network features [Queue] implements:
// the device may offer them (with whatever the protocol side adds, such as
// VIRTIO_NET_F_MAC or VHOST_USER_F_PROTOCOL_FEATURES). No checksum or
// segmentation offload is offered, so a guest sends complete frames and the
// virtio-net header the queues write is all zero apart from num_buffers.
const virtioQueueFeatures = virtioFVersion1 | virtioFAnyLayout | virtioRingFIndirectDesc |
	virtioRingFEventIdx | virtioNetFMrgRxbuf

// Descriptor flags (struct vring_desc.flags).
const (
	virtqDescFNext     = 1 // VRING_DESC_F_NEXT: the chain continues at next
	virtqDescFWrite    = 2 // VRING_DESC_F_WRITE: device-writable (a receive buffer)
	virtqDescFIndirect = 4 // VRING_DESC_F_INDIRECT: addr/len is a table of descriptors
)

// Ring flags.
const (
	virtqAvailFNoInterrupt = 1 // VRING_AVAIL_F_NO_INTERRUPT (avail->flags, driver to device)
	virtqUsedFNoNotify     = 1 // VRING_USED_F_NO_NOTIFY (used->flags, device to driver)
)

// Sizes and limits of split virtqueues.
const (
	virtqDescSize     = 16    // struct vring_desc {le64 addr; le32 len; le16 flags; le16 next}
	virtqUsedElemSize = 8     // struct vring_used_elem {le32 id; le32 len}
	virtqMaxSize      = 32768 // the largest queue size (a power of two)

	virtqDescAlign  = 16 // alignment of the descriptor table
	virtqAvailAlign = 2  // alignment of the avail ring
	virtqUsedAlign  = 4  // alignment of the used ring

	// virtqMaxChainDescs bounds the descriptors of one chain, counting
	// those of an indirect table: QEMU refuses longer chains too
	// (VIRTQUEUE_MAX_SIZE).
	virtqMaxChainDescs = 1024
)

// virtqAvailBytes is the size of an avail ring of n entries:
// flags, idx, ring[n], used_event.
func virtqAvailBytes(n uint64) uint64 { return 6 + 2*n }

// virtqUsedBytes is the size of a used ring of n entries:
// flags, idx, ring[n] {id, len}, avail_event.
func virtqUsedBytes(n uint64) uint64 { return 6 + virtqUsedElemSize*n }

// virtqNeedEvent is vring_need_event: with VIRTIO_RING_F_EVENT_IDX, whether
// moving an index from old to new passes the other side's event index
// (which asks to be notified once the index moves past it).
func virtqNeedEvent(event, new, old uint16) bool {
	return new-event-1 < new-old
}

// virtio-net header (struct virtio_net_hdr and virtio_net_hdr_mrg_rxbuf).
const (
	virtioNetHdrLegacyLen = 10 // flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
	virtioNetHdrMrgLen    = 12 // ... and num_buffers
	virtioNetHdrNumBufOff = 10 // offset of le16 num_buffers
)

// virtioNetHdrLen is the header length that features imply: 12 bytes with
// VIRTIO_F_VERSION_1 or VIRTIO_NET_F_MRG_RXBUF, else the legacy 10.
func virtioNetHdrLen(features uint64) int {
	if features&(virtioFVersion1|virtioNetFMrgRxbuf) != 0 {
		return virtioNetHdrMrgLen
	}
	return virtioNetHdrLegacyLen
}

// setFeatures fills the fields of c that follow from the negotiated
// features: HdrLen, Mergeable and EventIdx.
func (c *QueueConfig) setFeatures(features uint64) {
	c.HdrLen = virtioNetHdrLen(features)
	c.Mergeable = features&virtioNetFMrgRxbuf != 0
	c.EventIdx = features&virtioRingFEventIdx != 0
}
