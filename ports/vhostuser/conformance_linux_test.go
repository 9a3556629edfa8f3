package vhostuser

import (
	"encoding/binary"
	"testing"

	"github.com/xvswitch/xvs/ports"
	"github.com/xvswitch/xvs/ports/porttest/conformance"
)

// TestConformance runs the ports conformance suite against a server-mode
// port with one queue pair; the suite's peer is the test front-end and
// its guest (feFrontend): it posts frames on the guest's transmit ring
// and reads the port's frames from the receive buffers it keeps posted.
func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		New: func(t *testing.T) (ports.Port, conformance.Peer) {
			p, f := feStarted(t)
			g := &fePeer{f: f}
			f.postRx(0, fePeerRx, feBufSize)
			return p, g
		},
		RxTooBig:  "too-big",
		TxTooBig:  "too-big",
		RxOverMTU: "too-big",
	})
}

const (
	// fePeerRx is how many receive buffers the peer keeps posted: more
	// than the suite has the port send at once, half the ring.
	fePeerRx = feRingSize / 2
	// fePeerTx is the most frames the peer leaves on the transmit ring
	// (two descriptors each) before the port took them.
	fePeerTx = feRingSize/2 - 1
)

// fePeer is the conformance suite's peer: the guest of a front-end with
// one queue pair set up (rings 0, receive, and 1, transmit).
type fePeer struct {
	f              *feFrontend
	posted, reaped int // frames put on the transmit ring, and given back
}

// Inject implements conformance.Peer: each frame is a chain on the
// transmit ring, as Linux's virtio-net posts it.
func (g *fePeer) Inject(t testing.TB, frames ...[]byte) {
	t.Helper()
	for _, fr := range frames {
		g.reaped += len(g.f.reap(1))
		if g.posted-g.reaped >= fePeerTx {
			t.Fatalf("peer: %d frames on the transmit ring not taken by the port", g.posted-g.reaped)
		}
		if len(fr) > feBufSize {
			t.Fatalf("peer: frame of %d bytes is longer than a guest buffer (%d)", len(fr), feBufSize)
		}
		g.f.postTx(1, fr)
		g.posted++
	}
}

// Take implements conformance.Peer: the frames the port wrote into
// receive buffers, each buffer posted again once read.
func (g *fePeer) Take(t testing.TB) [][]byte {
	t.Helper()
	used := g.f.reap(0)
	hl := g.f.hdrLen()
	var out [][]byte
	for _, u := range used {
		off, ok := g.f.rxBufs[0][uint16(u.id)]
		if !ok {
			t.Fatalf("peer: used id %d is not a posted receive buffer", u.id)
		}
		if int(u.len) < hl || u.len > feBufSize {
			t.Fatalf("peer: used length %d of a %d-byte buffer, header %d", u.len, feBufSize, hl)
		}
		buf := g.f.ram[off : off+uint64(u.len)]
		if hl == virtioNetHdrMrgLen {
			if n := binary.LittleEndian.Uint16(buf[virtioNetHdrNumBufOff:]); n != 1 {
				t.Fatalf("peer: a frame in %d buffers, want 1", n)
			}
		}
		out = append(out, append([]byte(nil), buf[hl:]...))
	}
	if len(used) > 0 {
		g.f.postRx(0, len(used), feBufSize)
	}
	return out
}
