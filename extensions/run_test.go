package extensions

import (
	"encoding/binary"
	"testing"

	"github.com/xvswitch/xvs/extensions/api"
	"github.com/xvswitch/xvs/internal/testutil"
	"github.com/xvswitch/xvs/ring"
)

// runBatch puts frames (all from port in, VSID vsid) into a batch over a
// fresh arena.
func runBatch(t testing.TB, in uint16, vsid uint32, frames ...[]byte) *ring.Batch {
	t.Helper()
	b := testutil.RxBatch(t, ring.ArenaConfig{Frames: ring.BatchSize, FrameSize: 2048, Headroom: 256})
	testutil.Load(b, frames...)
	for i := range b.N {
		b.Frames[i].InPort, b.Frames[i].VSID = in, vsid
	}
	return b
}

func TestRunScan(t *testing.T) {
	base := ipv4UDP(1000, 53, 0)
	with := func(edit func(f []byte)) []byte {
		f := append([]byte(nil), base...)
		edit(f)
		return f
	}
	for _, tc := range []struct {
		name      string
		frame     []byte
		in        uint16
		vsid      uint32
		continues bool
	}{
		{"same flow", base, 1, 5001, true},
		{"other TTL, ID, length and checksum", with(func(f []byte) { f[22], f[18], f[16], f[24] = 1, 9, 9, 9 }), 1, 5001, true},
		{"other payload", with(func(f []byte) { f[50] = 7 }), 1, 5001, true},
		{"other source address", with(func(f []byte) { f[29] = 9 }), 1, 5001, false},
		{"other destination address", with(func(f []byte) { f[33] = 9 }), 1, 5001, false},
		{"other source port", with(func(f []byte) { f[35]++ }), 1, 5001, false},
		{"other destination port", with(func(f []byte) { f[37]++ }), 1, 5001, false},
		{"other protocol", with(func(f []byte) { f[23] = 6 }), 1, 5001, false},
		{"other TOS", with(func(f []byte) { f[15] = 0x10 }), 1, 5001, false},
		{"later fragment", with(func(f []byte) { binary.BigEndian.PutUint16(f[20:], 0x0010) }), 1, 5001, false},
		{"IP options", with(func(f []byte) { f[14] = 0x46 }), 1, 5001, false},
		{"not IPv4", with(func(f []byte) { f[13] = 0xDD }), 1, 5001, false},
		{"truncated", base[:37], 1, 5001, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCache(16)
			b := runBatch(t, 1, 5001, base, base, tc.frame, base)
			b.Frames[2].InPort, b.Frames[2].VSID = tc.in, tc.vsid
			r := c.StartPassRun(b.Data(0), api.Ingress, 1, api.NoPort, 5001, 7, 100)
			if r == nil {
				t.Fatal("no run for an IPv4 UDP frame")
			}
			want := 2
			if tc.continues {
				want = 4
			}
			if got := r.Scan(b, 1); got != want {
				t.Fatalf("Scan stopped at %d, want %d", got, want)
			}
			for i := 1; i < want; i++ {
				if b.Frames[i].Flow != 7 {
					t.Errorf("frame %d of the run has flow tag %d, want 7", i, b.Frames[i].Flow)
				}
			}
			if want < 4 && b.Frames[want].Flow != 0 {
				t.Errorf("frame %d outside the run got flow tag %d", want, b.Frames[want].Flow)
			}
		})
	}
}

// TestRunScanEgressBytes: an egress run of untagged frames (from ports
// without the filter on ingress) compares the ingress port and VSID of
// each frame too: an egress batch mixes ports.
func TestRunScanEgressBytes(t *testing.T) {
	f := ipv4UDP(1000, 53, 0)
	for _, tc := range []struct {
		name string
		in   uint16
		vsid uint32
		want int
	}{{"same port and VSID", 1, 5001, 3}, {"other ingress port", 2, 5001, 1}, {"other VSID", 1, 5002, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCache(16)
			b := runBatch(t, 1, 5001, f, f, f)
			b.Frames[1].InPort, b.Frames[1].VSID = tc.in, tc.vsid
			r := c.StartPassRun(b.Data(0), api.Egress, 1, 2, 5001, 0, 100)
			if got := r.Scan(b, 1); got != tc.want {
				t.Fatalf("Scan stopped at %d, want %d", got, tc.want)
			}
		})
	}
	// An ingress run is only for batches of its port, in its VSID.
	c := NewCache(16)
	c.StartPassRun(f, api.Ingress, 1, api.NoPort, 5001, 1, 100)
	if c.PassRun(1, api.Ingress, 2) != nil {
		t.Error("ingress run of port 1 found for a batch of port 2")
	}
	b := runBatch(t, 1, 5002, f, f)
	if got := c.PassRun(1, api.Ingress, 1).Scan(b, 0); got != 0 {
		t.Errorf("ingress run of VSID 5001 matched %d frames of a VSID 5002 batch", got)
	}
}

func TestCacheByTag(t *testing.T) {
	c := NewCache(64)
	var k FlowKey
	MakeFlowKey(&k, ipv4UDP(1000, 53, 0), 5001, api.Egress, 1, 2)
	e := c.Slot(&k, k.Hash(), 0, 100)
	e.Verdict = api.VerdictDrop
	c.SetTag(7, 2, e)
	if v, exp, ok := c.LookupTag(7, 2, 1); !ok || v != api.VerdictDrop || exp != 100 {
		t.Fatalf("LookupTag(7, 2) = %d %d %v, want the drop verdict until 100", v, exp, ok)
	}
	for _, tc := range []struct {
		name   string
		flow   uint32
		out    uint16
		now    uint32
		forget bool
	}{
		{"other tag", 8, 2, 1, false},
		{"other egress port", 7, 3, 1, false},
		{"expired", 7, 2, 100, false},
		{"no tag", 0, 2, 1, false},
		{"after Invalidate", 7, 2, 1, true},
	} {
		if tc.forget {
			c.Invalidate()
		}
		if _, _, ok := c.LookupTag(tc.flow, tc.out, tc.now); ok {
			t.Errorf("%s: LookupTag found a verdict", tc.name)
		}
	}
}

func TestRunEgressByFlowTag(t *testing.T) {
	c := NewCache(16)
	f := ipv4UDP(1000, 53, 0)
	b := runBatch(t, 1, 5001, f, f, f, f)
	b.Frames[0].Flow, b.Frames[1].Flow, b.Frames[2].Flow, b.Frames[3].Flow = 7, 7, 8, 7
	r := c.StartPassRun(b.Data(0), api.Egress, 1, 2, 5001, b.Frames[0].Flow, 100)
	if got := r.Scan(b, 1); got != 2 {
		t.Fatalf("egress run by tag stopped at %d, want 2 (frame 2 is another flow)", got)
	}
	if c.PassRun(1, api.Egress, 2) != r || c.PassRun(1, api.Egress, 3) != nil || c.PassRun(1, api.Ingress, 2) != nil {
		t.Fatal("an egress run must be found only for its direction and egress port")
	}
	// Untagged egress frames are matched by their bytes, and not tagged.
	b = runBatch(t, 1, 5001, f, f, ipv4UDP(1001, 53, 0))
	r = c.StartPassRun(b.Data(0), api.Egress, 1, 2, 5001, 0, 100)
	if got := r.Scan(b, 1); got != 2 || b.Frames[1].Flow != 0 {
		t.Fatalf("untagged egress run: Scan %d (want 2), tag %d (want 0)", got, b.Frames[1].Flow)
	}
}

func TestRunForgotten(t *testing.T) {
	f := ipv4UDP(1000, 53, 0)
	start := func(c *Cache) {
		t.Helper()
		if c.StartPassRun(f, api.Ingress, 1, api.NoPort, 5001, 1, 100) == nil || c.PassRun(1, api.Ingress, 1) == nil {
			t.Fatal("run not started")
		}
	}
	c := NewCache(16)
	start(c)
	if c.PassRun(100, api.Ingress, 1) != nil {
		t.Error("run alive after its entry expired")
	}
	if c.PassRun(1, api.Ingress, 2) != nil {
		t.Error("run of port 1 found for port 2")
	}
	c.Invalidate()
	if c.PassRun(1, api.Ingress, 1) != nil {
		t.Error("run alive after Invalidate")
	}
	if c.StartPassRun(ipv6TCP(1, 2), api.Ingress, 1, api.NoPort, 5001, 1, 100) != nil {
		t.Error("an IPv6 frame started a run RunKey cannot match")
	}
}

// BenchmarkRunScan is the per-frame price of a cached filter verdict for
// a bulk flow: one 64-frame batch checked against the run.
func BenchmarkRunScan(b *testing.B) {
	f := ipv4UDP(1000, 53, 0)
	frames := make([][]byte, ring.BatchSize)
	for i := range frames {
		frames[i] = f
	}
	bt := runBatch(b, 1, 5001, frames...)
	c := NewCache(16)
	r := c.StartPassRun(f, api.Ingress, 1, api.NoPort, 5001, 1, 100)
	b.ReportAllocs()
	for b.Loop() {
		if r.Scan(bt, 0) != ring.BatchSize {
			b.Fatal("run broken")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*ring.BatchSize), "ns/frame")
}

// BenchmarkFlowLookup is the per-frame price of a cached verdict when
// flows interleave frame by frame (no run): key, hash and lookup, over 256
// live flows in a 4096-entry cache.
func BenchmarkFlowLookup(b *testing.B) {
	const flows = 256
	frames := make([][]byte, flows)
	c := NewCache(4096)
	var k FlowKey
	for i := range frames {
		frames[i] = ipv4UDP(uint16(1000+i), 53, 0)
		MakeFlowKey(&k, frames[i], 5001, api.Ingress, 1, api.NoPort)
		c.Slot(&k, k.Hash(), 0, 100).Verdict = api.VerdictPass
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for _, f := range frames {
			MakeFlowKey(&k, f, 5001, api.Ingress, 1, api.NoPort)
			if e := c.Lookup(&k, k.Hash(), 1); e == nil || e.Verdict != api.VerdictPass {
				b.Fatal("miss")
			}
		}
		n += flows
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/frame")
}

// FuzzRunScan checks Scan, which reads frames through a pointer, against
// RunKey on slices: a frame continues a run exactly when its RunKey is
// the run's, whatever its bytes and length (offsets near the arena's end
// included).
func FuzzRunScan(f *testing.F) {
	f.Add(ipv4UDP(1000, 53, 0), ipv4UDP(1000, 53, 0), uint16(0), false)
	f.Add(ipv4UDP(1000, 53, 0), ipv4UDP(1000, 54, 0), uint16(100), false)
	f.Add(ipv4UDP(1000, 53, 0), ipv4UDP(1000, 53, 0)[:37], uint16(0), true)
	f.Add(ipv4UDP(1000, 53, 0), ipv4UDP(1000, 53, 0x10), uint16(1990), true)
	f.Fuzz(func(t *testing.T, first, next []byte, off uint16, egress bool) {
		const frameSize = 2048
		a, err := ring.NewArena(ring.ArenaConfig{Frames: 2, FrameSize: frameSize, Headroom: 128})
		if err != nil {
			t.Fatal(err)
		}
		if len(first) > frameSize || len(next) > frameSize {
			return
		}
		b := ring.NewBatch(a)
		b.Add(ring.Frame{Index: 0, Len: uint16(len(first)), Meta: ring.Meta{InPort: 1, VSID: 5}})
		copy(a.Buffer(0), first)
		// the second frame at any offset its length fits, up to the
		// arena's last byte
		o := int(off) % (frameSize - len(next) + 1)
		b.Add(ring.Frame{Index: 1, Offset: uint16(o), Len: uint16(len(next)), Meta: ring.Meta{InPort: 1, VSID: 5}})
		copy(a.Buffer(1)[o:], next)
		dir, out := api.Ingress, uint16(api.NoPort)
		if egress {
			dir, out = api.Egress, 2
		}
		c := NewCache(16)
		r := c.StartPassRun(b.Data(0), dir, 1, out, 5, 0, 100)
		k0, k1, k2, k3, ok := RunKey(first)
		if (r != nil) != ok {
			t.Fatalf("run started %v, RunKey ok %v", r != nil, ok)
		}
		if r == nil {
			return
		}
		n0, n1, n2, n3, nok := RunKey(next)
		want := 1
		if nok && n0 == k0 && n1 == k1 && n2 == k2 && n3 == k3 {
			want = 2
		}
		if got := r.Scan(b, 1); got != want {
			t.Fatalf("Scan = %d, want %d", got, want)
		}
	})
}

// TestHashSpread: keys that differ in one field only (as the flows of one
// host do) must spread over the cache's sets like random ones, or a few
// sets would hold them all and evict each other.
func TestHashSpread(t *testing.T) {
	for _, field := range []string{"sport", "dport", "src", "dst", "vsid", "in"} {
		sets := make([]int, 1024)
		var k FlowKey
		for i := range 4096 {
			f := ipv4UDP(1000, 53, 0)
			vsid, in := uint32(5001), uint16(1)
			switch field {
			case "sport":
				binary.BigEndian.PutUint16(f[34:], uint16(i))
			case "dport":
				binary.BigEndian.PutUint16(f[36:], uint16(i))
			case "src":
				binary.BigEndian.PutUint32(f[26:], uint32(0x0a000000+i))
			case "dst":
				binary.BigEndian.PutUint32(f[30:], uint32(0x0a000000+i))
			case "vsid":
				vsid = uint32(i)
			case "in":
				in = uint16(i)
			}
			MakeFlowKey(&k, f, vsid, api.Ingress, in, api.NoPort)
			sets[k.Hash()&1023]++
		}
		// 4 keys a set on average: random keys leave ~19 sets empty and
		// put at most ~12 in one
		most, empty := 0, 0
		for _, n := range sets {
			most = max(most, n)
			if n == 0 {
				empty++
			}
		}
		if most > 20 || empty > 60 {
			t.Errorf("keys varying %s: %d in the fullest set, %d sets empty", field, most, empty)
		}
	}
}
