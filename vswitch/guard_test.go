package vswitch

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/xvswitch/xvs/header"
)

// ipv6Frame builds Ethernet/IPv6 with next header next and payload
// (extension headers and what follows them).
func ipv6Frame(dst, src net.HardwareAddr, from, to string, next uint8, payload []byte) []byte {
	f := make([]byte, 14+40+len(payload))
	copy(f[0:6], dst)
	copy(f[6:12], src)
	f[12], f[13] = 0x86, 0xdd
	header.IPv6(f[14:]).Encode(uint16(len(payload)), next, 255, netip.MustParseAddr(from).As16(), netip.MustParseAddr(to).As16())
	copy(f[54:], payload)
	return f
}

// hopByHop is a Hop-by-Hop header (8 bytes, PadN) before next.
func hopByHop(next uint8, rest []byte) []byte {
	return append([]byte{next, 0, 1, 4, 0, 0, 0, 0}, rest...)
}

// routerAdvert is an RA announcing a default router (no options).
var routerAdvert = []byte{header.ICMPv6RouterAdvert, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0}

// udp4From builds a broadcast Ethernet/IPv4/UDP frame between ports sport
// and dport with a BOOTP op byte op.
func udp4From(src net.HardwareAddr, from string, sport, dport uint16, op byte) []byte {
	f := udp4([6]byte(bcast), [6]byte(src), from, "255.255.255.255", 64)
	binary.BigEndian.PutUint16(f[34:], sport)
	binary.BigEndian.PutUint16(f[36:], dport)
	f[42] = op
	return f
}

func udp6(sport, dport uint16, msgType byte) []byte {
	u := make([]byte, 16)
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], 16)
	u[8] = msgType
	return u
}

// TestSourceMACGuard: on a port of a virtual subnet, a VM that sends any
// frame from a MAC the policy does not give its port - broadcast ARP,
// non-IP, multicast, VLAN-tagged, link-local IPv6 - has it dropped as
// spoof: no other port sees it, and the learning bridge does not learn
// the stolen MAC (b's traffic still reaches b).
func TestSourceMACGuard(t *testing.T) {
	r := newRig(t, Config{Policy: testPolicy(t)}, map[string]uint32{"a": 5001, "b": 5001, "x": 5002})
	tagged := frame(bcast, macB, "tagged")
	tagged = append(append(append([]byte(nil), tagged[:12]...), 0x81, 0x00, 0, 1), tagged[12:]...)
	attacks := map[string][]byte{
		"arp":       arpRequest(t, [6]byte(macB), "10.0.0.20", "10.0.0.10"),
		"non-IP":    frame(bcast, macB, "claim b"),
		"multicast": frame(mac("01:00:5e:00:00:01"), macB, "mcast"),
		"unicast":   frame(macA, macB, "to a"),
		"tagged":    tagged,
		"linkLocal": ipv6Frame(mac("33:33:00:00:00:01"), macB, "fe80::b", "ff02::1", header.ProtocolUDP, udp6(9, 9, 0)),
		"otherVSID": frame(bcast, mac("02:00:00:00:00:2b"), "x's MAC"),
		"unknown":   frame(bcast, mac("02:00:00:00:00:ee"), "nobody's"),
	}
	for name, f := range attacks {
		r.send("a", f)
		r.expect(nil)
		if t.Failed() {
			t.Fatalf("%s from a with a MAC not its own reached a port", name)
		}
	}
	if n := r.drops("a", DropSpoof); n != uint64(len(attacks)) {
		t.Fatalf("spoof drops on a: %d, want %d", n, len(attacks))
	}
	// Honest frames still forward: b's broadcast floods to a, and a's
	// unicast to b's MAC reaches b (the bridge did not learn b's MAC on a).
	r.sendExpect("b", frame(bcast, macB, "b"), "a")
	r.sendExpect("a", frame(macB, macA, "a to b"), "b")
}

// TestRAGuard: a Router Advertisement from a VM, plain or behind a
// Hop-by-Hop header, reaches no port and is counted ra-guard; a chain
// that cannot be walked is malformed; an MLD report behind Hop-by-Hop (a
// VM's ordinary multicast) still floods.
func TestRAGuard(t *testing.T) {
	r := newRig(t, Config{Policy: testPolicy(t)}, map[string]uint32{"a": 5001, "b": 5001, "x": 5002})
	allNodes := mac("33:33:00:00:00:01")
	r.send("a", ipv6Frame(allNodes, macA, "fe80::a", "ff02::1", header.ProtocolICMPv6, routerAdvert))
	r.send("a", ipv6Frame(allNodes, macA, "fe80::a", "ff02::1", header.ProtocolIPv6HopByHop, hopByHop(header.ProtocolICMPv6, routerAdvert)))
	r.send("a", ipv6Frame(allNodes, macA, "fe80::a", "ff02::1", header.ProtocolIPv6HopByHop,
		hopByHop(header.ProtocolIPv6Opts, hopByHop(header.ProtocolICMPv6, routerAdvert))))
	r.send("a", ipv6Frame(mac("02:00:00:00:00:0b"), macA, "fd00:1::10", "fd00:1::20", header.ProtocolIPv6Opts, hopByHop(header.ProtocolICMPv6, routerAdvert)))
	r.expect(nil)
	if n := r.drops("a", DropRAGuard); n != 4 {
		t.Fatalf("ra-guard drops on a: %d, want 4", n)
	}
	if n := r.drops("a", DropProxied); n != 0 {
		t.Fatalf("proxied drops on a: %d, want 0 (an RA is ra-guard)", n)
	}
	// Hop-by-Hop claims 32 bytes, the packet has 16.
	bad := hopByHop(header.ProtocolICMPv6, routerAdvert[:8])
	bad[1] = 3
	r.send("a", ipv6Frame(allNodes, macA, "fe80::a", "ff02::1", header.ProtocolIPv6HopByHop, bad))
	r.expect(nil)
	if n := r.drops("a", DropMalformed); n != 1 {
		t.Fatalf("malformed drops on a: %d, want 1", n)
	}
	mld := ipv6Frame(mac("33:33:00:00:00:16"), macB, "fe80::b", "ff02::16", header.ProtocolIPv6HopByHop,
		hopByHop(header.ProtocolICMPv6, []byte{143, 0, 0, 0, 0, 0, 0, 0}))
	r.sendExpect("b", mld, "a")
}

// TestDHCPGuard: DHCP and DHCPv6 server messages from a VM reach no port
// and are counted dhcp-guard; a VM's own DHCP discover and DHCPv6
// solicit still flood.
func TestDHCPGuard(t *testing.T) {
	r := newRig(t, Config{Policy: testPolicy(t)}, map[string]uint32{"a": 5001, "b": 5001, "x": 5002})
	dhcp6 := mac("33:33:00:01:00:02")
	r.send("a", udp4From(macA, "10.0.0.10", 67, 68, 2))                                                                    // offer/ack
	r.send("a", udp4From(macA, "10.0.0.10", 67, 67, 2))                                                                    // to a relay
	r.send("a", ipv6Frame(macB, macA, "fe80::a", "fe80::b", header.ProtocolUDP, udp6(547, 546, 7)))                        // reply
	r.send("a", ipv6Frame(dhcp6, macA, "fe80::a", "ff02::1:2", header.ProtocolIPv6Opts, hopByHop(17, udp6(547, 547, 13)))) // relay-reply
	r.expect(nil)
	if n := r.drops("a", DropDHCPGuard); n != 4 {
		t.Fatalf("dhcp-guard drops on a: %d, want 4", n)
	}
	discover := udp4From(macB, "0.0.0.0", 68, 67, 1)
	r.sendExpect("b", discover, "a")
	relayForward := udp4From(macB, "10.0.0.20", 67, 67, 1) // a relay's request
	r.sendExpect("b", relayForward, "a")
	solicit := ipv6Frame(dhcp6, macB, "fe80::b", "ff02::1:2", header.ProtocolUDP, udp6(546, 547, 1))
	r.sendExpect("b", solicit, "a")
}

// TestTaggedFramesFromVMDropped: a virtual subnet carries no 802.1Q tags,
// so a tagged frame from a VM's own MAC - here a Router Advertisement
// behind a priority tag (VLAN 0, which Linux receivers take as untagged),
// and a tagged broadcast - reaches no port and is counted malformed
// rather than slipping past the RA and DHCP guards.
func TestTaggedFramesFromVMDropped(t *testing.T) {
	r := newRig(t, Config{Policy: testPolicy(t)}, map[string]uint32{"a": 5001, "b": 5001, "x": 5002})
	tag := func(f []byte, tpid uint16) []byte {
		return append(append(append([]byte(nil), f[:12]...), byte(tpid>>8), byte(tpid), 0, 0), f[12:]...)
	}
	ra := ipv6Frame(mac("33:33:00:00:00:01"), macA, "fe80::a", "ff02::1", header.ProtocolICMPv6, routerAdvert)
	r.send("a", tag(ra, header.EtherTypeVLAN))
	r.send("a", tag(frame(bcast, macA, "tagged"), header.EtherTypeQinQ))
	r.expect(nil)
	if n := r.drops("a", DropMalformed); n != 2 {
		t.Fatalf("malformed drops on a: %d, want 2 (tagged frames)", n)
	}
	r.sendExpect("a", frame(bcast, macA, "untagged"), "b")
}
