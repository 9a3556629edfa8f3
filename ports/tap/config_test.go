package tap

import (
	"errors"
	"net"
	"strings"
	"testing"
)

// TestConfigErrors needs no privilege: every bad field is refused before
// any device is touched, with an error naming the field and the value.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"empty dev", Config{}, "Dev is empty"},
		{"dev too long", Config{Dev: "xvstap0123456789"}, "device name too long"},
		{"dev with slash", Config{Dev: "a/b"}, `Dev "a/b"`},
		{"dev with space", Config{Dev: "a b"}, `Dev "a b"`},
		{"dev template", Config{Dev: "tap%d"}, `Dev "tap%d"`},
		{"dev dot", Config{Dev: ".."}, `Dev ".."`},
		{"negative queues", Config{Dev: "xvstapq", Queues: -1}, "Queues -1"},
		{"too many queues", Config{Dev: "xvstapq", Queues: MaxQueues + 1}, "Queues 257"},
		{"mtu too small", Config{Dev: "xvstapm", MTU: 67}, "MTU 67"},
		{"mtu too big", Config{Dev: "xvstapm", MTU: 65522}, "MTU 65522"},
		{"short mac", Config{Dev: "xvstapa", MAC: net.HardwareAddr{2, 0, 0, 0, 0}}, "MAC 02:00:00:00:00"},
		{"multicast mac", Config{Dev: "xvstapa", MAC: net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}}, "multicast"},
		{"zero mac", Config{Dev: "xvstapa", MAC: make(net.HardwareAddr, 6)}, "all zero"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(tc.cfg)
			if err == nil {
				p.Close()
				t.Fatalf("New(%+v) succeeded", tc.cfg)
			}
			if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "tap: ") {
				t.Fatalf("New(%+v) = %v; want ErrBadConfig mentioning %q", tc.cfg, err, tc.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	c := Config{Dev: "xvstap0", MAC: mac}
	if err := c.normalize(); err != nil {
		t.Fatal(err)
	}
	if c.Name != "xvstap0" || c.Queues != 1 || c.MTU != 1500 {
		t.Fatalf("defaults: %+v", c)
	}
	mac[5] = 9
	if c.MAC[5] != 1 {
		t.Fatal("Config keeps the caller's MAC slice")
	}
}
