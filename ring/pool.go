package ring

import "fmt"

// Pool hands out buffer indexes of an Arena and takes them back. It is a
// LIFO stack so that recently used (cache-warm) buffers are reused first.
// A Pool is owned by one goroutine; it does not lock.
type Pool struct {
	arena *Arena
	free  []uint32
}

// NewPool returns a pool holding buffers [first, first+n) of a.
func NewPool(a *Arena, first, n int) (*Pool, error) {
	if first < 0 || n < 0 || first+n > a.frames {
		return nil, fmt.Errorf("%w: pool buffers [%d, %d) outside the arena of %d", ErrBadConfig, first, first+n, a.frames)
	}
	p := &Pool{arena: a, free: make([]uint32, n)}
	for i := range n {
		// Lowest index on top of the stack.
		p.free[i] = uint32(first + n - 1 - i)
	}
	return p, nil
}

// Arena is the arena the pool's buffers belong to.
func (p *Pool) Arena() *Arena { return p.arena }

// Len is the number of free buffers.
func (p *Pool) Len() int { return len(p.free) }

// Get takes a free buffer. ok is false when the pool is empty.
func (p *Pool) Get() (idx uint32, ok bool) {
	n := len(p.free)
	if n == 0 {
		return 0, false
	}
	idx = p.free[n-1]
	p.free = p.free[:n-1]
	return idx, true
}

// Put gives a buffer back. Putting a buffer twice, or more buffers than the
// pool was made with, is a bug; Put reports it by returning false instead of
// growing the stack.
func (p *Pool) Put(idx uint32) bool {
	if len(p.free) == cap(p.free) {
		return false
	}
	p.free = append(p.free, idx)
	return true
}
