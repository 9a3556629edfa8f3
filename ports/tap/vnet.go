package tap

import (
	"encoding/binary"

	"github.com/xvswitch/xvs/header"
)

// vnetHdrLen is the size of the legacy struct virtio_net_hdr (no
// num_buffers field), the header size the port sets with TUNSETVNETHDRSZ.
const vnetHdrLen = 10

// Fields of struct virtio_net_hdr (include/uapi/linux/virtio_net.h).
const (
	vnetFlagNeedsCsum = 0x01 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	vnetGSONone       = 0x00 // VIRTIO_NET_HDR_GSO_NONE
)

// vnetHdr is a view of a virtio_net_hdr in little-endian byte order (the
// port sets TUNSETVNETLE). It must be vnetHdrLen bytes long; the accessors
// assume the caller checked that once.
//
//	0 flags  1 gso_type  2 hdr_len  4 gso_size  6 csum_start  8 csum_offset
type vnetHdr []byte

func (h vnetHdr) flags() uint8       { return h[0] }
func (h vnetHdr) gsoType() uint8     { return h[1] }
func (h vnetHdr) csumStart() uint16  { return binary.LittleEndian.Uint16(h[6:8]) }
func (h vnetHdr) csumOffset() uint16 { return binary.LittleEndian.Uint16(h[8:10]) }

// apply makes frame, which arrived behind h, a plain frame the switch can
// forward: it completes a partial checksum in place. It returns the drop
// reason, or dropNone to keep the frame. csummed reports that a checksum
// was completed.
func (h vnetHdr) apply(frame []byte) (reason dropReason, csummed bool) {
	if len(h) < vnetHdrLen {
		return dropMalformed, false
	}
	if h.gsoType() != vnetGSONone {
		return dropVnetGSO, false
	}
	if h.flags()&vnetFlagNeedsCsum == 0 {
		return dropNone, false
	}
	start, off := int(h.csumStart()), int(h.csumOffset())
	// A checksum field sits at an even offset in every protocol that has
	// one; at an odd one the ones' complement sum would be byte-swapped.
	if start < header.EthernetHeaderLen || off%2 != 0 || start+off+2 > len(frame) {
		return dropMalformed, false
	}
	completeChecksum(frame[start:], off)
	return dropNone, true
}

// completeChecksum finishes a CHECKSUM_PARTIAL frame: l4 is the frame from
// csum_start on, and the 16-bit field at l4[off:] holds the (uncomplemented)
// pseudo-header sum the sender seeded it with. The Internet checksum of l4
// (the ones' complement of its ones' complement sum, seed included) goes in
// its place; a zero result is sent as 0xffff (the same value in ones'
// complement, and the only valid form for UDP).
func completeChecksum(l4 []byte, off int) {
	c := header.Checksum(l4)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(l4[off:], c)
}
