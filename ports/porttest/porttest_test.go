package porttest_test

import (
	"testing"

	"github.com/xvswitch/xvs/ports"
	"github.com/xvswitch/xvs/ports/porttest"
	"github.com/xvswitch/xvs/ports/porttest/conformance"
)

// peer plays the wire of an in-memory port: what it injects the port
// receives, and it takes what the port sent.
type peer struct{ p *porttest.Port }

func (q peer) Inject(t testing.TB, frames ...[]byte) { q.p.Inject(frames...) }
func (q peer) Take(t testing.TB) [][]byte            { return q.p.Sent() }

func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		New: func(t *testing.T) (ports.Port, conformance.Peer) {
			p := porttest.New("conformance", nil)
			t.Cleanup(func() { p.Close() })
			return p, peer{p}
		},
		RxTooBig:  "too-big",
		TxTooBig:  "too-big",
		RxOverMTU: "too-big",
	})
}
