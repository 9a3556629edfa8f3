package afxdp

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// TestPeerDropped: frames a veth's other end drops on their way to the
// port (in iperf3 through the fast path with threaded NAPI: the port's
// 256-frame XDP ring full; here, deterministically, frames larger than
// the port's MTU) show in Stats as "peer-dropped", counted from the
// port's opening; a threaded port whose peer has no qdisc is warned
// about, one whose peer has a qdisc is not.
func TestPeerDropped(t *testing.T) {
	needRoot(t)
	v := newVethPair(t, pairOpt{hostMTU: 1000})
	fd := v.packetSocket(t)
	send := func(n, size int) {
		t.Helper()
		for i := range n {
			// ENOBUFS: the veth dropped it (what this test is about)
			if _, err := unix.Write(fd, testFrame(v.hostMAC, v.peerMAC, uint64(i), size)); err != nil && err != unix.ENOBUFS {
				t.Fatal(err)
			}
		}
	}
	send(3, 1400) // before the port: not its drops

	var log bytes.Buffer
	p := openPort(t, Config{Dev: v.host, ThreadedNAPI: true, Logger: zerolog.New(&log)})
	if !strings.Contains(log.String(), "peer has no qdisc") || !strings.Contains(log.String(), v.peer) {
		t.Errorf("no warning about %s without a qdisc in the log:\n%s", v.peer, log.String())
	}
	if got, ok := p.Stats().Drops["peer-dropped"]; !ok || got != 0 {
		t.Fatalf("peer-dropped = %d (present %v) after opening, want 0", got, ok)
	}
	send(5, 1400) // above the port's MTU: the peer drops them
	send(2, 64)   // these arrive
	if got := receiveFrames(t, p, 2, 2*time.Second); len(got) != 2 {
		t.Fatalf("%d small frames received, want 2", len(got))
	}
	if got := p.Stats().Drops["peer-dropped"]; got != 5 {
		t.Fatalf("peer-dropped = %d, want 5", got)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if got := p.Stats().Drops["peer-dropped"]; got != 5 {
		t.Fatalf("peer-dropped = %d after Close, want 5", got)
	}

	run(t, "tc", "-n", v.ns, "qdisc", "replace", "dev", v.peer, "root", "pfifo_fast")
	log.Reset()
	p = openPort(t, Config{Dev: v.host, ThreadedNAPI: true, Logger: zerolog.New(&log)})
	if strings.Contains(log.String(), "qdisc") {
		t.Errorf("warned about a peer with pfifo_fast:\n%s", log.String())
	}
	p.Close()
}

// TestFindVethPeerNotVeth: lo is no veth; a veth's peer in another
// namespace is found there, with its name and qdisc.
func TestFindVethPeerNotVeth(t *testing.T) {
	needRoot(t)
	if _, ok, err := findVethPeer(1); err != nil || ok { // lo
		t.Fatalf("findVethPeer(lo) = %v, %v; want not a veth", ok, err)
	}
	v := newVethPair(t, pairOpt{})
	idx, err := netInterface(v.host)
	if err != nil {
		t.Fatal(err)
	}
	peer, ok, err := findVethPeer(idx)
	if err != nil || !ok {
		t.Fatalf("findVethPeer(%s) = %v, %v", v.host, ok, err)
	}
	if peer.nsid < 0 {
		t.Errorf("peer %+v: want a netnsid (the peer is in %s)", peer, v.ns)
	}
	st, err := peer.state()
	if err != nil || st.name != v.peer || st.qdisc != "noqueue" {
		t.Fatalf("peer state = %+v, %v; want %s with noqueue", st, err, v.peer)
	}
}
