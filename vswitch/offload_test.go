package vswitch

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/xvswitch/xvs/ports"
)

// offloadLog records what the switch tells its offload, in order.
type offloadLog struct {
	mu  sync.Mutex
	ops []string
}

func (o *offloadLog) add(format string, a ...any) {
	o.mu.Lock()
	o.ops = append(o.ops, fmt.Sprintf(format, a...))
	o.mu.Unlock()
}
func (o *offloadLog) Learn(vsid uint32, mac uint64, p ports.Port) {
	o.add("learn %d %s %s", vsid, formatMAC(mac), p.Name())
}
func (o *offloadLog) Forget(vsid uint32, mac uint64) { o.add("forget %d %s", vsid, formatMAC(mac)) }
func (o *offloadLog) SetVSID(p ports.Port, vsid uint32) {
	o.add("vsid %s %s", p.Name(), vsidName(vsid))
}
func (o *offloadLog) take() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	ops := o.ops
	o.ops = nil
	return ops
}

func vsidName(v uint32) string {
	if v == VSIDUnassigned {
		return "none"
	}
	return fmt.Sprint(v)
}

// TestOffloadIsToldEverything: a fast path may only forward what the
// switch would, so it must hear of every station learned, moved, aged or
// orphaned, and of every port's VSID - once per event, never per frame.
func TestOffloadIsToldEverything(t *testing.T) {
	off := &offloadLog{}
	r := newRig(t, Config{Offload: off, MACAgeing: 10 * time.Second}, nil)
	for _, n := range []string{"a", "b", "c"} {
		r.addPort(n, 5001)
	}
	want := []string{"vsid a 5001", "vsid b 5001", "vsid c 5001"}
	if got := off.take(); !slices.Equal(got, want) {
		t.Fatalf("after adding ports: %q, want %q", got, want)
	}
	for range 5 {
		r.send("a", frame(bcast, macA, "a"))
	}
	r.send("b", frame(macA, macB, "b"))
	r.send("c", frame(macA, macB, "b moved to c"))
	want = []string{"learn 5001 02:00:00:00:00:0a a", "learn 5001 02:00:00:00:00:0b b", "learn 5001 02:00:00:00:00:0b c"}
	if got := off.take(); !slices.Equal(got, want) {
		t.Fatalf("learning: %q, want %q", got, want)
	}
	if err := r.sw.SetPortVSID("c", 5002); err != nil {
		t.Fatal(err)
	}
	want = []string{"vsid c none", "forget 5001 02:00:00:00:00:0b", "vsid c 5002"}
	if got := off.take(); !slices.Equal(got, want) {
		t.Fatalf("moving a port: %q, want %q", got, want)
	}
	r.sw.clock.Store(60)
	r.sw.Age()
	want = []string{"forget 5001 02:00:00:00:00:0a"}
	if got := off.take(); !slices.Equal(got, want) {
		t.Fatalf("ageing: %q, want %q", got, want)
	}
	r.send("c", frame(bcast, macC, "c in 5002"))
	off.take()
	if err := r.sw.RemovePort("c"); err != nil {
		t.Fatal(err)
	}
	want = []string{"vsid c none", "forget 5002 02:00:00:00:00:0c"}
	if got := off.take(); !slices.Equal(got, want) {
		t.Fatalf("removing the last port of a VSID: %q, want %q", got, want)
	}
}
