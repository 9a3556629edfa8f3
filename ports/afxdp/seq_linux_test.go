package afxdp

import (
	"encoding/binary"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xvswitch/xvs/internal/testutil"
	"github.com/xvswitch/xvs/ring"
)

// TestSequenceNoDuplicatesOrGaps checks for asavie/xdp issue #24 (at high
// rates over veth, Receive returned the same UMEM address twice in one
// batch while another frame vanished). A sender in the namespace writes
// sequence-numbered frames as fast as sendmmsg goes, each until the
// kernel accepts it; the port receives them all. Every sequence number
// must arrive at most once, none may arrive that was not sent, and every
// missing one must be explained by the kernel's drop counters.
func TestSequenceNoDuplicatesOrGaps(t *testing.T) {
	needRoot(t)
	v := newVethPair(t, pairOpt{})
	p := openPort(t, Config{Dev: v.host, Logger: testLogger(t)})
	fd := v.packetSocket(t)

	const batch = 64
	total := uint64(2_000_000)
	if testing.Short() {
		total = 200_000
	}
	maxDur := 8 * time.Second

	var sent atomic.Uint64 // frames the kernel accepted, in order: 0..sent-1
	var sendErr error
	senderDone := make(chan struct{})
	go func() {
		defer close(senderDone)
		s := newFrameSender(fd, batch, 64)
		for i := range batch {
			f := testFrame(v.hostMAC, v.peerMAC, 0, 64)
			copy(s.bufs[i], f)
		}
		deadline := time.Now().Add(maxDur)
		var next uint64
		var enobufs int
		for next < total && time.Now().Before(deadline) {
			n := int(min(batch, total-next))
			for i := range n {
				binary.BigEndian.PutUint64(s.bufs[i][22:30], next+uint64(i))
			}
			k, err := s.send(n)
			switch {
			case errors.Is(err, unix.ENOBUFS), errors.Is(err, unix.EAGAIN):
				enobufs++ // veth ring full: frame not delivered; send it again
			case err != nil:
				sendErr = err
				return
			}
			next += uint64(k)
			sent.Store(next)
		}
		if enobufs > 0 {
			t.Logf("sender: %d sendmmsg calls refused with ENOBUFS (frame dropped by veth, resent)", enobufs)
		}
	}()

	b := testutil.RxBatch(t, ring.DefaultArenaConfig)
	seen := make([]uint8, total)
	var got, dups, reorders, unknown, others uint64
	var last int64 = -1
	start := time.Now()
	idle := time.Time{}
	for {
		testutil.ResetRx(b)
		n, err := p.Receive(b)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			seq, ok := parseTestFrame(b.Data(i))
			switch {
			case !ok:
				others++
				continue
			case seq >= total:
				unknown++
				continue
			}
			if seen[seq] != 0 {
				dups++
			}
			seen[seq]++
			got++
			if int64(seq) < last {
				reorders++
			}
			last = int64(seq)
		}
		if n > 0 {
			idle = time.Time{}
			continue
		}
		select {
		case <-senderDone:
			if idle.IsZero() {
				idle = time.Now()
			} else if time.Since(idle) > 200*time.Millisecond {
				goto done
			}
		default:
		}
	}
done:
	elapsed := time.Since(start) - 200*time.Millisecond
	if sendErr != nil {
		t.Fatalf("sender: %v", sendErr)
	}
	nsent := sent.Load()
	var missing uint64
	for seq := range nsent {
		if seen[seq] == 0 {
			missing++
		}
	}
	for seq := nsent; seq < total; seq++ {
		if seen[seq] != 0 {
			unknown++
		}
	}
	st := p.Stats()
	kernelDrops := st.Drops["rx-dropped"] + st.Drops["rx-ring-full"]
	t.Logf("sent %d, received %d (%.2f Mpps) in %v: %d duplicates, %d missing, %d out of order, %d never sent, %d other frames",
		nsent, got, float64(got)/elapsed.Seconds()/1e6, elapsed.Round(time.Millisecond), dups, missing, reorders, unknown, others)
	t.Logf("kernel counters: %v", st.Drops)
	if dups != 0 {
		t.Errorf("%d sequence numbers arrived twice (issue #24)", dups)
	}
	if unknown != 0 {
		t.Errorf("%d frames arrived that were never sent", unknown)
	}
	if missing > kernelDrops {
		t.Errorf("%d frames vanished: %d missing, only %d counted by the kernel", missing-kernelDrops, missing, kernelDrops)
	}
	if nsent < total/10 {
		t.Errorf("sender managed only %d of %d frames", nsent, total)
	}
}
