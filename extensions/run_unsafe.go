//go:build amd64 || arm64 || 386 || arm || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm

package extensions

import (
	"unsafe"

	"github.com/xvswitch/xvs/ring"
)

// Scan returns the index of the first frame of b, from i on, that does not
// continue the run. Frames of an ingress run get its flow tag.
//
// It reads the RunKey words straight from the arena through a pointer:
// with slices, the bounds checks and the slice arithmetic of each frame
// cost a third more, and this loop is the whole price of a cached filter
// for bulk traffic. The invariant that keeps it safe: a frame is read only
// if its 38 bytes lie inside the arena (base <= limit) and its length
// covers them, so no read leaves the arena's memory, and none reaches
// beyond the frame. The loads are native-endian, equal to RunKey's
// little-endian ones on the architectures this file builds for.
func (r *Run) Scan(b *ring.Batch, i int) int {
	switch {
	case r.byFlow:
		return r.scanFlow(b, i)
	case r.ingress:
		return r.scanIngress(b, i)
	}
	return r.scanEgress(b, i)
}

// scanIngress serves a run of ingress batches: every frame of such a
// batch came in on one port in one VSID (the switch tags them so; PassRun
// checked the port, the VSID is checked here), so only the bytes are
// compared per frame. The loop keeps few values live: more, and the compiler
// spills them to the stack on every frame.
func (r *Run) scanIngress(b *ring.Batch, i int) int {
	a := b.Arena()
	mem := a.Memory()
	if len(mem) < runKeyLen || b.N == 0 || b.Frames[0].VSID != r.vsid {
		return i
	}
	size := uint(a.FrameSize())
	limit := uint(len(mem)) - runKeyLen
	base0 := unsafe.Pointer(unsafe.SliceData(mem))
	k0, k1, k2, k3, flow := uint32(r.k0), r.k1, r.k2, uint16(r.k3), r.flow
	frames := b.Frames[:b.N]
	for ; i < len(frames); i++ {
		f := &frames[i]
		base := uint(f.Index)*size + uint(f.Offset)
		if f.Len < runKeyLen || base > limit {
			break
		}
		p := unsafe.Add(base0, base)
		if *(*uint32)(unsafe.Add(p, 12)) != k0 ||
			*(*uint64)(unsafe.Add(p, 20))&runMask1 != k1 ||
			*(*uint64)(unsafe.Add(p, 28)) != k2 ||
			*(*uint16)(unsafe.Add(p, 36)) != k3 {
			break
		}
		f.Flow = flow
	}
	return i
}

// scanEgress serves an egress run of untagged frames, which may come
// from any port: the ingress port and VSID are compared too.
func (r *Run) scanEgress(b *ring.Batch, i int) int {
	a := b.Arena()
	mem := a.Memory()
	if len(mem) < runKeyLen {
		return i
	}
	size := uint(a.FrameSize())
	limit := uint(len(mem)) - runKeyLen
	base0 := unsafe.Pointer(unsafe.SliceData(mem))
	frames := b.Frames[:b.N]
	for ; i < len(frames); i++ {
		f := &frames[i]
		base := uint(f.Index)*size + uint(f.Offset)
		if f.InPort != r.in || f.VSID != r.vsid || f.Len < runKeyLen || base > limit {
			break
		}
		p := unsafe.Add(base0, base)
		if uint64(*(*uint32)(unsafe.Add(p, 12))) != r.k0 ||
			*(*uint64)(unsafe.Add(p, 20))&runMask1 != r.k1 ||
			*(*uint64)(unsafe.Add(p, 28)) != r.k2 ||
			uint64(*(*uint16)(unsafe.Add(p, 36))) != r.k3 {
			break
		}
	}
	return i
}
