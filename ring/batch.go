package ring

// BatchSize is the most frames a Batch carries: enough to amortise a
// syscall or a ring doorbell, small enough to stay in L1 cache.
const BatchSize = 64

// Meta is what the switch knows about a frame besides its bytes.
type Meta struct {
	InPort uint16 // index of the ingress port in the switch
	Fwd    uint16 // a forwarding extension's decision for this batch (worker-private), 0: none
	VSID   uint32 // virtual subnet ID, 0 = non-virtualized
	Hash   uint32 // flow hash: 0 until computed; header.FlowHash computes it (never 0)
	// Flow names the flow an extension's filter found the frame in on
	// ingress (a tag unique among one worker's cached flows; 0: none), so
	// that a filter on egress can find the frame's verdict without
	// reading its bytes again. Reset on ingress.
	Flow uint32
}

// Frame describes one frame: where its bytes are and what is known of it.
// It is a value type; copying a Frame copies the descriptor, not the bytes.
type Frame struct {
	Index  uint32 // buffer index in the arena
	Offset uint16 // start of the frame's bytes in the buffer
	Len    uint16 // number of bytes
	Meta
}

// Batch is up to BatchSize frame descriptors over one Arena.
// A Batch is used by one goroutine at a time.
type Batch struct {
	Frames [BatchSize]Frame
	N      int
	arena  *Arena
}

// NewBatch returns an empty batch over a.
func NewBatch(a *Arena) *Batch { return &Batch{arena: a} }

// Arena is the arena the batch's frames live in.
func (b *Batch) Arena() *Arena { return b.arena }

// Data returns the bytes of frame i. The slice aliases the arena.
func (b *Batch) Data(i int) []byte {
	f := &b.Frames[i]
	base := int(f.Index)*b.arena.frameSize + int(f.Offset)
	return b.arena.mem[base : base+int(f.Len) : base+int(f.Len)]
}

// Room returns the writable space of frame i from its offset to the end of
// its buffer; receivers copy a frame there and then set Len.
func (b *Batch) Room(i int) []byte {
	f := &b.Frames[i]
	base := int(f.Index) * b.arena.frameSize
	return b.arena.mem[base+int(f.Offset) : base+b.arena.frameSize : base+b.arena.frameSize]
}

// Headroom is the space in front of frame i's bytes.
func (b *Batch) Headroom(i int) int { return int(b.Frames[i].Offset) }

// Add appends a descriptor; ok is false when the batch is full.
func (b *Batch) Add(f Frame) bool {
	if b.N == BatchSize {
		return false
	}
	b.Frames[b.N] = f
	b.N++
	return true
}

// Reset empties the batch without touching the buffers.
func (b *Batch) Reset() { b.N = 0 }
