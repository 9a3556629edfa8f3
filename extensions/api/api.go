// Package api is the contract between xvsd and its extensions, version 1.
//
// An extension is a separate process started by xvsd through
// hashicorp/go-plugin. Three things cross between them:
//
//   - the go-plugin handshake ([Handshake]): a magic cookie and
//     [ProtocolVersion], refused by both sides on mismatch;
//   - the control RPC, gRPC service xvs.extension.v1.Extension (package pb):
//     Info, Start, SetPorts, Stats, Stop. Never per frame;
//   - frames, through shared memory: a memfd inherited by the extension as
//     file descriptor [ShmFD], laid out as described below, and an eventfd
//     ([DoorbellFD]) that the switch writes when it gives frames to an
//     extension that said it sleeps.
//
// # Shared memory
//
// All integers are in the machine's byte order: both processes run on the
// same host. The region starts with a [HeaderSize]-byte header:
//
//	offset  size  field
//	0       4     magic [Magic]
//	4       4     layout version [LayoutVersion]
//	8       4     channels: one per switch worker
//	12      4     ring size: descriptors per ring, a power of two
//	16      4     slot size: bytes of frame data per descriptor
//	64      8     generation: the extension adds 1 when its decisions change
//	              (rules reloaded); the switch then forgets cached verdicts
//	128     4     sleeping: non-zero while the extension waits on the doorbell
//
// Channel i follows at HeaderSize + i*ChannelSize(ringSize, slotSize):
//
//	control  256 bytes: four uint32 indexes, each on its own cache line:
//	         down.producer (switch), down.consumer (extension),
//	         up.producer (extension), up.consumer (switch)
//	down     ringSize descriptors, switch -> extension ([TypeCapture], [TypeRequest])
//	up       ringSize descriptors, extension -> switch ([TypeVerdict], [TypeInject])
//	down     ringSize slots of slot size bytes: frame data of down descriptors
//	up       ringSize slots of slot size bytes: frame data of up descriptors
//
// Each ring is single-producer single-consumer. Indexes run freely and wrap
// at 2^32; position p is descriptor p & (ringSize-1). A producer writes the
// descriptor and its slot, then stores the producer index (release); a
// consumer loads the producer index (acquire), reads, then stores its own
// index, after which the descriptor and slot may be reused. The slot of a
// descriptor is named by its Slot field; producers use slot p & (ringSize-1).
//
// The switch trusts nothing that comes up: it copies each descriptor out of
// shared memory before reading it, checks its type, slot, offset, length,
// cookie and ports, and counts a descriptor that fails as a drop.
//
// # Verdicts
//
// A filter or forwarding extension receives [TypeRequest] descriptors, each
// with a cookie, and answers each with one [TypeVerdict] descriptor with the
// same cookie, in any order, within the switch's deadline. The switch caches
// the verdict for the frame's flow (VSID, direction, addresses, protocol and
// ports) unless the extension sets [FlagNoCache] or asked for every frame;
// [VerdictModified] is never cached. Capture extensions receive
// [TypeCapture] descriptors and answer nothing.
package api

import (
	"context"
	"unsafe"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/xvswitch/xvs/extensions/api/pb"
)

// ProtocolVersion is the version of this contract. Both sides refuse a
// peer speaking another.
const ProtocolVersion = 1

// Handshake is the go-plugin handshake of xvs extensions. An extension
// binary run by hand (without the cookie in its environment) explains that
// it is a plugin and exits.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "XVS_EXTENSION",
	MagicCookieValue: "c0ffee-xvs-extension-v1",
}

// PluginName is the name under which the extension plugin is dispensed.
const PluginName = "extension"

// The descriptors an extension inherits (os/exec ExtraFiles start at 3).
const (
	ShmFD      = 3
	DoorbellFD = 4
)

// Kind is what an extension may do with frames.
type Kind uint8

const (
	// KindCapture observes copies of frames; it cannot change or drop them.
	KindCapture Kind = 1
	// KindFilter passes, drops or modifies frames and may inject new ones.
	KindFilter Kind = 2
	// KindForward decides the destination ports of the VSIDs it claims.
	// At most one per switch.
	KindForward Kind = 3
)

func (k Kind) String() string {
	switch k {
	case KindCapture:
		return "capture"
	case KindFilter:
		return "filter"
	case KindForward:
		return "forward"
	}
	return "unknown"
}

// Direction is where in the switch a frame was seen.
type Direction uint8

const (
	Ingress Direction = 0 // received on InPort, before forwarding
	Egress  Direction = 1 // about to leave on OutPort
)

func (d Direction) String() string {
	if d == Egress {
		return "egress"
	}
	return "ingress"
}

// Descriptor types.
const (
	TypeCapture uint8 = 1 // down: a copy for a capture extension
	TypeRequest uint8 = 2 // down: a frame waiting for a verdict
	TypeVerdict uint8 = 3 // up: the answer to a request (same Cookie)
	TypeInject  uint8 = 4 // up: a new frame from a filter extension
)

// Verdicts.
const (
	VerdictPass     uint8 = 0 // continue unchanged
	VerdictDrop     uint8 = 1 // drop (counted as extension-drop)
	VerdictModified uint8 = 2 // continue with the frame in the verdict's slot
	VerdictForward  uint8 = 3 // forwarding: send to Ports (and the built-in destinations if FlagDefault)
)

// Descriptor flags.
const (
	FlagNoCache uint8 = 1 << 0 // verdict: do not cache it for the flow
	FlagDefault uint8 = 1 << 1 // VerdictForward: also the built-in lookup's destinations
)

// MaxPorts is the most destination ports one forwarding verdict names.
const MaxPorts = 8

// NoPort is the OutPort of an ingress frame.
const NoPort = 0xFFFF

// Desc is one ring descriptor, as laid out in shared memory (64 bytes).
type Desc struct {
	Cookie  uint64 // request: chosen by the switch; verdict: echoed
	Time    int64  // when the switch saw the frame, Unix nanoseconds
	Slot    uint32 // data slot in the ring's slot area
	Offset  uint32 // start of the frame in the slot
	Len     uint32 // bytes of frame in the slot
	OrigLen uint32 // length of the frame in the switch (capture may truncate)
	VSID    uint32
	InPort  uint16 // switch index of the port the frame came in on
	OutPort uint16 // egress: the port it leaves on; ingress: NoPort
	Type    uint8
	Dir     uint8 // Direction
	Verdict uint8
	Flags   uint8
	NPorts  uint8 // VerdictForward: how many of Ports are set
	_       uint8
	Ports   [MaxPorts]uint16 // VerdictForward: destination port indexes
	_       [2]byte
}

// Layout constants.
const (
	Magic         = 0x58565358 // "XSVX" read as bytes on little-endian
	LayoutVersion = 1
	HeaderSize    = 4096
	DescSize      = int(unsafe.Sizeof(Desc{}))
	ControlSize   = 256

	OffMagic      = 0
	OffVersion    = 4
	OffChannels   = 8
	OffRingSize   = 12
	OffSlotSize   = 16
	OffGeneration = 64
	OffSleeping   = 128

	OffDownProducer = 0
	OffDownConsumer = 64
	OffUpProducer   = 128
	OffUpConsumer   = 192
)

// ChannelSize is the bytes of one channel, rounded up to a page.
func ChannelSize(ringSize, slotSize int) int {
	n := ControlSize + 2*ringSize*DescSize + 2*ringSize*slotSize
	return (n + 4095) &^ 4095
}

// RegionSize is the bytes of a whole region.
func RegionSize(channels, ringSize, slotSize int) int {
	return HeaderSize + channels*ChannelSize(ringSize, slotSize)
}

// Plugin is the go-plugin glue for the Extension service: the switch uses
// its client side, an extension (through package sdk) its server side.
type Plugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl pb.ExtensionServer // extension side only
}

// GRPCServer registers the extension's control service.
func (p *Plugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterExtensionServer(s, p.Impl)
	return nil
}

// GRPCClient returns a pb.ExtensionClient.
func (p *Plugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return pb.NewExtensionClient(c), nil
}

// Plugins is the plugin set of the handshake.
func Plugins(server pb.ExtensionServer) map[string]plugin.Plugin {
	return map[string]plugin.Plugin{PluginName: &Plugin{Impl: server}}
}
