package extensions

import (
	"encoding/binary"
	"testing"

	"github.com/xvswitch/xvs/extensions/api"
	"github.com/xvswitch/xvs/header"
)

func ipv4UDP(sport, dport uint16, frag uint16) []byte {
	f := make([]byte, 60)
	binary.BigEndian.PutUint16(f[12:], header.EtherTypeIPv4)
	f[14], f[23] = 0x45, 17
	binary.BigEndian.PutUint16(f[16:], uint16(len(f)-14)) // total length: the frame carries no padding
	binary.BigEndian.PutUint16(f[20:], frag)
	copy(f[26:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	binary.BigEndian.PutUint16(f[34:], sport)
	binary.BigEndian.PutUint16(f[36:], dport)
	return f
}

func ipv6TCP(sport, dport uint16) []byte {
	f := make([]byte, 74)
	binary.BigEndian.PutUint16(f[12:], header.EtherTypeIPv6)
	f[14], f[20] = 0x60, 6
	f[22+15], f[38+15] = 1, 2
	binary.BigEndian.PutUint16(f[54:], sport)
	binary.BigEndian.PutUint16(f[56:], dport)
	return f
}

func TestMakeFlowKey(t *testing.T) {
	arp := make([]byte, 42)
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	copy(arp[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(arp[6:12], []byte{2, 0, 0, 0, 0, 1})
	short := ipv4UDP(1, 2, 0)[:30]
	for _, tc := range []struct {
		name         string
		frame        []byte
		proto        uint64
		sport, dport uint64
	}{
		{"ipv4 udp", ipv4UDP(1000, 53, 0), 17, 1000, 53},
		{"ipv4 first fragment", ipv4UDP(1000, 53, 0x2000), 17, 1000, 53},
		{"ipv4 later fragment has no ports", ipv4UDP(1000, 53, 0x0010), 17, 0, 0},
		{"ipv6 tcp", ipv6TCP(40000, 443), 6, 40000, 443},
		{"arp keyed by MACs", arp, 0, 0, 0},
		{"truncated ipv4", short, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var k FlowKey
			MakeFlowKey(&k, tc.frame, 5001, api.Egress, 3, 4)
			if got := k.Meta >> 16 & 0xff; got != tc.proto {
				t.Errorf("proto %d, want %d", got, tc.proto)
			}
			if s, d := k.Ports>>16&0xffff, k.Ports&0xffff; s != tc.sport || d != tc.dport {
				t.Errorf("ports %d %d, want %d %d", s, d, tc.sport, tc.dport)
			}
			if k.Meta>>32 != 5001 || k.Meta>>24&0xff != uint64(api.Egress) || k.Ports>>48 != 3 || k.Ports>>32&0xffff != 4 {
				t.Errorf("metadata not in the key: %+v", k)
			}
		})
	}
	var a, b FlowKey
	MakeFlowKey(&a, ipv4UDP(1, 2, 0), 5001, api.Ingress, 1, api.NoPort)
	MakeFlowKey(&b, ipv4UDP(1, 3, 0), 5001, api.Ingress, 1, api.NoPort)
	if a == b || a.Hash() == b.Hash() {
		t.Error("two flows share a key or hash")
	}
	MakeFlowKey(&b, ipv4UDP(1, 2, 0), 5002, api.Ingress, 1, api.NoPort)
	if a == b {
		t.Error("the VSID is not in the key")
	}
}

// TestMakeFlowKeyReads: what the key holds of frames beyond plain UDP and
// TCP, as header.ReadFiveTuple reads them.
func TestMakeFlowKeyReads(t *testing.T) {
	edit := func(f []byte, fn func(f []byte)) []byte { fn(f); return f }
	icmp := edit(ipv4UDP(0, 0, 0), func(f []byte) { f[23], f[34], f[35] = header.ProtocolICMP, 8, 0 })
	opts := edit(make([]byte, 64), func(f []byte) {
		copy(f, ipv4UDP(0, 0, 0)[:34])
		f[14] = 0x46 // four bytes of options
		binary.BigEndian.PutUint16(f[38:], 1000)
		binary.BigEndian.PutUint16(f[40:], 53)
	})
	tagged := append(append(append([]byte(nil), ipv4UDP(1000, 53, 0)[:12]...), 0x81, 0, 0, 7), ipv4UDP(1000, 53, 0)[12:]...)
	for _, tc := range []struct {
		name         string
		frame        []byte
		et, proto    uint64
		sport, dport uint64
		byMAC        bool
	}{
		{"icmp type and code", icmp, header.EtherTypeIPv4, header.ProtocolICMP, 8, 0, false},
		{"ports after ipv4 options", opts, header.EtherTypeIPv4, header.ProtocolUDP, 1000, 53, false},
		{"802.1Q tagged: by MACs", tagged, header.EtherTypeVLAN, 0, 0, 0, true},
		{"ipv4 version 6: by MACs", edit(ipv4UDP(1000, 53, 0), func(f []byte) { f[14] = 0x65 }), header.EtherTypeIPv4, 0, 0, 0, true},
		{"ipv4 header length 16: by MACs", edit(ipv4UDP(1000, 53, 0), func(f []byte) { f[14] = 0x44 }), header.EtherTypeIPv4, 0, 0, 0, true},
		{"shorter than ethernet", make([]byte, 10), 0, 0, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var k FlowKey
			MakeFlowKey(&k, tc.frame, 5001, api.Ingress, 3, 4)
			if k.Meta&0xffff != tc.et || k.Meta>>16&0xff != tc.proto || k.Ports>>16&0xffff != tc.sport || k.Ports&0xffff != tc.dport {
				t.Errorf("key %+v: want ethertype %#x, protocol %d, ports %d %d", k, tc.et, tc.proto, tc.sport, tc.dport)
			}
			var mac [2]uint64
			if len(tc.frame) >= 14 {
				mac[0] = uint64(binary.BigEndian.Uint32(tc.frame[6:10]))<<16 | uint64(binary.BigEndian.Uint16(tc.frame[10:12]))
			}
			if byMAC := k.Src == mac; byMAC != tc.byMAC {
				t.Errorf("keyed by MAC %v, want %v: %+v", byMAC, tc.byMAC, k)
			}
		})
	}
}

func FuzzMakeFlowKey(f *testing.F) {
	f.Add(ipv4UDP(1000, 53, 0))
	f.Add(ipv6TCP(1, 2))
	f.Add(make([]byte, 14))
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 14 {
			return
		}
		var a, b FlowKey
		MakeFlowKey(&a, frame, 1, api.Ingress, 0, 1)
		MakeFlowKey(&b, append([]byte(nil), frame...), 1, api.Ingress, 0, 1)
		if a != b || !a.equal(&b) || a.Hash() != b.Hash() {
			t.Fatal("the key of a frame is not a function of its bytes")
		}
		// The quick path for plain IPv4 keys a frame as the one reader does.
		ref := FlowKey{Meta: uint64(1)<<32 | uint64(api.Ingress)<<24, Ports: uint64(1) << 32}
		ref.fromTuple(frame)
		if a != ref {
			t.Fatalf("MakeFlowKey %+v, ReadFiveTuple's key %+v", a, ref)
		}
	})
}

func TestCache(t *testing.T) {
	c := NewCache(16) // 4 sets of 4
	keys := make([]FlowKey, 5)
	for i := range keys {
		MakeFlowKey(&keys[i], ipv4UDP(uint16(i), 1, 0), 5001, api.Ingress, 0, api.NoPort)
	}
	const sameSet = 7 // five keys forced into one set of four
	for i := range 4 {
		c.Slot(&keys[i], sameSet, 0, 10).Verdict = uint8(i)
	}
	for i := range 4 {
		if e := c.Lookup(&keys[i], sameSet, 0); e == nil || e.Verdict != uint8(i) {
			t.Fatalf("key %d: %+v", i, e)
		}
	}
	c.Slot(&keys[4], sameSet, 0, 10)
	n := 0
	for i := range 5 {
		if c.Lookup(&keys[i], sameSet, 0) != nil {
			n++
		}
	}
	if n != 4 {
		t.Fatalf("%d of 5 keys of one full set live, want 4", n)
	}
	if c.Lookup(&keys[4], sameSet, 10) != nil {
		t.Error("an expired entry was found")
	}
	if c.Lookup(&keys[4], sameSet+1, 0) != nil {
		t.Error("found under another hash")
	}
	c.Invalidate()
	for i := range 5 {
		if c.Lookup(&keys[i], sameSet, 0) != nil {
			t.Fatal("an entry survived Invalidate")
		}
	}
}

func TestLatencyQuantile(t *testing.T) {
	var c Counters
	for range 99 {
		c.ObserveLatency(3_000) // 3 µs
	}
	c.ObserveLatency(5_000_000) // 5 ms
	if p50 := c.LatencyQuantile(0.5); p50 != 4 {
		t.Errorf("p50 %d µs, want 4 (bucket [2,4))", p50)
	}
	if p100 := c.LatencyQuantile(1); p100 < 4096 {
		t.Errorf("max %d µs, want >= 4096", p100)
	}
}
