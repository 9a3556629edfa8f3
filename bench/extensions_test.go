package bench

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xvswitch/xvs/extensions"
	"github.com/xvswitch/xvs/extensions/exttest"
	"github.com/xvswitch/xvs/ports/porttest"
	"github.com/xvswitch/xvs/ring"
	"github.com/xvswitch/xvs/vswitch"
)

// udpFlow is a 64-byte UDP frame of flow sport -> 5201.
func udpFlow(dst, src []byte, sport uint16) []byte {
	f := udp64(dst, src, "10.0.0.1", "10.0.0.2")
	binary.BigEndian.PutUint16(f[34:], sport)
	binary.BigEndian.PutUint16(f[36:], 5201)
	binary.BigEndian.PutUint16(f[38:], 26)
	return f
}

// extTopology is two replay ports sending 64-byte UDP frames to each
// other, flows distinct flows each, with the given extensions loaded.
var benchArena = ring.DefaultArenaConfig

func extTopology(b *testing.B, flows int, exts ...extensions.Config) *topology {
	b.Helper()
	sw, err := vswitch.New(vswitch.Config{Arena: benchArena})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sw.Close() })
	t := &topology{sw: sw}
	for i := range 2 {
		var frames [][]byte
		for f := range flows {
			frames = append(frames, udpFlow(stationMAC(1-i), stationMAC(i), uint16(1000+f)))
		}
		p := porttest.NewReplay(fmt.Sprint("p", i), frames)
		if err := sw.AddPort(p, vsid); err != nil {
			b.Fatal(err)
		}
		t.ports = append(t.ports, p)
	}
	for _, c := range exts {
		if err := sw.LoadExtension(c, -1); err != nil {
			b.Fatal(err)
		}
	}
	// Warm up: learn both stations and get every flow's verdict cached.
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
		sw.RunOnce()
	}
	return t
}

func extCases(b *testing.B) []struct {
	name string
	exts func() []extensions.Config
} {
	dir := b.TempDir()
	rules := filepath.Join(dir, "acl.yaml")
	// Rules that must be evaluated but let the benchmark's traffic pass.
	if err := os.WriteFile(rules, []byte("default: allow\nrules:\n  - action: deny\n    protocol: tcp\n    dport: 22\n  - action: deny\n    vsid: 4097\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	return []struct {
		name string
		exts func() []extensions.Config
	}{
		{"none", func() []extensions.Config { return nil }},
		{"pcapcapture", func() []extensions.Config {
			return []extensions.Config{{Name: "cap", Path: exttest.Build(b, "extensions/examples/pcapcapture"),
				Settings: map[string]string{"dir": dir, "max-bytes": "16M", "max-files": "2"}}}
		}},
		{"aclfilter-cached", func() []extensions.Config {
			return []extensions.Config{{Name: "acl", Path: exttest.Build(b, "extensions/examples/aclfilter"),
				Settings: map[string]string{"rules": rules}}}
		}},
		{"aclfilter-cached-ingress", func() []extensions.Config {
			return []extensions.Config{{Name: "acl", Path: exttest.Build(b, "extensions/examples/aclfilter"),
				Directions: extensions.DirIngress, Settings: map[string]string{"rules": rules}}}
		}},
	}
}

// BenchmarkExtensions measures forwarding (64-byte UDP frames, 1 or 64
// flows per port, two in-memory ports, one worker) with no extension, with the
// pcapcapture extension (every frame copied to shared memory, ingress and
// egress; copies its process cannot take in time are dropped and counted)
// and with the aclfilter extension once every flow's verdict is cached.
// One op is one poll round (a 64-frame batch from each port). Run the
// cases in one invocation and compare them as ratios: the machine is
// shared and noisy.
func BenchmarkExtensions(b *testing.B) {
	for _, flows := range []int{1, 64} {
		for _, c := range extCases(b) {
			b.Run(fmt.Sprintf("flows-%d/%s", flows, c.name), func(b *testing.B) { benchExtensions(b, flows, c.name, c.exts()) })
		}
	}
}

func benchExtensions(b *testing.B, flows int, name string, exts []extensions.Config) {
	t := extTopology(b, flows, exts...)
	t.measure(b)
	if len(exts) == 0 {
		return
	}
	st, err := t.sw.ExtensionStats(exts[0].Name)
	if err != nil {
		b.Fatal(err)
	}
	if n := st.Counters["captured"] + st.Counters["capture-dropped"]; n > 0 {
		b.ReportMetric(float64(st.Counters["captured"])/float64(n)*100, "%captured")
	}
	if strings.HasPrefix(name, "aclfilter") && st.Counters["sent"] > uint64(4*flows) { // flows x 2 ports x 2 directions
		b.Fatalf("%d requests: verdicts were not cached", st.Counters["sent"])
	}
}

// BenchmarkExtensionFirstFrame measures the latency of a new flow's first
// frame through a filter extension in its own process: from the frame's
// arrival to its transmission after the verdict (switch polling on this
// goroutine). One op is one new flow; p50 and p99 are reported in µs.
func BenchmarkExtensionFirstFrame(b *testing.B) {
	rules := filepath.Join(b.TempDir(), "acl.yaml")
	if err := os.WriteFile(rules, []byte("default: allow\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	sw, err := vswitch.New(vswitch.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sw.Close() })
	in, out := porttest.New("in", nil), porttest.New("out", nil)
	for _, p := range []*porttest.Port{in, out} {
		if err := sw.AddPort(p, vsid); err != nil {
			b.Fatal(err)
		}
	}
	if err := sw.LoadExtension(extensions.Config{Name: "acl", Path: exttest.Build(b, "extensions/examples/aclfilter"),
		Settings: map[string]string{"rules": rules}}, -1); err != nil {
		b.Fatal(err)
	}
	out.SetCollect(false)
	// Latencies of the last 64k flows: a fixed array, so the loop
	// allocates nothing (the queue port reuses its buffers too).
	var lat [1 << 16]time.Duration
	n := 0
	flow := uint32(0)
	f := udpFlow(stationMAC(1), stationMAC(0), 0)
	for b.Loop() {
		flow++
		binary.BigEndian.PutUint16(f[34:], uint16(flow))
		binary.BigEndian.PutUint16(f[36:], uint16(flow>>16)) // dport: flows stay new past 65535
		start := time.Now()
		in.Inject(f)
		for out.TxFrames() < uint64(flow) {
			sw.RunOnce()
			if time.Since(start) > 5*time.Second {
				b.Fatalf("flow %d: no frame after 5s", flow)
			}
		}
		lat[n%len(lat)] = time.Since(start)
		n++
	}
	got := lat[:min(n, len(lat))]
	slices.Sort(got)
	if len(got) > 0 {
		b.ReportMetric(float64(got[len(got)/2].Nanoseconds())/1e3, "p50-µs")
		b.ReportMetric(float64(got[len(got)*99/100].Nanoseconds())/1e3, "p99-µs")
	}
}
