//go:build linux

package vhostuser

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/xvswitch/xvs/internal/testutil"
)

// A front-end for tests: it plays QEMU's part of the protocol over the
// port's socket and the guest driver's part in a memfd it shares as guest
// RAM. Names start with fe so as not to meet the virtqueue tests' helpers.

// Guest RAM: one 4 MiB memfd, shared as two regions. Region 0 (guest
// physical 0, the memfd's first 2 MiB) holds the rings, region 1 (guest
// physical 4 GiB, mmap offset 2 MiB) the data buffers. The front-end
// "virtual" addresses are made up, as QEMU's would be.
const (
	feRAM      = 4 << 20
	feHalf     = feRAM / 2
	feGPA0     = 0
	feGPA1     = 1 << 32
	feUVA0     = 0x7f00_0000_0000
	feUVA1     = 0x7e00_0000_0000
	feRingSize = 256
	feRingStep = 0x8000 // ring i at offset i*feRingStep of region 0
	feBufSize  = 2048
	feBufs     = feHalf / feBufSize
	feTimeout  = 5 * time.Second
)

// feRing is the guest driver's side of one virtqueue.
type feRing struct {
	size               uint16
	desc, avail, used  uint64 // offsets in RAM (= guest physical, region 0)
	availIdx, usedSeen uint16
	nextDesc           uint16
}

// feFrontend is one test front-end connection with its guest.
type feFrontend struct {
	t     testing.TB
	c     *net.UnixConn
	memfd int
	ram   []byte
	rings []feRing
	kick  []int
	call  []int
	buf   int // next data buffer (round robin)
	// rxBufs are the RAM offsets of the receive buffers posted, by ring
	// and descriptor id.
	rxBufs map[int]map[uint16]uint64

	features, protocol uint64
}

// feConnect connects to a server-mode port.
func feConnect(t testing.TB, path string) *feFrontend {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatalf("connect to %s: %v", path, err)
	}
	return feNew(t, c)
}

// feNew wraps a connection: guest RAM and eventfds for up to 8 rings.
func feNew(t testing.TB, c *net.UnixConn) *feFrontend {
	t.Helper()
	fd, err := unix.MemfdCreate("xvs-test-guest", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatalf("memfd_create: %v", err)
	}
	if err := unix.Ftruncate(fd, feRAM); err != nil {
		t.Fatal(err)
	}
	ram, err := unix.Mmap(fd, 0, feRAM, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	f := &feFrontend{t: t, c: c, memfd: fd, ram: ram, rxBufs: map[int]map[uint16]uint64{}}
	for i := range 8 {
		f.rings = append(f.rings, feRing{
			size:  feRingSize,
			desc:  uint64(i) * feRingStep,
			avail: uint64(i)*feRingStep + 0x1000,
			used:  uint64(i)*feRingStep + 0x2000,
		})
		k, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			t.Fatal(err)
		}
		f.kick, f.call = append(f.kick, k), append(f.call, cl)
	}
	t.Cleanup(f.close)
	return f
}

// close releases everything; safe twice.
func (f *feFrontend) close() {
	if f.c != nil {
		f.c.Close()
		f.c = nil
	}
	if f.ram != nil {
		unix.Munmap(f.ram)
		f.ram = nil
	}
	if f.memfd >= 0 {
		unix.Close(f.memfd)
		f.memfd = -1
	}
	for i := range f.kick {
		unix.Close(f.kick[i])
		unix.Close(f.call[i])
	}
	f.kick, f.call = nil, nil
}

// send writes one request with descriptors.
func (f *feFrontend) send(req Request, flags uint32, payload []byte, fds ...int) error {
	b := appendMessage(nil, message{Req: req, Flags: flags, Payload: payload})
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	_, _, err := f.c.WriteMsgUnix(b, oob, nil)
	return err
}

// must sends a request and fails the test on error.
func (f *feFrontend) must(req Request, payload []byte, fds ...int) {
	f.t.Helper()
	if err := f.send(req, 0, payload, fds...); err != nil {
		f.t.Fatalf("send %v: %v", req, err)
	}
}

// ack sends a request with NEED_REPLY and returns the status.
func (f *feFrontend) ack(req Request, payload []byte, fds ...int) uint64 {
	f.t.Helper()
	if err := f.send(req, flagNeedReply, payload, fds...); err != nil {
		f.t.Fatalf("send %v: %v", req, err)
	}
	p := f.reply(req)
	v, err := decodeU64(req, p)
	if err != nil {
		f.t.Fatalf("%v: status: %v", req, err)
	}
	return v
}

// reply reads the back-end's reply to req.
func (f *feFrontend) reply(req Request) []byte {
	f.t.Helper()
	m, err := f.readMsg()
	if err != nil {
		f.t.Fatalf("reply to %v: %v", req, err)
	}
	if m.Req != req || m.Flags != flagVersion|flagReply {
		f.t.Fatalf("reply to %v: got %v flags %#x", req, m.Req, m.Flags)
	}
	return m.Payload
}

func (f *feFrontend) readMsg() (message, error) {
	f.c.SetReadDeadline(time.Now().Add(feTimeout))
	var h [hdrSize]byte
	if _, err := io.ReadFull(f.c, h[:]); err != nil {
		return message{}, err
	}
	if err := header(h[:]).check(); err != nil {
		return message{}, err
	}
	p := make([]byte, header(h[:]).size())
	if _, err := io.ReadFull(f.c, p); err != nil {
		return message{}, err
	}
	return message{Req: header(h[:]).request(), Flags: header(h[:]).flags(), Payload: p}, nil
}

// get sends a request whose reply is a u64.
func (f *feFrontend) get(req Request) uint64 {
	f.t.Helper()
	f.must(req, nil)
	v, err := decodeU64(req, f.reply(req))
	if err != nil {
		f.t.Fatal(err)
	}
	return v
}

// waitClosed waits until the back-end closes the connection.
func (f *feFrontend) waitClosed() {
	f.t.Helper()
	f.c.SetReadDeadline(time.Now().Add(feTimeout))
	var b [256]byte
	for {
		_, err := f.c.Read(b[:])
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) || errors.Is(err, unix.ECONNRESET) {
			return
		}
		f.t.Fatalf("waiting for the back-end to close the connection: %v", err)
	}
}

// feOpts shape a handshake.
type feOpts struct {
	pairs      int  // queue pairs to set up; 0: 1
	noProtocol bool // do not negotiate VHOST_USER_F_PROTOCOL_FEATURES (rings start on kick)
	noEnable   bool // do not send SET_VRING_ENABLE
	noMrg      bool // do not negotiate MRG_RXBUF
	legacy     bool // negotiate neither VERSION_1 nor MRG_RXBUF (10-byte header)
}

// handshake does what QEMU does to start a virtio-net device.
func (f *feFrontend) handshake(o feOpts) {
	f.t.Helper()
	if o.pairs == 0 {
		o.pairs = 1
	}
	offered := f.get(ReqGetFeatures)
	want := offered
	if o.noProtocol {
		want &^= vhostUserFProtocolFeatures
	}
	if o.noMrg {
		want &^= virtioNetFMrgRxbuf
	}
	if o.legacy {
		want &^= virtioNetFMrgRxbuf | virtioFVersion1
	}
	if want&vhostUserFProtocolFeatures != 0 {
		proto := f.get(ReqGetProtocolFeatures)
		f.protocol = proto & (protoMQ | protoReplyAck)
		f.must(ReqSetProtocolFeatures, appendU64(nil, f.protocol))
		if n := f.get(ReqGetQueueNum); n < uint64(o.pairs) {
			f.t.Fatalf("GET_QUEUE_NUM %d, want at least %d", n, o.pairs)
		}
	}
	f.must(ReqSetOwner, nil)
	f.features = want
	f.must(ReqSetFeatures, appendU64(nil, want))
	f.setMemTable()
	for i := range 2 * o.pairs {
		f.setupRing(i)
	}
	if want&vhostUserFProtocolFeatures != 0 && !o.noEnable {
		for i := range 2 * o.pairs {
			f.must(ReqSetVringEnable, appendState(nil, vringState{Index: uint32(i), Num: 1}))
		}
	}
	// A round trip, so that every request above was handled.
	f.get(ReqGetFeatures)
}

// regions are the two regions of guest RAM.
func (f *feFrontend) regions() []memRegion {
	return []memRegion{
		{GuestPhys: feGPA0, Size: feHalf, UserAddr: feUVA0, MmapOffset: 0},
		{GuestPhys: feGPA1, Size: feHalf, UserAddr: feUVA1, MmapOffset: feHalf},
	}
}

func (f *feFrontend) setMemTable() {
	f.t.Helper()
	p := appendMemTable(nil, f.regions())
	if f.protocol&protoReplyAck != 0 {
		if st := f.ack(ReqSetMemTable, p, f.memfd, f.memfd); st != 0 {
			f.t.Fatalf("SET_MEM_TABLE: status %d", st)
		}
		return
	}
	f.must(ReqSetMemTable, p, f.memfd, f.memfd)
}

// setupRing sends SET_VRING_NUM, _BASE, _ADDR, _KICK and _CALL for ring i,
// after clearing the ring's memory.
func (f *feFrontend) setupRing(i int) {
	f.t.Helper()
	r := &f.rings[i]
	clear(f.ram[r.desc : r.desc+feRingStep])
	r.availIdx, r.usedSeen, r.nextDesc = 0, 0, 0
	delete(f.rxBufs, i)
	idx := uint32(i)
	f.must(ReqSetVringNum, appendState(nil, vringState{Index: idx, Num: feRingSize}))
	f.must(ReqSetVringBase, appendState(nil, vringState{Index: idx, Num: 0}))
	f.must(ReqSetVringAddr, appendAddr(nil, vringAddr{Index: idx, Desc: feUVA0 + r.desc, Used: feUVA0 + r.used, Avail: feUVA0 + r.avail}))
	f.must(ReqSetVringKick, appendVringFD(nil, vringFD{Index: idx}), f.kick[i])
	f.must(ReqSetVringCall, appendVringFD(nil, vringFD{Index: idx}), f.call[i])
}

// word returns the aligned 32-bit word at RAM offset off, for atomic
// access to a ring's {flags, idx} pair, as the guest's driver does.
func (f *feFrontend) word(off uint64) *uint32 {
	return (*uint32)(unsafe.Pointer(&f.ram[off]))
}

// hdrLen is the virtio-net header length the negotiated features imply.
func (f *feFrontend) hdrLen() int { return virtioNetHdrLen(f.features) }

// nextBuf returns the guest-physical address and RAM offset of a free
// data buffer.
func (f *feFrontend) nextBuf() (gpa, off uint64) {
	k := uint64(f.buf % feBufs)
	f.buf++
	return feGPA1 + k*feBufSize, feHalf + k*feBufSize
}

// putDesc writes descriptor id of ring r.
func (f *feFrontend) putDesc(r *feRing, id uint16, addr uint64, n uint32, flags, next uint16) {
	d := f.ram[r.desc+16*uint64(id):]
	binary.LittleEndian.PutUint64(d, addr)
	binary.LittleEndian.PutUint32(d[8:], n)
	binary.LittleEndian.PutUint16(d[12:], flags)
	binary.LittleEndian.PutUint16(d[14:], next)
}

// offer puts head on the avail ring and publishes the new avail idx.
func (f *feFrontend) offer(r *feRing, head uint16) {
	binary.LittleEndian.PutUint16(f.ram[r.avail+4+2*uint64(r.availIdx%r.size):], head)
	r.availIdx++
	w := f.word(r.avail)
	for {
		old := atomic.LoadUint32(w)
		if atomic.CompareAndSwapUint32(w, old, old&0xffff|uint32(r.availIdx)<<16) {
			return
		}
	}
}

// postTx makes frame available on transmit ring i: a header descriptor
// and a data descriptor, as Linux's virtio-net does without ANY_LAYOUT.
func (f *feFrontend) postTx(i int, frame []byte) {
	r := &f.rings[i]
	hgpa, hoff := f.nextBuf()
	clear(f.ram[hoff : hoff+uint64(f.hdrLen())])
	dgpa, doff := f.nextBuf()
	copy(f.ram[doff:], frame)
	h := r.nextDesc % r.size
	d := (r.nextDesc + 1) % r.size
	r.nextDesc += 2
	f.putDesc(r, h, hgpa, uint32(f.hdrLen()), virtqDescFNext, d)
	f.putDesc(r, d, dgpa, uint32(len(frame)), 0, 0)
	f.offer(r, h)
}

// postRx makes n receive buffers of size bytes available on ring i and
// records their RAM offsets in f.rxBufs[i].
func (f *feFrontend) postRx(i, n, size int) {
	r := &f.rings[i]
	bufs := f.rxBufs[i]
	if bufs == nil {
		bufs = map[uint16]uint64{}
		f.rxBufs[i] = bufs
	}
	for range n {
		gpa, off := f.nextBuf()
		id := r.nextDesc % r.size
		r.nextDesc++
		f.putDesc(r, id, gpa, uint32(size), virtqDescFWrite, 0)
		bufs[id] = off
		f.offer(r, id)
	}
}

// feUsed is one used-ring entry.
type feUsed struct {
	id, len uint32
}

// reap returns the used entries of ring i the guest has not seen, and
// then asks to be interrupted for the next one, as a driver does (with
// EVENT_IDX: used_event = the used index seen so far).
func (f *feFrontend) reap(i int) []feUsed {
	r := &f.rings[i]
	idx := uint16(atomic.LoadUint32(f.word(r.used)) >> 16)
	var out []feUsed
	for ; r.usedSeen != idx; r.usedSeen++ {
		e := f.ram[r.used+4+8*uint64(r.usedSeen%r.size):]
		out = append(out, feUsed{id: binary.LittleEndian.Uint32(e), len: binary.LittleEndian.Uint32(e[4:])})
	}
	w := f.word(r.avail + 4 + 2*uint64(r.size)) // used_event, low half
	for {
		old := atomic.LoadUint32(w)
		if atomic.CompareAndSwapUint32(w, old, old&^0xffff|uint32(r.usedSeen)) {
			break
		}
	}
	return out
}

// called reads (and clears) ring i's call eventfd: whether the back-end
// interrupted the guest.
func (f *feFrontend) called(i int) bool {
	var b [8]byte
	n, err := unix.Read(f.call[i], b[:])
	return err == nil && n == 8
}

// Port-side helpers.

// feSocket returns a socket path in a fresh directory.
func feSocket(t testing.TB) string {
	return filepath.Join(t.TempDir(), "vm.sock")
}

// feServer opens a server-mode port; Close is a cleanup.
func feServer(t testing.TB, cfg Config) *Port {
	t.Helper()
	if cfg.Socket == "" {
		cfg.Socket = feSocket(t)
	}
	cfg.Server = true
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// feRunning returns how many queues the data path has: the guest's
// receive queues (Transmit) and transmit queues (Receive).
func feRunning(p *Port) (rx, tx int) {
	p.txMu.Lock()
	rx = len(p.txq)
	p.txMu.Unlock()
	p.rxMu.Lock()
	tx = len(p.rxq)
	p.rxMu.Unlock()
	return rx, tx
}

// feStarted serves a port with the default config and connects a
// front-end that sets up one queue pair; both queues run on return.
func feStarted(t testing.TB) (*Port, *feFrontend) {
	t.Helper()
	p := feServer(t, Config{})
	f := feConnect(t, p.Socket())
	f.handshake(feOpts{})
	feWaitRunning(t, p, 1, 1)
	return p, f
}

// feWaitRunning waits for the port to run rx and tx queues.
func feWaitRunning(t testing.TB, p *Port, rx, tx int) {
	t.Helper()
	testutil.Eventually(t, feTimeout, func() bool {
		r, x := feRunning(p)
		return r == rx && x == tx
	}, "running queues")
}

// feFrame is an Ethernet frame of n bytes whose contents depend on seed.
func feFrame(n int, seed byte) []byte {
	f := make([]byte, n)
	copy(f, []byte{0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00})
	for i := 14; i < n; i++ {
		f[i] = seed + byte(i)
	}
	return f
}
