package vswitch

import (
	"errors"
	"strings"
	"testing"
)

// TestTrace: the trace explains, stage by stage, what the data path does
// with a frame (the same cases as TestRouteDeliversRoutesAndIsolates),
// and changes nothing.
func TestTrace(t *testing.T) {
	r := newRig(t, Config{Policy: routePolicy(t)}, map[string]uint32{"a": 5001, "b": 5001, "c": 5002, "x": 6001, "y": 6001, "plain1": 5003, "plain2": 5003})
	macA, macB := mustMAC("02:00:00:00:01:0a"), mustMAC("02:00:00:00:01:0b")
	gw := mustMAC("02:58:56:00:00:01")
	for _, tc := range []struct {
		port  string
		frame []byte
		want  string // in the last step
	}{
		{"a", udp4(macB, macA, "10.0.1.10", "10.0.1.20", 64), "local: to port b"},
		{"a", udp4(gw, macA, "10.0.1.10", "10.0.2.30", 64), "local: to port c"},
		{"y", udp4(gw, mustMAC("02:00:00:00:06:0a"), "10.0.1.10", "10.0.2.30", 64), "drop (isolation)"},
		{"a", udp4(macB, macA, "10.0.1.20", "10.0.1.20", 64), "drop (spoof)"},
		{"a", udp4(mustMAC("02:00:00:00:01:0d"), macA, "10.0.1.10", "10.0.1.40", 64), "drop (no-uplink)"},
		{"a", arpRequest(t, [6]byte(macA), "10.0.1.10", "10.0.1.20"), "answered (proxied): 10.0.1.20 is at 02:00:00:00:01:0b"},
		{"a", arpRequest(t, [6]byte(macA), "10.0.1.10", "10.0.1.99"), "drop (no-policy)"},
		{"plain1", frame(bcast, macA[:], "hi"), "flood in VSID 5003 to [plain2]"},
	} {
		steps, err := r.sw.Trace(tc.port, tc.frame)
		if err != nil {
			t.Fatal(err)
		}
		last := steps[len(steps)-1].Decision
		if !strings.Contains(last, tc.want) {
			t.Errorf("trace from %s: last step %q, want %q\n%+v", tc.port, last, tc.want, steps)
		}
	}
	r.expect(nil) // nothing was sent
	if st, _ := r.sw.Stats("a"); st[0].RxFrames != 0 {
		t.Fatalf("tracing counted %d frames", st[0].RxFrames)
	}
	if _, err := r.sw.Trace("nope", frame(bcast, macA[:], "x")); !errors.Is(err, ErrNoSuchPort) {
		t.Fatalf("trace on an unknown port: %v", err)
	}
}
