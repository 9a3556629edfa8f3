package gen

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/xvswitch/xvs/cmd/xvs-pktgen/internal/frame"
)

// XDP verdicts.
const (
	xdpDrop = 1
	xdpPass = 2
	xdpTX   = 3
	// xdpRedirect is the verdict of bpf_redirect.
	xdpRedirect = 4
)

// Offsets of struct xdp_md, the XDP program's context.
const (
	ctxData           = 0
	ctxDataEnd        = 4
	ctxIngressIfindex = 12
)

// txProgram returns the XDP program the live-frames sender runs once per
// frame. It always returns XDP_TX, which in BPF_F_TEST_XDP_LIVE_FRAMES mode
// means "transmit out of the ingress interface given in the context".
//
// With more than one flow it first picks the flow f = counter++ % flows
// (counter is the single u64 of the array ctr; one thread runs the program
// at a time, so the increment needs no atomic) and writes the
// fields of flow f the way frame.Config.Frame does: it stores absolute
// values computed from the bases, never increments what is in the frame,
// because the kernel recycles pages between runs without resetting their
// contents (a program may see the original frame or the one it rewrote
// last time). When the source IP changes, it recomputes the IPv4 header
// checksum from scratch.
func txProgram(c frame.Config, ctr *ebpf.Map) (*ebpf.ProgramSpec, error) {
	insns := asm.Instructions{}
	if c.Flows > 1 {
		if ctr == nil {
			return nil, fmt.Errorf("tx program: %d flows need a counter map", c.Flows)
		}
		insns = append(insns,
			asm.Mov.Reg(asm.R6, asm.R1),
			// r7 = counter++ % flows
			asm.StoreImm(asm.RFP, -4, 0, asm.Word),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -4),
			asm.LoadMapPtr(asm.R1, ctr.FD()),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "tx"),
			asm.LoadMem(asm.R7, asm.R0, 0, asm.DWord),
			asm.Mov.Reg(asm.R1, asm.R7),
			asm.Add.Imm(asm.R1, 1),
			asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
			asm.Mod.Imm(asm.R7, int32(c.Flows)),
			// r2 = data, r3 = data_end; the headers must be there
			asm.LoadMem(asm.R2, asm.R6, ctxData, asm.Word),
			asm.LoadMem(asm.R3, asm.R6, ctxDataEnd, asm.Word),
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, frame.HeaderLen),
			asm.JGT.Reg(asm.R4, asm.R3, "tx"),
		)
		if c.Vary&frame.VaryMAC != 0 {
			insns = append(insns,
				asm.Mov.Reg(asm.R5, asm.R7),
				asm.Add.Imm(asm.R5, int32(c.MACBase())),
				asm.HostTo(asm.BE, asm.R5, asm.Half), // truncates to 16 bits
				asm.StoreMem(asm.R2, frame.OffSrcMACL, asm.R5, asm.Half),
			)
		}
		if c.Vary&frame.VaryPort != 0 {
			insns = append(insns,
				asm.Mov.Reg(asm.R5, asm.R7),
				asm.Add.Imm(asm.R5, int32(c.SrcPort)),
				asm.HostTo(asm.BE, asm.R5, asm.Half),
				asm.StoreMem(asm.R2, frame.OffSrcPort, asm.R5, asm.Half),
			)
		}
		if c.Vary&frame.VaryIP != 0 {
			insns = append(insns,
				asm.Mov.Reg(asm.R5, asm.R7),
				asm.Add.Imm32(asm.R5, int32(c.IPBase())), // modulo 2^32
				asm.HostTo(asm.BE, asm.R5, asm.Word),
				asm.StoreMem(asm.R2, frame.OffSrcIP, asm.R5, asm.Word),
				asm.StoreImm(asm.R2, frame.OffIPCsum, 0, asm.Half),
				asm.Mov.Imm(asm.R5, 0),
			)
			// The one's complement sum does not depend on byte order
			// (RFC 1071): sum the halfwords as loaded, fold, invert and
			// store back the same way.
			for off := int16(frame.OffIPv4); off < frame.OffIPv4+frame.IPv4Len; off += 2 {
				insns = append(insns,
					asm.LoadMem(asm.R8, asm.R2, off, asm.Half),
					asm.Add.Reg(asm.R5, asm.R8),
				)
			}
			for range 2 {
				insns = append(insns,
					asm.Mov.Reg(asm.R8, asm.R5),
					asm.RSh.Imm(asm.R8, 16),
					asm.And.Imm(asm.R5, 0xffff),
					asm.Add.Reg(asm.R5, asm.R8),
				)
			}
			insns = append(insns,
				asm.Xor.Imm(asm.R5, 0xffff),
				asm.StoreMem(asm.R2, frame.OffIPCsum, asm.R5, asm.Half),
			)
		}
	}
	insns = append(insns,
		asm.Mov.Imm(asm.R0, xdpTX).WithSymbol("tx"),
		asm.Return(),
	)
	return &ebpf.ProgramSpec{
		Name:         "xvspg_tx",
		Type:         ebpf.XDP,
		License:      "GPL",
		Instructions: insns,
	}, nil
}

// sinkStats is the value of the sink's per-CPU stats array (one entry).
type sinkStats struct {
	AllPackets   uint64 // every frame
	AllBytes     uint64
	MagicPackets uint64 // frames carrying frame.Magic at offset frame.HeaderLen
	MagicBytes   uint64
	// Stopped counts the generator frames a reflector dropped after it was
	// told to stop: the frames still circulating in a loop.
	Stopped uint64
}

const sinkStatsSize = 40

// flowKey is the key of the sink's flow table: the fields a generator
// varies per flow, plus the destination IP and port.
type flowKey struct {
	SrcMAC [6]byte
	_      [2]byte
	SrcIP  [4]byte
	DstIP  [4]byte
	Ports  [4]byte // UDP source and destination port, network order
}

const flowKeySize = 20

// sinkProgram returns the XDP program of the sink: count every frame and
// its bytes, count separately the generator's frames (IPv4 with a 20-byte
// header, UDP, frame.Magic at the start of the payload), optionally count
// generator frames per flow in flows (a hash of flowKey to u64), and drop.
//
// With a control map ctl (an array of one u32) it is a reflector instead:
// while ctl[0] is 0 it sends each generator frame back out of the device
// it came in on (XDP_REDIRECT to itself) with the Ethernet addresses swapped, so that
// frames circulate between two reflectors through whatever joins them;
// once ctl[0] is set it counts them as Stopped and drops them. Other
// frames (ARP, the hosts' own traffic) go to the stack (XDP_PASS).
func sinkProgram(stats, flows, ctl *ebpf.Map) *ebpf.ProgramSpec {
	other := "drop" // where frames that are not the generator's go
	if ctl != nil {
		other = "pass"
	}
	const (
		ethIPv4 = 0x0008 // 0x0800 as loaded by a little-endian halfword load
	)
	magic := int32(uint32(frame.Magic[0]) | uint32(frame.Magic[1])<<8 | uint32(frame.Magic[2])<<16 | uint32(frame.Magic[3])<<24)
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		// r9 = frame length, fragments included (the program is
		// frags-aware, so that devices with a jumbo MTU accept it)
		asm.FnXdpGetBuffLen.Call(),
		asm.Mov.Reg(asm.R9, asm.R0),
		asm.LoadMem(asm.R2, asm.R6, ctxData, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, ctxDataEnd, asm.Word),
		// r8 = is a generator frame (the headers are in the first buffer)
		asm.Mov.Imm(asm.R8, 0),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, frame.HeaderLen+frame.MagicLen),
		asm.JGT.Reg(asm.R4, asm.R3, "count"),
		asm.LoadMem(asm.R4, asm.R2, 12, asm.Half),
		asm.JNE.Imm(asm.R4, ethIPv4, "count"),
		asm.LoadMem(asm.R4, asm.R2, frame.OffIPv4, asm.Byte),
		asm.JNE.Imm(asm.R4, 0x45, "count"),
		asm.LoadMem(asm.R4, asm.R2, frame.OffIPv4+9, asm.Byte),
		asm.JNE.Imm(asm.R4, 17, "count"),
		asm.LoadMem(asm.R4, asm.R2, frame.HeaderLen, asm.Word),
		asm.JNE.Imm32(asm.R4, magic, "count"),
		asm.Mov.Imm(asm.R8, 1),

		asm.StoreImm(asm.RFP, -4, 0, asm.Word).WithSymbol("count"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, stats.FD()),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "drop"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R0, 8, asm.DWord),
		asm.Add.Reg(asm.R1, asm.R9),
		asm.StoreMem(asm.R0, 8, asm.R1, asm.DWord),
		asm.JEq.Imm(asm.R8, 0, other),
		asm.LoadMem(asm.R1, asm.R0, 16, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 16, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R0, 24, asm.DWord),
		asm.Add.Reg(asm.R1, asm.R9),
		asm.StoreMem(asm.R0, 24, asm.R1, asm.DWord),
	}
	if flows != nil {
		insns = append(insns,
			// The call clobbered r2/r3: load the packet pointers again.
			asm.LoadMem(asm.R2, asm.R6, ctxData, asm.Word),
			asm.LoadMem(asm.R3, asm.R6, ctxDataEnd, asm.Word),
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, frame.HeaderLen),
			asm.JGT.Reg(asm.R4, asm.R3, "drop"),
			// key at fp-24 .. fp-4
			asm.LoadMem(asm.R4, asm.R2, frame.OffSrcMAC, asm.Word),
			asm.StoreMem(asm.RFP, -24, asm.R4, asm.Word),
			asm.LoadMem(asm.R4, asm.R2, frame.OffSrcMAC+4, asm.Half),
			asm.StoreMem(asm.RFP, -20, asm.R4, asm.Half),
			asm.StoreImm(asm.RFP, -18, 0, asm.Half),
			asm.LoadMem(asm.R4, asm.R2, frame.OffSrcIP, asm.Word),
			asm.StoreMem(asm.RFP, -16, asm.R4, asm.Word),
			asm.LoadMem(asm.R4, asm.R2, frame.OffDstIP, asm.Word),
			asm.StoreMem(asm.RFP, -12, asm.R4, asm.Word),
			asm.LoadMem(asm.R4, asm.R2, frame.OffSrcPort, asm.Word),
			asm.StoreMem(asm.RFP, -8, asm.R4, asm.Word),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -24),
			asm.LoadMapPtr(asm.R1, flows.FD()),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "insert"),
			asm.Mov.Imm(asm.R1, 1),
			asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
			asm.Ja.Label("drop"),
			// First frame of a flow. Racing inserts from two CPUs lose
			// one count; a full table drops the flow (both are visible
			// as received > sum of the table).
			asm.Mov.Imm(asm.R1, 1).WithSymbol("insert"),
			asm.StoreMem(asm.RFP, -32, asm.R1, asm.DWord),
			asm.LoadMapPtr(asm.R1, flows.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -24),
			asm.Mov.Reg(asm.R3, asm.RFP),
			asm.Add.Imm(asm.R3, -32),
			asm.Mov.Imm(asm.R4, 1), // BPF_NOEXIST
			asm.FnMapUpdateElem.Call(),
		)
	}
	if ctl != nil {
		insns = append(insns,
			// r7 = the stats entry, for Stopped
			asm.Mov.Reg(asm.R7, asm.R0),
			asm.StoreImm(asm.RFP, -8, 0, asm.Word),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -8),
			asm.LoadMapPtr(asm.R1, ctl.FD()),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "drop"),
			asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
			asm.JNE.Imm(asm.R1, 0, "stopped"),
			asm.LoadMem(asm.R2, asm.R6, ctxData, asm.Word),
			asm.LoadMem(asm.R3, asm.R6, ctxDataEnd, asm.Word),
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, 2*6),
			asm.JGT.Reg(asm.R4, asm.R3, "drop"),
			// swap the destination (bytes 0..5) and the source (6..11)
			asm.LoadMem(asm.R4, asm.R2, 0, asm.Word),
			asm.LoadMem(asm.R5, asm.R2, 4, asm.Half),
			asm.LoadMem(asm.R1, asm.R2, 6, asm.Word),
			asm.LoadMem(asm.R3, asm.R2, 10, asm.Half),
			asm.StoreMem(asm.R2, 0, asm.R1, asm.Word),
			asm.StoreMem(asm.R2, 4, asm.R3, asm.Half),
			asm.StoreMem(asm.R2, 6, asm.R4, asm.Word),
			asm.StoreMem(asm.R2, 10, asm.R5, asm.Half),
			// Back out of the device it came in on. A redirect rather
			// than XDP_TX: a veth kicks its peer's NAPI after XDP_TX only
			// when the peer has an XDP program, so frames sent into a peer
			// that has NAPI from GRO alone (a bridge port) would wait in
			// its ring for other traffic; a redirect kicks it.
			asm.LoadMem(asm.R1, asm.R6, ctxIngressIfindex, asm.Word),
			asm.Mov.Imm(asm.R2, 0),
			asm.FnRedirect.Call(),
			asm.Return(),
			asm.LoadMem(asm.R1, asm.R7, 32, asm.DWord).WithSymbol("stopped"),
			asm.Add.Imm(asm.R1, 1),
			asm.StoreMem(asm.R7, 32, asm.R1, asm.DWord),
			asm.Ja.Label("drop"),
			asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
			asm.Return(),
		)
	}
	insns = append(insns,
		asm.Mov.Imm(asm.R0, xdpDrop).WithSymbol("drop"),
		asm.Return(),
	)
	return &ebpf.ProgramSpec{
		Name:         "xvspg_sink",
		Type:         ebpf.XDP,
		Flags:        unix.BPF_F_XDP_HAS_FRAGS,
		License:      "GPL",
		Instructions: insns,
	}
}
