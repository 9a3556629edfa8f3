package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/xvswitch/xvs/extensions"
	"github.com/xvswitch/xvs/extensions/api"
)

// Frames are built with gopacket, an independent encoder, so that the
// hand-written parser is checked against someone else's idea of the
// headers.

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
)

func serialize(tb testing.TB, ls ...gopacket.SerializableLayer) []byte {
	tb.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ls...); err != nil {
		tb.Fatalf("serialize: %v", err)
	}
	return bytes.Clone(buf.Bytes())
}

func ethernet(t layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: t}
}

func ip4(src, dst string, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto,
		SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
}

func ip6(src, dst string, next layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: next,
		SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
}

var payload = gopacket.Payload("xvs aclfilter test payload")

func tcp4(tb testing.TB, src, dst string, sport, dport uint16) []byte {
	return serialize(tb, ethernet(layers.EthernetTypeIPv4), ip4(src, dst, layers.IPProtocolTCP),
		&layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), DataOffset: 5, SYN: true}, payload)
}

func udp4(tb testing.TB, src, dst string, sport, dport uint16) []byte {
	return serialize(tb, ethernet(layers.EthernetTypeIPv4), ip4(src, dst, layers.IPProtocolUDP),
		&layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}, payload)
}

func tcp6(tb testing.TB, src, dst string, sport, dport uint16) []byte {
	return serialize(tb, ethernet(layers.EthernetTypeIPv6), ip6(src, dst, layers.IPProtocolTCP),
		&layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), DataOffset: 5, SYN: true}, payload)
}

func udp6(tb testing.TB, src, dst string, sport, dport uint16) []byte {
	return serialize(tb, ethernet(layers.EthernetTypeIPv6), ip6(src, dst, layers.IPProtocolUDP),
		&layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}, payload)
}

func icmp4(tb testing.TB, src, dst string) []byte {
	return serialize(tb, ethernet(layers.EthernetTypeIPv4), ip4(src, dst, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 1, Seq: 1}, payload)
}

func icmp6(tb testing.TB, src, dst string) []byte {
	return serialize(tb, ethernet(layers.EthernetTypeIPv6), ip6(src, dst, layers.IPProtocolICMPv6),
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}, payload)
}

func arp(tb testing.TB) []byte {
	return serialize(tb, ethernet(layers.EthernetTypeARP), &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPRequest, SourceHwAddress: macA, SourceProtAddress: []byte{10, 0, 0, 1},
		DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 0, 0, 2}})
}

// vlanTagged returns untagged with an 802.1Q tag (VLAN 7) after the MACs.
func vlanTagged(untagged []byte) []byte {
	out := make([]byte, 0, len(untagged)+4)
	out = append(out, untagged[:12]...)
	out = append(out, 0x81, 0x00, 0x00, 0x07)
	return append(out, untagged[12:]...)
}

// fragment4 returns a TCP frame as the fragment at offset (8-byte units).
func fragment4(tb testing.TB, offset uint16, more bool) []byte {
	ip := ip4("10.0.0.1", "10.0.0.2", layers.IPProtocolTCP)
	ip.FragOffset = offset
	if more {
		ip.Flags = layers.IPv4MoreFragments
	}
	return serialize(tb, ethernet(layers.EthernetTypeIPv4), ip,
		&layers.TCP{SrcPort: 40000, DstPort: 22, DataOffset: 5}, payload)
}

// mutate returns a copy of b changed by fn.
func mutate(b []byte, fn func(b []byte) []byte) []byte { return fn(bytes.Clone(b)) }

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestParseFrame(t *testing.T) {
	v4 := tcp4(t, "10.0.0.1", "10.0.0.2", 40000, 5201)
	v6 := udp6(t, "fd00::1", "fd00::2", 5353, 53)
	tests := []struct {
		name    string
		frame   []byte
		want    flow
		wantErr error
	}{
		{"tcp4", v4, flow{ip: true, proto: protoTCP, src: addr("10.0.0.1"), dst: addr("10.0.0.2"), ports: true, sport: 40000, dport: 5201}, nil},
		{"udp4", udp4(t, "192.168.1.1", "192.168.1.255", 68, 67), flow{ip: true, proto: protoUDP, src: addr("192.168.1.1"), dst: addr("192.168.1.255"), ports: true, sport: 68, dport: 67}, nil},
		{"icmp4 has no ports", icmp4(t, "10.0.0.1", "10.0.0.2"), flow{ip: true, proto: protoICMP, src: addr("10.0.0.1"), dst: addr("10.0.0.2")}, nil},
		{"tcp6", tcp6(t, "2001:db8::1", "2001:db8::2", 1, 65535), flow{ip: true, proto: protoTCP, src: addr("2001:db8::1"), dst: addr("2001:db8::2"), ports: true, sport: 1, dport: 65535}, nil},
		{"udp6", v6, flow{ip: true, proto: protoUDP, src: addr("fd00::1"), dst: addr("fd00::2"), ports: true, sport: 5353, dport: 53}, nil},
		{"icmp6", icmp6(t, "fe80::1", "ff02::1"), flow{ip: true, proto: protoICMPv6, src: addr("fe80::1"), dst: addr("ff02::1")}, nil},
		{"arp is not ip", arp(t), flow{}, nil},
		{"vlan tcp4", vlanTagged(v4), flow{tagged: true, ip: true, proto: protoTCP, src: addr("10.0.0.1"), dst: addr("10.0.0.2"), ports: true, sport: 40000, dport: 5201}, nil},
		{"vlan arp", vlanTagged(arp(t)), flow{tagged: true}, nil},
		{"ethernet padding ignored", append(bytes.Clone(v4), make([]byte, 20)...), flow{ip: true, proto: protoTCP, src: addr("10.0.0.1"), dst: addr("10.0.0.2"), ports: true, sport: 40000, dport: 5201}, nil},
		{"first fragment has ports", fragment4(t, 0, true), flow{ip: true, proto: protoTCP, src: addr("10.0.0.1"), dst: addr("10.0.0.2"), ports: true, sport: 40000, dport: 22}, nil},
		{"non-first fragment has none", fragment4(t, 185, false), flow{ip: true, proto: protoTCP, src: addr("10.0.0.1"), dst: addr("10.0.0.2")}, nil},
		{"ipv4 options skipped", mutate(v4, func(b []byte) []byte {
			// IHL 6: four bytes of options (NOPs) before TCP.
			out := append(bytes.Clone(b[:34]), 1, 1, 1, 1)
			out = append(out, b[34:]...)
			out[14] = 0x46
			binary.BigEndian.PutUint16(out[16:18], binary.BigEndian.Uint16(b[16:18])+4)
			return out
		}), flow{ip: true, proto: protoTCP, src: addr("10.0.0.1"), dst: addr("10.0.0.2"), ports: true, sport: 40000, dport: 5201}, nil},
		{"ipv6 fragment header: protocol 44, no ports", serialize(t, ethernet(layers.EthernetTypeIPv6),
			ip6("fd00::1", "fd00::2", layers.IPProtocolIPv6Fragment), gopacket.Payload([]byte{6, 0, 0, 0, 0, 0, 0, 1, 0x9c, 0x40, 0, 22})),
			flow{ip: true, proto: 44, src: addr("fd00::1"), dst: addr("fd00::2")}, nil},

		{"empty", nil, flow{}, errShortEthernet},
		{"13 bytes", v4[:13], flow{}, errShortEthernet},
		{"vlan tag cut", vlanTagged(v4)[:16], flow{}, errShortVLAN},
		{"ipv4 cut", v4[:14+19], flow{}, errShortIPv4},
		{"ipv4 version 6", mutate(v4, func(b []byte) []byte { b[14] = 0x65; return b }), flow{}, errIPv4Version},
		{"ipv4 ihl 4", mutate(v4, func(b []byte) []byte { b[14] = 0x44; return b }), flow{}, errIPv4IHL},
		{"ipv4 ihl beyond frame", mutate(v4, func(b []byte) []byte { b[14] = 0x4f; return b[:14+40] }), flow{}, errIPv4IHL},
		{"ipv4 total length beyond frame", mutate(v4, func(b []byte) []byte { binary.BigEndian.PutUint16(b[16:18], uint16(len(b)-14+1)); return b }), flow{}, errIPv4TotalLen},
		{"ipv4 total length below header", mutate(v4, func(b []byte) []byte { binary.BigEndian.PutUint16(b[16:18], 19); return b }), flow{}, errIPv4TotalLen},
		{"tcp4 with 3 bytes of tcp", mutate(v4, func(b []byte) []byte { binary.BigEndian.PutUint16(b[16:18], 23); return b }), flow{}, errShortPorts},
		{"tiny first fragment", mutate(fragment4(t, 0, true), func(b []byte) []byte { binary.BigEndian.PutUint16(b[16:18], 22); return b[:14+22] }), flow{}, errShortPorts},
		{"ipv6 cut", v6[:14+39], flow{}, errShortIPv6},
		{"ipv6 version 4", mutate(v6, func(b []byte) []byte { b[14] = 0x40; return b }), flow{}, errIPv6Version},
		{"ipv6 payload beyond frame", mutate(v6, func(b []byte) []byte { return b[:len(b)-1] }), flow{}, errIPv6PayloadLen},
		{"udp6 with 2 bytes of udp", mutate(v6, func(b []byte) []byte { binary.BigEndian.PutUint16(b[18:20], 2); return b }), flow{}, errShortPorts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFrame(tt.frame)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("parseFrame error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseFrame = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseFrameAllocs(t *testing.T) {
	frames := [][]byte{tcp4(t, "10.0.0.1", "10.0.0.2", 1, 2), udp6(t, "fd00::1", "fd00::2", 1, 2), arp(t), {1, 2}}
	if n := testing.AllocsPerRun(100, func() {
		for _, f := range frames {
			parseFrame(f)
		}
	}); n != 0 {
		t.Errorf("parseFrame allocates %v times per run, want 0", n)
	}
}

// FuzzParseFrame feeds arbitrary bytes to the parser: it must not panic,
// and what it returns must hold together:
//   - a flow with ports is IP with a protocol that has ports; a non-IP
//     flow has no addresses;
//   - an 802.1Q tag inserted in front of the EtherType changes nothing but
//     the tagged flag (same flow, same error);
//   - bytes appended to a frame that parsed (Ethernet padding) change
//     nothing;
//   - for an untagged IP frame, the protocol, addresses and ports are the
//     ones the switch keys its verdict cache on (extensions.MakeFlowKey),
//     so a cached verdict holds for every frame of the flow.
func FuzzParseFrame(f *testing.F) {
	f.Add(tcp4(f, "10.0.0.1", "10.0.0.2", 40000, 5201))
	f.Add(udp4(f, "10.0.0.1", "10.0.0.255", 68, 67))
	f.Add(icmp4(f, "10.0.0.1", "10.0.0.2"))
	f.Add(tcp6(f, "2001:db8::1", "2001:db8::2", 1, 65535))
	f.Add(udp6(f, "fd00::1", "fd00::2", 5353, 53))
	f.Add(icmp6(f, "fe80::1", "ff02::1"))
	f.Add(arp(f))
	f.Add(vlanTagged(tcp4(f, "10.0.0.1", "10.0.0.2", 1, 2)))
	f.Add(fragment4(f, 0, true))
	f.Add(fragment4(f, 185, false))
	f.Add(tcp4(f, "10.0.0.1", "10.0.0.2", 1, 2)[:14+20+2])
	f.Add(serialize(f, ethernet(layers.EthernetTypeIPv6), ip6("fd00::1", "fd00::2", layers.IPProtocolIPv6Fragment),
		gopacket.Payload([]byte{6, 0, 0, 0, 0, 0, 0, 1, 0x9c, 0x40, 0, 22})))
	f.Add([]byte{})
	f.Add(make([]byte, 14))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseFrame(b)
		if err != nil {
			if got != (flow{}) {
				t.Fatalf("error %v with a flow %+v", err, got)
			}
		} else {
			checkFlow(t, got)
		}
		if len(b) >= 14 && binary.BigEndian.Uint16(b[12:14]) != etherTypeVLAN {
			tg, terr := parseFrame(vlanTagged(b))
			if terr != err {
				t.Fatalf("tagged: error %v, untagged %v", terr, err)
			}
			if err == nil {
				tg.tagged = false
				if tg != got {
					t.Fatalf("tagged: %+v, untagged %+v", tg, got)
				}
			}
		}
		if err != nil {
			return
		}
		padded, perr := parseFrame(append(bytes.Clone(b), make([]byte, 9)...))
		if perr != nil || padded != got {
			t.Fatalf("padded: %+v, %v; unpadded %+v", padded, perr, got)
		}
		if got.ip && !got.tagged {
			checkFlowKey(t, b, got)
		}
	})
}

func checkFlow(t *testing.T, f flow) {
	t.Helper()
	if f.ports && (!f.ip || !hasPorts(f.proto)) {
		t.Fatalf("ports on %+v", f)
	}
	if !f.ip && (f.src.IsValid() || f.dst.IsValid() || f.proto != 0) {
		t.Fatalf("non-IP flow with IP fields: %+v", f)
	}
	if f.ip && (!f.src.IsValid() || !f.dst.IsValid() || f.src.Is4() != f.dst.Is4()) {
		t.Fatalf("IP flow with bad addresses: %+v", f)
	}
}

// checkFlowKey compares a flow with the switch's flow key of the frame.
func checkFlowKey(t *testing.T, b []byte, f flow) {
	t.Helper()
	var k extensions.FlowKey
	extensions.MakeFlowKey(&k, b, 5001, api.Ingress, 1, api.NoPort)
	if proto := uint8(k.Meta >> 16); proto != f.proto {
		t.Fatalf("switch keys protocol %d, filter sees %d", proto, f.proto)
	}
	var src, dst [2]uint64
	if f.src.Is4() {
		s, d := f.src.As4(), f.dst.As4()
		src[0], dst[0] = uint64(binary.LittleEndian.Uint32(s[:])), uint64(binary.LittleEndian.Uint32(d[:]))
	} else {
		s, d := f.src.As16(), f.dst.As16()
		src = [2]uint64{binary.LittleEndian.Uint64(s[:8]), binary.LittleEndian.Uint64(s[8:])}
		dst = [2]uint64{binary.LittleEndian.Uint64(d[:8]), binary.LittleEndian.Uint64(d[8:])}
	}
	if k.Src != src || k.Dst != dst {
		t.Fatalf("switch keys addresses %x -> %x, filter sees %v -> %v", k.Src, k.Dst, f.src, f.dst)
	}
	if f.ports {
		if sport, dport := uint16(k.Ports>>16), uint16(k.Ports); sport != f.sport || dport != f.dport {
			t.Fatalf("switch keys ports %d -> %d, filter sees %d -> %d", sport, dport, f.sport, f.dport)
		}
	}
}
