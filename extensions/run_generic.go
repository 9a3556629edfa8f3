//go:build !(amd64 || arm64 || 386 || arm || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm)

package extensions

import "github.com/xvswitch/xvs/ring"

// Scan returns the index of the first frame of b, from i on, that does not
// continue the run. Frames of an ingress run get its flow tag. (Big-endian machines: RunKey on each frame.)
func (r *Run) Scan(b *ring.Batch, i int) int {
	if r.byFlow {
		return r.scanFlow(b, i)
	}
	for ; i < b.N; i++ {
		f := &b.Frames[i]
		if f.InPort != r.in || f.VSID != r.vsid { // constant on ingress: checking costs nothing here
			break
		}
		k0, k1, k2, k3, ok := RunKey(b.Data(i))
		if !ok || k0 != r.k0 || k1 != r.k1 || k2 != r.k2 || k3 != r.k3 {
			break
		}
		f.Flow = r.flow
	}
	return i
}
