// Package ring owns the memory every frame in xvs lives in.
//
// An [Arena] is one allocation, made at setup, cut into fixed-size frame
// buffers. A frame is named by its buffer index; its bytes start at an
// offset inside the buffer so that encapsulation (NVGRE adds 42 bytes) can
// prepend headers in place, without a copy. The headroom is at least
// [MinHeadroom] bytes.
//
// A [Pool] hands out and takes back buffer indexes without allocating. A
// [Batch] is the unit every stage of the switch works on: up to [BatchSize]
// frame descriptors, each with offset, length and metadata (ingress port,
// VSID, flow hash).
//
// Ownership: the Arena belongs to whoever created it (a switch worker) and
// lives until that owner is closed. A Pool and a Batch are used by one
// goroutine at a time; nothing in this package locks.
package ring
