package datapath

import (
	"testing"

	"github.com/xvswitch/xvs/header"
)

// FuzzModule feeds arbitrary frames to every entry point of the module, as
// a hostile VM or provider host may: nothing panics, every verdict names
// a port of the table, and a frame the module changed stays inside its
// buffer.
func FuzzModule(f *testing.F) {
	f.Add(udp6("fd00:1::10", "fd00:1::20", 64, 100), false)
	f.Add(udp6("fd00:1::10", "fd00:1::20", 1, 100), false)
	f.Add(make([]byte, 60), true)
	arp := make([]byte, 60)
	_, _ = header.WriteARPRequest(arp, vmMAC, [4]byte{10, 0, 1, 10}, [4]byte{10, 0, 1, 20})
	f.Add(arp, false)
	f.Add(arp, true)
	f.Fuzz(func(t *testing.T, frame []byte, uplink bool) {
		if len(frame) < header.EthernetHeaderLen || len(frame) > 1600 {
			return
		}
		r := newRig(t, Config{HeadEndReplication: true})
		r.learnNextHop()
		b := r.batch(frame)
		var vs []Verdict
		if uplink {
			vs = r.m.FromUplink(r.up, b)
		} else {
			vs = r.m.Resolve(r.vm, b)
			if vs[0].Action == Continue {
				vs = r.m.Route(r.vm, b)
			}
		}
		fr := b.Frames[0]
		if int(fr.Offset)+int(fr.Len) > r.arena.FrameSize() {
			t.Fatalf("frame outside its buffer: offset %d len %d", fr.Offset, fr.Len)
		}
		switch vs[0].Action {
		case Deliver, Send:
			if r.ports.byIndex(vs[0].Port) == nil {
				t.Fatalf("verdict names port %d: not in the table", vs[0].Port)
			}
		}
		for _, e := range r.m.Emits {
			if r.ports.byIndex(e.Port) == nil || int(e.Frame.Offset)+int(e.Frame.Len) > r.arena.FrameSize() {
				t.Fatalf("emitted frame for port %d at %d+%d", e.Port, e.Frame.Offset, e.Frame.Len)
			}
		}
		r.m.Release()
		r.m.Retry()
		r.m.Release()
	})
}
