package sdk

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/xvswitch/xvs/extensions/api"
	"github.com/xvswitch/xvs/extensions/api/pb"
	"github.com/xvswitch/xvs/extensions/internal/shm"
	"github.com/xvswitch/xvs/internal/testutil"
)

// These tests play the switch: they create the shared memory and the
// doorbell, produce on the down rings and consume the up rings, while the
// SDK's real control service and frame loop run in the same process
// against their own mapping of the memory (as they would in another
// process).

const (
	tRing = 64
	tSlot = 2048
)

type harness struct {
	t      *testing.T
	region *shm.Region // the switch's side
	efd    int
	s      *server
	logs   *syncBuffer
}

func newHarness(t *testing.T, ext Extension, channels int) *harness {
	t.Helper()
	region, err := shm.Create("t", channels, tRing, tSlot)
	if err != nil {
		t.Fatalf("create region: %v", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		region.Close()
		t.Fatalf("eventfd: %v", err)
	}
	logs := &syncBuffer{}
	s, err := newServer(ext, hclog.New(&hclog.LoggerOptions{Name: "test", Output: logs, JSONFormat: true, Level: hclog.Debug}))
	if err != nil {
		region.Close()
		unix.Close(efd)
		t.Fatalf("newServer: %v", err)
	}
	h := &harness{t: t, region: region, efd: efd, s: s, logs: logs}
	t.Cleanup(func() {
		s.Stop(context.Background(), &pb.Empty{})
		region.Close()
		unix.Close(efd)
		if t.Failed() {
			t.Logf("extension log:\n%s", logs.String())
		}
	})
	return h
}

// fds hands the extension its own copies of the descriptors, as a child
// process inherits them.
func (h *harness) fds() (shmFD, bellFD uint32) {
	h.t.Helper()
	a, err := unix.FcntlInt(h.region.File().Fd(), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		h.t.Fatalf("dup memfd: %v", err)
	}
	b, err := unix.FcntlInt(uintptr(h.efd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		h.t.Fatalf("dup eventfd: %v", err)
	}
	return uint32(a), uint32(b)
}

func (h *harness) request() *pb.StartRequest {
	shmFD, bellFD := h.fds()
	return &pb.StartRequest{
		Instance:   "t1",
		Config:     map[string]string{"k": "v"},
		ShmFd:      shmFD,
		DoorbellFd: bellFD,
		Ports: []*pb.Port{
			{Index: 1, Name: "vm1", Vsid: 5001},
			{Index: 3, Name: "vm3", Vsid: 5001},
			{Index: 9, Name: "uplink", Vsid: 0},
		},
	}
}

func (h *harness) start() *pb.StartReply {
	h.t.Helper()
	rep, err := h.s.Start(context.Background(), h.request())
	if err != nil {
		h.t.Fatalf("Start: %v", err)
	}
	return rep
}

// send produces one descriptor on channel ci's down ring. Slot, and Len
// and OrigLen when zero, are filled in; the frame is copied at d.Offset.
func (h *harness) send(ci int, d api.Desc, frame []byte) {
	h.t.Helper()
	if err := h.trySend(ci, d, frame, false); err != nil {
		h.t.Fatal(err)
	}
}

// trySend is send, usable from any one goroutine per channel. raw sends d
// exactly as given and copies frame at the start of the slot.
func (h *harness) trySend(ci int, d api.Desc, frame []byte, raw bool) error {
	ring := &h.region.Channel(ci).Down
	deadline := time.Now().Add(5 * time.Second)
	for {
		sd, slot, ok := ring.Reserve()
		if ok {
			if raw {
				copy(slot, frame)
			} else {
				copy(slot[d.Offset:], frame)
				d.Slot = sd.Slot
				if d.Len == 0 {
					d.Len = uint32(len(frame))
				}
				if d.OrigLen == 0 {
					d.OrigLen = d.Len
				}
			}
			*sd = d
			ring.Publish()
			h.kick()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("channel %d: down ring stayed full for 5s", ci)
		}
		runtime.Gosched()
	}
}

// kick rings the doorbell if the extension sleeps, as the switch does.
func (h *harness) kick() {
	if h.region.Sleeping() {
		ringBell(h.t, h.efd)
	}
}

func ringBell(t *testing.T, fd int) {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	if _, err := unix.Write(fd, one[:]); err != nil {
		t.Errorf("ring doorbell: %v", err)
	}
}

// recv consumes the next up descriptor of channel ci and a copy of its
// frame, failing the test after 5 s.
func (h *harness) recv(ci int) (api.Desc, []byte) {
	h.t.Helper()
	d, b, ok := h.recvWithin(ci, 5*time.Second)
	if !ok {
		h.t.Fatalf("channel %d: nothing came up within 5s", ci)
	}
	return d, b
}

func (h *harness) recvWithin(ci int, wait time.Duration) (api.Desc, []byte, bool) {
	ring := &h.region.Channel(ci).Up
	deadline := time.Now().Add(wait)
	var d api.Desc
	for !ring.Next(&d) {
		if time.Now().After(deadline) {
			return d, nil, false
		}
		time.Sleep(10 * time.Microsecond)
	}
	b, ok := ring.Slot(&d)
	if !ok {
		h.t.Errorf("channel %d: up descriptor with a bad slot: %+v", ci, d)
	}
	b = bytes.Clone(b)
	ring.Release()
	return d, b, true
}

// noneWithin fails the test if anything comes up on channel ci within wait.
func (h *harness) noneWithin(ci int, wait time.Duration) {
	h.t.Helper()
	if d, _, ok := h.recvWithin(ci, wait); ok {
		h.t.Fatalf("channel %d: unexpected up descriptor %+v", ci, d)
	}
}

func (h *harness) stats() map[string]uint64 {
	h.t.Helper()
	r, err := h.s.Stats(context.Background(), &pb.Empty{})
	if err != nil {
		h.t.Fatalf("Stats: %v", err)
	}
	return r.Counters
}

func (h *harness) wantCounter(name string, want uint64) {
	h.t.Helper()
	if got := h.stats()[name]; got != want {
		h.t.Errorf("counter %s = %d, want %d", name, got, want)
	}
}

// mkFrame returns n bytes starting with tag.
func mkFrame(tag byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	b[0] = tag
	return b
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Test extensions.

type testFilter struct {
	fn      func(h *Host, m *Meta, frame []byte) Verdict
	startFn func(h *Host) error
	statsFn func() map[string]uint64
	host    *Host
	stops   atomic.Int32
}

func (*testFilter) Info() Info { return Info{Name: "tfilter", Description: "test filter"} }
func (f *testFilter) Start(h *Host) error {
	f.host = h
	if f.startFn != nil {
		return f.startFn(h)
	}
	return nil
}
func (f *testFilter) Stop() { f.stops.Add(1) }
func (f *testFilter) Stats() map[string]uint64 {
	if f.statsFn != nil {
		return f.statsFn()
	}
	return nil
}
func (f *testFilter) Filter(m *Meta, frame []byte) Verdict {
	if f.fn == nil {
		return Pass
	}
	return f.fn(f.host, m, frame)
}

type captured struct {
	meta  Meta
	frame []byte
}

// testCapture implements Capture only: no Starter, Stopper or Stater.
type testCapture struct {
	mu  sync.Mutex
	got []captured
}

func (*testCapture) Info() Info { return Info{Name: "tcapture"} }
func (c *testCapture) Capture(m *Meta, frame []byte) {
	c.mu.Lock()
	c.got = append(c.got, captured{*m, bytes.Clone(frame)})
	c.mu.Unlock()
}
func (c *testCapture) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

type testForward struct {
	fn    func(m *Meta, frame []byte) Destinations
	claim func(h *Host)
	host  *Host
}

func (*testForward) Info() Info { return Info{Name: "tforward", EveryFrame: true} }
func (f *testForward) Start(h *Host) error {
	f.host = h
	if f.claim != nil {
		f.claim(h)
	}
	return nil
}
func (f *testForward) Forward(m *Meta, frame []byte) Destinations { return f.fn(m, frame) }

type noKind struct{}

func (noKind) Info() Info { return Info{} }

type twoKinds struct{ testFilter }

func (*twoKinds) Forward(*Meta, []byte) Destinations { return Destinations{} }

func TestNewServerKind(t *testing.T) {
	for _, tc := range []struct {
		ext     Extension
		kind    api.Kind
		wantErr string
	}{
		{ext: &testFilter{}, kind: api.KindFilter},
		{ext: &testCapture{}, kind: api.KindCapture},
		{ext: &testForward{}, kind: api.KindForward},
		{ext: noKind{}, wantErr: "implements none of Capture, Filter, Forward"},
		{ext: &twoKinds{}, wantErr: "implements Filter and Forward"},
		{ext: nil, wantErr: "extension is nil"},
	} {
		s, err := newServer(tc.ext, nil)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%T: error %v, want one containing %q", tc.ext, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%T: %v", tc.ext, err)
			continue
		}
		if s.kind != tc.kind {
			t.Errorf("%T: kind %v, want %v", tc.ext, s.kind, tc.kind)
		}
	}
}

func TestInfo(t *testing.T) {
	h := newHarness(t, &testForward{}, 1)
	_, err := h.s.Info(context.Background(), &pb.InfoRequest{ApiVersion: api.ProtocolVersion + 1})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("Info with version %d: %v, want FailedPrecondition", api.ProtocolVersion+1, err)
	}
	for _, want := range []string{fmt.Sprint("version ", api.ProtocolVersion+1), fmt.Sprint("version ", api.ProtocolVersion)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	rep, err := h.s.Info(context.Background(), &pb.InfoRequest{ApiVersion: api.ProtocolVersion})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ApiVersion != api.ProtocolVersion || rep.Name != "tforward" || api.Kind(rep.Kind) != api.KindForward || !rep.EveryFrame {
		t.Errorf("Info = %v", rep)
	}
}

func TestFilterVerdicts(t *testing.T) {
	scratch := make([]byte, 100)
	var mu sync.Mutex
	var metas []Meta
	f := &testFilter{fn: func(_ *Host, m *Meta, frame []byte) Verdict {
		mu.Lock()
		metas = append(metas, *m)
		mu.Unlock()
		switch frame[0] {
		case 1:
			return Pass
		case 2:
			return Drop
		case 3:
			return Verdict{Action: ActionPass, NoCache: true}
		case 4:
			frame[1] = 0xAA
			return Modified
		case 5:
			// A replacement in a buffer the filter reuses: the SDK must
			// have copied it before the next frame overwrites it.
			for i := range scratch {
				scratch[i] = 0x55
			}
			return Verdict{Action: ActionModified, Frame: scratch}
		case 6:
			return Verdict{Action: ActionModified, Frame: make([]byte, tSlot+1)}
		case 7:
			return Verdict{Action: 9}
		case 8:
			panic("filter bug")
		case 9:
			return Verdict{Action: ActionModified, Frame: make([]byte, 10)}
		case 10:
			for i := range scratch {
				scratch[i] = 0
			}
			return Verdict{Action: ActionDrop, NoCache: true}
		}
		return Pass
	}}
	h := newHarness(t, f, 1)
	h.start()

	in := mkFrame(4, 60)
	modified := bytes.Clone(in)
	modified[1] = 0xAA
	cases := []struct {
		name    string
		tag     byte
		verdict uint8
		flags   uint8
		frame   []byte
	}{
		{"pass", 1, api.VerdictPass, 0, nil},
		{"drop", 2, api.VerdictDrop, 0, nil},
		{"pass nocache", 3, api.VerdictPass, api.FlagNoCache, nil},
		{"modified in place", 4, api.VerdictModified, 0, modified},
		{"modified replacement", 5, api.VerdictModified, 0, bytes.Repeat([]byte{0x55}, 100)},
		{"replacement too long", 6, api.VerdictDrop, api.FlagNoCache, nil},
		{"unknown action", 7, api.VerdictDrop, api.FlagNoCache, nil},
		{"panic", 8, api.VerdictDrop, api.FlagNoCache, nil},
		{"replacement too short", 9, api.VerdictDrop, api.FlagNoCache, nil},
		{"drop nocache", 10, api.VerdictDrop, api.FlagNoCache, nil},
	}
	now := time.Now().UnixNano()
	for i, tc := range cases {
		frame := mkFrame(tc.tag, 60)
		dir := uint8(i % 2)
		out := uint16(api.NoPort)
		if dir == uint8(api.Egress) {
			out = 9
		}
		h.send(0, api.Desc{Cookie: 1000 + uint64(i), Type: api.TypeRequest, Time: now + int64(i),
			VSID: 5001, InPort: 1, OutPort: out, Dir: dir, OrigLen: 60}, frame)
		d, b := h.recv(0)
		if d.Cookie != 1000+uint64(i) || d.Type != api.TypeVerdict || d.Verdict != tc.verdict || d.Flags != tc.flags {
			t.Errorf("%s: verdict cookie %d type %d verdict %d flags %#x, want cookie %d type %d verdict %d flags %#x",
				tc.name, d.Cookie, d.Type, d.Verdict, d.Flags, 1000+i, api.TypeVerdict, tc.verdict, tc.flags)
		}
		if d.VSID != 5001 || d.InPort != 1 || d.OutPort != out || d.Dir != dir {
			t.Errorf("%s: verdict does not echo the request's metadata: %+v", tc.name, d)
		}
		if !bytes.Equal(b, tc.frame) && !(len(b) == 0 && tc.frame == nil) {
			t.Errorf("%s: verdict frame\n% x\nwant\n% x", tc.name, b, tc.frame)
		}
		if tc.frame != nil && d.OrigLen != uint32(len(tc.frame)) {
			t.Errorf("%s: OrigLen %d, want %d", tc.name, d.OrigLen, len(tc.frame))
		}
	}

	// A replacement frame is copied when the filter returns: published
	// together, the second request (which zeroes the filter's buffer) must
	// not change the first one's frame.
	down := &h.region.Channel(0).Down
	for i, tag := range []byte{5, 10} {
		sd, slot, ok := down.Reserve()
		if !ok {
			t.Fatal("down ring full")
		}
		copy(slot, mkFrame(tag, 60))
		sd.Type, sd.Len, sd.Cookie = api.TypeRequest, 60, uint64(2000+i)
	}
	down.Publish()
	h.kick()
	if d, b := h.recv(0); d.Cookie != 2000 || !bytes.Equal(b, bytes.Repeat([]byte{0x55}, 100)) {
		t.Errorf("replacement published with another verdict: cookie %d frame % x", d.Cookie, b)
	}
	if d, _ := h.recv(0); d.Cookie != 2001 || d.Verdict != api.VerdictDrop {
		t.Errorf("second verdict %+v", d)
	}

	// A capture copy is not for a filter: skipped and counted, and the
	// next request is answered first.
	h.send(0, api.Desc{Cookie: 1, Type: api.TypeCapture}, mkFrame(1, 60))
	h.send(0, api.Desc{Cookie: 2, Type: api.TypeRequest}, mkFrame(1, 60))
	if d, _ := h.recv(0); d.Cookie != 2 || d.Verdict != api.VerdictPass {
		t.Errorf("after a capture descriptor: got %+v, want the verdict of cookie 2", d)
	}

	mu.Lock()
	for i, m := range metas[:len(cases)] {
		wantOut := uint16(api.NoPort)
		if i%2 == 1 {
			wantOut = 9
		}
		if m.Dir != api.Direction(i%2) || m.InPort != 1 || m.OutPort != wantOut || m.VSID != 5001 ||
			m.OrigLen != 60 || !m.Time.Equal(time.Unix(0, now+int64(i))) {
			t.Errorf("frame %d: meta %+v", i, m)
		}
	}
	if len(metas) != len(cases)+3 {
		t.Errorf("filter called %d times, want %d", len(metas), len(cases)+3)
	}
	mu.Unlock()
	st := h.stats()
	for name, want := range map[string]uint64{
		"sdk_requests": uint64(len(cases) + 3), "sdk_verdicts": uint64(len(cases) + 3),
		"sdk_panics": 1, "sdk_bad_verdicts": 3, "sdk_kind_mismatch": 1,
		"sdk_frames": uint64(len(cases) + 4), "sdk_verdicts_lost": 0,
	} {
		if st[name] != want {
			t.Errorf("counter %s = %d, want %d", name, st[name], want)
		}
	}
	if !strings.Contains(h.logs.String(), "Filter panicked") || !strings.Contains(h.logs.String(), "filter bug") {
		t.Errorf("the panic was not logged; log:\n%s", h.logs.String())
	}
}

func TestForwardVerdicts(t *testing.T) {
	f := &testForward{
		claim: func(h *Host) { h.Claim(6000, 5001); h.Claim(5001) },
		fn: func(m *Meta, frame []byte) Destinations {
			switch frame[0] {
			case 1:
				return Destinations{Ports: []uint16{1, 3, 9}, Default: true}
			case 2:
				return Destinations{Drop: true}
			case 3:
				return Destinations{Ports: []uint16{3}, NoCache: true}
			case 4:
				return Destinations{Ports: []uint16{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}
			case 5:
				return Destinations{Drop: true, NoCache: true}
			case 6:
				panic(errors.New("forward bug"))
			}
			return Destinations{}
		},
	}
	h := newHarness(t, f, 1)
	rep := h.start()
	if !slices.Equal(rep.ClaimedVsids, []uint32{5001, 6000}) {
		t.Errorf("claimed %v, want [5001 6000]", rep.ClaimedVsids)
	}
	f.host.Claim(7000) // too late: ignored, and must not disturb anything

	cases := []struct {
		tag     byte
		verdict uint8
		flags   uint8
		ports   []uint16
	}{
		{1, api.VerdictForward, api.FlagDefault, []uint16{1, 3, 9}},
		{2, api.VerdictDrop, 0, nil},
		{3, api.VerdictForward, api.FlagNoCache, []uint16{3}},
		{4, api.VerdictForward, 0, []uint16{1, 2, 3, 4, 5, 6, 7, 8}},
		{5, api.VerdictDrop, api.FlagNoCache, nil},
		{6, api.VerdictDrop, api.FlagNoCache, nil},
		{7, api.VerdictForward, 0, nil},
	}
	for i, tc := range cases {
		h.send(0, api.Desc{Cookie: uint64(i), Type: api.TypeRequest, VSID: 5001}, mkFrame(tc.tag, 60))
		d, _ := h.recv(0)
		got := d.Ports[:min(int(d.NPorts), api.MaxPorts)]
		if d.Cookie != uint64(i) || d.Verdict != tc.verdict || d.Flags != tc.flags || !slices.Equal(got, tc.ports) {
			t.Errorf("frame %d: cookie %d verdict %d flags %#x ports %v, want verdict %d flags %#x ports %v",
				tc.tag, d.Cookie, d.Verdict, d.Flags, got, tc.verdict, tc.flags, tc.ports)
		}
	}
	h.wantCounter("sdk_ports_truncated", 1)
	h.wantCounter("sdk_panics", 1)
}

func TestCaptureSeesEveryFrame(t *testing.T) {
	c := &testCapture{}
	h := newHarness(t, c, 2)
	h.start()
	const n = 300 // more than a ring: the loop must keep up as the switch refills
	base := time.Now().UnixNano()
	var want [2][]captured
	errc := make(chan error, 2)
	for ci := range 2 {
		for i := range n {
			frame := mkFrame(byte(i), 60+i%200)
			d := api.Desc{Type: api.TypeCapture, Time: base + int64(i), VSID: uint32(5000 + ci),
				InPort: uint16(i % 5), OutPort: api.NoPort, Dir: uint8(api.Ingress), OrigLen: uint32(1500 + i)}
			if i%3 == 0 {
				d.Dir, d.OutPort = uint8(api.Egress), 4
			}
			want[ci] = append(want[ci], captured{Meta{Dir: api.Direction(d.Dir), InPort: d.InPort, OutPort: d.OutPort,
				VSID: d.VSID, Time: time.Unix(0, d.Time), OrigLen: int(d.OrigLen)}, frame})
		}
	}
	for ci := range 2 {
		go func() {
			for i, w := range want[ci] {
				d := api.Desc{Type: api.TypeCapture, Time: w.meta.Time.UnixNano(), VSID: w.meta.VSID, InPort: w.meta.InPort,
					OutPort: w.meta.OutPort, Dir: uint8(w.meta.Dir), OrigLen: uint32(w.meta.OrigLen), Cookie: uint64(i)}
				if err := h.trySend(ci, d, w.frame, false); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return c.n() == 2*n }, "every capture")
	h.noneWithin(0, 10*time.Millisecond) // capture answers nothing
	h.noneWithin(1, 0)

	c.mu.Lock()
	defer c.mu.Unlock()
	var got [2][]captured
	for _, g := range c.got {
		got[g.meta.VSID-5000] = append(got[g.meta.VSID-5000], g)
	}
	for ci := range 2 {
		if len(got[ci]) != n {
			t.Fatalf("channel %d: %d captures, want %d", ci, len(got[ci]), n)
		}
		for i := range n {
			g, w := got[ci][i], want[ci][i]
			if g.meta.Dir != w.meta.Dir || g.meta.InPort != w.meta.InPort || g.meta.OutPort != w.meta.OutPort ||
				g.meta.VSID != w.meta.VSID || !g.meta.Time.Equal(w.meta.Time) || g.meta.OrigLen != w.meta.OrigLen {
				t.Errorf("channel %d frame %d: meta %+v, want %+v", ci, i, g.meta, w.meta)
			}
			if !bytes.Equal(g.frame, w.frame) {
				t.Errorf("channel %d frame %d: bytes differ", ci, i)
			}
		}
	}
}

func TestCaptureAnswersStrayRequestWithPass(t *testing.T) {
	h := newHarness(t, &testCapture{}, 1)
	h.start()
	h.send(0, api.Desc{Cookie: 77, Type: api.TypeRequest}, mkFrame(1, 60))
	d, _ := h.recv(0)
	if d.Cookie != 77 || d.Verdict != api.VerdictPass || d.Flags != api.FlagNoCache {
		t.Errorf("stray request answered %+v, want pass, not cached", d)
	}
	h.wantCounter("sdk_kind_mismatch", 1)
}

func TestBadDescriptorsAreSkipped(t *testing.T) {
	var calls atomic.Int32
	h := newHarness(t, &testFilter{fn: func(_ *Host, m *Meta, frame []byte) Verdict {
		calls.Add(1)
		return Drop
	}}, 1)
	h.start()
	frame := mkFrame(1, 60)
	bad := []api.Desc{
		{Type: api.TypeRequest, Slot: tRing, Len: 60},                     // slot past the ring
		{Type: api.TypeRequest, Slot: 1<<32 - 1, Len: 60},                 // far past
		{Type: api.TypeRequest, Slot: 2, Offset: tSlot + 1, Len: 0},       // offset past the slot
		{Type: api.TypeRequest, Slot: 3, Offset: tSlot - 10, Len: 60},     // runs off the slot
		{Type: api.TypeRequest, Slot: 4, Offset: 1, Len: 1<<32 - 1},       // length overflows
		{Type: 0, Slot: 5, Len: 60},                                       // no type
		{Type: api.TypeVerdict, Slot: 6, Len: 60},                         // an up type coming down
		{Type: api.TypeRequest, Slot: 7, Len: 60, Dir: 2},                 // no such direction
		{Type: api.TypeCapture | 0x80, Slot: 8, Len: 60, Cookie: 1 << 63}, // garbage type
	}
	for i, d := range bad {
		d.Cookie = 100 + uint64(i)
		if err := h.trySend(0, d, frame, true); err != nil {
			t.Fatal(err)
		}
	}
	h.send(0, api.Desc{Cookie: 1, Type: api.TypeRequest}, frame)
	d, _ := h.recv(0)
	if d.Cookie != 1 || d.Verdict != api.VerdictDrop {
		t.Errorf("first up descriptor %+v, want the drop verdict of cookie 1", d)
	}
	h.noneWithin(0, 10*time.Millisecond)
	if calls.Load() != 1 {
		t.Errorf("filter called %d times, want 1", calls.Load())
	}
	h.wantCounter("sdk_bad_descriptors", uint64(len(bad)))
	h.wantCounter("sdk_frames", uint64(len(bad)+1))
}

func TestInjectConcurrentWithLoop(t *testing.T) {
	f := &testFilter{fn: func(_ *Host, m *Meta, frame []byte) Verdict { return Pass }}
	h := newHarness(t, f, 2)
	h.start()
	const n = 500
	errc := make(chan error, 3)
	go func() { // injector: another goroutine of the extension
		for i := range n {
			dir := api.Direction(i % 2)
			if err := f.host.Inject(3, dir, mkFrame(byte(i), 64+i%100)); err != nil {
				errc <- fmt.Errorf("inject %d: %w", i, err)
				return
			}
		}
		errc <- nil
	}()
	for ci := range 2 { // the switch's workers
		go func() {
			for i := range n {
				if err := h.trySend(ci, api.Desc{Cookie: uint64(i), Type: api.TypeRequest}, mkFrame(1, 60), false); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	var injected [][]byte
	var verdicts [2][]uint64
	deadline := time.Now().Add(10 * time.Second)
	for len(injected) < n || len(verdicts[0]) < n || len(verdicts[1]) < n {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %d injected, %d+%d verdicts", len(injected), len(verdicts[0]), len(verdicts[1]))
		}
		for ci := range 2 {
			d, b, ok := h.recvWithin(ci, 0)
			if !ok {
				continue
			}
			switch d.Type {
			case api.TypeVerdict:
				verdicts[ci] = append(verdicts[ci], d.Cookie)
			case api.TypeInject:
				if ci != 0 {
					t.Fatalf("inject on channel %d, want 0", ci)
				}
				i := len(injected)
				wantIn, wantOut := uint16(3), uint16(api.NoPort)
				if i%2 == 1 {
					wantIn, wantOut = api.NoPort, 3
				}
				if d.Dir != uint8(i%2) || d.InPort != wantIn || d.OutPort != wantOut || d.VSID != 5001 || d.OrigLen != d.Len {
					t.Errorf("inject %d: descriptor %+v", i, d)
				}
				if want := mkFrame(byte(i), 64+i%100); !bytes.Equal(b, want) {
					t.Errorf("inject %d: frame differs", i)
				}
				injected = append(injected, b)
			default:
				t.Fatalf("unexpected up descriptor %+v", d)
			}
		}
	}
	for range 3 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	for ci := range 2 {
		for i, c := range verdicts[ci] {
			if c != uint64(i) {
				t.Fatalf("channel %d: verdict %d has cookie %d", ci, i, c)
			}
		}
	}
	h.wantCounter("sdk_injects", n)
	h.wantCounter("sdk_verdicts_lost", 0)
}

func TestInjectErrors(t *testing.T) {
	f := &testFilter{}
	h := newHarness(t, f, 1)
	h.start()
	host := f.host
	if err := host.Inject(3, api.Ingress, make([]byte, MinFrame-1)); !errors.Is(err, ErrFrameLength) {
		t.Errorf("short frame: %v, want ErrFrameLength", err)
	}
	if err := host.Inject(3, api.Ingress, make([]byte, tSlot+1)); !errors.Is(err, ErrFrameLength) {
		t.Errorf("long frame: %v, want ErrFrameLength", err)
	}
	if err := host.Inject(api.NoPort, api.Ingress, make([]byte, 60)); err == nil {
		t.Errorf("inject to api.NoPort succeeded")
	}
	if err := host.Inject(3, 5, make([]byte, 60)); err == nil {
		t.Errorf("inject in direction 5 succeeded")
	}
	// Nobody drains the up ring: it takes tRing frames, then Inject gives
	// up after InjectWait.
	for i := range tRing {
		if err := host.Inject(3, api.Ingress, make([]byte, tSlot)); err != nil {
			t.Fatalf("inject %d into a ring with room: %v", i, err)
		}
	}
	t0 := time.Now()
	err := host.Inject(3, api.Ingress, make([]byte, 60))
	if !errors.Is(err, ErrRingFull) {
		t.Fatalf("inject into a full ring: %v, want ErrRingFull", err)
	}
	if el := time.Since(t0); el < InjectWait*9/10 || el > 10*InjectWait {
		t.Errorf("Inject gave up after %v, want about %v", el, InjectWait)
	}
	// Room again: it works.
	h.recv(0)
	if err := host.Inject(3, api.Ingress, make([]byte, 60)); err != nil {
		t.Errorf("inject after the switch made room: %v", err)
	}
	h.wantCounter("sdk_inject_errors", 3)
	h.s.Stop(context.Background(), &pb.Empty{})
	if err := host.Inject(3, api.Ingress, make([]byte, 60)); !errors.Is(err, ErrStopped) {
		t.Errorf("inject after Stop: %v, want ErrStopped", err)
	}
	host.Invalidate() // after Stop: nothing, and no crash
}

func TestInjectOnlyFromFilters(t *testing.T) {
	f := &testForward{fn: func(*Meta, []byte) Destinations { return Destinations{} }}
	h := newHarness(t, f, 1)
	h.start()
	if err := f.host.Inject(3, api.Ingress, make([]byte, 60)); !errors.Is(err, ErrNotFilter) {
		t.Errorf("inject from a forwarding extension: %v, want ErrNotFilter", err)
	}
}

func TestVerdictsWaitForRoom(t *testing.T) {
	h := newHarness(t, &testFilter{}, 1)
	h.start()
	// Two rings' worth of requests, and the switch does not drain the up
	// ring until the SDK has found it full: nothing may be lost.
	for i := range tRing {
		h.send(0, api.Desc{Cookie: uint64(i), Type: api.TypeRequest}, mkFrame(1, 60))
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return h.stats()["sdk_verdicts"] == tRing }, "the first ring of verdicts")
	for i := range tRing {
		h.send(0, api.Desc{Cookie: uint64(tRing + i), Type: api.TypeRequest}, mkFrame(1, 60))
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return h.stats()["sdk_up_ring_full"] > 0 }, "the up ring to be found full")
	for i := range 2 * tRing {
		if d, _ := h.recv(0); d.Cookie != uint64(i) {
			t.Fatalf("verdict %d has cookie %d", i, d.Cookie)
		}
	}
	h.wantCounter("sdk_verdicts_lost", 0)
}

func TestSleepsAndDoorbellWakes(t *testing.T) {
	h := newHarness(t, &testFilter{}, 2)
	h.s.pollTimeout = time.Minute // only the doorbell can wake it within the test
	h.start()
	testutil.Eventually(t, 5*time.Second, h.region.Sleeping, "the loop to sleep")
	// SetSleeping comes just before the last look at the rings; give the
	// loop time to be in poll.
	time.Sleep(20 * time.Millisecond)
	// send rings the doorbell, as the switch does, because the loop
	// sleeps; with a poll timeout of a minute nothing else wakes it.
	t0 := time.Now()
	h.send(1, api.Desc{Cookie: 5, Type: api.TypeRequest}, mkFrame(1, 60))
	d, _ := h.recv(1)
	if d.Cookie != 5 {
		t.Fatalf("got cookie %d, want 5", d.Cookie)
	}
	if el := time.Since(t0); el > time.Second {
		t.Errorf("woke after %v", el)
	}
	st := h.stats()
	if st["sdk_sleeps"] == 0 || st["sdk_wakeups"] == 0 {
		t.Errorf("sleeps %d, wakeups %d: want both counted", st["sdk_sleeps"], st["sdk_wakeups"])
	}
	testutil.Eventually(t, 5*time.Second, h.region.Sleeping, "the loop to sleep again")
	// The ring was consumed: the loop sleeps rather than waking again and
	// again on a doorbell left readable.
	time.Sleep(30 * time.Millisecond)
	if w := h.stats()["sdk_wakeups"]; w > 2 {
		t.Errorf("%d wakeups from one ring of the doorbell", w)
	}
}

func TestSleepingLoopWaitsForTheDoorbell(t *testing.T) {
	h := newHarness(t, &testFilter{}, 1)
	h.s.pollTimeout = time.Minute
	h.start()
	testutil.Eventually(t, 5*time.Second, h.region.Sleeping, "the loop to sleep")
	time.Sleep(20 * time.Millisecond)
	// Publish without ringing: proof that the loop really sleeps in poll
	// rather than spinning.
	ring0 := &h.region.Channel(0).Down
	sd, slot, ok := ring0.Reserve()
	if !ok {
		t.Fatal("down ring full")
	}
	copy(slot, mkFrame(1, 60))
	sd.Type, sd.Len, sd.Cookie = api.TypeRequest, 60, 9
	ring0.Publish()
	h.noneWithin(0, 50*time.Millisecond)
	ringBell(t, h.efd)
	t0 := time.Now()
	d, _ := h.recv(0)
	if d.Cookie != 9 {
		t.Fatalf("got cookie %d, want 9", d.Cookie)
	}
	if el := time.Since(t0); el > time.Second {
		t.Errorf("the doorbell woke the loop after %v", el)
	}
}

func TestStop(t *testing.T) {
	f := &testFilter{}
	h := newHarness(t, f, 1)
	h.s.pollTimeout = time.Minute
	h.start()
	h.send(0, api.Desc{Cookie: 1, Type: api.TypeRequest}, mkFrame(1, 60))
	h.recv(0)
	testutil.Eventually(t, 5*time.Second, h.region.Sleeping, "the loop to sleep")
	loop := h.s.loop
	host := h.s.host
	t0 := time.Now()
	if _, err := h.s.Stop(context.Background(), &pb.Empty{}); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(t0); el > time.Second {
		t.Errorf("Stop of a sleeping loop took %v", el)
	}
	select {
	case <-loop.done:
	default:
		t.Fatal("the loop still runs after Stop")
	}
	if _, err := h.s.Stop(context.Background(), &pb.Empty{}); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if n := f.stops.Load(); n != 1 {
		t.Errorf("Stopper.Stop called %d times, want 1", n)
	}
	if err := checkFD(host.doorbell); err == nil {
		t.Errorf("doorbell fd %d still open after Stop", host.doorbell)
	}
	h.send(0, api.Desc{Cookie: 2, Type: api.TypeRequest}, mkFrame(1, 60))
	h.noneWithin(0, 20*time.Millisecond)
	if _, err := h.s.Start(context.Background(), h.request()); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Start after Stop: %v, want FailedPrecondition", err)
	}
}

func TestStartErrors(t *testing.T) {
	t.Run("starter fails", func(t *testing.T) {
		f := &testFilter{startFn: func(*Host) error { return errors.New("no rules file") }}
		h := newHarness(t, f, 1)
		req := h.request()
		_, err := h.s.Start(context.Background(), req)
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "no rules file") {
			t.Fatalf("Start: %v, want FailedPrecondition with the extension's error", err)
		}
		for _, fd := range []uint32{req.ShmFd, req.DoorbellFd} {
			if checkFD(int(fd)) == nil {
				t.Errorf("fd %d still open after a failed Start", fd)
			}
		}
		if _, err := h.s.Stop(context.Background(), &pb.Empty{}); err != nil {
			t.Errorf("Stop after a failed Start: %v", err)
		}
		if f.stops.Load() != 0 {
			t.Errorf("Stopper.Stop called after a failed Start")
		}
	})
	t.Run("starter panics", func(t *testing.T) {
		h := newHarness(t, &testFilter{startFn: func(*Host) error { panic("oops") }}, 1)
		if _, err := h.s.Start(context.Background(), h.request()); err == nil || !strings.Contains(err.Error(), "oops") {
			t.Fatalf("Start: %v, want an error naming the panic", err)
		}
	})
	for _, tc := range []struct {
		name string
		edit func(h *harness, r *pb.StartRequest)
		want string
	}{
		{"stdout as shm", func(h *harness, r *pb.StartRequest) { r.ShmFd = 1 }, "shm_fd 1"},
		{"same fds", func(h *harness, r *pb.StartRequest) { r.DoorbellFd = r.ShmFd }, "both"},
		{"eventfd as shm", func(h *harness, r *pb.StartRequest) { r.ShmFd, r.DoorbellFd = r.DoorbellFd, r.ShmFd }, "shm_fd"},
		{"closed doorbell", func(h *harness, r *pb.StartRequest) { unix.Close(int(r.DoorbellFd)) }, "doorbell_fd"},
		{"port index", func(h *harness, r *pb.StartRequest) { r.Ports[1].Index = 70000 }, "ports[1].index 70000"},
		{"port twice", func(h *harness, r *pb.StartRequest) { r.Ports[2].Name = "vm1" }, `ports[2].name "vm1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, &testFilter{}, 1)
			r := h.request()
			orig := []uint32{r.ShmFd, r.DoorbellFd}
			tc.edit(h, r)
			_, err := h.s.Start(context.Background(), r)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Start: %v, want InvalidArgument naming %q", err, tc.want)
			}
			// A descriptor the request named is the extension's; one it did
			// not name is still ours.
			for _, fd := range orig {
				named := fd == r.ShmFd || fd == r.DoorbellFd
				if open := checkFD(int(fd)) == nil; named && open {
					t.Errorf("fd %d named in a refused Start is still open", fd)
				} else if open {
					unix.Close(int(fd))
				}
			}
			// The service stays usable: a good Start works.
			h.start()
		})
	}
	t.Run("twice", func(t *testing.T) {
		h := newHarness(t, &testFilter{}, 1)
		h.start()
		req := h.request()
		if _, err := h.s.Start(context.Background(), req); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("second Start: %v, want FailedPrecondition", err)
		}
		unix.Close(int(req.ShmFd))
		unix.Close(int(req.DoorbellFd))
	})
}

func TestHostPortsConfigAndInvalidate(t *testing.T) {
	f := &testFilter{}
	f.fn = func(h *Host, m *Meta, frame []byte) Verdict {
		// Readers in the frame loop while SetPorts replaces the table.
		if p, ok := h.PortByIndex(m.InPort); ok && p.Index != m.InPort {
			panic("PortByIndex returned another port")
		}
		h.PortByName("vm1")
		return Pass
	}
	h := newHarness(t, f, 1)
	h.start()
	host := f.host
	if host.Instance() != "t1" {
		t.Errorf("Instance %q", host.Instance())
	}
	cfg := host.Config()
	cfg["k"] = "changed"
	if host.Config()["k"] != "v" {
		t.Errorf("Config is not a copy")
	}
	if p, ok := host.PortByName("vm3"); !ok || p != (Port{Index: 3, Name: "vm3", VSID: 5001}) {
		t.Errorf("PortByName(vm3) = %+v, %v", p, ok)
	}
	if p, ok := host.PortByIndex(9); !ok || p.Name != "uplink" {
		t.Errorf("PortByIndex(9) = %+v, %v", p, ok)
	}
	if _, ok := host.PortByIndex(2); ok {
		t.Errorf("PortByIndex(2) found a port that does not exist")
	}
	ports := host.Ports()
	ports[0].Name = "scribbled"
	if host.Ports()[0].Name != "vm1" {
		t.Errorf("Ports is not a copy")
	}

	const n = 200
	errc := make(chan error, 1)
	go func() {
		for i := range n {
			if err := h.trySend(0, api.Desc{Cookie: uint64(i), Type: api.TypeRequest, InPort: uint16(i % 4)}, mkFrame(1, 60), false); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	verdicts := 0
	for i := range n {
		_, err := h.s.SetPorts(context.Background(), &pb.PortsRequest{Ports: []*pb.Port{
			{Index: uint32(i % 4), Name: "vm1", Vsid: 5001}, {Index: 10, Name: fmt.Sprint("p", i)}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, ok := h.recvWithin(0, 0); ok {
			verdicts++
		}
	}
	for ; verdicts < n; verdicts++ {
		h.recv(0)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	h.wantCounter("sdk_panics", 0)
	if p, ok := host.PortByName("p199"); !ok || p.Index != 10 {
		t.Errorf("after SetPorts: PortByName(p199) = %+v, %v", p, ok)
	}
	if _, err := h.s.SetPorts(context.Background(), &pb.PortsRequest{Ports: []*pb.Port{{Index: 1}, {Index: 1}}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("SetPorts with an index twice: %v, want InvalidArgument", err)
	}
	if len(host.Ports()) != 2 {
		t.Errorf("a refused SetPorts changed the table: %v", host.Ports())
	}

	g := h.region.Generation()
	host.Invalidate()
	if h.region.Generation() != g+1 {
		t.Errorf("generation %d after Invalidate, want %d", h.region.Generation(), g+1)
	}
}

// The zero Host is usable in an extension's own unit tests.
func TestZeroHost(t *testing.T) {
	var h Host
	if err := h.Inject(1, api.Ingress, make([]byte, 60)); !errors.Is(err, ErrStopped) {
		t.Errorf("Inject: %v, want ErrStopped", err)
	}
	h.Invalidate()
	h.Claim(5001)
	h.Logger().Info("discarded")
	if len(h.Ports()) != 0 || len(h.Config()) != 0 || h.Instance() != "" || h.SlotSize() != 0 {
		t.Errorf("zero Host has ports %v, config %v, instance %q, slot size %d", h.Ports(), h.Config(), h.Instance(), h.SlotSize())
	}
	if _, ok := h.PortByIndex(1); ok {
		t.Errorf("PortByIndex found a port")
	}
	if _, ok := h.PortByName(""); ok {
		t.Errorf("PortByName found a port")
	}
}

func TestStatsMerge(t *testing.T) {
	f := &testFilter{statsFn: func() map[string]uint64 { return map[string]uint64{"rules": 3, "sdk_frames": 999} }}
	h := newHarness(t, f, 1)
	h.start()
	h.send(0, api.Desc{Type: api.TypeRequest}, mkFrame(1, 60))
	h.recv(0)
	st := h.stats()
	if st["rules"] != 3 || st["sdk_frames"] != 1 || st["sdk_verdicts"] != 1 {
		t.Errorf("stats %v: want rules 3 from the extension and the SDK's sdk_frames 1", st)
	}
	for _, name := range []string{"sdk_injects", "sdk_up_ring_full", "sdk_bad_descriptors"} {
		if _, ok := st[name]; !ok {
			t.Errorf("stats lack %s", name)
		}
	}
	f.statsFn = func() map[string]uint64 { panic("stats bug") }
	st = h.stats()
	if _, ok := st["rules"]; ok || st["sdk_panics"] != 1 {
		t.Errorf("stats after a panicking Stater: %v", st)
	}
}

// The loop's per-frame path allocates nothing.
func TestLoopDoesNotAllocate(t *testing.T) {
	f := &testFilter{fn: func(_ *Host, m *Meta, frame []byte) Verdict {
		frame[1]++
		return Modified
	}}
	h := newHarness(t, f, 1)
	h.start()
	// Stop the loop goroutine so that the test can drive the loop by hand.
	l := h.s.loop
	l.stopAndWait()
	down, up := &h.region.Channel(0).Down, &h.region.Channel(0).Up
	frame := mkFrame(1, 64)
	var d api.Desc
	allocs := testing.AllocsPerRun(1000, func() {
		sd, slot, _ := down.Reserve()
		copy(slot, frame)
		sd.Type, sd.Len, sd.Cookie, sd.Time = api.TypeRequest, 64, 7, 1
		down.Publish()
		l.serveChannel(0)
		up.Next(&d)
		up.Release()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per frame, want 0", allocs)
	}
	if d.Cookie != 7 || d.Verdict != api.VerdictModified {
		t.Errorf("last verdict %+v", d)
	}
}

// BenchmarkFilterBatch measures the SDK's side of a filter round trip:
// batches of 64 requests read, decided and answered.
func BenchmarkFilterBatch(b *testing.B) {
	region, err := shm.Create("b", 1, 1024, 2048)
	if err != nil {
		b.Fatal(err)
	}
	defer region.Close()
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(efd)
	s, err := newServer(&testFilter{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	a, _ := unix.FcntlInt(region.File().Fd(), unix.F_DUPFD_CLOEXEC, 3)
	c, _ := unix.FcntlInt(uintptr(efd), unix.F_DUPFD_CLOEXEC, 3)
	if _, err := s.Start(context.Background(), &pb.StartRequest{ShmFd: uint32(a), DoorbellFd: uint32(c)}); err != nil {
		b.Fatal(err)
	}
	defer s.Stop(context.Background(), &pb.Empty{})
	l := s.loop
	l.stopAndWait()
	down, up := &region.Channel(0).Down, &region.Channel(0).Up
	frame := mkFrame(1, 64)
	var d api.Desc
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(batchSize, b.N-done)
		for range n {
			sd, slot, _ := down.Reserve()
			copy(slot, frame)
			sd.Type, sd.Len = api.TypeRequest, 64
		}
		down.Publish()
		l.serveChannel(0)
		for up.Next(&d) {
		}
		up.Release()
		done += n
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mpps")
}
