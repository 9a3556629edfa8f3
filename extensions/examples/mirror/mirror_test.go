package main

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xvswitch/xvs/extensions/api"
	"github.com/xvswitch/xvs/extensions/examples/internal/logtest"
	"github.com/xvswitch/xvs/extensions/sdk"
	"github.com/xvswitch/xvs/internal/testutil"
)

// fakeHost stands in for *sdk.Host; its ports can change under the
// mirror, as SetPorts changes them.
type fakeHost struct {
	config      map[string]string
	mu          sync.Mutex
	ports       []sdk.Port
	claimed     []uint32
	invalidated atomic.Int32
}

func (h *fakeHost) Config() map[string]string { return h.config }
func (h *fakeHost) Claim(vsids ...uint32)     { h.claimed = append(h.claimed, vsids...) }
func (h *fakeHost) Invalidate()               { h.invalidated.Add(1) }

func (h *fakeHost) setPorts(ports ...sdk.Port) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ports = ports
}

func (h *fakeHost) PortByName(name string) (sdk.Port, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.ports {
		if p.Name == name {
			return p, true
		}
	}
	return sdk.Port{}, false
}

func (h *fakeHost) PortByIndex(i uint16) (sdk.Port, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.ports {
		if p.Index == i {
			return p, true
		}
	}
	return sdk.Port{}, false
}

var (
	vm1 = sdk.Port{Index: 1, Name: "vm1", VSID: 5001}
	vm2 = sdk.Port{Index: 2, Name: "vm2", VSID: 5002}
	ids = sdk.Port{Index: 7, Name: "ids", VSID: 5001}
)

// startMirror starts a mirror of vsids 5001 and 5002 to port "ids".
func startMirror(t *testing.T, ports ...sdk.Port) (*Mirror, *fakeHost) {
	t.Helper()
	h := &fakeHost{config: map[string]string{"monitor": "ids", "vsids": "5002, 5001"}, ports: ports}
	mr := &Mirror{interval: 5 * time.Millisecond}
	if err := mr.start(h, &logtest.Log{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mr.Stop)
	return mr, h
}

func ingress(in uint16, vsid uint32) *sdk.Meta {
	return &sdk.Meta{Dir: api.Ingress, InPort: in, OutPort: api.NoPort, VSID: vsid}
}

func equalDest(a, b sdk.Destinations) bool {
	return a.Default == b.Default && a.Drop == b.Drop && a.NoCache == b.NoCache && slices.Equal(a.Ports, b.Ports)
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name string
		kv   map[string]string
		want config
		err  []string
	}{
		{"one", map[string]string{"monitor": "ids", "vsids": "5001"}, config{"ids", []uint32{5001}}, nil},
		{"several, sorted, deduplicated", map[string]string{"monitor": " ids ", "vsids": " 6001,5001 , 6001,0"}, config{"ids", []uint32{0, 5001, 6001}}, nil},
		{"no monitor", map[string]string{"vsids": "5001"}, config{}, []string{"config monitor: missing"}},
		{"blank monitor", map[string]string{"monitor": " ", "vsids": "5001"}, config{}, []string{"config monitor: missing"}},
		{"no vsids", map[string]string{"monitor": "ids"}, config{}, []string{"config vsids: missing"}},
		{"blank vsids", map[string]string{"monitor": "ids", "vsids": " "}, config{}, []string{"config vsids: missing"}},
		{"empty element", map[string]string{"monitor": "ids", "vsids": "5001,,5002"}, config{}, []string{`config vsids "5001,,5002": VSID ""`}},
		{"text", map[string]string{"monitor": "ids", "vsids": "5001,web"}, config{}, []string{`VSID "web"`, "4096..16777214"}},
		{"too small", map[string]string{"monitor": "ids", "vsids": "4095"}, config{}, []string{`VSID "4095"`}},
		{"too big", map[string]string{"monitor": "ids", "vsids": "16777215"}, config{}, []string{`VSID "16777215"`}},
		{"negative", map[string]string{"monitor": "ids", "vsids": "-5001"}, config{}, []string{`VSID "-5001"`}},
		{"unknown key", map[string]string{"monitor": "ids", "vsids": "5001", "vsid": "5001"}, config{}, []string{`config key "vsid": unknown`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig(tt.kv)
			if tt.err == nil {
				if err != nil || got.monitor != tt.want.monitor || !slices.Equal(got.vsids, tt.want.vsids) {
					t.Fatalf("parseConfig = %+v, %v; want %+v", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("parseConfig = %+v, want an error", got)
			}
			for _, w := range tt.err {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestStartClaims(t *testing.T) {
	_, h := startMirror(t, vm1, ids)
	if !slices.Equal(h.claimed, []uint32{5001, 5002}) {
		t.Errorf("claimed %v, want [5001 5002]", h.claimed)
	}
	mr := &Mirror{}
	err := mr.start(&fakeHost{config: map[string]string{"monitor": "ids"}}, &logtest.Log{})
	if err == nil || !strings.Contains(err.Error(), "config vsids: missing") {
		t.Errorf("start without vsids: %v", err)
	}
	mr.Stop()
}

func TestForward(t *testing.T) {
	mr, _ := startMirror(t, vm1, vm2, ids)
	mirror := sdk.Destinations{Default: true, Ports: []uint16{ids.Index}}
	tests := []struct {
		name string
		meta *sdk.Meta
		want sdk.Destinations
	}{
		{"claimed vsid: mirrored", ingress(vm1.Index, 5001), mirror},
		{"other claimed vsid: mirrored", ingress(vm2.Index, 5002), mirror},
		{"unclaimed vsid: the switch's choice only", ingress(vm1.Index, 6001), sdk.Destinations{Default: true}},
		{"from the monitor port: not back to it", ingress(ids.Index, 5001), sdk.Destinations{Default: true}},
		{"from a port the switch has not named", ingress(42, 5001), mirror},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mr.Forward(tt.meta, nil); !equalDest(got, tt.want) {
				t.Errorf("Forward = %+v, want %+v", got, tt.want)
			}
		})
	}
	want := map[string]uint64{"mirrored": 3, "monitor-missing": 0, "from-monitor": 1}
	if got := mr.Stats(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stats %v, want %v", got, want)
	}
}

func TestForwardAllocs(t *testing.T) {
	mr, _ := startMirror(t, vm1, ids)
	m := ingress(vm1.Index, 5001)
	if n := testing.AllocsPerRun(100, func() { mr.Forward(m, nil) }); n != 0 {
		t.Errorf("Forward allocates %v times per call, want 0", n)
	}
}

func TestMonitorAppearsLater(t *testing.T) {
	mr, h := startMirror(t, vm1)
	m := ingress(vm1.Index, 5001)
	for range 3 {
		if got, want := mr.Forward(m, nil), (sdk.Destinations{Default: true, NoCache: true}); !equalDest(got, want) {
			t.Fatalf("without a monitor port: %+v, want %+v", got, want)
		}
	}
	if n := mr.Stats()["monitor-missing"]; n != 3 {
		t.Errorf("monitor-missing %d, want 3", n)
	}
	h.setPorts(vm1, ids)
	if got, want := mr.Forward(m, nil), (sdk.Destinations{Default: true, Ports: []uint16{ids.Index}}); !equalDest(got, want) {
		t.Fatalf("once the monitor port exists: %+v, want %+v", got, want)
	}
	if n := h.invalidated.Load(); n != 0 {
		t.Errorf("%d invalidations when the port appeared, want 0 (nothing was cached)", n)
	}
}

func TestMonitorChanges(t *testing.T) {
	testutil.CheckGoroutines(t)
	mr, h := startMirror(t, vm1, ids)
	m := ingress(vm1.Index, 5001)
	if got := mr.Forward(m, nil); !slices.Equal(got.Ports, []uint16{7}) {
		t.Fatalf("Forward = %+v, want the monitor port 7", got)
	}

	// The port comes back with another index: the watcher notices without
	// a frame, and the switch forgets verdicts naming index 7.
	moved := sdk.Port{Index: 9, Name: "ids", VSID: 5001}
	h.setPorts(vm1, moved)
	testutil.Eventually(t, 5*time.Second, func() bool { return h.invalidated.Load() == 1 }, "the invalidation after the move")
	if got := mr.Forward(m, nil); !slices.Equal(got.Ports, []uint16{9}) {
		t.Fatalf("after the move: %+v, want the monitor port 9", got)
	}

	// Another port takes the old index: frames are still mirrored to 9.
	h.setPorts(vm1, moved, sdk.Port{Index: 7, Name: "vm7", VSID: 5001})
	if got := mr.Forward(m, nil); !slices.Equal(got.Ports, []uint16{9}) {
		t.Fatalf("with another port at the old index: %+v, want 9", got)
	}

	// Gone: the switch is told, and frames are no longer mirrored.
	h.setPorts(vm1)
	testutil.Eventually(t, 5*time.Second, func() bool { return h.invalidated.Load() == 2 }, "the invalidation after the removal")
	if got, want := mr.Forward(m, nil), (sdk.Destinations{Default: true, NoCache: true}); !equalDest(got, want) {
		t.Fatalf("after the removal: %+v, want %+v", got, want)
	}
	mr.Stop()
	mr.Stop()
}

// TestForwardRightAway checks that Forward itself notices a change,
// before the watcher runs.
func TestForwardRightAway(t *testing.T) {
	h := &fakeHost{config: map[string]string{"monitor": "ids", "vsids": "5001"}, ports: []sdk.Port{vm1, ids}}
	mr := &Mirror{interval: time.Hour}
	if err := mr.start(h, &logtest.Log{}); err != nil {
		t.Fatal(err)
	}
	defer mr.Stop()
	h.setPorts(vm1, sdk.Port{Index: 3, Name: "ids"})
	if got := mr.Forward(ingress(vm1.Index, 5001), nil); !slices.Equal(got.Ports, []uint16{3}) {
		t.Fatalf("Forward = %+v, want the monitor port at its new index 3", got)
	}
	if n := h.invalidated.Load(); n != 1 {
		t.Errorf("%d invalidations, want 1", n)
	}
}
