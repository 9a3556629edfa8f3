package vhostuser

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// This file is the vhost-user wire format (QEMU docs/interop/vhost-user.rst,
// "Message Specification"): a 12-byte header {request, flags, size} and a
// payload of size bytes, every number in the host's byte order. Nothing
// here does I/O; conn_linux.go reads and writes messages and device.go acts
// on them. Every decoder checks the payload length before it reads a field.

// Request is the type of a front-end request.
type Request uint32

// Front-end requests. Only those the device handles or names in its logs
// are listed; others are answered as unsupported.
const (
	ReqGetFeatures         Request = 1
	ReqSetFeatures         Request = 2
	ReqSetOwner            Request = 3
	ReqResetOwner          Request = 4
	ReqSetMemTable         Request = 5
	ReqSetLogBase          Request = 6
	ReqSetLogFD            Request = 7
	ReqSetVringNum         Request = 8
	ReqSetVringAddr        Request = 9
	ReqSetVringBase        Request = 10
	ReqGetVringBase        Request = 11
	ReqSetVringKick        Request = 12
	ReqSetVringCall        Request = 13
	ReqSetVringErr         Request = 14
	ReqGetProtocolFeatures Request = 15
	ReqSetProtocolFeatures Request = 16
	ReqGetQueueNum         Request = 17
	ReqSetVringEnable      Request = 18
	ReqSendRARP            Request = 19
	ReqNetSetMTU           Request = 20
	ReqSetSlaveReqFD       Request = 21
	ReqIOTLBMsg            Request = 22
	ReqSetVringEndian      Request = 23
	ReqGetConfig           Request = 24
	ReqSetConfig           Request = 25
	ReqGetInflightFD       Request = 31
	ReqSetInflightFD       Request = 32
	ReqResetDevice         Request = 34
	ReqVringKick           Request = 35
	ReqGetMaxMemSlots      Request = 36
	ReqAddMemReg           Request = 37
	ReqRemMemReg           Request = 38
	ReqSetStatus           Request = 39
	ReqGetStatus           Request = 40
)

var requestNames = map[Request]string{
	ReqGetFeatures:         "GET_FEATURES",
	ReqSetFeatures:         "SET_FEATURES",
	ReqSetOwner:            "SET_OWNER",
	ReqResetOwner:          "RESET_OWNER",
	ReqSetMemTable:         "SET_MEM_TABLE",
	ReqSetLogBase:          "SET_LOG_BASE",
	ReqSetLogFD:            "SET_LOG_FD",
	ReqSetVringNum:         "SET_VRING_NUM",
	ReqSetVringAddr:        "SET_VRING_ADDR",
	ReqSetVringBase:        "SET_VRING_BASE",
	ReqGetVringBase:        "GET_VRING_BASE",
	ReqSetVringKick:        "SET_VRING_KICK",
	ReqSetVringCall:        "SET_VRING_CALL",
	ReqSetVringErr:         "SET_VRING_ERR",
	ReqGetProtocolFeatures: "GET_PROTOCOL_FEATURES",
	ReqSetProtocolFeatures: "SET_PROTOCOL_FEATURES",
	ReqGetQueueNum:         "GET_QUEUE_NUM",
	ReqSetVringEnable:      "SET_VRING_ENABLE",
	ReqSendRARP:            "SEND_RARP",
	ReqNetSetMTU:           "NET_SET_MTU",
	ReqSetSlaveReqFD:       "SET_SLAVE_REQ_FD",
	ReqIOTLBMsg:            "IOTLB_MSG",
	ReqSetVringEndian:      "SET_VRING_ENDIAN",
	ReqGetConfig:           "GET_CONFIG",
	ReqSetConfig:           "SET_CONFIG",
	ReqGetInflightFD:       "GET_INFLIGHT_FD",
	ReqSetInflightFD:       "SET_INFLIGHT_FD",
	ReqResetDevice:         "RESET_DEVICE",
	ReqVringKick:           "VRING_KICK",
	ReqGetMaxMemSlots:      "GET_MAX_MEM_SLOTS",
	ReqAddMemReg:           "ADD_MEM_REG",
	ReqRemMemReg:           "REM_MEM_REG",
	ReqSetStatus:           "SET_STATUS",
	ReqGetStatus:           "GET_STATUS",
}

// String is the request's name in the specification, without the
// VHOST_USER_ prefix.
func (r Request) String() string {
	if s, ok := requestNames[r]; ok {
		return s
	}
	return fmt.Sprintf("request(%d)", uint32(r))
}

// Header flags.
const (
	flagVersionMask = 0x3
	flagVersion     = 0x1 // the only protocol version
	flagReply       = 0x4 // set on every reply of the back-end
	flagNeedReply   = 0x8 // REPLY_ACK: the front-end waits for a u64 status
)

// Wire limits.
const (
	// hdrSize is the size of the message header.
	hdrSize = 12
	// maxPayload bounds the size field. The largest payload the protocol
	// defines is a config-space access (12 + 256 bytes); a size beyond a
	// page is a broken or hostile front-end, and reading it would only
	// tie the connection up.
	maxPayload = 4096
	// maxFDs is the most descriptors one message carries (one per memory
	// region of SET_MEM_TABLE).
	maxFDs = 8
	// maxRegions is the number of regions in a SET_MEM_TABLE payload
	// (VHOST_MEMORY_BASELINE_NREGIONS).
	maxRegions = 8
)

// Payload sizes.
const (
	sizeU64      = 8
	sizeState    = 8        // struct vhost_vring_state
	sizeAddr     = 40       // struct vhost_vring_addr
	sizeRegion   = 32       // struct vhost_memory_region
	sizeMemHdr   = 8        // nregions, padding
	sizeMemTable = 8 + 8*32 // the whole VhostUserMemory
	vringIdxMask = 0xff     // SET_VRING_KICK/CALL/ERR: index bits of the u64
	vringNoFD    = 1 << 8   // SET_VRING_KICK/CALL/ERR: no descriptor, poll
)

// ErrMalformed is wrapped by every error about a message's bytes.
var ErrMalformed = errors.New("malformed message")

// header is a view of the 12 header bytes.
type header []byte

func (h header) request() Request { return Request(binary.NativeEndian.Uint32(h[0:4])) }
func (h header) flags() uint32    { return binary.NativeEndian.Uint32(h[4:8]) }
func (h header) size() uint32     { return binary.NativeEndian.Uint32(h[8:12]) }

// check validates a header: length, protocol version and payload size.
// Only then may the accessors be used.
func (h header) check() error {
	if len(h) < hdrSize {
		return fmt.Errorf("vhost-user: %w: header of %d bytes, want %d", ErrMalformed, len(h), hdrSize)
	}
	if v := h.flags() & flagVersionMask; v != flagVersion {
		return fmt.Errorf("vhost-user: %w: %v: version %d, want %d", ErrMalformed, h.request(), v, flagVersion)
	}
	if s := h.size(); s > maxPayload {
		return fmt.Errorf("vhost-user: %w: %v: payload size %d, at most %d", ErrMalformed, h.request(), s, maxPayload)
	}
	return nil
}

// message is one request or reply. Payload and FDs are owned by whoever
// holds the message: conn reuses the payload buffer for the next message,
// and the handler either keeps each descriptor or closes it.
type message struct {
	Req     Request
	Flags   uint32
	Payload []byte
	FDs     []int
}

// needReply reports whether the front-end asked for a REPLY_ACK status.
func (m *message) needReply() bool { return m.Flags&flagNeedReply != 0 }

// appendMessage appends the encoded header and payload of m to b. The
// version bits are always set.
func appendMessage(b []byte, m message) []byte {
	b = binary.NativeEndian.AppendUint32(b, uint32(m.Req))
	b = binary.NativeEndian.AppendUint32(b, m.Flags&^flagVersionMask|flagVersion)
	b = binary.NativeEndian.AppendUint32(b, uint32(len(m.Payload)))
	return append(b, m.Payload...)
}

// payloadError is the error for a payload that does not have the expected
// length.
func payloadError(req Request, got int, want string) error {
	return fmt.Errorf("vhost-user: %w: %v: payload of %d bytes, want %s", ErrMalformed, req, got, want)
}

// decodeU64 reads a u64 payload.
func decodeU64(req Request, p []byte) (uint64, error) {
	if len(p) != sizeU64 {
		return 0, payloadError(req, len(p), "8")
	}
	return binary.NativeEndian.Uint64(p), nil
}

func appendU64(b []byte, v uint64) []byte { return binary.NativeEndian.AppendUint64(b, v) }

// vringState is struct vhost_vring_state.
type vringState struct {
	Index uint32
	Num   uint32
}

func decodeState(req Request, p []byte) (vringState, error) {
	if len(p) != sizeState {
		return vringState{}, payloadError(req, len(p), "8")
	}
	return vringState{
		Index: binary.NativeEndian.Uint32(p[0:4]),
		Num:   binary.NativeEndian.Uint32(p[4:8]),
	}, nil
}

func appendState(b []byte, s vringState) []byte {
	b = binary.NativeEndian.AppendUint32(b, s.Index)
	return binary.NativeEndian.AppendUint32(b, s.Num)
}

// vringAddr is struct vhost_vring_addr: the ring's parts as front-end
// (QEMU process) virtual addresses, and the guest-physical log address.
type vringAddr struct {
	Index uint32
	Flags uint32 // VHOST_VRING_F_LOG
	Desc  uint64
	Used  uint64
	Avail uint64
	Log   uint64
}

// vringFLog is the only flag of vringAddr: log writes to the used ring.
const vringFLog = 1 << 0

func decodeAddr(req Request, p []byte) (vringAddr, error) {
	if len(p) != sizeAddr {
		return vringAddr{}, payloadError(req, len(p), "40")
	}
	e := binary.NativeEndian
	return vringAddr{
		Index: e.Uint32(p[0:4]),
		Flags: e.Uint32(p[4:8]),
		Desc:  e.Uint64(p[8:16]),
		Used:  e.Uint64(p[16:24]),
		Avail: e.Uint64(p[24:32]),
		Log:   e.Uint64(p[32:40]),
	}, nil
}

// memRegion is struct vhost_memory_region: Size bytes of guest memory at
// guest-physical GuestPhys, mapped in the front-end at UserAddr, found at
// MmapOffset in the region's file descriptor.
type memRegion struct {
	GuestPhys  uint64
	Size       uint64
	UserAddr   uint64
	MmapOffset uint64
}

// decodeMemTable reads a SET_MEM_TABLE payload: 1 to 8 regions, each
// non-empty and not wrapping around the 64-bit address space in any of its
// three address spaces. Front-ends send either exactly the regions in use
// (QEMU, DPDK) or the whole 8-region struct; anything in between, or
// longer, is malformed. Overlaps are the memory table's business.
func decodeMemTable(req Request, p []byte) ([]memRegion, error) {
	if len(p) < sizeMemHdr {
		return nil, payloadError(req, len(p), "at least 8")
	}
	n := binary.NativeEndian.Uint32(p[0:4])
	if n == 0 || n > maxRegions {
		return nil, fmt.Errorf("vhost-user: %w: %v: %d regions, want 1..%d", ErrMalformed, req, n, maxRegions)
	}
	if want := sizeMemHdr + int(n)*sizeRegion; len(p) != want && len(p) != sizeMemTable {
		return nil, payloadError(req, len(p), fmt.Sprintf("%d or %d for %d regions", want, sizeMemTable, n))
	}
	regions := make([]memRegion, n)
	e := binary.NativeEndian
	for i := range regions {
		r := p[sizeMemHdr+i*sizeRegion:]
		g := memRegion{
			GuestPhys:  e.Uint64(r[0:8]),
			Size:       e.Uint64(r[8:16]),
			UserAddr:   e.Uint64(r[16:24]),
			MmapOffset: e.Uint64(r[24:32]),
		}
		switch {
		case g.Size == 0:
			return nil, fmt.Errorf("vhost-user: %w: %v: region %d is empty", ErrMalformed, req, i)
		case g.GuestPhys+g.Size < g.GuestPhys, g.UserAddr+g.Size < g.UserAddr, g.MmapOffset+g.Size < g.MmapOffset:
			return nil, fmt.Errorf("vhost-user: %w: %v: region %d (guest %#x user %#x offset %#x size %#x) wraps around", ErrMalformed, req, i, g.GuestPhys, g.UserAddr, g.MmapOffset, g.Size)
		}
		regions[i] = g
	}
	return regions, nil
}

// vringFD is the u64 of SET_VRING_KICK, _CALL and _ERR: a ring index and
// whether a descriptor comes with it.
type vringFD struct {
	Index uint32
	NoFD  bool // polling: no descriptor in the ancillary data
}

func decodeVringFD(req Request, p []byte) (vringFD, error) {
	v, err := decodeU64(req, p)
	if err != nil {
		return vringFD{}, err
	}
	// Bits above 8 are undefined; like QEMU's own back-ends, ignore them.
	return vringFD{Index: uint32(v & vringIdxMask), NoFD: v&vringNoFD != 0}, nil
}
