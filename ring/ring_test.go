package ring

import (
	"errors"
	"testing"
)

func TestArenaConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  ArenaConfig
	}{
		{"no frames", ArenaConfig{Frames: 0, FrameSize: 2048, Headroom: 256}},
		{"small headroom", ArenaConfig{Frames: 8, FrameSize: 2048, Headroom: 64}},
		{"frame smaller than headroom", ArenaConfig{Frames: 8, FrameSize: 200, Headroom: 192}},
		{"frame too big", ArenaConfig{Frames: 8, FrameSize: 1 << 17, Headroom: 256}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewArena(tc.cfg); !errors.Is(err, ErrBadConfig) {
				t.Fatalf("NewArena(%+v) = %v, want ErrBadConfig", tc.cfg, err)
			}
		})
	}
}

func TestBuffersDoNotOverlap(t *testing.T) {
	a, err := NewArena(ArenaConfig{Frames: 4, FrameSize: 256, Headroom: 128})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		b := a.Buffer(uint32(i))
		for j := range b {
			b[j] = byte(i + 1)
		}
	}
	for i := range 4 {
		for _, c := range a.Buffer(uint32(i)) {
			if c != byte(i+1) {
				t.Fatalf("buffer %d overwritten by another buffer", i)
			}
		}
		if got := cap(a.Buffer(uint32(i))); got != 256 {
			t.Fatalf("buffer cap %d, want 256: appends could spill into the next buffer", got)
		}
	}
}

func TestPoolGetPut(t *testing.T) {
	a, _ := NewArena(ArenaConfig{Frames: 8, FrameSize: 256, Headroom: 128})
	if _, err := NewPool(a, 4, 5); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("pool beyond the arena: err %v", err)
	}
	p, err := NewPool(a, 2, 4)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint32]bool{}
	for range 4 {
		idx, ok := p.Get()
		if !ok || idx < 2 || idx >= 6 || seen[idx] {
			t.Fatalf("Get = %d, %v (seen %v)", idx, ok, seen)
		}
		seen[idx] = true
	}
	if _, ok := p.Get(); ok {
		t.Fatal("Get from an empty pool succeeded")
	}
	for idx := range seen {
		if !p.Put(idx) {
			t.Fatalf("Put(%d) refused", idx)
		}
	}
	if p.Put(7) {
		t.Fatal("Put beyond the pool's size accepted")
	}
	if p.Len() != 4 {
		t.Fatalf("Len %d, want 4", p.Len())
	}
	if n := testing.AllocsPerRun(100, func() { i, _ := p.Get(); p.Put(i) }); n != 0 {
		t.Fatalf("Get/Put allocates %v per run", n)
	}
}

func TestBatchRoom(t *testing.T) {
	a, _ := NewArena(ArenaConfig{Frames: 2, FrameSize: 512, Headroom: 128})
	b := NewBatch(a)
	if !b.Add(Frame{Index: 1, Offset: 128}) {
		t.Fatal("Add to an empty batch failed")
	}
	room := b.Room(0)
	if len(room) != 512-128 {
		t.Fatalf("Room len %d, want %d", len(room), 512-128)
	}
	copy(room, "payload")
	b.Frames[0].Len = 7
	if got := string(b.Data(0)); got != "payload" {
		t.Fatalf("Data after writing into Room = %q", got)
	}
	for b.Add(Frame{}) {
	}
	if b.N != BatchSize {
		t.Fatalf("batch holds %d, want %d", b.N, BatchSize)
	}
}
