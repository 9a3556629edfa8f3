package testutil

import (
	"fmt"
	"testing"

	"github.com/xvswitch/xvs/ring"
)

// NewArena returns a fresh arena of cfg, failing t if cfg is refused.
func NewArena(t testing.TB, cfg ring.ArenaConfig) *ring.Arena {
	t.Helper()
	a, err := ring.NewArena(cfg)
	if err != nil {
		t.Fatalf("arena %+v: %v", cfg, err)
	}
	return a
}

// RxBatch returns a batch over a fresh arena of cfg, ready for Receive
// (see ResetRx).
func RxBatch(t testing.TB, cfg ring.ArenaConfig) *ring.Batch {
	t.Helper()
	b := ring.NewBatch(NewArena(t, cfg))
	ResetRx(b)
	return b
}

// ResetRx readies b for Receive as a switch worker does: it is empty and
// descriptor i names buffer i at the arena's headroom.
func ResetRx(b *ring.Batch) { ResetRxAt(b, 0, b.Arena().Headroom()) }

// ResetRxAt is ResetRx with descriptor i naming buffer first+i at offset
// off.
func ResetRxAt(b *ring.Batch, first uint32, off int) {
	for i := range b.Frames {
		b.Frames[i] = ring.Frame{Index: first + uint32(i), Offset: uint16(off)}
	}
	b.N = 0
}

// Load puts frames into b for Transmit: frame i is copied into buffer i
// at the arena's headroom, with no metadata, and b.N is len(frames).
// A frame that does not fit its buffer, or more frames than a batch holds,
// is a bug in the test: Load panics rather than truncating.
func Load(b *ring.Batch, frames ...[]byte) { LoadAt(b, 0, frames...) }

// LoadAt is Load into buffers first, first+1, ...
func LoadAt(b *ring.Batch, first uint32, frames ...[]byte) {
	if len(frames) > ring.BatchSize {
		panic(fmt.Sprintf("testutil.Load: %d frames, a batch holds %d", len(frames), ring.BatchSize))
	}
	a := b.Arena()
	b.N = 0
	for i, f := range frames {
		idx := first + uint32(i)
		room := a.Buffer(idx)[a.Headroom():]
		if len(f) > len(room) {
			panic(fmt.Sprintf("testutil.Load: frame %d of %d bytes does not fit %d bytes of room", i, len(f), len(room)))
		}
		copy(room, f)
		b.Add(ring.Frame{Index: idx, Offset: uint16(a.Headroom()), Len: uint16(len(f))})
	}
}

// Frames returns copies of b's frames, b.Data(0) to b.Data(b.N-1).
func Frames(b *ring.Batch) [][]byte {
	out := make([][]byte, b.N)
	for i := range b.N {
		out[i] = append([]byte(nil), b.Data(i)...)
	}
	return out
}
