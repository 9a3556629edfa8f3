//go:build amd64 || arm64 || 386 || arm || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm

package extensions

import (
	"unsafe"

	"github.com/xvswitch/xvs/ring"
)

// Scan returns the index of the first frame of b, from i on, that does not
// continue the run. Frames of an ingress run get its flow tag.
//
// It reads the four RunKey words straight from the arena through a
// pointer: with slices, the bounds checks and the slice arithmetic of
// each frame cost a third more, and this loop is the whole price of a
// cached filter for bulk traffic. The invariant that keeps it safe: a
// frame is read only if its 38 bytes lie inside the arena (base <= limit)
// and its length covers them, so no read leaves the arena's memory, and
// none reaches beyond the frame. The loads are native-endian, equal to
// RunKey's little-endian ones on the architectures this file builds for.
func (r *Run) Scan(b *ring.Batch, i int) int {
	if r.byFlow {
		return r.scanFlow(b, i)
	}
	a := b.Arena()
	mem := a.Memory()
	if len(mem) < runKeyLen {
		return i
	}
	size := uint(a.FrameSize())
	limit := uint(len(mem)) - runKeyLen
	base0 := unsafe.Pointer(unsafe.SliceData(mem))
	// Everything the loop compares against is in locals: the compiler
	// does not keep fields in registers across the frame loads.
	in, vsid, flow := r.in, r.vsid, r.flow
	k0, k1, k2, k3 := r.k0, r.k1, r.k2, r.k3
	frames := b.Frames[:b.N]
	for ; i < len(frames); i++ {
		f := &frames[i]
		base := uint(f.Index)*size + uint(f.Offset)
		if f.InPort != in || f.VSID != vsid || f.Len < runKeyLen || base > limit {
			break
		}
		p := unsafe.Add(base0, base)
		// one branch for the four words
		if (*(*uint64)(unsafe.Add(p, 12))&runMask0^k0)|
			(*(*uint64)(unsafe.Add(p, 20))&runMask1^k1)|
			(*(*uint64)(unsafe.Add(p, 28))^k2)|
			(uint64(*(*uint16)(unsafe.Add(p, 36)))^k3) != 0 {
			break
		}
		f.Flow = flow
	}
	return i
}
