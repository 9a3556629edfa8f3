package afxdp

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/asavie/xdp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

func TestScratchAsavie24(t *testing.T) {
	needRoot(t)
	v := newVethPair(t, pairOpt{})
	link, _ := netlink.LinkByName(v.host)
	prog, err := xdp.NewProgram(2)
	if err != nil { t.Fatal(err) }
	defer prog.Close()
	if err := netlink.LinkSetXdpFdWithFlags(link, prog.Program.FD(), nl.XDP_FLAGS_DRV_MODE); err != nil { t.Fatal(err) }
	defer netlink.LinkSetXdpFdWithFlags(link, -1, nl.XDP_FLAGS_DRV_MODE)
	opts := &xdp.SocketOptions{NumFrames: 4096, FrameSize: 2048, FillRingNumDescs: 2048, CompletionRingNumDescs: 2048, RxRingNumDescs: 2048, TxRingNumDescs: 2048}
	xsk, err := xdp.NewSocket(link.Attrs().Index, 0, opts)
	if err != nil { t.Fatal(err) }
	if err := prog.Register(0, xsk.FD()); err != nil { t.Fatal(err) }
	fd := v.packetSocket(t)
	const total = 2_000_000
	done := make(chan struct{})
	go func() {
		defer close(done)
		s := newFrameSender(fd, 64, 64)
		for i := range 64 { copy(s.bufs[i], testFrame(v.hostMAC, v.peerMAC, 0, 64)) }
		var next uint64
		end := time.Now().Add(8 * time.Second)
		for next < total && time.Now().Before(end) {
			for i := range 64 { binary.BigEndian.PutUint64(s.bufs[i][22:30], next+uint64(i)) }
			k, _ := s.send(64)
			next += uint64(k)
		}
	}()
	seen := make([]uint8, total+64)
	var got, dups, batchDupAddr, calls uint64
	idle := time.Time{}
	addrs := map[uint64]bool{}
	for {
		xsk.Fill(xsk.GetDescs(xsk.NumFreeFillSlots(), true))
		descs := xsk.Receive(xsk.NumReceived())
		calls++
		clear(addrs)
		for _, d := range descs {
			if addrs[d.Addr] { batchDupAddr++ }
			addrs[d.Addr] = true
			seq, ok := parseTestFrame(xsk.GetFrame(d))
			if !ok { continue }
			if seen[seq] != 0 { dups++ }
			seen[seq]++
			got++
		}
		if len(descs) > 0 { idle = time.Time{}; continue }
		select {
		case <-done:
			if idle.IsZero() { idle = time.Now() } else if time.Since(idle) > 200*time.Millisecond { goto out }
		default:
		}
	}
out:
	st, _ := xsk.Stats()
	t.Logf("asavie: received %d, dup seqs %d, dup addrs in a batch %d, calls %d, kernel %+v", got, dups, batchDupAddr, calls, st.KernelStats)
	xsk.Close()
	time.Sleep(300 * time.Millisecond)
	x2, err := xdp.NewSocket(link.Attrs().Index, 0, opts)
	t.Logf("asavie: NewSocket on the same queue 300ms after Close: %v", err)
	if x2 != nil { x2.Close() }
}
