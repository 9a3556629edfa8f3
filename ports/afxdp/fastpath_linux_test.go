package afxdp

import (
	"net"
	"os/exec"
	"testing"

	"github.com/asavie/xdp"
	"github.com/cilium/ebpf"
)

const (
	xdpRetPass     = 2
	xdpRetRedirect = 4
)

// fastPathRig is a fast path with a program and two joined ports on a
// veth pair; the program runs in test mode (BPF_PROG_RUN), so no frame is
// sent on the devices.
type fastPathRig struct {
	fp       *FastPath
	prog     *xdp.Program
	pa, pb   *Port
	ina, inb int // ifindexes
}

func newFastPathRig(tb testing.TB, a, b string) *fastPathRig {
	tb.Helper()
	needRoot(tb)
	// Two real devices: the devmap and the context need existing ifindexes.
	if out, err := exec.Command("ip", "link", "add", a, "type", "veth", "peer", "name", b).CombinedOutput(); err != nil {
		tb.Fatalf("ip link add: %v\n%s", err, out)
	}
	tb.Cleanup(func() { exec.Command("ip", "link", "del", a).Run() })
	for _, dev := range []string{a, b} {
		// up: a test run with an ingress device needs its rx queue registered
		if out, err := exec.Command("ip", "link", "set", dev, "up").CombinedOutput(); err != nil {
			tb.Fatalf("ip link set up: %v\n%s", err, out)
		}
	}
	ia, _ := net.InterfaceByName(a)
	ib, _ := net.InterfaceByName(b)
	r := &fastPathRig{ina: ia.Index, inb: ib.Index}
	var err error
	if r.fp, err = NewFastPath(1024); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.fp.Close() })
	if r.prog, err = newFastPathProgram(r.fp, 1); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.prog.Close() })
	r.pa, r.pb = &Port{ifindex: ia.Index}, &Port{ifindex: ib.Index}
	for _, p := range []*Port{r.pa, r.pb} {
		if err := r.fp.join(p); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { r.fp.leave(p) })
	}
	return r
}

// fastPathFrame is an Ethernet frame of n bytes from src to dst.
func fastPathFrame(dst, src uint64, n int) []byte {
	f := make([]byte, n)
	for i := range 6 {
		f[i] = byte(dst >> (40 - 8*i))
		f[6+i] = byte(src >> (40 - 8*i))
	}
	return f
}

// TestFastPathDecisions runs the fast-path program on crafted frames with
// BPF_PROG_RUN and checks each decision: only a unicast frame from a
// station learned on its ingress port to a station learned behind another
// port of the same VSID is redirected; everything else goes the usual way
// (here: no socket registered, so XDP_PASS).
func TestFastPathDecisions(t *testing.T) {
	r := newFastPathRig(t, "xfpt0", "xfpt1")
	fp, prog, pa, pb := r.fp, r.prog, r.pa, r.pb
	ia, ib := struct{ Index int }{r.ina}, struct{ Index int }{r.inb}
	const vsid, other = 5001, 5002
	macA, macB, macC := uint64(0x02000000000a), uint64(0x02000000000b), uint64(0x02000000000c)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(fp.SetVSID(pa, vsid, true))
	must(fp.SetVSID(pb, vsid, true))
	must(fp.Learn(vsid, macA, pa))
	must(fp.Learn(vsid, macB, pb))
	must(fp.Learn(other, macC, pb)) // macC lives in another VSID
	must(fp.Learn(vsid, macC, nil)) // a station behind a non-fast-path port: not learned

	frame := fastPathFrame
	run := func(data []byte, in int) uint32 {
		t.Helper()
		ret, err := prog.Program.Run(&ebpf.RunOptions{Data: data, Context: xdpMD{DataEnd: uint32(len(data)), IngressIfindex: uint32(in)}})
		if err != nil {
			t.Fatalf("BPF_PROG_RUN: %v", err)
		}
		return ret
	}
	for _, tc := range []struct {
		name string
		data []byte
		in   int
		want uint32
	}{
		{"known unicast a->b", frame(macB, macA, 60), ia.Index, xdpRetRedirect},
		{"known unicast b->a", frame(macA, macB, 60), ib.Index, xdpRetRedirect},
		{"source not learned on the ingress port", frame(macB, macA, 60), ib.Index, xdpRetPass},
		{"unknown source", frame(macB, 0x020000000099, 60), ia.Index, xdpRetPass},
		{"unknown destination", frame(0x020000000099, macA, 60), ia.Index, xdpRetPass},
		{"destination in another VSID", frame(macC, macA, 60), ia.Index, xdpRetPass},
		{"destination behind the ingress port", frame(macA, macA, 60), ia.Index, xdpRetPass},
		{"broadcast", frame(0xffffffffffff, macA, 60), ia.Index, xdpRetPass},
		{"multicast", frame(0x01005e000001, macA, 60), ia.Index, xdpRetPass},
		// (BPF_PROG_RUN refuses frames shorter than a header; the verifier
		// holds the program to its bounds check for those.)
		{"header only", frame(macB, macA, 60)[:14], ia.Index, xdpRetRedirect},
	} {
		if got := run(tc.data, tc.in); got != tc.want {
			t.Errorf("%s: XDP action %d, want %d", tc.name, got, tc.want)
		}
	}
	// A port leaving its VSID, or a station forgotten, ends redirects at once.
	must(fp.SetVSID(pa, 0, false))
	if got := run(frame(macB, macA, 60), ia.Index); got != xdpRetPass {
		t.Errorf("after a's VSID was removed: action %d, want pass", got)
	}
	must(fp.SetVSID(pa, vsid, true))
	must(fp.Forget(vsid, macB))
	if got := run(frame(macB, macA, 60), ia.Index); got != xdpRetPass {
		t.Errorf("after b was forgotten: action %d, want pass", got)
	}
	// Fast-path frames are counted on both ports.
	if c := fp.counters(pa); c != (fastPathCounters{RxFrames: 2, RxBytes: 60 + 14, TxFrames: 1, TxBytes: 60}) {
		t.Errorf("counters of a: %+v, want 2 frames (74 bytes) in and 1 (60 bytes) out", c)
	}
	// A port that leaves and comes back (it gets its counter slot again)
	// starts from zero, and is out of its VSID until told again.
	fp.leave(pa)
	must(fp.join(pa))
	if c := fp.counters(pa); c != (fastPathCounters{}) {
		t.Errorf("counters of a after leave and join: %+v, want zero", c)
	}
	if got := run(frame(macB, macA, 60), ia.Index); got != xdpRetPass {
		t.Errorf("after a joined again without a VSID: action %d, want pass", got)
	}
}

// BenchmarkFastPathProgram runs the fast path's XDP program on a known
// unicast frame in test mode: the program's own cost per frame (lookups,
// counters, the redirect decision), without a device's.
func BenchmarkFastPathProgram(b *testing.B) {
	r := newFastPathRig(b, "xfpb0", "xfpb1")
	const vsid = 5001
	macA, macB := uint64(0x02000000000a), uint64(0x02000000000b)
	for _, err := range []error{r.fp.SetVSID(r.pa, vsid, true), r.fp.SetVSID(r.pb, vsid, true), r.fp.Learn(vsid, macA, r.pa), r.fp.Learn(vsid, macB, r.pb)} {
		if err != nil {
			b.Fatal(err)
		}
	}
	data := fastPathFrame(macB, macA, 64)
	b.ReportAllocs()
	b.ResetTimer()
	ret, err := r.prog.Program.Run(&ebpf.RunOptions{Data: data, Context: xdpMD{DataEnd: uint32(len(data)), IngressIfindex: uint32(r.ina)}, Repeat: uint32(b.N)})
	if err != nil {
		b.Fatal(err)
	}
	if ret != xdpRetRedirect {
		b.Fatalf("XDP action %d, want redirect", ret)
	}
}
