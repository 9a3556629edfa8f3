package vswitch

import (
	"errors"
	"strings"
	"testing"

	"github.com/xvswitch/xvs/extensions"
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

// TestTraceShowsChainAndDecap: trace names each loaded extension as the
// frame meets it (order, scope, disabled ones absent), and explains what
// the WNV module does with NVGRE on the uplink: delivered, or refused with
// the reason.
func TestTraceShowsChainAndDecap(t *testing.T) {
	h1, h2 := twoHosts(t)
	f := udp4(mustMAC("02:00:00:00:01:0b"), mustMAC("02:00:00:00:01:0a"), "10.0.1.10", "10.0.1.20", 64)
	wire := sendAcross(h1, h2, f)
	if len(wire) != 1 {
		t.Fatalf("%d frames on host 1's uplink, want one NVGRE frame", len(wire))
	}
	last := func(sw *Switch, port string, frame []byte) string {
		t.Helper()
		steps, err := sw.Trace(port, frame)
		if err != nil {
			t.Fatal(err)
		}
		return steps[len(steps)-1].Stage + ": " + steps[len(steps)-1].Decision
	}
	if got := last(h2.sw, "uplink", wire[0]); !strings.Contains(got, "decap: delivered: to port vm in VSID 5001") {
		t.Fatalf("NVGRE on host 2's uplink: %q, want delivered to vm", got)
	}
	if got := last(h1.sw, "uplink", wire[0]); !strings.Contains(got, "drop (nvgre-not-ours)") {
		t.Fatalf("NVGRE for another host's PA: %q, want drop (nvgre-not-ours)", got)
	}

	r := extRig(t)
	tagger := plugin(t, "extensions/internal/testplugins/tagger")
	r.load(extensions.Config{Name: "first", Path: tagger, Settings: map[string]string{"tag": "A"}})
	r.load(extensions.Config{Name: "vm2only", Path: tagger, Ports: []string{"vm2"}, Settings: map[string]string{"tag": "B"}})
	r.load(extensions.Config{Name: "off", Path: tagger, Disabled: true, Settings: map[string]string{"tag": "C"}})
	steps, err := r.sw.Trace("vm1", extUDP(macB, macA, "10.0.0.1", "10.0.0.2", 1000, 2000, 8))
	if err != nil {
		t.Fatal(err)
	}
	var ext []string
	for _, s := range steps {
		if s.Stage == "extensions" {
			ext = append(ext, s.Decision)
		}
	}
	if len(ext) != 2 || !strings.HasPrefix(ext[0], "first (filter): asked for a verdict on every frame") || !strings.HasPrefix(ext[1], "vm2only (filter): frame out of its scope") {
		t.Fatalf("ingress extension steps %q: want first (asked per frame: the tagger changes every frame), then vm2only (out of scope); off is disabled", ext)
	}
}
