package header

import (
	"encoding/binary"
	"testing"
)

// addSeeds adds every golden frame to a fuzz corpus.
func addSeeds(f *testing.F) {
	for name := range golden {
		f.Add(gold(f, name))
	}
	f.Add([]byte{})
	f.Add(make([]byte, 14))
}

// FuzzFrame feeds arbitrary bytes, as an Ethernet frame, to every parser
// and to the builders that answer what the parsers accept, and checks that
// nothing panics, every view stays inside the input and every built frame
// parses back with valid checksums.
func FuzzFrame(f *testing.F) {
	addSeeds(f)
	var out [ICMPv6ErrorMaxFrameLen]byte
	f.Fuzz(func(t *testing.T, b []byte) {
		FlowHash(b)
		FlowID(b)
		if r, err := DecapNVGRE(b); err == nil {
			if r.Inner < 0 || r.InnerLen < EthernetHeaderLen || r.Inner+r.InnerLen > len(b) || !ValidVSID(r.VSID) {
				t.Fatalf("decap result out of bounds: %+v (len %d)", r, len(b))
			}
		}
		ParseNVGRE(b)
		e, err := ParseEthernet(b)
		if err != nil {
			return
		}
		switch e.Type() {
		case EtherTypeARP:
			a, err := ParseARP(e.Payload())
			if err != nil {
				return
			}
			a.IsProbe()
			a.IsGratuitous()
			if n, err := WriteARPReply(out[:], a, vm2MAC); err == nil {
				if r, err := ParseARP(out[EthernetHeaderLen:n]); err != nil || r.Op() != ARPReply || r.TPA() != a.SPA() {
					t.Fatalf("reply %x: %v", out[:n], err)
				}
			}
		case EtherTypeIPv4:
			ip, err := ParseIPv4(e.Payload())
			if err != nil {
				return
			}
			_ = ip.Options()
			_ = ip.Payload()
			ip.TransportChecksum()
			if n, err := WriteICMPv4FragNeeded(out[:], e.Src(), ip, swMAC, a4("10.0.0.254"), 1400); err == nil {
				r, err := ParseIPv4(out[EthernetHeaderLen:n])
				if err != nil || !r.ChecksumValid() || Checksum(r.Payload()) != 0 {
					t.Fatalf("frag needed %x: %v", out[:n], err)
				}
			}
			valid := ip.ChecksumValid()
			ip.SetAddrs(a4("192.0.2.1"), a4("198.51.100.2"))
			ip.DecTTL()
			if valid && !ip.ChecksumValid() {
				t.Fatal("rewrite broke the IP checksum")
			}
		case EtherTypeIPv6:
			ip, err := ParseIPv6(e.Payload())
			if err != nil {
				return
			}
			if ns, err := ParseNeighborSolicit(ip); err == nil {
				ns.SourceLinkAddr()
				n, err := WriteNeighborAdvert(out[:], e.Src(), ip, ns, vm2MAC, true)
				if err != nil {
					t.Fatal(err)
				}
				r, err := ParseIPv6(out[EthernetHeaderLen:n])
				if err != nil || !ICMPv6ChecksumValid(r) {
					t.Fatalf("NA %x: %v", out[:n], err)
				}
			}
			if n, err := WriteICMPv6PacketTooBig(out[:], e.Src(), ip, swMAC, a16("fd00::fe"), 1280); err == nil {
				r, err := ParseIPv6(out[EthernetHeaderLen:n])
				if err != nil || !ICMPv6ChecksumValid(r) || len(r) > IPv6MinMTU {
					t.Fatalf("PTB %x: %v", out[:n], err)
				}
			}
			ip.DecHopLimit()
		}
	})
}

// FuzzIPv4Rewrite checks the incremental checksum updates against full
// recomputation: a packet whose checksums are right before SetAddrs and
// DecTTL has right checksums after.
func FuzzIPv4Rewrite(f *testing.F) {
	for _, name := range []string{"ipv4TCP", "ipv4UDP", "ipv4UDPNoCsum", "ipv4ICMP"} {
		f.Add(gold(f, name), uint32(0xc0a80a07), uint32(0xac1063c8))
	}
	f.Fuzz(func(t *testing.T, b []byte, src, dst uint32) {
		ip, err := ParseIPv4(b)
		if err != nil || !ip.ChecksumValid() {
			return
		}
		full, ok := ip.TransportChecksum()
		at := map[uint8]int{ProtocolTCP: 16, ProtocolUDP: 6}[ip.Protocol()] + ip.HeaderLen()
		if ok && !sameChecksum(full, binary.BigEndian.Uint16(ip[at:])) {
			ok = false // transport checksum wrong to begin with
		}
		udpNone := ip.Protocol() == ProtocolUDP && ok && ip[at] == 0 && ip[at+1] == 0
		var s, d [4]byte
		binary.BigEndian.PutUint32(s[:], src)
		binary.BigEndian.PutUint32(d[:], dst)
		ip.SetAddrs(s, d)
		ip.DecTTL()
		if !ip.ChecksumValid() {
			t.Fatalf("ip checksum %#x, want %#x", ip.Checksum(), ip.ComputeChecksum())
		}
		if ok && !udpNone {
			full, _ = ip.TransportChecksum()
			if got := binary.BigEndian.Uint16(ip[at:]); !sameChecksum(got, full) {
				t.Fatalf("transport checksum %#x, want %#x", got, full)
			}
		}
	})
}

// FuzzNVGRE encapsulates arbitrary inner frames with arbitrary parameters
// and checks that decapsulation gives them back.
func FuzzNVGRE(f *testing.F) {
	f.Add(gold(f, "inner"), uint32(5001), uint8(0xab), uint16(0), 42)
	f.Add(gold(f, "arpRequest"), uint32(0xfffffe), uint8(0), uint16(7), 100)
	f.Add([]byte{}, uint32(0), uint8(0), uint16(0), 0)
	f.Fuzz(func(t *testing.T, inner []byte, vsid uint32, flowID uint8, id uint16, off int) {
		if off < 0 || off > 4096 {
			return
		}
		buf := make([]byte, off+len(inner))
		copy(buf[off:], inner)
		p := testParams
		p.VSID, p.ID = vsid, id
		start, err := EncapNVGRE(buf, off, len(inner), &p, flowID)
		if err != nil {
			if off >= NVGREOverhead && ValidVSID(vsid) && len(inner) <= 0xffff-28 {
				t.Fatalf("encap: %v", err)
			}
			return
		}
		r, err := DecapNVGRE(buf[start:])
		switch {
		case len(inner) < EthernetHeaderLen:
			if err != ErrNVGREInnerLength {
				t.Fatalf("short inner: %v", err)
			}
		case Ethernet(inner).VLANTagged():
			if err != ErrVLANTagged {
				t.Fatalf("tagged inner: %v", err)
			}
		case err != nil:
			t.Fatalf("decap: %v", err)
		case r.VSID != vsid || r.FlowID != flowID || r.Inner != NVGREOverhead || r.InnerLen != len(inner):
			t.Fatalf("decap: %+v", r)
		}
	})
}
