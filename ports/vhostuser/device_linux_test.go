package vhostuser

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/xvswitch/xvs/internal/testutil"
)

// raw sends bytes as they are, then optionally shuts the sending side.
func (f *feFrontend) raw(b []byte, closeWrite bool) {
	f.t.Helper()
	if _, err := f.c.Write(b); err != nil {
		f.t.Fatal(err)
	}
	if closeWrite {
		f.c.CloseWrite()
	}
}

// feMemTableRaw encodes a memory table of n copies of region r.
func feMemTableRaw(n uint32, r memRegion) []byte {
	b := binary.NativeEndian.AppendUint32(nil, n)
	b = binary.NativeEndian.AppendUint32(b, 0)
	for range n {
		b = append(b, appendMemTable(nil, []memRegion{r})[8:]...)
	}
	return b
}

// Every malformed message drops the connection, counts a protocol error,
// closes the descriptors that came with it, and leaves the port ready for
// the next front-end. Nothing panics.
func TestDeviceMalformedMessagesDropConnection(t *testing.T) {
	testutil.CheckLeaks(t)
	var log feLog
	p := feServer(t, Config{Logger: zerolog.New(&log)})
	region := memRegion{GuestPhys: 0, Size: feHalf, UserAddr: feUVA0}
	evfd := func(f *feFrontend) int { return f.kick[7] }
	cases := []struct {
		name string
		want string // in the logged error
		send func(f *feFrontend)
	}{
		{"short header", "short header", func(f *feFrontend) { f.raw([]byte{1, 0, 0, 0, 1}, true) }},
		{"huge size", "payload size 1048576", func(f *feFrontend) {
			h := appendMessage(nil, message{Req: ReqSetFeatures})
			binary.NativeEndian.PutUint32(h[8:], 1<<20)
			f.raw(h, false)
		}},
		{"size just over the limit", "payload size 4097", func(f *feFrontend) {
			h := appendMessage(nil, message{Req: ReqSetFeatures})
			binary.NativeEndian.PutUint32(h[8:], maxPayload+1)
			f.raw(h, false)
		}},
		{"bad version", "version 2", func(f *feFrontend) {
			h := appendMessage(nil, message{Req: ReqGetFeatures})
			binary.NativeEndian.PutUint32(h[4:], 2)
			f.raw(h, false)
		}},
		{"truncated payload", "short payload", func(f *feFrontend) {
			h := appendMessage(nil, message{Req: ReqSetVringAddr, Payload: make([]byte, 40)})
			f.raw(h[:hdrSize+10], true)
		}},
		{"u64 payload too short", "payload of 4 bytes", func(f *feFrontend) { f.must(ReqSetFeatures, []byte{1, 2, 3, 4}) }},
		{"features not offered", "were not offered", func(f *feFrontend) { f.must(ReqSetFeatures, appendU64(nil, offeredFeatures|1)) }},
		{"protocol features not offered", "were not offered", func(f *feFrontend) {
			f.must(ReqSetProtocolFeatures, appendU64(nil, protoConfig))
		}},
		{"too many regions", "9 regions", func(f *feFrontend) { f.must(ReqSetMemTable, feMemTableRaw(9, region)) }},
		{"no regions", "0 regions", func(f *feFrontend) { f.must(ReqSetMemTable, feMemTableRaw(0, region)) }},
		{"fewer descriptors than regions", "2 regions, 1 descriptors", func(f *feFrontend) {
			f.must(ReqSetMemTable, appendMemTable(nil, f.regions()), f.memfd)
		}},
		{"region fd is an eventfd", "not a regular file", func(f *feFrontend) {
			f.must(ReqSetMemTable, appendMemTable(nil, []memRegion{region}), evfd(f))
		}},
		{"region beyond the file", "region ends at offset", func(f *feFrontend) {
			r := region
			r.MmapOffset = feRAM - 4096
			f.must(ReqSetMemTable, appendMemTable(nil, []memRegion{r}), f.memfd)
		}},
		{"region offset wraps", "wraps around", func(f *feFrontend) {
			r := region
			r.MmapOffset = ^uint64(0) - 10
			f.must(ReqSetMemTable, appendMemTable(nil, []memRegion{r}), f.memfd)
		}},
		{"overlapping regions", "overlap", func(f *feFrontend) {
			r2 := region
			r2.GuestPhys = feHalf / 2
			r2.UserAddr = feUVA1
			f.ack(ReqSetMemTable, appendMemTable(nil, []memRegion{region, r2}), f.memfd, f.memfd)
		}},
		{"ring index out of range", "ring 2: the device has 2 rings", func(f *feFrontend) {
			f.must(ReqSetVringNum, appendState(nil, vringState{Index: 2, Num: 256}))
		}},
		{"kick for a ring out of range", "ring 9", func(f *feFrontend) {
			f.must(ReqSetVringKick, appendVringFD(nil, vringFD{Index: 9}), f.kick[0])
		}},
		{"ring size not a power of two", "size 255", func(f *feFrontend) {
			f.must(ReqSetVringNum, appendState(nil, vringState{Index: 0, Num: 255}))
		}},
		{"ring size too large", "size 65536", func(f *feFrontend) {
			f.must(ReqSetVringNum, appendState(nil, vringState{Index: 0, Num: 65536}))
		}},
		{"ring base too large", "base 65536", func(f *feFrontend) {
			f.must(ReqSetVringBase, appendState(nil, vringState{Index: 0, Num: 65536}))
		}},
		{"enable neither 0 nor 1", "want 0 or 1", func(f *feFrontend) {
			f.must(ReqSetVringEnable, appendState(nil, vringState{Index: 0, Num: 2}))
		}},
		{"undefined ring address flags", "undefined flags", func(f *feFrontend) {
			f.must(ReqSetVringAddr, appendAddr(nil, vringAddr{Index: 0, Flags: 2}))
		}},
		{"kick without fd nor NoFD", "0 descriptors, want 1", func(f *feFrontend) {
			f.must(ReqSetVringKick, appendVringFD(nil, vringFD{Index: 0}))
		}},
		{"NoFD kick with an fd", "1 descriptors, want 0", func(f *feFrontend) {
			f.must(ReqSetVringCall, appendVringFD(nil, vringFD{Index: 0, NoFD: true}), f.call[0])
		}},
		{"too many descriptors", "10 descriptors", func(f *feFrontend) {
			fds := make([]int, 10)
			for i := range fds {
				fds[i] = f.call[i%8]
			}
			f.must(ReqSetOwner, nil, fds...)
		}},
		{"ring outside guest memory", "outside guest memory", func(f *feFrontend) {
			f.handshake(feOpts{noEnable: true})
			f.must(ReqSetVringAddr, appendAddr(nil, vringAddr{Index: 0, Desc: 0x1234_0000_0000, Used: feUVA0 + 0x2000, Avail: feUVA0 + 0x1000}))
			f.must(ReqSetVringEnable, appendState(nil, vringState{Index: 0, Num: 1}))
		}},
		{"ring straddling the end of a region", "outside guest memory", func(f *feFrontend) {
			f.handshake(feOpts{noEnable: true})
			f.must(ReqSetVringAddr, appendAddr(nil, vringAddr{Index: 1, Desc: feUVA0 + feHalf - 1024, Used: feUVA0 + 0x2000, Avail: feUVA0 + 0x1000}))
			f.must(ReqSetVringEnable, appendState(nil, vringState{Index: 1, Num: 1}))
		}},
		{"misaligned used ring", "alignment", func(f *feFrontend) {
			f.handshake(feOpts{noProtocol: true})
			f.must(ReqSetVringAddr, appendAddr(nil, vringAddr{Index: 0, Desc: feUVA0, Used: feUVA0 + 0x2002, Avail: feUVA0 + 0x1000}))
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := feConnect(t, p.Socket())
			testutil.Eventually(t, feTimeout, func() bool { return p.ControlStats().Connects == uint64(i+1) }, "connection")
			tc.send(f)
			f.waitClosed()
			testutil.Eventually(t, feTimeout, func() bool { return p.ControlStats().ProtocolErrors == uint64(i+1) }, "protocol error counted")
			feWaitRunning(t, p, 0, 0)
			// The error is counted before it is logged: give the log line a moment.
			l := log.take()
			for end := time.Now().Add(2 * time.Second); time.Now().Before(end) &&
				!(strings.Contains(l, tc.want) && strings.Contains(l, "vhost-user connection dropped")); {
				time.Sleep(5 * time.Millisecond)
				l += log.take()
			}
			if !strings.Contains(l, tc.want) || !strings.Contains(l, "vhost-user connection dropped") {
				t.Errorf("log does not say %q:\n%s", tc.want, l)
			} else {
				t.Log(l)
			}
		})
	}
	// The port still serves a well-behaved front-end.
	f := feConnect(t, p.Socket())
	f.handshake(feOpts{})
	feWaitRunning(t, p, 1, 1)
	feTraffic(t, p, f, 1)
	if cs := p.ControlStats(); cs.ProtocolErrors != uint64(len(cases)) || cs.Connects != uint64(len(cases)+1) {
		t.Errorf("control stats %+v", cs)
	}
}

// Requests the device does not grant are answered and the connection
// stays up.
func TestDeviceDeclinedRequests(t *testing.T) {
	testutil.CheckLeaks(t)
	p := feServer(t, Config{MTU: 1500})
	f := feConnect(t, p.Socket())
	f.handshake(feOpts{})
	feWaitRunning(t, p, 1, 1)

	// Unknown request with NEED_REPLY: failure status.
	if st := f.ack(Request(99), []byte{1, 2, 3}); st == 0 {
		t.Error("unknown request acknowledged as success")
	}
	// Unknown request without NEED_REPLY: no answer at all (the next
	// reply is the one to GET_FEATURES).
	f.must(Request(200), nil)
	if v := f.get(ReqGetFeatures); v != offeredFeatures {
		t.Errorf("GET_FEATURES after an unknown request: %#x", v)
	}
	// GET_CONFIG: CONFIG is not offered; the empty reply says so.
	f.must(ReqGetConfig, appendConfig(nil, configHdr{Size: 8}, make([]byte, 8)))
	if r := f.reply(ReqGetConfig); len(r) != 0 {
		t.Errorf("GET_CONFIG reply of %d bytes, want 0", len(r))
	}
	if st := f.ack(ReqSetConfig, appendConfig(nil, configHdr{Size: 6}, make([]byte, 6))); st == 0 {
		t.Error("SET_CONFIG acknowledged")
	}
	// NET_SET_MTU above the port's MTU is refused, within it accepted.
	if st := f.ack(ReqNetSetMTU, appendU64(nil, 9000)); st == 0 {
		t.Error("NET_SET_MTU 9000 on a 1500 port acknowledged")
	}
	if st := f.ack(ReqNetSetMTU, appendU64(nil, 1500)); st != 0 {
		t.Errorf("NET_SET_MTU 1500: status %d", st)
	}
	// Descriptors of requests the device does not keep are closed (the
	// leak check sees to that): SET_LOG_FD, SET_VRING_ERR, SET_LOG_BASE.
	ev, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ev)
	if st := f.ack(ReqSetLogFD, nil, ev); st != 0 {
		t.Errorf("SET_LOG_FD: status %d", st)
	}
	if st := f.ack(ReqSetVringErr, appendVringFD(nil, vringFD{Index: 0}), ev); st != 0 {
		t.Errorf("SET_VRING_ERR: status %d", st)
	}
	if st := f.ack(ReqSetLogBase, make([]byte, 16), ev); st == 0 {
		t.Error("SET_LOG_BASE acknowledged")
	}
	// REPLY_ACK on requests without a reply of their own.
	if st := f.ack(ReqSetOwner, nil); st != 0 {
		t.Errorf("SET_OWNER: status %d", st)
	}
	if st := f.ack(ReqSetVringEnable, appendState(nil, vringState{Index: 0, Num: 1})); st != 0 {
		t.Errorf("SET_VRING_ENABLE: status %d", st)
	}
	feTraffic(t, p, f, 2)
	cs := p.ControlStats()
	if cs.ProtocolErrors != 0 || cs.Declined != 6 || cs.Unsupported != 2 || !cs.Connected {
		t.Errorf("control stats %+v", cs)
	}
}

// RESET_OWNER stops the rings and forgets the negotiation; the front-end
// can set the device up again on the same connection.
func TestDeviceResetOwner(t *testing.T) {
	p, f := feStarted(t)
	f.must(ReqResetOwner, nil)
	feWaitRunning(t, p, 0, 0)
	f.handshake(feOpts{})
	feWaitRunning(t, p, 1, 1)
	feTraffic(t, p, f, 3)
}

// The answers to the GET requests a front-end starts with.
func TestDeviceNegotiation(t *testing.T) {
	p := feServer(t, Config{QueuePairs: 4})
	f := feConnect(t, p.Socket())
	got := map[string]uint64{
		"features": f.get(ReqGetFeatures),
		"protocol": f.get(ReqGetProtocolFeatures),
		"queues":   f.get(ReqGetQueueNum),
	}
	want := map[string]uint64{
		"features": 1<<32 | 1<<29 | 1<<28 | 1<<27 | 1<<22 | 1<<15 | 1<<3 | 1<<30,
		"protocol": 1<<0 | 1<<3 | 1<<4,
		"queues":   4,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", got, want)
	}
	if offeredProtocol&protoConfig != 0 || offeredProtocol&protoLogShmfd != 0 || offeredProtocol&protoRARP != 0 {
		t.Error("CONFIG, LOG_SHMFD and RARP must not be offered")
	}
}

// FuzzDevice feeds arbitrary request sequences to a device (SET_MEM_TABLE
// gets real guest memory): handle must never panic, and every error is a
// protocol error (ErrMalformed) or a declined request.
func FuzzDevice(f *testing.F) {
	fd, err := unix.MemfdCreate("xvs-fuzz-guest", unix.MFD_CLOEXEC)
	if err != nil {
		f.Skip(err)
	}
	defer unix.Close(fd)
	if err := unix.Ftruncate(fd, feRAM); err != nil {
		f.Fatal(err)
	}
	ev, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		f.Fatal(err)
	}
	defer unix.Close(ev)

	seed := func(msgs ...message) []byte {
		var b []byte
		for _, m := range msgs {
			b = appendMessage(b, m)
		}
		return b
	}
	regions := []memRegion{{GuestPhys: 0, Size: feHalf, UserAddr: feUVA0}}
	ringMsgs := func(i uint32) []message {
		return []message{
			{Req: ReqSetVringNum, Payload: appendState(nil, vringState{Index: i, Num: 256})},
			{Req: ReqSetVringBase, Payload: appendState(nil, vringState{Index: i, Num: 0})},
			{Req: ReqSetVringAddr, Payload: appendAddr(nil, vringAddr{Index: i, Desc: feUVA0 + uint64(i)*feRingStep, Avail: feUVA0 + uint64(i)*feRingStep + 0x1000, Used: feUVA0 + uint64(i)*feRingStep + 0x2000})},
			{Req: ReqSetVringKick, Payload: appendVringFD(nil, vringFD{Index: i})},
			{Req: ReqSetVringCall, Payload: appendVringFD(nil, vringFD{Index: i, NoFD: true})},
			{Req: ReqSetVringEnable, Payload: appendState(nil, vringState{Index: i, Num: 1})},
		}
	}
	start := []message{
		{Req: ReqGetFeatures},
		{Req: ReqSetFeatures, Payload: appendU64(nil, offeredFeatures)},
		{Req: ReqSetProtocolFeatures, Payload: appendU64(nil, offeredProtocol)},
		{Req: ReqSetMemTable, Payload: appendMemTable(nil, regions)},
	}
	f.Add(seed(start...))
	f.Add(seed(append(append(start, ringMsgs(0)...), ringMsgs(1)...)...))
	f.Add(seed(append(append(start, ringMsgs(1)...), message{Req: ReqGetVringBase, Payload: appendState(nil, vringState{Index: 1})}, message{Req: ReqResetOwner})...))

	f.Fuzz(func(t *testing.T, data []byte) {
		p := &Port{mtu: 1500}
		d := newDevice(p, 2)
		defer d.reset()
		for n := 0; len(data) > 0 && n < 64; n++ {
			m, rest, err := parseMessage(data)
			if err != nil {
				return
			}
			data = rest
			m.Payload = append([]byte(nil), m.Payload...)
			// Descriptors where the request takes one: memory for
			// SET_MEM_TABLE (one per region), an eventfd for the ring
			// requests without NoFD.
			switch m.Req {
			case ReqSetMemTable:
				if len(m.Payload) >= 4 {
					for range min(binary.NativeEndian.Uint32(m.Payload), maxRegions) {
						dup, err := unix.Dup(fd)
						if err != nil {
							t.Fatal(err)
						}
						m.FDs = append(m.FDs, dup)
					}
				}
			case ReqSetVringKick, ReqSetVringCall, ReqSetVringErr:
				if len(m.Payload) == 8 && binary.NativeEndian.Uint64(m.Payload)&vringNoFD == 0 {
					dup, err := unix.Dup(ev)
					if err != nil {
						t.Fatal(err)
					}
					m.FDs = append(m.FDs, dup)
				}
			}
			_, err = d.handle(&m)
			closeFDs(m.FDs)
			if err != nil && !errorsIsAny(err, ErrMalformed, errDeclined) {
				t.Fatalf("%v: error is neither malformed nor declined: %v", m.Req, err)
			}
			if err != nil && !errors.Is(err, errDeclined) {
				return // the connection would be dropped
			}
		}
	})
}

func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// feLog collects a port's log for a test.
type feLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *feLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// take returns what was logged since the last take.
func (l *feLog) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	l.b.Reset()
	return s
}
