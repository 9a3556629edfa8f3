package header

import (
	"encoding/binary"
	"testing"
)

// udpFrame builds Ethernet+IPv4+UDP with the given addresses and ports.
func udpFrame(src, dst [4]byte, sport, dport uint16) []byte {
	b := make([]byte, 14+20+8+4)
	Ethernet(b).Encode(vm2MAC, vm1MAC, EtherTypeIPv4)
	IPv4(b[14:]).Encode(&IPv4Fields{TotalLength: 32, Protocol: ProtocolUDP, Src: src, Dst: dst})
	binary.BigEndian.PutUint16(b[34:], sport)
	binary.BigEndian.PutUint16(b[36:], dport)
	binary.BigEndian.PutUint16(b[38:], 12)
	return b
}

func TestFlowHash(t *testing.T) {
	f := udpFrame(a4("10.0.0.1"), a4("10.0.0.2"), 1000, 2000)
	h := FlowHash(f)
	if FlowHash(append([]byte(nil), f...)) != h {
		t.Fatal("not deterministic")
	}
	// Ethernet padding does not change the flow.
	if FlowHash(append(append([]byte(nil), f...), 0, 0, 0, 0, 0, 0)) != h {
		t.Fatal("padding changed the hash")
	}
	// Each field of the 5-tuple matters.
	for name, g := range map[string][]byte{
		"sport": udpFrame(a4("10.0.0.1"), a4("10.0.0.2"), 1001, 2000),
		"dport": udpFrame(a4("10.0.0.1"), a4("10.0.0.2"), 1000, 2001),
		"src":   udpFrame(a4("10.0.0.3"), a4("10.0.0.2"), 1000, 2000),
		"dst":   udpFrame(a4("10.0.0.1"), a4("10.0.0.3"), 1000, 2000),
	} {
		if FlowHash(g) == h {
			t.Errorf("%s does not change the hash", name)
		}
	}
	tcp := append([]byte(nil), f...)
	tcp[23] = ProtocolTCP
	if FlowHash(tcp) == h {
		t.Error("protocol does not change the hash")
	}
	// Fragments of one datagram hash alike, whatever the payload.
	first := append([]byte(nil), f...)
	binary.BigEndian.PutUint16(first[20:], 0x2000)
	later := append([]byte(nil), f...)
	binary.BigEndian.PutUint16(later[20:], 10)
	copy(later[34:], []byte{9, 9, 9, 9})
	if FlowHash(first) != FlowHash(later) {
		t.Error("fragments of one datagram hash differently")
	}
	// Non-IP frames hash on MACs and type; IPv6 on addresses and ports.
	arp := gold(t, "arpRequest")
	arp2 := append([]byte(nil), arp...)
	arp2[11] = 9
	if FlowHash(arp) == FlowHash(arp2) {
		t.Error("source MAC does not change a non-IP hash")
	}
	v6 := gold(t, "big6")
	v62 := append([]byte(nil), v6...)
	v62[55]++ // source port
	if FlowHash(v6) == FlowHash(v62) {
		t.Error("IPv6 port does not change the hash")
	}
	for n := 0; n < 60; n++ { // short and malformed frames are fine
		FlowHash(v6[:n])
		FlowID(v6[:n])
	}
}

// TestFlowIDSpread: 8192 UDP flows fill the 256 FlowIDs evenly enough.
func TestFlowIDSpread(t *testing.T) {
	var count [256]int
	const flows = 8192
	for i := range flows {
		f := udpFrame(a4("10.0.0.1"), [4]byte{10, 0, byte(i >> 8), byte(i)}, uint16(32768+i), 443)
		count[FlowID(f)]++
	}
	for id, c := range count {
		if c < flows/256/3 || c > flows/256*3 {
			t.Fatalf("FlowID %d has %d of %d flows", id, c, flows)
		}
	}
}

// TestFlowHashNotZero: a port reads Meta.Hash 0 as "not computed", so
// FlowHash never returns it. The murmur3 finaliser of this flow (found by
// search) truncates to 0; FlowHash returns 1 instead.
func TestFlowHashNotZero(t *testing.T) {
	if h := FlowHash(udpFrame(a4("10.212.209.238"), a4("10.0.0.2"), 1174, 2000)); h != 1 {
		t.Fatalf("FlowHash = %#x, want 1 (0 mapped to 1)", h)
	}
	for n := range EthernetHeaderLen {
		if FlowHash(make([]byte, n)) == 0 {
			t.Fatalf("FlowHash of %d bytes is 0", n)
		}
	}
}
