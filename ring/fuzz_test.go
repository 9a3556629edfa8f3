package ring

import "testing"

// FuzzSPSCIndexes drives one ring with a fuzzed sequence of enqueue and
// dequeue sizes, starting at a fuzzed counter value so the free-running
// indexes wrap, and compares it with a plain slice queue.
func FuzzSPSCIndexes(f *testing.F) {
	f.Add(uint8(3), uint32(0), []byte{5, 0x83, 8, 0x88, 0xff})
	f.Add(uint8(1), ^uint32(0)-2, []byte{1, 1, 1, 0x81, 0x82, 2})
	f.Add(uint8(6), ^uint32(0), []byte{64, 0x90, 64, 0xc0, 0x80})
	f.Fuzz(func(t *testing.T, logSize uint8, start uint32, ops []byte) {
		size := 1 << (1 + logSize%8)
		r, err := newSPSCAt(size, start)
		if err != nil {
			t.Fatal(err)
		}
		var model []uint32
		next := uint32(0)
		buf := make([]Frame, 128)
		for _, op := range ops {
			n := int(op & 0x7f)
			if op&0x80 == 0 { // enqueue n
				for i := range n {
					buf[i] = Frame{Index: next + uint32(i)}
				}
				got := r.Enqueue(buf[:n])
				want := min(n, size-len(model))
				if got != want {
					t.Fatalf("Enqueue(%d) with %d queued in %d slots = %d, want %d", n, len(model), size, got, want)
				}
				for i := range got {
					model = append(model, next+uint32(i))
				}
				next += uint32(got)
			} else { // dequeue n
				got := r.Dequeue(buf[:n])
				want := min(n, len(model))
				if got != want {
					t.Fatalf("Dequeue(%d) with %d queued = %d, want %d", n, len(model), got, want)
				}
				for i := range got {
					if buf[i].Index != model[i] {
						t.Fatalf("dequeued %d, want %d", buf[i].Index, model[i])
					}
				}
				model = model[got:]
			}
			if r.Len() != len(model) {
				t.Fatalf("Len %d, want %d", r.Len(), len(model))
			}
		}
	})
}

func BenchmarkSPSC(b *testing.B) {
	b.ReportAllocs()
	r, _ := NewSPSC(256)
	var in, out [BatchSize]Frame
	for b.Loop() {
		r.Enqueue(in[:])
		r.Dequeue(out[:])
	}
	b.ReportMetric(float64(b.N*BatchSize)/b.Elapsed().Seconds()/1e6, "Mdesc/s")
}
