package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/xvswitch/xvs/extensions/api"
	"github.com/xvswitch/xvs/extensions/examples/internal/logtest"
	"github.com/xvswitch/xvs/extensions/sdk"
	"github.com/xvswitch/xvs/internal/testutil"
)

// fakeHost stands in for *sdk.Host.
type fakeHost struct {
	config map[string]string
	ports  []sdk.Port
}

func (h *fakeHost) Instance() string          { return "capture" }
func (h *fakeHost) Config() map[string]string { return h.config }
func (h *fakeHost) PortByIndex(i uint16) (sdk.Port, bool) {
	for _, p := range h.ports {
		if p.Index == i {
			return p, true
		}
	}
	return sdk.Port{}, false
}

var testPorts = []sdk.Port{{Index: 1, Name: "vm1", VSID: 5001}, {Index: 2, Name: "vm2", VSID: 5001}}

// startCapture starts a capture into a new directory with the given
// settings (dir is added).
func startCapture(t *testing.T, kv map[string]string, tweak func(c *Capture)) (*Capture, string, *logtest.Log) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "capture") // created by start
	cfg := map[string]string{"dir": dir}
	for k, v := range kv {
		cfg[k] = v
	}
	c := &Capture{}
	if tweak != nil {
		tweak(c)
	}
	l := &logtest.Log{}
	if err := c.start(&fakeHost{config: cfg, ports: testPorts}, l); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c, dir, l
}

// udpFrame is a UDP frame of n bytes (at least 42), built by gopacket;
// its payload starts with the frame's number i, so frames can be told
// apart.
func udpFrame(t *testing.T, i, n int) []byte {
	t.Helper()
	p := make([]byte, n-42)
	copy(p, fmt.Sprintf("frame %06d", i))
	buf := gopacket.NewSerializeBuffer()
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: []byte{10, 0, 0, 1}, DstIP: []byte{10, 0, 0, 2}}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 5201}
	udp.SetNetworkLayerForChecksum(ip)
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: []byte{2, 0, 0, 0, 0, 1}, DstMAC: []byte{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4},
		ip, udp, gopacket.Payload(p)); err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(buf.Bytes())
}

// packet is one packet read back from a file.
type packet struct {
	data     []byte
	ci       gopacket.CaptureInfo
	comments []string
}

// readFile reads every packet of a pcapng file with pcapgo's reader.
func readFile(t *testing.T, path string) []packet {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		t.Errorf("%s: link type %v, want Ethernet", path, r.LinkType())
	}
	var out []packet
	for {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: packet %d: %v", path, len(out), err)
		}
		out = append(out, packet{bytes.Clone(data), ci, opts.Comments})
	}
}

// captureFiles returns the capture files in dir, oldest first.
func captureFiles(t *testing.T, dir, prefix string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, prefix+"-*.pcapng"))
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(names, func(a, b string) int {
		_, sa, _ := parseFileName(prefix, filepath.Base(a))
		_, sb, _ := parseFileName(prefix, filepath.Base(b))
		return sa - sb
	})
	return names
}

var t0 = time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC)

func TestCaptureReadBack(t *testing.T) {
	testutil.CheckGoroutines(t)
	c, dir, _ := startCapture(t, nil, nil)
	type sent struct {
		meta  sdk.Meta
		frame []byte
	}
	in := []sent{
		{sdk.Meta{Dir: api.Ingress, InPort: 1, OutPort: api.NoPort, VSID: 5001, Time: t0, OrigLen: 100}, udpFrame(t, 0, 100)},
		{sdk.Meta{Dir: api.Egress, InPort: 1, OutPort: 2, VSID: 5001, Time: t0.Add(time.Nanosecond), OrigLen: 100}, udpFrame(t, 1, 100)},
		// A copy the switch cut to its slot: the original was longer.
		{sdk.Meta{Dir: api.Ingress, InPort: 2, OutPort: api.NoPort, VSID: 6001, Time: t0.Add(time.Second), OrigLen: 9000}, udpFrame(t, 2, 200)},
		// A port the switch did not name.
		{sdk.Meta{Dir: api.Ingress, InPort: 9, OutPort: api.NoPort, VSID: 0, Time: t0.Add(time.Hour), OrigLen: 64}, udpFrame(t, 3, 64)},
	}
	for i := range in {
		c.Capture(&in[i].meta, in[i].frame)
	}
	c.Stop()
	c.Stop()

	files := captureFiles(t, dir, "xvs")
	if len(files) != 1 {
		t.Fatalf("files %v, want one", files)
	}
	got := readFile(t, files[0])
	wantComments := []string{
		"port=vm1 vsid=5001 dir=ingress",
		"port=vm2 vsid=5001 dir=egress",
		"port=vm2 vsid=6001 dir=ingress",
		"port=#9 vsid=0 dir=ingress",
	}
	if len(got) != len(in) {
		t.Fatalf("read %d packets, want %d", len(got), len(in))
	}
	for i, p := range got {
		if !bytes.Equal(p.data, in[i].frame) {
			t.Errorf("packet %d: data differs", i)
		}
		if !p.ci.Timestamp.Equal(in[i].meta.Time) {
			t.Errorf("packet %d: time %v, want %v", i, p.ci.Timestamp, in[i].meta.Time)
		}
		if p.ci.CaptureLength != len(in[i].frame) || p.ci.Length != in[i].meta.OrigLen {
			t.Errorf("packet %d: lengths %d/%d, want %d/%d", i, p.ci.CaptureLength, p.ci.Length, len(in[i].frame), in[i].meta.OrigLen)
		}
		if !slices.Equal(p.comments, []string{wantComments[i]}) {
			t.Errorf("packet %d: comments %q, want %q", i, p.comments, wantComments[i])
		}
	}
	want := map[string]uint64{"frames": 4, "bytes": 100 + 100 + 200 + 64, "files": 1, "write-errors": 0, "dropped": 0}
	if st := c.Stats(); !equalStats(st, want) {
		t.Errorf("stats %v, want %v", st, want)
	}
	// Frames after Stop are ignored.
	c.Capture(&in[0].meta, in[0].frame)
	if n := c.Stats()["frames"]; n != 4 {
		t.Errorf("frames %d after a capture following Stop, want 4", n)
	}
}

func equalStats(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

func TestSnaplen(t *testing.T) {
	c, dir, _ := startCapture(t, map[string]string{"snaplen": "60", "prefix": "snap"}, nil)
	frame := udpFrame(t, 0, 300)
	c.Capture(&sdk.Meta{Time: t0, OrigLen: 0}, frame) // OrigLen unknown: the frame's length
	c.Stop()
	got := readFile(t, captureFiles(t, dir, "snap")[0])
	if len(got) != 1 || !bytes.Equal(got[0].data, frame[:60]) || got[0].ci.Length != 300 {
		t.Fatalf("read %+v, want the first 60 bytes of a 300-byte frame", got)
	}
	if n := c.Stats()["bytes"]; n != 60 {
		t.Errorf("bytes %d, want 60", n)
	}
}

// TestFlushWithoutStop checks that a reader sees packets soon, without
// waiting for Stop or a full buffer.
func TestFlushWithoutStop(t *testing.T) {
	c, dir, _ := startCapture(t, nil, nil)
	frame := udpFrame(t, 0, 100)
	start := time.Now()
	c.Capture(&sdk.Meta{Time: t0, OrigLen: 100, InPort: 1}, frame)
	path := captureFiles(t, dir, "xvs")[0]
	for {
		if got := readFile(t, path); len(got) == 1 {
			break
		}
		if time.Since(start) > 2*time.Second {
			t.Fatal("packet not in the file 2 s after capture")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("packet reached the file after %v", d)
	}
}

func TestRotation(t *testing.T) {
	const maxBytes, frames, size = 2048, 60, 150
	c, dir, _ := startCapture(t, map[string]string{"max-bytes": "2K", "max-files": "0"}, nil)
	for i := range frames {
		c.Capture(&sdk.Meta{Time: t0.Add(time.Duration(i) * time.Millisecond), OrigLen: size, InPort: 1, VSID: 5001}, udpFrame(t, i, size))
	}
	c.Stop()
	files := captureFiles(t, dir, "xvs")
	if len(files) < 4 {
		t.Fatalf("%d files, want several of at most %d bytes for %d frames of %d bytes", len(files), maxBytes, frames, size)
	}
	if n := c.Stats()["files"]; n != uint64(len(files)) {
		t.Errorf("stats files %d, want %d", n, len(files))
	}
	next := 0
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > maxBytes {
			t.Errorf("%s: %d bytes, more than max-bytes %d", f, fi.Size(), maxBytes)
		}
		pkts := readFile(t, f)
		if len(pkts) == 0 {
			t.Errorf("%s: no packets", f)
		}
		// A new file only when the next packet would not fit.
		if f != files[len(files)-1] && fi.Size()+epbLen(size, len(pkts[0].comments[0])) <= maxBytes {
			t.Errorf("%s: rotated at %d bytes, though another packet fits in %d", f, fi.Size(), maxBytes)
		}
		for _, p := range pkts {
			if !bytes.Equal(p.data, udpFrame(t, next, size)) {
				t.Fatalf("%s: packet is not frame %d", f, next)
			}
			next++
		}
	}
	if next != frames {
		t.Errorf("read %d frames across the files, want %d", next, frames)
	}
}

// TestEPBLen checks the length rotation predicts against what pcapgo
// writes.
func TestEPBLen(t *testing.T) {
	for _, tt := range []struct{ n, c int }{{60, 30}, {61, 31}, {62, 32}, {63, 33}, {64, 0}, {1, 1}} {
		c, dir, _ := startCapture(t, map[string]string{"prefix": fmt.Sprintf("epb%d-%d", tt.n, tt.c)}, nil)
		path := captureFiles(t, dir, c.cfg.prefix)[0]
		c.mu.Lock()
		if err := c.w.flush(); err != nil {
			t.Fatal(err)
		}
		before := c.w.size()
		if err := c.w.write(t0, make([]byte, tt.n), tt.n, strings.Repeat("c", tt.c)); err != nil {
			t.Fatal(err)
		}
		got := c.w.size() - before
		c.mu.Unlock()
		c.Stop()
		if want := epbLen(tt.n, tt.c); got != want {
			t.Errorf("packet of %d bytes, comment of %d: block of %d bytes, epbLen says %d", tt.n, tt.c, got, want)
		}
		if fi, err := os.Stat(path); err != nil || fi.Size() != before+got {
			t.Errorf("file size %v (%v), want %d", fi.Size(), err, before+got)
		}
	}
}

func TestMaxFilesPrunes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "capture")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	// Files of an earlier run count (and go first); other files stay.
	old := filepath.Join(dir, "xvs-20000101-000000-000001.pcapng")
	others := []string{"xvs-notes.txt", "other-20000101-000000-000001.pcapng", "xvs-20000101-000000-000001.pcapng.gz"}
	for _, name := range append(others, filepath.Base(old)) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := &Capture{}
	if err := c.start(&fakeHost{config: map[string]string{"dir": dir, "max-bytes": "1K", "max-files": "3"}, ports: testPorts}, &logtest.Log{}); err != nil {
		t.Fatal(err)
	}
	const frames = 40
	for i := range frames {
		c.Capture(&sdk.Meta{Time: t0, OrigLen: 200, InPort: 1}, udpFrame(t, i, 200))
	}
	c.Stop()
	files := captureFiles(t, dir, "xvs")
	if len(files) != 3 {
		t.Fatalf("files %v, want 3", files)
	}
	if slices.Contains(files, old) {
		t.Errorf("the oldest file %s was kept", old)
	}
	if n := c.Stats()["files"]; n < 6 {
		t.Fatalf("%d files written, want enough to prune", n)
	}
	// The newest files remain: the last frame is in the last file.
	last := readFile(t, files[2])
	if !bytes.Equal(last[len(last)-1].data, udpFrame(t, frames-1, 200)) {
		t.Error("the last file does not end with the last frame")
	}
	for _, name := range others {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v; other files must stay", name, err)
		}
	}
}

func TestStartErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		kv   map[string]string
		want []string
	}{
		{"no dir", map[string]string{}, []string{"config dir: missing"}},
		{"bad max-bytes", map[string]string{"dir": t.TempDir(), "max-bytes": "64X"}, []string{`config max-bytes "64X"`}},
		{"dir is a file", map[string]string{"dir": file}, []string{"create capture directory", "not a directory"}},
		{"dir under a file", map[string]string{"dir": filepath.Join(file, "sub")}, []string{"create capture directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testutil.CheckGoroutines(t)
			c := &Capture{}
			err := c.start(&fakeHost{config: tt.kv}, &logtest.Log{})
			if err == nil {
				c.Stop()
				t.Fatal("start succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			c.Stop()
			c.Capture(&sdk.Meta{}, udpFrame(t, 0, 64)) // ignored, no panic
		})
	}
}

// flakyFile is a file whose writes fail while fail is set.
type flakyFile struct {
	f    *os.File
	fail *atomic.Bool
}

func (f *flakyFile) Write(b []byte) (int, error) {
	if f.fail.Load() {
		return 0, errors.New("no space left on device (test)")
	}
	return f.f.Write(b)
}

func (f *flakyFile) Close() error { return f.f.Close() }

func TestWriteErrors(t *testing.T) {
	testutil.CheckGoroutines(t)
	var fail atomic.Bool
	c, dir, l := startCapture(t, nil, func(c *Capture) {
		c.flushEvery = 5 * time.Millisecond
		c.retryAfter = 50 * time.Millisecond
		c.create = func(path string) (io.WriteCloser, error) {
			if fail.Load() {
				return nil, errors.New("read-only file system (test)")
			}
			f, err := createExclusive(path)
			if err != nil {
				return nil, err
			}
			return &flakyFile{f.(*os.File), &fail}, nil
		}
	})
	meta := &sdk.Meta{Time: t0, OrigLen: 100, InPort: 1}
	waitStat := func(key string, min uint64) {
		t.Helper()
		if !testutil.Poll(5*time.Second, func() bool { return c.Stats()[key] >= min }) {
			t.Fatalf("stats %v: waited for %s >= %d", c.Stats(), key, min)
		}
	}

	c.Capture(meta, udpFrame(t, 0, 100))
	fail.Store(true)
	c.Capture(meta, udpFrame(t, 1, 100)) // buffered, then lost when the flush fails
	waitStat("write-errors", 1)
	for i := 2; i < 5; i++ { // dropped while waiting to retry
		c.Capture(meta, udpFrame(t, i, 100))
	}
	if st := c.Stats(); st["frames"] != 2 || st["dropped"] < 4 || st["files"] != 1 {
		t.Errorf("stats %v while failing: want frames 2, dropped >= 4, files 1", st)
	}
	if n := l.Count("error: "); n != 1 {
		t.Errorf("%d errors logged, want 1 (the first of a run)", n)
	}

	fail.Store(false)
	time.Sleep(60 * time.Millisecond) // past retryAfter
	c.Capture(meta, udpFrame(t, 5, 100))
	c.Stop()
	if n := l.Count("info: capture resumed"); n != 1 {
		t.Errorf("'capture resumed' logged %d times, want 1", n)
	}
	files := captureFiles(t, dir, "xvs")
	if len(files) != 2 || c.Stats()["files"] != 2 {
		t.Fatalf("files %v (stats %v), want the failed one and a new one", files, c.Stats())
	}
	got := readFile(t, files[1])
	if len(got) != 1 || !bytes.Equal(got[0].data, udpFrame(t, 5, 100)) {
		t.Errorf("the new file holds %d packets, want frame 5 only", len(got))
	}
}

// TestTshark reads a capture with tshark, the reader users have, when it
// is installed.
func TestTshark(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark not installed")
	}
	c, dir, _ := startCapture(t, nil, nil)
	c.Capture(&sdk.Meta{Dir: api.Ingress, InPort: 1, OutPort: api.NoPort, VSID: 5001, Time: t0, OrigLen: 100}, udpFrame(t, 0, 100))
	c.Capture(&sdk.Meta{Dir: api.Egress, InPort: 1, OutPort: 2, VSID: 5001, Time: t0.Add(time.Millisecond), OrigLen: 100}, udpFrame(t, 1, 100))
	c.Stop()
	path := captureFiles(t, dir, "xvs")[0]
	cmd := exec.Command(tshark, "-n", "-r", path, "-T", "fields", "-E", "separator=|",
		"-e", "frame.time_epoch", "-e", "frame.comment", "-e", "udp.dstport")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // no user profile
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	want := fmt.Sprintf("%d.123456789|port=vm1 vsid=5001 dir=ingress|5201\n%d.124456789|port=vm2 vsid=5001 dir=egress|5201\n", t0.Unix(), t0.Unix())
	var lines []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "|") { // skip tshark's warnings
			lines = append(lines, line)
		}
	}
	if got := strings.Join(lines, "\n") + "\n"; got != want {
		t.Errorf("tshark read:\n%s\nwant:\n%s", out, want)
	}
}
