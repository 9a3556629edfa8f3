package vhostuser

// Encoders and decoders the device does not need: tests and the fuzzers
// use them to build and check messages as a front-end would.

import (
	"encoding/binary"
	"fmt"
)

// Constants of features the device does not offer or requests it does
// not decode; tests check they stay unoffered, and build such requests.
const (
	protoLogShmfd uint64 = 1 << 1 // VHOST_USER_PROTOCOL_F_LOG_SHMFD
	protoRARP     uint64 = 1 << 2 // VHOST_USER_PROTOCOL_F_RARP
	protoConfig   uint64 = 1 << 9 // VHOST_USER_PROTOCOL_F_CONFIG: GET_CONFIG / SET_CONFIG

	virtioNetFMAC    uint64 = 1 << 5  // VIRTIO_NET_F_MAC: config space holds the MAC
	virtioNetFStatus uint64 = 1 << 16 // VIRTIO_NET_F_STATUS: config space holds link status
	virtioNetFCtrlVQ uint64 = 1 << 17 // VIRTIO_NET_F_CTRL_VQ: control virtqueue

	sizeConfigHdr = 12 // offset, size, flags of a config-space access
)

// parseMessage parses one message at the front of b and returns it (its
// payload aliases b) and the bytes after it. It is what conn does in two
// reads; tests and the fuzzer use it on whole buffers.
func parseMessage(b []byte) (message, []byte, error) {
	h := header(b)
	if err := h.check(); err != nil {
		return message{}, b, err
	}
	size := int(h.size())
	if len(b)-hdrSize < size {
		return message{}, b, fmt.Errorf("vhost-user: %w: %v: payload of %d bytes, header says %d", ErrMalformed, h.request(), len(b)-hdrSize, size)
	}
	m := message{Req: h.request(), Flags: h.flags(), Payload: b[hdrSize : hdrSize+size : hdrSize+size]}
	return m, b[hdrSize+size:], nil
}

func appendAddr(b []byte, a vringAddr) []byte {
	e := binary.NativeEndian
	b = e.AppendUint32(b, a.Index)
	b = e.AppendUint32(b, a.Flags)
	b = e.AppendUint64(b, a.Desc)
	b = e.AppendUint64(b, a.Used)
	b = e.AppendUint64(b, a.Avail)
	return e.AppendUint64(b, a.Log)
}

// appendMemTable encodes regions the way QEMU does: the header and only the
// regions in use.
func appendMemTable(b []byte, regions []memRegion) []byte {
	e := binary.NativeEndian
	b = e.AppendUint32(b, uint32(len(regions)))
	b = e.AppendUint32(b, 0)
	for _, r := range regions {
		b = e.AppendUint64(b, r.GuestPhys)
		b = e.AppendUint64(b, r.Size)
		b = e.AppendUint64(b, r.UserAddr)
		b = e.AppendUint64(b, r.MmapOffset)
	}
	return b
}

func appendVringFD(b []byte, f vringFD) []byte {
	v := uint64(f.Index & vringIdxMask)
	if f.NoFD {
		v |= vringNoFD
	}
	return appendU64(b, v)
}

// configHdr is the fixed part of a GET_CONFIG or SET_CONFIG payload.
type configHdr struct {
	Offset, Size, Flags uint32
}

func appendConfig(b []byte, c configHdr, data []byte) []byte {
	e := binary.NativeEndian
	b = e.AppendUint32(b, c.Offset)
	b = e.AppendUint32(b, c.Size)
	b = e.AppendUint32(b, c.Flags)
	return append(b, data...)
}

// decodeConfig reads the fixed part of a config-space access and checks
// that the payload holds Size bytes after it.
func decodeConfig(req Request, p []byte) (configHdr, error) {
	if len(p) < sizeConfigHdr {
		return configHdr{}, payloadError(req, len(p), "at least 12")
	}
	e := binary.NativeEndian
	c := configHdr{Offset: e.Uint32(p[0:4]), Size: e.Uint32(p[4:8]), Flags: e.Uint32(p[8:12])}
	if uint64(len(p)) != sizeConfigHdr+uint64(c.Size) {
		return configHdr{}, payloadError(req, len(p), fmt.Sprintf("12+%d", c.Size))
	}
	return c, nil
}

// decodePayload decodes the payload of a request whose layout this file
// knows, with the one decoder that layout calls for; for other requests it
// returns nil, nil. The device decodes each request itself; tests and the
// fuzzer use this.
func decodePayload(m message) (any, error) {
	switch m.Req {
	case ReqSetFeatures, ReqSetProtocolFeatures, ReqNetSetMTU, ReqSendRARP:
		return decodeU64(m.Req, m.Payload)
	case ReqSetVringNum, ReqSetVringBase, ReqGetVringBase, ReqSetVringEnable:
		return decodeState(m.Req, m.Payload)
	case ReqSetVringAddr:
		return decodeAddr(m.Req, m.Payload)
	case ReqSetMemTable:
		return decodeMemTable(m.Req, m.Payload)
	case ReqSetVringKick, ReqSetVringCall, ReqSetVringErr:
		return decodeVringFD(m.Req, m.Payload)
	case ReqGetConfig, ReqSetConfig:
		return decodeConfig(m.Req, m.Payload)
	}
	return nil, nil
}
