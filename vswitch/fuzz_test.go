package vswitch

import (
	"encoding/binary"
	"testing"

	"github.com/xvswitch/xvs/ports/porttest"
	"github.com/xvswitch/xvs/ring"
)

// FuzzPipeline feeds arbitrary frames from arbitrary ports through the
// switch: whatever the bytes, nothing panics and no frame reaches a port of
// another VSID or goes back out its ingress port. Each input frame carries
// a unique trailer so its copies can be traced.
func FuzzPipeline(f *testing.F) {
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 8, 0})
	f.Add([]byte{1, 2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x88, 0xb5, 2, 2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1})
	f.Add([]byte{3, 1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		vsids := []uint32{5001, 5001, 5002, 0, VSIDUnassigned}
		sw, err := New(Config{MACLimit: 4, Arena: ring.ArenaConfig{Frames: 256, FrameSize: 2048, Headroom: 256}})
		if err != nil {
			t.Fatal(err)
		}
		defer sw.Close()
		ps := make([]*porttest.Port, len(vsids))
		for i, v := range vsids {
			ps[i] = porttest.New(string(rune('a'+i)), nil)
			if err := sw.AddPort(ps[i], v); err != nil {
				t.Fatal(err)
			}
		}
		// data: repeated [port byte][len byte][len bytes of frame]
		origin := map[uint32]int{}
		for id := uint32(0); len(data) >= 2; id++ {
			in := int(data[0]) % len(ps)
			n := min(int(data[1]), len(data)-2)
			frame := append(append([]byte(nil), data[2:2+n]...), 0, 0, 0, 0)
			binary.BigEndian.PutUint32(frame[len(frame)-4:], id)
			data = data[2+n:]
			origin[id] = in
			ps[in].Inject(frame)
			sw.RunOnce()
		}
		for out, p := range ps {
			for _, fr := range p.Sent() {
				id := binary.BigEndian.Uint32(fr[len(fr)-4:])
				in, ok := origin[id]
				switch {
				case !ok:
					t.Fatalf("port %d sent a frame nobody injected", out)
				case in == out:
					t.Fatalf("frame %d went back out its ingress port %d", id, in)
				case vsids[in] != vsids[out]:
					t.Fatalf("frame %d crossed from VSID %d to VSID %d", id, vsids[in], vsids[out])
				}
			}
		}
	})
}
