package ports

import (
	"net"
	"strings"
	"testing"
)

func TestCheckMAC(t *testing.T) {
	for _, tc := range []struct {
		mac  net.HardwareAddr
		want string // "" accepts
	}{
		{net.HardwareAddr{0x02, 0, 0, 0, 0, 1}, ""},
		{net.HardwareAddr{0x00, 0x16, 0x3e, 1, 2, 3}, ""},
		{net.HardwareAddr{0x02, 0, 0, 0, 1}, "want 6 bytes"},
		{net.HardwareAddr{0x02, 0, 0, 0, 0, 0, 0, 1}, "want 6 bytes"},
		{nil, "want 6 bytes"},
		{net.HardwareAddr{0x01, 0x00, 0x5e, 0, 0, 1}, "multicast"},
		{net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "multicast"},
		{net.HardwareAddr{0, 0, 0, 0, 0, 0}, "all zero"},
	} {
		err := CheckMAC(tc.mac)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CheckMAC(%v) = %v, want nil", tc.mac, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("CheckMAC(%v) = %v, want an error containing %q", tc.mac, err, tc.want)
		}
	}
}
