package vswitch

import (
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// TestNVGREDecodedByGopacket reads what the switch puts on the provider
// network with gopacket, an independent decoder: outer Ethernet/IPv4 to
// the other host's PA, GRE with the key bit and protocol 0x6558 (TEB),
// key = VSID<<8 | FlowID, and the untouched inner Ethernet frame.
func TestNVGREDecodedByGopacket(t *testing.T) {
	h1, h2 := twoHosts(t)
	up2 := h2.up.MAC()
	f := udp4(mustMAC("02:00:00:00:01:0b"), mustMAC("02:00:00:00:01:0a"), "10.0.1.10", "10.0.1.20", 64)
	wire := sendAcross(h1, h2, f)
	if len(wire) != 1 {
		t.Fatalf("%d frames on the uplink, want 1", len(wire))
	}
	pkt := gopacket.NewPacket(wire[0], layers.LayerTypeEthernet, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	gre, ok := pkt.Layer(layers.LayerTypeGRE).(*layers.GRE)
	if !ok {
		t.Fatalf("no GRE layer in %v", pkt)
	}
	if eth.DstMAC.String() != up2.String() || ip.SrcIP.String() != "192.168.50.1" || ip.DstIP.String() != "192.168.50.2" || ip.Protocol != layers.IPProtocolGRE || ip.Flags&layers.IPv4DontFragment == 0 {
		t.Fatalf("outer headers: eth %v -> %v, ip %v -> %v proto %v flags %v", eth.SrcMAC, eth.DstMAC, ip.SrcIP, ip.DstIP, ip.Protocol, ip.Flags)
	}
	if !gre.KeyPresent || gre.ChecksumPresent || gre.SeqPresent || gre.Protocol != layers.EthernetTypeTransparentEthernetBridging || gre.Key>>8 != 5001 {
		t.Fatalf("GRE: key present %v, checksum %v, seq %v, protocol %v, key %#x (VSID %d)", gre.KeyPresent, gre.ChecksumPresent, gre.SeqPresent, gre.Protocol, gre.Key, gre.Key>>8)
	}
	inner := pkt.Layers()
	var innerEth *layers.Ethernet
	for _, l := range inner[3:] {
		if e, ok := l.(*layers.Ethernet); ok {
			innerEth = e
		}
	}
	if innerEth == nil || innerEth.SrcMAC.String() != "02:00:00:00:01:0a" || innerEth.DstMAC.String() != "02:00:00:00:01:0b" {
		t.Fatalf("inner Ethernet: %v", innerEth)
	}
}
