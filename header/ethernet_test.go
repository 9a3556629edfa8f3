package header

import (
	"encoding/hex"
	"testing"
)

func TestEthernet(t *testing.T) {
	tests := []struct {
		name    string
		hex     string
		err     error
		typ     uint16
		tagged  bool
		payload int
	}{
		{"arp", golden["arpRequest"], nil, EtherTypeARP, false, 28},
		{"ipv6", golden["ns"], nil, EtherTypeIPv6, false, 72},
		{"dot1q", "020000000002020000000001810000640800" + "4500", ErrVLANTagged, EtherTypeVLAN, true, 6},
		{"qinq", "020000000002020000000001" + "88a8" + "0064", ErrVLANTagged, EtherTypeQinQ, true, 2},
		{"short", "0200000000020200000000010800"[:26], ErrTruncated, 0, false, 0},
		{"empty", "", ErrTruncated, 0, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := hex.DecodeString(tt.hex)
			if err != nil {
				t.Fatal(err)
			}
			e, err := ParseEthernet(b)
			if err != tt.err {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err == ErrTruncated {
				if e != nil {
					t.Fatal("view returned with ErrTruncated")
				}
				return
			}
			if e.Type() != tt.typ || e.VLANTagged() != tt.tagged || len(e.Payload()) != tt.payload {
				t.Fatalf("type %#x tagged %v payload %d", e.Type(), e.VLANTagged(), len(e.Payload()))
			}
		})
	}
	e := Ethernet(gold(t, "arpReply"))
	if e.Dst() != vm1MAC || e.Src() != vm2MAC {
		t.Fatalf("dst %x src %x", e.Dst(), e.Src())
	}
	e.SetDst(BroadcastMAC)
	e.SetSrc(vm1MAC)
	e.SetType(EtherTypeIPv4)
	if e.Dst() != BroadcastMAC || e.Src() != vm1MAC || e.Type() != EtherTypeIPv4 {
		t.Fatal("setters")
	}
	if !IsMulticastMAC(BroadcastMAC) || IsMulticastMAC(vm1MAC) || !IsMulticastMAC(MulticastMAC6(AllNodesMulticast)) {
		t.Fatal("IsMulticastMAC")
	}
}
