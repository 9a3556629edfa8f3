package ring

import (
	"errors"
	"fmt"
)

// MinHeadroom is the smallest headroom an Arena accepts: room for outer
// Ethernet + IPv4 + GRE (42 bytes) with space to spare for later headers.
const MinHeadroom = 128

// ArenaConfig sizes an Arena.
type ArenaConfig struct {
	Frames    int // number of frame buffers
	FrameSize int // bytes per buffer, headroom included
	Headroom  int // bytes reserved in front of each frame's data
}

// DefaultArenaConfig fits a 1500-byte MTU frame plus NVGRE with room to spare.
var DefaultArenaConfig = ArenaConfig{Frames: 4096, FrameSize: 2048, Headroom: 256}

// ErrBadConfig is wrapped by every configuration error of this package.
var ErrBadConfig = errors.New("bad ring configuration")

// Arena is one preallocated block of equally sized frame buffers.
type Arena struct {
	mem       []byte
	frameSize int
	headroom  int
	frames    int
}

// NewArena allocates the arena. It is the only allocation of frame memory.
func NewArena(cfg ArenaConfig) (*Arena, error) {
	switch {
	case cfg.Frames <= 0 || cfg.Frames > 1<<24:
		return nil, fmt.Errorf("%w: frames %d: want 1..%d", ErrBadConfig, cfg.Frames, 1<<24)
	case cfg.Headroom < MinHeadroom:
		return nil, fmt.Errorf("%w: headroom %d: want at least %d", ErrBadConfig, cfg.Headroom, MinHeadroom)
	case cfg.FrameSize > 65535:
		return nil, fmt.Errorf("%w: frame size %d: want at most 65535", ErrBadConfig, cfg.FrameSize)
	case cfg.FrameSize < cfg.Headroom+64:
		return nil, fmt.Errorf("%w: frame size %d: want at least headroom+64 = %d", ErrBadConfig, cfg.FrameSize, cfg.Headroom+64)
	}
	return &Arena{
		mem:       make([]byte, cfg.Frames*cfg.FrameSize),
		frameSize: cfg.FrameSize,
		headroom:  cfg.Headroom,
		frames:    cfg.Frames,
	}, nil
}

// Frames is the number of buffers.
func (a *Arena) Frames() int { return a.frames }

// FrameSize is the size of one buffer, headroom included.
func (a *Arena) FrameSize() int { return a.frameSize }

// Headroom is the default offset of a frame's data in its buffer.
func (a *Arena) Headroom() int { return a.headroom }

// MaxData is the largest frame that fits after the headroom.
func (a *Arena) MaxData() int { return a.frameSize - a.headroom }

// Memory is the whole arena: buffer idx is at idx*FrameSize(). Loops over
// many frames index it directly instead of slicing each buffer.
func (a *Arena) Memory() []byte { return a.mem }

// Buffer returns the whole buffer idx, headroom included. The slice aliases
// the arena; the caller must own idx.
func (a *Arena) Buffer(idx uint32) []byte {
	base := int(idx) * a.frameSize
	return a.mem[base : base+a.frameSize : base+a.frameSize]
}
