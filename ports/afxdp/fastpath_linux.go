package afxdp

// The fast path forwards known unicast between AF_XDP ports of one switch
// inside the kernel, with XDP_REDIRECT, so those frames never cost an skb,
// a copy to userspace or a sendto. The switch stays in charge: it decides
// what the fast path may forward by telling it (Learn/Forget/SetVSID)
// which stations it has learned behind which port in which VSID. A frame
// takes the fast path only when
//
//   - its ingress port is a fast-path port with a VSID,
//   - its destination is unicast,
//   - its source is learned on the port it came in on, in that VSID (so a
//     new or moved station always reaches the switch, which learns it), and
//   - its destination is learned in that VSID behind another fast-path port.
//
// Everything else (broadcast, unknown, new sources, frames for other kinds
// of ports) goes to the port's AF_XDP socket as before. VSIDs never mix:
// the station table is keyed by (VSID, MAC) and the VSID comes from the
// ingress port.
//
// XDP_REDIRECT into a veth needs NAPI on the veth's peer (an XDP program
// there, or GRO on): without it the kernel drops the frame. Enable the fast
// path only for devices that can receive redirected frames.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/asavie/xdp"
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// FastPath holds the maps shared by the XDP programs of a switch's
// fast-path ports. It is safe for concurrent use.
//
// Per frame the program does three hash lookups (the ingress port, the
// source, the destination) and two per-CPU array lookups (the counters,
// which the verifier inlines): BenchmarkFastPathProgram, 157 -> 109 ns a
// frame against a hash of counters by ifindex and a separate VSID hash.
type FastPath struct {
	fdb   *ebpf.Map // (VSID, MAC) -> fdbEntry
	ports *ebpf.Map // ingress ifindex -> portEntry
	devs  *ebpf.Map // ifindex -> ifindex: redirect targets
	stats *ebpf.Map // counter slot -> per-CPU fastPathCounters

	mu    sync.Mutex
	slots map[*Port]uint32 // the joined ports and their counter slots
	free  []uint32         // unused slots, the lowest last
}

// maxFastPathPorts bounds the ports of one fast path (counter slots).
const maxFastPathPorts = 4096

// portEntry is the value of the ports map.
type portEntry struct {
	Slot    uint32 // counters
	VSID    uint32
	InVSID  uint32 // 0: the port's frames all go to the switch
	Padding uint32
}

// fdbEntry is the value of the fdb map: where a station is.
type fdbEntry struct {
	Ifindex uint32
	Slot    uint32
}

// fastPathCounters is the per-CPU value of the stats map.
type fastPathCounters struct {
	RxFrames, RxBytes, TxFrames, TxBytes uint64
}

// NewFastPath creates the maps for up to stations learned stations.
func NewFastPath(stations int) (*FastPath, error) {
	if stations < 1 || stations > 1<<22 {
		return nil, fmt.Errorf("%w: fast path stations %d: want 1..%d", ErrBadConfig, stations, 1<<22)
	}
	f := &FastPath{slots: map[*Port]uint32{}}
	for i := maxFastPathPorts - 1; i >= 0; i-- {
		f.free = append(f.free, uint32(i))
	}
	var err error
	mk := func(name string, t ebpf.MapType, k, v, n uint32) *ebpf.Map {
		if err != nil {
			return nil
		}
		var m *ebpf.Map
		m, err = ebpf.NewMap(&ebpf.MapSpec{Name: name, Type: t, KeySize: k, ValueSize: v, MaxEntries: n})
		if err != nil {
			err = fmt.Errorf("afxdp: fast path map %s: %w", name, err)
		}
		return m
	}
	f.fdb = mk("xvs_fdb", ebpf.Hash, 12, 8, uint32(stations))
	f.ports = mk("xvs_fpports", ebpf.Hash, 4, 16, maxFastPathPorts)
	f.devs = mk("xvs_devs", ebpf.DevMapHash, 4, 4, maxFastPathPorts)
	f.stats = mk("xvs_fpstats", ebpf.PerCPUArray, 4, 32, maxFastPathPorts)
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Close releases the maps. Programs still attached keep their own
// references until their ports close.
func (f *FastPath) Close() error {
	for _, m := range []*ebpf.Map{f.fdb, f.ports, f.devs, f.stats} {
		if m != nil {
			m.Close()
		}
	}
	return nil
}

func fdbKey(vsid uint32, mac uint64) []byte {
	var k [12]byte
	binary.LittleEndian.PutUint32(k[0:], vsid) // the program stores it from a host-order register
	for i := range 6 {
		k[4+i] = byte(mac >> (40 - 8*i)) // wire order, as in the frame
	}
	return k[:]
}

// Learn tells the fast path that mac is behind port p in vsid. Stations
// behind ports that are not fast-path ports of f are removed instead, so
// the fast path never redirects to a port it cannot reach.
func (f *FastPath) Learn(vsid uint32, mac uint64, p *Port) error {
	f.mu.Lock()
	slot, ok := f.slots[p]
	f.mu.Unlock()
	if p == nil || !ok {
		return f.Forget(vsid, mac)
	}
	if err := f.fdb.Put(fdbKey(vsid, mac), fdbEntry{Ifindex: uint32(p.ifindex), Slot: slot}); err != nil {
		return fmt.Errorf("afxdp: fast path learn: %w", err)
	}
	return nil
}

// Forget removes a station.
func (f *FastPath) Forget(vsid uint32, mac uint64) error {
	if err := f.fdb.Delete(fdbKey(vsid, mac)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("afxdp: fast path forget: %w", err)
	}
	return nil
}

// SetVSID sets the VSID of port p's frames; ok false takes the port out of
// every VSID (all its frames go to the switch).
func (f *FastPath) SetVSID(p *Port, vsid uint32, ok bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	slot, joined := f.slots[p]
	if !joined {
		return nil // not in the ports map: its frames all go to the switch
	}
	e := portEntry{Slot: slot}
	if ok {
		e.VSID, e.InVSID = vsid, 1
	}
	if err := f.ports.Put(uint32(p.ifindex), e); err != nil {
		return fmt.Errorf("afxdp: fast path vsid: %w", err)
	}
	return nil
}

// join makes p a fast-path port: a redirect target with counters, not yet
// in a VSID.
func (f *FastPath) join(p *Port) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.slots[p]; ok {
		return nil
	}
	if len(f.free) == 0 {
		return fmt.Errorf("afxdp: fast path: %w: all %d ports in use", ErrBadConfig, maxFastPathPorts)
	}
	slot := f.free[len(f.free)-1]
	idx := uint32(p.ifindex)
	zero := make([]fastPathCounters, ebpf.MustPossibleCPU())
	if err := f.stats.Put(slot, zero); err != nil {
		return fmt.Errorf("afxdp: fast path counters: %w", err)
	}
	if err := f.ports.Put(idx, portEntry{Slot: slot}); err != nil {
		return fmt.Errorf("afxdp: fast path port: %w", err)
	}
	if err := f.devs.Put(idx, idx); err != nil {
		f.ports.Delete(idx)
		return fmt.Errorf("afxdp: fast path device: %w", err)
	}
	f.free = f.free[:len(f.free)-1]
	f.slots[p] = slot
	return nil
}

// leave undoes join and removes the port's VSID; stations behind it must
// have been forgotten by the switch before.
func (f *FastPath) leave(p *Port) {
	idx := uint32(p.ifindex)
	f.mu.Lock()
	defer f.mu.Unlock()
	slot, ok := f.slots[p]
	if !ok {
		return
	}
	delete(f.slots, p)
	f.ports.Delete(idx)
	f.devs.Delete(idx)
	f.free = append(f.free, slot)
}

// counters sums a port's per-CPU fast-path counters.
func (f *FastPath) counters(p *Port) fastPathCounters {
	var per []fastPathCounters
	var sum fastPathCounters
	f.mu.Lock()
	slot, ok := f.slots[p]
	f.mu.Unlock()
	if !ok {
		return sum
	}
	if err := f.stats.Lookup(slot, &per); err != nil {
		return sum
	}
	for _, c := range per {
		sum.RxFrames += c.RxFrames
		sum.RxBytes += c.RxBytes
		sum.TxFrames += c.TxFrames
		sum.TxBytes += c.TxBytes
	}
	return sum
}

// XDP return codes and xdp_md offsets used below.
const (
	xdpPass                           = 2
	mdData                            = 0
	mdDataEnd                         = 4
	mdIngressIfindex                  = 12
	mdRxQueueIndex                    = 16
	stackIfindex                      = -4  // u32: ingress (later egress) ifindex, a map key
	stackKey                          = -16 // 12 bytes: VSID (u32), MAC (6), 0 (u16)
	stackLen                          = -24 // u64: frame length
	stackQueue                        = -28 // u32: rx queue
	stackSlotIn                       = -32 // u32: counter slot of the ingress port
	stackSlotOut                      = -36 // u32: counter slot of the egress port
	fdbKeyMAC4, fdbKeyMAC2, fdbKeyPad = stackKey + 4, stackKey + 8, stackKey + 10
)

// newFastPathProgram builds a steering program with the fast path in front
// of the usual queue -> socket redirect, in the shape asavie/xdp's Program
// (program, queue map, socket map) so the port code handles both alike.
func newFastPathProgram(f *FastPath, queues int) (*xdp.Program, error) {
	qmap, err := ebpf.NewMap(&ebpf.MapSpec{Name: "xvs_qidconf", Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: uint32(queues)})
	if err != nil {
		return nil, fmt.Errorf("queue map: %w", err)
	}
	xsks, err := ebpf.NewMap(&ebpf.MapSpec{Name: "xvs_xsks", Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: uint32(queues)})
	if err != nil {
		qmap.Close()
		return nil, fmt.Errorf("socket map: %w", err)
	}
	const slow, pass, skipRx, skipTx = "slow", "pass", "skip_rx", "skip_tx"
	R0, R1, R2, R3, R6, R7, R8, R9, FP := asm.R0, asm.R1, asm.R2, asm.R3, asm.R6, asm.R7, asm.R8, asm.R9, asm.RFP
	lookup := func(m *ebpf.Map, keyOff int32) asm.Instructions {
		return asm.Instructions{
			asm.LoadMapPtr(R1, m.FD()),
			asm.Mov.Reg(R2, FP),
			asm.Add.Imm(R2, keyOff),
			asm.FnMapLookupElem.Call(),
		}
	}
	var ins asm.Instructions
	add := func(is ...asm.Instruction) { ins = append(ins, is...) }
	add(
		asm.Mov.Reg(R6, R1),
		asm.LoadMem(R7, R6, mdData, asm.Word),
		asm.LoadMem(R8, R6, mdDataEnd, asm.Word),
		asm.LoadMem(R9, R6, mdIngressIfindex, asm.Word),
		asm.StoreMem(FP, stackIfindex, R9, asm.Word),
		asm.Mov.Reg(R2, R7),
		asm.Add.Imm(R2, 14),
		asm.JGT.Reg(R2, R8, slow),
		asm.Mov.Reg(R2, R8),
		asm.Sub.Reg(R2, R7),
		asm.StoreMem(FP, stackLen, R2, asm.DWord),
		// a group (broadcast/multicast) destination goes to the switch
		asm.LoadMem(R3, R7, 0, asm.Byte),
		asm.And.Imm(R3, 1),
		asm.JNE.Imm(R3, 0, slow),
	)
	add(lookup(f.ports, stackIfindex)...)
	add(
		asm.JEq.Imm(R0, 0, slow),
		asm.LoadMem(R3, R0, 8, asm.Word), // InVSID
		asm.JEq.Imm(R3, 0, slow),
		asm.LoadMem(R3, R0, 0, asm.Word), // Slot
		asm.StoreMem(FP, stackSlotIn, R3, asm.Word),
		asm.LoadMem(R3, R0, 4, asm.Word), // VSID
		asm.StoreMem(FP, stackKey, R3, asm.Word),
		// source MAC, learned on this very port?
		asm.LoadMem(R3, R7, 6, asm.Word),
		asm.StoreMem(FP, fdbKeyMAC4, R3, asm.Word),
		asm.LoadMem(R3, R7, 10, asm.Half),
		asm.StoreMem(FP, fdbKeyMAC2, R3, asm.Half),
		asm.StoreImm(FP, fdbKeyPad, 0, asm.Half),
	)
	add(lookup(f.fdb, stackKey)...)
	add(
		asm.JEq.Imm(R0, 0, slow),
		asm.LoadMem(R3, R0, 0, asm.Word),
		asm.JNE.Reg(R3, R9, slow),
		// destination MAC, learned behind another port?
		asm.LoadMem(R3, R7, 0, asm.Word),
		asm.StoreMem(FP, fdbKeyMAC4, R3, asm.Word),
		asm.LoadMem(R3, R7, 4, asm.Half),
		asm.StoreMem(FP, fdbKeyMAC2, R3, asm.Half),
	)
	add(lookup(f.fdb, stackKey)...)
	add(
		asm.JEq.Imm(R0, 0, slow),
		asm.LoadMem(R8, R0, 0, asm.Word), // egress ifindex; data_end is no longer needed
		asm.JEq.Reg(R8, R9, slow),
		asm.LoadMem(R3, R0, 4, asm.Word), // its counter slot
		asm.StoreMem(FP, stackSlotOut, R3, asm.Word),
	)
	// count adds one frame of stackLen bytes to the counter pair at off of
	// the stats entry of the slot at slotOff; label names its first
	// instruction, skip what follows.
	count := func(slotOff int32, off int16, label, skip string) {
		l := lookup(f.stats, slotOff)
		if label != "" {
			l[0] = l[0].WithSymbol(label)
		}
		add(l...)
		add(
			asm.JEq.Imm(R0, 0, skip),
			asm.LoadMem(R1, R0, off, asm.DWord),
			asm.Add.Imm(R1, 1),
			asm.StoreMem(R0, off, R1, asm.DWord),
			asm.LoadMem(R1, R0, off+8, asm.DWord),
			asm.LoadMem(R2, FP, stackLen, asm.DWord),
			asm.Add.Reg(R1, R2),
			asm.StoreMem(R0, off+8, R1, asm.DWord),
		)
	}
	count(stackSlotIn, 0, "", skipRx)       // RxFrames, RxBytes of the ingress port
	count(stackSlotOut, 16, skipRx, skipTx) // TxFrames, TxBytes of the egress port
	add(
		asm.LoadMapPtr(R1, f.devs.FD()).WithSymbol(skipTx),
		asm.Mov.Reg(R2, R8),
		asm.Mov.Imm(R3, 0),
		asm.FnRedirectMap.Call(),
		asm.Return(),
	)
	// the usual path: this queue's AF_XDP socket, or the stack
	add(
		asm.LoadMem(R2, R6, mdRxQueueIndex, asm.Word).WithSymbol(slow),
		asm.StoreMem(FP, stackQueue, R2, asm.Word),
	)
	add(lookup(qmap, stackQueue)...)
	add(
		asm.JEq.Imm(R0, 0, pass),
		asm.LoadMem(R1, R0, 0, asm.Word),
		asm.JEq.Imm(R1, 0, pass),
		asm.LoadMapPtr(R1, xsks.FD()),
		asm.LoadMem(R2, FP, stackQueue, asm.Word),
		asm.Mov.Imm(R3, xdpPass),
		asm.FnRedirectMap.Call(),
		asm.Return(),
		asm.Mov.Imm(R0, xdpPass).WithSymbol(pass),
		asm.Return(),
	)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "xvs_fastpath", Type: ebpf.XDP, License: "GPL", Instructions: ins})
	if err != nil {
		qmap.Close()
		xsks.Close()
		return nil, fmt.Errorf("load fast path program: %w", err)
	}
	return &xdp.Program{Program: prog, Queues: qmap, Sockets: xsks}, nil
}
