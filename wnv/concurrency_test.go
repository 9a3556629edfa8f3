package wnv

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
)

// TestSnapshotAtomicity moves a CA back and forth between two VMs (two MACs
// on two hosts) in one batch per move, while readers check on every
// snapshot they load that the CA belongs to exactly one of them: never
// both, never neither, and the MAC index agrees with the CA index.
func TestSnapshotAtomicity(t *testing.T) {
	p := fixture(t)
	ca := a("10.0.1.100")
	vmA := LookupRecord{VSID: 5001, CA: ca, MAC: mac(0xa0), PA: a("192.168.0.10"), VMName: "a"}
	vmB := LookupRecord{VSID: 5001, CA: ca, MAC: mac(0xb0), PA: a("192.168.0.11"), VMName: "b"}
	if err := p.AddLookupRecord(vmA); err != nil {
		t.Fatal(err)
	}
	moves := 2000
	if testing.Short() {
		moves = 200
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			for !stop.Load() {
				s := p.Snapshot()
				if s.Version() < last {
					errs <- fmt.Errorf("version went back from %d to %d", last, s.Version())
					return
				}
				last = s.Version()
				r, ok := s.LookupCA(5001, ca)
				_, okA := s.LookupMAC(5001, vmA.MAC)
				_, okB := s.LookupMAC(5001, vmB.MAC)
				switch {
				case !ok:
					errs <- fmt.Errorf("version %d: %s has no record", s.Version(), ca)
					return
				case okA == okB:
					errs <- fmt.Errorf("version %d: mac a present %v, mac b present %v", s.Version(), okA, okB)
					return
				case (r.MAC == vmA.MAC) != okA:
					errs <- fmt.Errorf("version %d: ca index says %s, mac index disagrees", s.Version(), r.MAC)
					return
				}
				if d := s.Route(5002, ca); d.Kind != Routed || d.Record != r {
					errs <- fmt.Errorf("version %d: Route = %v, LookupCA = %v", s.Version(), d, r)
					return
				}
				hosts := s.HostsForVSID(5001)
				n := 0
				for _, h := range hosts {
					if h == vmA.PA || h == vmB.PA {
						n++
					}
				}
				if n != 1 {
					errs <- fmt.Errorf("version %d: hosts %v", s.Version(), hosts)
					return
				}
			}
		}()
	}
	v0 := p.Version()
	from, to := vmA, vmB
	for range moves {
		err := p.Apply(func(b *Builder) error {
			if err := b.RemoveLookupRecord(from.VSID, from.CA, from.MAC); err != nil {
				return err
			}
			return b.AddLookupRecord(to)
		})
		if err != nil {
			t.Fatal(err)
		}
		from, to = to, from
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := p.Version() - v0; got != uint64(moves) {
		t.Errorf("version moved %d for %d batches", got, moves)
	}
}

// TestConcurrentWriters: writers from many goroutines are serialised; every
// successful change is one version.
func TestConcurrentWriters(t *testing.T) {
	p := fixture(t)
	v0 := p.Version()
	var wg sync.WaitGroup
	var ok atomic.Int64
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				// goroutines race for the same CAs: exactly one wins each.
				r := LookupRecord{VSID: 5002, CA: netip.AddrFrom4([4]byte{10, 0, 2, byte(10 + i)}),
					MAC: MAC{2, 9, 0, 0, byte(g), byte(i)}, PA: a("192.168.0.3")}
				if p.AddLookupRecord(r) == nil {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 50 {
		t.Errorf("%d adds succeeded, want 50", ok.Load())
	}
	if got := p.Version() - v0; got != uint64(ok.Load()) {
		t.Errorf("version moved %d for %d changes", got, ok.Load())
	}
}
