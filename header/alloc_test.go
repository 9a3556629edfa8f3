package header

import (
	"testing"
)

// hot holds the buffers of the allocation test and the benchmarks, set up
// once, as a port's frame memory would be.
type hot struct {
	arp, tcp, ns, nvgre, big []byte
	encap                    []byte // headroom + inner frame
	out                      []byte
}

func newHot(t testing.TB) *hot {
	inner := gold(t, "inner")
	h := &hot{
		arp:   gold(t, "arpRequest"),
		tcp:   gold(t, "ipv4TCP"),
		ns:    gold(t, "ns"),
		nvgre: gold(t, "nvgre"),
		big:   gold(t, "big"),
		encap: make([]byte, 128+len(inner)),
		out:   make([]byte, ICMPv6ErrorMaxFrameLen),
	}
	copy(h.encap[128:], inner)
	return h
}

var (
	caA = [4]byte{10, 0, 0, 1}
	caB = [4]byte{10, 0, 0, 2}
	paA = [4]byte{192, 168, 10, 7}
	paB = [4]byte{172, 16, 99, 200}
)

// TestZeroAllocs asserts that every hot-path function allocates nothing on
// valid input (STYLE.md principle 2).
func TestZeroAllocs(t *testing.T) {
	h := newHot(t)
	innerLen := len(h.encap) - 128
	p := testParams
	cases := map[string]func(){
		"ParseEthernet+ParseARP+WriteARPReply": func() {
			e, _ := ParseEthernet(h.arp)
			a, _ := ParseARP(e.Payload())
			if _, err := WriteARPReply(h.out, a, vm2MAC); err != nil {
				t.Fatal(err)
			}
		},
		"ParseIPv4+SetAddrs+DecTTL": func() {
			ip, _ := ParseIPv4(h.tcp)
			ip.SetAddrs(paA, paB)
			ip.SetAddrs(caA, caB)
			ip.DecTTL()
			_ = ip.SrcAddr()
		},
		"FlowID+EncapNVGRE": func() {
			if _, err := EncapNVGRE(h.encap, 128, innerLen, &p, FlowID(h.encap[128:])); err != nil {
				t.Fatal(err)
			}
		},
		"DecapNVGRE": func() {
			if _, err := DecapNVGRE(h.nvgre); err != nil {
				t.Fatal(err)
			}
		},
		"DecapNVGRE error": func() {
			if _, err := DecapNVGRE(h.arp); err != ErrEtherType {
				t.Fatal(err)
			}
		},
		"ParseNeighborSolicit+WriteNeighborAdvert": func() {
			ip, _ := ParseIPv6(h.ns[EthernetHeaderLen:])
			ns, err := ParseNeighborSolicit(ip)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := WriteNeighborAdvert(h.out, vm1MAC, ip, ns, vm2MAC, true); err != nil {
				t.Fatal(err)
			}
			_ = ns.TargetAddr()
		},
		"WriteICMPv4FragNeeded": func() {
			ip, _ := ParseIPv4(h.big[EthernetHeaderLen:])
			if _, err := WriteICMPv4FragNeeded(h.out, vm1MAC, ip, swMAC, caB, 1400); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, fn := range cases {
		if n := testing.AllocsPerRun(100, fn); n != 0 {
			t.Errorf("%s: %v allocations per run", name, n)
		}
	}
}

func reportMpps(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mpps")
}

func BenchmarkParseIPv4(b *testing.B) {
	h := newHot(b)
	b.ReportAllocs()
	for b.Loop() {
		ip, err := ParseIPv4(h.tcp)
		if err != nil || ip.Protocol() != ProtocolTCP {
			b.Fatal(err)
		}
	}
	reportMpps(b)
}

// BenchmarkRewrite is the IP rewrite of one packet: both addresses and
// the TTL, with the IP and TCP checksums updated.
func BenchmarkRewrite(b *testing.B) {
	h := newHot(b)
	ip, _ := ParseIPv4(h.tcp)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i&1 == 0 {
			ip.SetAddrs(paA, paB)
		} else {
			ip.SetAddrs(caA, caB)
		}
		ip[8] = 64
		ip.DecTTL()
	}
	reportMpps(b)
}

func BenchmarkEncapNVGRE(b *testing.B) {
	h := newHot(b)
	n := len(h.encap) - 128
	p := testParams
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncapNVGRE(h.encap, 128, n, &p, FlowID(h.encap[128:])); err != nil {
			b.Fatal(err)
		}
	}
	reportMpps(b)
}

func BenchmarkDecapNVGRE(b *testing.B) {
	h := newHot(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecapNVGRE(h.nvgre); err != nil {
			b.Fatal(err)
		}
	}
	reportMpps(b)
}

func BenchmarkFlowHash(b *testing.B) {
	h := newHot(b)
	inner := h.encap[128:]
	b.ReportAllocs()
	for b.Loop() {
		FlowHash(inner)
	}
	reportMpps(b)
}

func BenchmarkARPReply(b *testing.B) {
	h := newHot(b)
	b.ReportAllocs()
	for b.Loop() {
		a, _ := ParseARP(h.arp[EthernetHeaderLen:])
		if _, err := WriteARPReply(h.out, a, vm2MAC); err != nil {
			b.Fatal(err)
		}
	}
	reportMpps(b)
}

func BenchmarkNeighborAdvert(b *testing.B) {
	h := newHot(b)
	b.ReportAllocs()
	for b.Loop() {
		ip, _ := ParseIPv6(h.ns[EthernetHeaderLen:])
		ns, err := ParseNeighborSolicit(ip)
		if err != nil {
			b.Fatal(err)
		}
		WriteNeighborAdvert(h.out, vm1MAC, ip, ns, vm2MAC, true)
	}
	reportMpps(b)
}
