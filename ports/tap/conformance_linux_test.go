package tap

import (
	"testing"

	"github.com/xvswitch/xvs/ports"
	"github.com/xvswitch/xvs/ports/porttest/conformance"
)

// TestConformance runs the ports conformance suite against a port whose
// device lives in a namespace of its own; the suite's peer is an AF_PACKET
// socket on the device there, the kernel's side of the TAP. That side
// cannot send a frame longer than the device's MTU allows (the kernel
// refuses), so the suite's check of such a frame on receive is skipped.
func TestConformance(t *testing.T) {
	needRoot(t)
	conformance.Run(t, conformance.Harness{New: newConformancePort, RxTooBig: "too-big", TxTooBig: "too-big"})
}

// newConformancePort is a port in a namespace of its own and, as its
// peer, a packet socket on its device there.
func newConformancePort(t *testing.T) (ports.Port, conformance.Peer) {
	p, ns := portInNS(t, Config{})
	return p, conformance.NewPacketPeer(t, ns, p.Dev())
}
