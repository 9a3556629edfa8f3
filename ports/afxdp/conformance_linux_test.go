package afxdp

import (
	"testing"

	"github.com/xvswitch/xvs/ports"
	"github.com/xvswitch/xvs/ports/porttest/conformance"
)

// TestConformance runs the ports conformance suite against a port on the
// host end of a veth; the suite's peer is an AF_PACKET socket on the other
// end, in a namespace of its own. The peer's MTU (1600) is above the
// port's (1500), so that it can send a frame longer than the port's MTU
// allows: the kernel drops it at the veth, counted in the peer's
// tx_dropped, which the port reports as peer-dropped.
func TestConformance(t *testing.T) {
	needRoot(t)
	conformance.Run(t, conformance.Harness{
		New: func(t *testing.T) (ports.Port, conformance.Peer) {
			v := newVethPair(t, pairOpt{peerMTU: 1600})
			p := openPort(t, Config{Dev: v.host})
			return p, conformance.NewPacketPeer(t, v.ns, v.peer)
		},
		RxTooBig:  "too-big",
		TxTooBig:  "tx-too-big",
		RxOverMTU: "peer-dropped",
	})
}
