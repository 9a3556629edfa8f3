package vswitch

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/xvswitch/xvs/internal/testutil"
	"github.com/xvswitch/xvs/ports/porttest"
)

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

var bcast = mac("ff:ff:ff:ff:ff:ff")

// frame builds an Ethernet frame with a tag in the payload so tests can
// tell frames apart.
func frame(dst, src net.HardwareAddr, tag string) []byte {
	f := make([]byte, 0, 64)
	f = append(f, dst...)
	f = append(f, src...)
	f = append(f, 0x88, 0xb5) // local experimental EtherType
	f = append(f, tag...)
	for len(f) < 60 {
		f = append(f, 0)
	}
	return f
}

type rig struct {
	t  *testing.T
	sw *Switch
	p  map[string]*porttest.Port
}

// newRig builds a stopped switch with the given ports: name -> VSID.
func newRig(t *testing.T, cfg Config, portVSIDs map[string]uint32) *rig {
	t.Helper()
	sw, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	r := &rig{t: t, sw: sw, p: map[string]*porttest.Port{}}
	for name, vsid := range portVSIDs {
		p := porttest.New(name, nil)
		if err := sw.AddPort(p, vsid); err != nil {
			t.Fatal(err)
		}
		r.p[name] = p
	}
	return r
}

// addPort adds a queue port to the rig.
func (r *rig) addPort(name string, vsid uint32) {
	r.t.Helper()
	p := porttest.New(name, nil)
	if err := r.sw.AddPort(p, vsid); err != nil {
		r.t.Fatal(err)
	}
	r.p[name] = p
}

// send injects a frame on a port and runs the switch until it is consumed.
func (r *rig) send(port string, f []byte) {
	r.t.Helper()
	r.p[port].Inject(f)
	for r.p[port].Pending() > 0 {
		r.sw.RunOnce()
	}
}

// expect checks which ports got exactly which frame and that every other
// port got nothing.
func (r *rig) expect(f []byte, to ...string) {
	r.t.Helper()
	want := map[string]bool{}
	for _, n := range to {
		want[n] = true
	}
	for name, p := range r.p {
		got := p.Sent()
		switch {
		case want[name] && (len(got) != 1 || !bytes.Equal(got[0], f)):
			r.t.Errorf("port %s: got %d frames, want exactly the sent one", name, len(got))
		case !want[name] && len(got) != 0:
			r.t.Errorf("port %s: got %d frames, want none", name, len(got))
		}
	}
}

// sendExpect sends f on port in and checks that it reaches exactly the
// ports to.
func (r *rig) sendExpect(in string, f []byte, to ...string) {
	r.t.Helper()
	r.send(in, f)
	r.expect(f, to...)
}

func (r *rig) drops(port string, reason DropReason) uint64 {
	r.t.Helper()
	st, err := r.sw.Stats(port)
	if err != nil {
		r.t.Fatal(err)
	}
	return st[0].Drops[reason.String()]
}

var (
	macA = mac("02:00:00:00:00:0a")
	macB = mac("02:00:00:00:00:0b")
	macC = mac("02:00:00:00:00:0c")
	macD = mac("02:00:00:00:00:0d")
)

func TestFloodStaysInVSID(t *testing.T) {
	r := newRig(t, Config{}, map[string]uint32{"a": 5001, "b": 5001, "c": 5001, "x": 5002, "y": 5002, "z": 0})
	r.sendExpect("a", frame(bcast, macA, "hello"), "b", "c")
	// Unknown unicast floods the same way.
	r.sendExpect("a", frame(macD, macA, "unknown"), "b", "c")
	// A multicast destination too.
	r.sendExpect("a", frame(mac("01:00:5e:00:00:01"), macA, "mcast"), "b", "c")
}

func TestKnownUnicastGoesToOnePort(t *testing.T) {
	r := newRig(t, Config{}, map[string]uint32{"a": 5001, "b": 5001, "c": 5001, "x": 5002})
	r.send("b", frame(bcast, macB, "b announces"))
	r.p["a"].Sent()
	r.p["c"].Sent()
	r.sendExpect("a", frame(macB, macA, "to b"), "b")
	// and back: a was learned from the last frame
	r.sendExpect("b", frame(macA, macB, "to a"), "a")
}

func TestSameMACInTwoVSIDsIsTwoStations(t *testing.T) {
	// Tenants may reuse addresses: learning is per VSID.
	r := newRig(t, Config{}, map[string]uint32{"a": 5001, "b": 5001, "x": 5002, "y": 5002})
	r.send("b", frame(bcast, macB, "b in 5001"))
	r.send("y", frame(bcast, macB, "b in 5002"))
	r.p["a"].Sent()
	r.p["x"].Sent()
	r.sendExpect("a", frame(macB, macA, "5001 to b"), "b")
	r.sendExpect("x", frame(macB, macA, "5002 to b"), "y")
}

func TestNonVirtualizedBridge(t *testing.T) {
	r := newRig(t, Config{}, map[string]uint32{"u1": 0, "u2": 0, "u3": 0, "v": 5001})
	r.sendExpect("u1", frame(bcast, macA, "plain"), "u2", "u3")
	r.sendExpect("u3", frame(macA, macC, "to a"), "u1")
}

func TestNeverBackOutTheIngressPort(t *testing.T) {
	r := newRig(t, Config{}, map[string]uint32{"a": 5001, "b": 5001})
	r.send("a", frame(bcast, macA, "learn a"))
	r.p["b"].Sent()
	// A frame from b to a station learned on b itself.
	r.send("b", frame(bcast, macC, "c behind b"))
	r.p["a"].Sent()
	f := frame(macC, macB, "b to c")
	r.send("b", f)
	r.expect(f) // nowhere
	if got := r.drops("b", DropSamePort); got != 1 {
		t.Fatalf("same-port drops %d, want 1", got)
	}
}

func TestUnassignedPortIsIsolated(t *testing.T) {
	r := newRig(t, Config{}, map[string]uint32{"a": VSIDUnassigned, "b": 0, "c": 5001})
	f := frame(bcast, macA, "from nowhere")
	r.send("a", f)
	r.expect(f)
	if got := r.drops("a", DropNoVSID); got != 1 {
		t.Fatalf("no-vsid drops %d, want 1", got)
	}
	// and nothing floods to it
	g := frame(bcast, macB, "from b")
	r.send("b", g)
	r.expect(g)
}

func TestMalformedFrames(t *testing.T) {
	r := newRig(t, Config{}, map[string]uint32{"a": 5001, "b": 5001})
	r.send("a", []byte{1, 2, 3})
	r.send("a", frame(bcast, mac("03:00:00:00:00:01"), "multicast source"))
	r.expect(nil)
	if got := r.drops("a", DropMalformed); got != 2 {
		t.Fatalf("malformed drops %d, want 2", got)
	}
}

func TestLearnCapKeepsForwardingAndOldEntries(t *testing.T) {
	r := newRig(t, Config{MACLimit: 8}, map[string]uint32{"a": 5001, "b": 5001, "c": 5001})
	r.send("b", frame(bcast, macB, "b"))
	r.p["a"].Sent()
	r.p["c"].Sent()
	// c floods 100 random sources: 7 fit, the rest are not learned.
	for i := range 100 {
		src := net.HardwareAddr{0x02, 0xee, 0, 0, byte(i >> 8), byte(i)}
		r.send("c", frame(bcast, src, "flood"))
	}
	if got := len(r.p["a"].Sent()); got != 100 {
		t.Fatalf("a received %d of 100 flooded frames: frames beyond the cap must still forward", got)
	}
	r.p["b"].Sent()
	if got := r.drops("c", DropLearnCap); got != 100-7 {
		t.Fatalf("learn-cap %d, want %d", got, 100-7)
	}
	// b is still known: unicast to b reaches only b.
	f := frame(macB, macA, "to b")
	r.send("a", f)
	if got := r.p["b"].Sent(); len(got) != 1 {
		t.Fatalf("b got %d frames, want 1", len(got))
	}
	if got := r.p["c"].Sent(); len(got) != 0 {
		t.Fatalf("c got %d frames: the cap evicted b", len(got))
	}
}

func TestAgeing(t *testing.T) {
	r := newRig(t, Config{MACAgeing: 10 * time.Second}, map[string]uint32{"a": 5001, "b": 5001, "c": 5001})
	r.send("b", frame(bcast, macB, "b"))
	r.p["a"].Sent()
	r.p["c"].Sent()
	r.sw.clock.Store(5)
	if n := r.sw.Age(); n != 0 {
		t.Fatalf("aged %d entries after 5s, want 0", n)
	}
	f := frame(macB, macA, "to b")
	r.send("a", f)
	r.expect(f, "b")
	r.sw.clock.Store(30)
	if n := r.sw.Age(); n != 2 { // a and b
		t.Fatalf("aged %d entries after 30s, want 2", n)
	}
	r.send("a", f)
	r.expect(f, "b", "c") // unknown again: flooded
}

func TestStationMove(t *testing.T) {
	r := newRig(t, Config{}, map[string]uint32{"a": 5001, "b": 5001, "c": 5001})
	r.send("b", frame(bcast, macB, "b on b"))
	r.send("c", frame(bcast, macB, "b moved to c"))
	for _, p := range r.p {
		p.Sent()
	}
	r.sendExpect("a", frame(macB, macA, "to b"), "c")
}

func TestRingFullCounted(t *testing.T) {
	r := newRig(t, Config{}, map[string]uint32{"a": 5001, "b": 5001})
	r.p["b"].SetTxLimit(3)
	for range 10 {
		r.p["a"].Inject(frame(bcast, macA, "x"))
	}
	r.sw.RunOnce()
	if got := len(r.p["b"].Sent()); got != 3 {
		t.Fatalf("b got %d, want 3", got)
	}
	if got := r.drops("b", DropRingFull); got != 7 {
		t.Fatalf("ring-full on b %d, want 7", got)
	}
	st, _ := r.sw.Stats("a")
	if st[0].RxFrames != 10 || st[0].RxBytes != 600 {
		t.Fatalf("a rx %d frames %d bytes, want 10 and 600", st[0].RxFrames, st[0].RxBytes)
	}
}

func TestPortErrors(t *testing.T) {
	r := newRig(t, Config{}, map[string]uint32{"a": 5001})
	dup := porttest.New("a", nil)
	if err := r.sw.AddPort(dup, 5001); !errors.Is(err, ErrPortExists) {
		t.Fatalf("duplicate port: %v", err)
	}
	if !dup.Closed() {
		t.Fatal("a refused port was not closed")
	}
	for _, v := range []uint32{1, 4095, 16777215} {
		if err := r.sw.AddPort(porttest.New(fmt.Sprint("v", v), nil), v); !errors.Is(err, ErrBadVSID) {
			t.Errorf("VSID %d: %v, want ErrBadVSID", v, err)
		}
	}
	if err := r.sw.RemovePort("nope"); !errors.Is(err, ErrNoSuchPort) {
		t.Fatalf("remove unknown: %v", err)
	}
	if err := r.sw.SetPortVSID("a", 12); !errors.Is(err, ErrBadVSID) {
		t.Fatalf("set bad vsid: %v", err)
	}
	if err := r.sw.AddPort(porttest.New("has space", nil), 0); err == nil {
		t.Fatal("a port name with a space was accepted")
	}
	if _, err := New(Config{Workers: -1}); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("workers -1: %v", err)
	}
}

func TestSetPortVSID(t *testing.T) {
	r := newRig(t, Config{}, map[string]uint32{"a": 5001, "b": 5001, "x": 5002})
	r.send("b", frame(bcast, macB, "b"))
	r.p["a"].Sent()
	if err := r.sw.SetPortVSID("b", 5002); err != nil {
		t.Fatal(err)
	}
	f := frame(macB, macA, "to b, which left")
	r.send("a", f)
	r.expect(f) // a is alone in 5001 now; b's entry is gone
	r.sendExpect("x", frame(bcast, macD, "in 5002"), "b")
}

// TestRunningWorkers drives real poll-mode workers (run with -race).
func TestRunningWorkers(t *testing.T) {
	testutil.CheckGoroutines(t) // none outlives Close
	for _, mode := range []PollMode{PollAdaptive, PollBusy} {
		t.Run(mode.String(), func(t *testing.T) {
			sw, err := New(Config{Workers: 2, PollMode: mode})
			if err != nil {
				t.Fatal(err)
			}
			p := map[string]*porttest.Port{}
			for _, n := range []string{"a", "b", "c", "d"} {
				p[n] = porttest.New(n, nil)
				if err := sw.AddPort(p[n], 5001); err != nil {
					t.Fatal(err)
				}
			}
			if err := sw.Start(); err != nil {
				t.Fatal(err)
			}
			p["b"].Inject(frame(bcast, macB, "b"))
			for _, n := range []string{"a", "c", "d"} {
				if _, err := p[n].WaitSent(1, 2*time.Second); err != nil {
					t.Fatal(err)
				}
			}
			const n = 500
			for i := range n {
				p["a"].Inject(frame(macB, macA, fmt.Sprint(i)))
			}
			got, err := p["b"].WaitSent(n, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			for i, f := range got {
				if want := frame(macB, macA, fmt.Sprint(i)); !bytes.Equal(f, want) {
					t.Fatalf("frame %d out of order or changed", i)
				}
			}
			if c, d := len(p["c"].Sent()), len(p["d"].Sent()); c+d != 0 {
				t.Fatalf("unicast to b leaked to c (%d) and d (%d)", c, d)
			}
			// Remove a port while traffic flows on the others.
			if err := sw.RemovePort("d"); err != nil {
				t.Fatal(err)
			}
			if !p["d"].Closed() {
				t.Fatal("removed port not closed")
			}
			p["c"].Inject(frame(bcast, macC, "after remove"))
			if _, err := p["a"].WaitSent(1, 2*time.Second); err != nil {
				t.Fatal(err)
			}
			if err := sw.Close(); err != nil {
				t.Fatal(err)
			}
			if err := sw.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
		})
	}
}
