//go:build linux

package vhostuser

import (
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/xvswitch/xvs/internal/sysio"
)

// This file is the back-end's state machine: what each front-end request
// does to the device (features, guest memory, rings) and what it answers.
// One goroutine (the port's protocol goroutine, one connection at a time)
// owns a device; the data path only sees the queues the device publishes
// through Port.publish.

// VHOST_USER_F_PROTOCOL_FEATURES: the back-end understands
// GET/SET_PROTOCOL_FEATURES; once negotiated, rings start disabled.
const vhostUserFProtocolFeatures uint64 = 1 << 30

// Protocol feature bits (VHOST_USER_PROTOCOL_F_*), as masks.
const (
	protoMQ       uint64 = 1 << 0 // GET_QUEUE_NUM
	protoReplyAck uint64 = 1 << 3 // NEED_REPLY answered with a u64 status
	protoMTU      uint64 = 1 << 4 // NET_SET_MTU
)

// Features the device offers. VIRTIO_NET_F_MAC and the config space are
// QEMU's business (it answers the guest from its own -device options);
// migration (VHOST_F_LOG_ALL), IOMMU, packed rings and offloads are not
// offered.
const (
	offeredFeatures = virtioQueueFeatures | virtioNetFMQ | virtioNetFMTU | vhostUserFProtocolFeatures
	offeredProtocol = protoMQ | protoReplyAck | protoMTU
)

// Limits of a ring's parameters.
const minMTU = 68

// errDeclined is wrapped by the error of a request the device understands
// but does not grant (an unsupported request, a config-space access, an
// MTU it cannot carry). The front-end is told (a failure status if it
// asked for one) and the connection stays up. Any other error from handle
// is a protocol error: the connection is dropped.
var errDeclined = errors.New("request declined")

// ErrNotEventFD is wrapped by the protocol error of a SET_VRING_KICK,
// _CALL or _ERR whose descriptor is not an eventfd (a pipe, a socket, a
// file): the connection is dropped.
var ErrNotEventFD = errors.New("vring descriptor is not an eventfd")

// vring is what the front-end told the device about one virtqueue.
type vring struct {
	num     uint16 // queue size; 0 until SET_VRING_NUM
	addr    vringAddr
	hasAddr bool
	base    uint16 // next avail index; updated from the queue when it stops
	kick    int    // eventfd the guest kicks, -1: none (polling or not set)
	kickSet bool   // SET_VRING_KICK arrived: the ring may start
	call    int    // eventfd to interrupt the guest, -1: none
	enabled bool   // SET_VRING_ENABLE 1

	q *Queue // running queue, published to the data path; nil: stopped
}

// guestMem is the guest memory of the current SET_MEM_TABLE.
type guestMem struct {
	mem  *Memory
	maps [][]byte // whole mappings, for unmap
}

// device is the back-end side of one port. Its fields belong to the
// protocol goroutine.
type device struct {
	p        *Port
	features uint64 // negotiated with SET_FEATURES
	mem      *guestMem
	vrings   []vring // 2 per queue pair: even = guest RX, odd = guest TX
	req      Request // the request being handled, for errors
}

func newDevice(p *Port, pairs int) *device {
	d := &device{p: p, vrings: make([]vring, 2*pairs)}
	for i := range d.vrings {
		d.vrings[i] = vring{kick: -1, call: -1}
	}
	return d
}

// result is the outcome of a request for the connection loop.
type result struct {
	// reply is the payload of the request's own reply (GET_* requests);
	// nil when the request has none.
	reply []byte
	// hasReply: the request is answered with reply whatever happens
	// (even an empty payload, GET_CONFIG's way of failing).
	hasReply bool
}

// handle carries out one request. m.FDs belong to handle: it keeps a
// descriptor by setting its slot to -1, and the caller closes the rest.
// It never panics on any input (a panic is a bug; serve recovers it and
// drops the connection).
func (d *device) handle(m *message) (result, error) {
	d.req = m.Req
	switch m.Req {
	case ReqGetFeatures:
		return u64Reply(offeredFeatures), nil

	case ReqSetFeatures:
		v, err := decodeU64(m.Req, m.Payload)
		if err != nil {
			return result{}, err
		}
		if extra := v &^ offeredFeatures; extra != 0 {
			return result{}, fmt.Errorf("vhost-user: %w: SET_FEATURES %#x: bits %#x were not offered", ErrMalformed, v, extra)
		}
		// The header length and ring options follow from the features:
		// running rings restart with the new ones.
		d.stopAll()
		d.features = v
		d.p.negotiated.Store(v)
		return result{}, d.startReady()

	case ReqGetProtocolFeatures:
		return u64Reply(offeredProtocol), nil

	case ReqSetProtocolFeatures:
		v, err := decodeU64(m.Req, m.Payload)
		if err != nil {
			return result{}, err
		}
		if extra := v &^ offeredProtocol; extra != 0 {
			return result{}, fmt.Errorf("vhost-user: %w: SET_PROTOCOL_FEATURES %#x: bits %#x were not offered", ErrMalformed, v, extra)
		}
		d.p.negotiatedProtocol.Store(v)
		return result{}, nil

	case ReqGetQueueNum:
		// For a network device the number of queue pairs (what QEMU
		// compares with its queues= option).
		return u64Reply(uint64(len(d.vrings) / 2)), nil

	case ReqSetOwner:
		// Sent once per queue pair by QEMU: nothing to do.
		return result{}, nil

	case ReqResetOwner:
		// Deprecated; the specification recommends disabling the rings.
		d.reset()
		return result{}, nil

	case ReqSetMemTable:
		return result{}, d.setMemTable(m)

	case ReqSetVringNum:
		s, vr, err := d.state(m)
		if err != nil {
			return result{}, err
		}
		if s.Num == 0 || s.Num > virtqMaxSize || s.Num&(s.Num-1) != 0 {
			return result{}, fmt.Errorf("vhost-user: %w: SET_VRING_NUM: ring %d size %d: want a power of two up to %d", ErrMalformed, s.Index, s.Num, virtqMaxSize)
		}
		d.stop(int(s.Index))
		vr.num = uint16(s.Num)
		return result{}, d.startReady()

	case ReqSetVringBase:
		s, vr, err := d.state(m)
		if err != nil {
			return result{}, err
		}
		if s.Num > 0xffff {
			return result{}, fmt.Errorf("vhost-user: %w: SET_VRING_BASE: ring %d base %d: want at most 65535", ErrMalformed, s.Index, s.Num)
		}
		d.stop(int(s.Index))
		vr.base = uint16(s.Num)
		return result{}, d.startReady()

	case ReqGetVringBase:
		// Stops the ring; it starts again on the next kick.
		s, vr, err := d.state(m)
		if err != nil {
			return result{}, err
		}
		d.stop(int(s.Index))
		closeFD(vr.kick)
		vr.kick, vr.kickSet = -1, false
		return result{reply: appendState(nil, vringState{Index: s.Index, Num: uint32(vr.base)}), hasReply: true}, nil

	case ReqSetVringAddr:
		a, err := decodeAddr(m.Req, m.Payload)
		if err != nil {
			return result{}, err
		}
		vr, err := d.ring(m.Req, a.Index)
		if err != nil {
			return result{}, err
		}
		if a.Flags&^vringFLog != 0 {
			return result{}, fmt.Errorf("vhost-user: %w: SET_VRING_ADDR: ring %d: undefined flags %#x", ErrMalformed, a.Index, a.Flags)
		}
		d.stop(int(a.Index))
		vr.addr, vr.hasAddr = a, true
		return result{}, d.startReady()

	case ReqSetVringKick, ReqSetVringCall, ReqSetVringErr:
		return result{}, d.setVringFD(m)

	case ReqSetVringEnable:
		s, vr, err := d.state(m)
		if err != nil {
			return result{}, err
		}
		if s.Num > 1 {
			return result{}, fmt.Errorf("vhost-user: %w: SET_VRING_ENABLE: ring %d: %d, want 0 or 1", ErrMalformed, s.Index, s.Num)
		}
		if vr.enabled != (s.Num == 1) {
			d.stop(int(s.Index))
			vr.enabled = s.Num == 1
		}
		return result{}, d.startReady()

	case ReqNetSetMTU:
		v, err := decodeU64(m.Req, m.Payload)
		if err != nil {
			return result{}, err
		}
		if v < minMTU || v > uint64(d.p.mtu) {
			return result{}, fmt.Errorf("vhost-user: %w: NET_SET_MTU %d: the port's MTU is %d", errDeclined, v, d.p.mtu)
		}
		// Accepted and not kept: the guest's MTU bounds what it sends,
		// and Transmit checks the port's own MTU, which is at least this.
		return result{}, nil

	case ReqSetLogFD:
		// Only useful for migration, which is not offered.
		return result{}, nil

	case ReqGetConfig:
		// CONFIG is not offered; an empty payload is the failure answer.
		return result{hasReply: true}, fmt.Errorf("vhost-user: %w: GET_CONFIG: config space not offered", errDeclined)

	case ReqSetConfig, ReqSetLogBase, ReqSendRARP, ReqSetSlaveReqFD, ReqIOTLBMsg, ReqSetVringEndian,
		ReqGetInflightFD, ReqSetInflightFD, ReqResetDevice, ReqVringKick, ReqGetMaxMemSlots,
		ReqAddMemReg, ReqRemMemReg, ReqSetStatus, ReqGetStatus:
		// Requests of protocol features the device does not offer.
		return result{}, fmt.Errorf("vhost-user: %w: %v: its protocol feature is not offered", errDeclined, m.Req)
	}
	d.p.ctl.unsupported.Add(1)
	return result{}, fmt.Errorf("vhost-user: %w: %v: not supported", errDeclined, m.Req)
}

func u64Reply(v uint64) result { return result{reply: appendU64(nil, v), hasReply: true} }

// ring returns vring idx, or an error if the device has no such ring.
func (d *device) ring(req Request, idx uint32) (*vring, error) {
	if idx >= uint32(len(d.vrings)) {
		return nil, fmt.Errorf("vhost-user: %w: %v: ring %d: the device has %d rings (%d queue pairs)", ErrMalformed, req, idx, len(d.vrings), len(d.vrings)/2)
	}
	return &d.vrings[idx], nil
}

// state decodes a vring state payload and returns its ring.
func (d *device) state(m *message) (vringState, *vring, error) {
	s, err := decodeState(m.Req, m.Payload)
	if err != nil {
		return s, nil, err
	}
	vr, err := d.ring(m.Req, s.Index)
	return s, vr, err
}

// setVringFD handles SET_VRING_KICK, _CALL and _ERR: one eventfd in the
// ancillary data, or none with the NoFD bit (polling).
func (d *device) setVringFD(m *message) error {
	f, err := decodeVringFD(m.Req, m.Payload)
	if err != nil {
		return err
	}
	vr, err := d.ring(m.Req, f.Index)
	if err != nil {
		return err
	}
	want := 1
	if f.NoFD {
		want = 0
	}
	if len(m.FDs) != want {
		return fmt.Errorf("vhost-user: %w: %v: ring %d: %d descriptors, want %d", ErrMalformed, m.Req, f.Index, len(m.FDs), want)
	}
	fd := -1
	if want == 1 {
		fd = m.FDs[0]
		// The data path reads the kick and writes the call descriptor
		// with calls that never wait on an eventfd; on a pipe or a
		// socket the same calls could block a switch worker.
		if ok, err := sysio.IsEventFD(fd); !ok || err != nil {
			return fmt.Errorf("vhost-user: %w: %v: ring %d: the descriptor is not an eventfd (%v)", ErrNotEventFD, m.Req, f.Index, err)
		}
	}
	switch m.Req {
	case ReqSetVringErr:
		// Errors are counted and logged, not signalled: fd is closed
		// by the caller.
		return nil
	case ReqSetVringKick:
		// The port polls its rings: the kick only marks the start of
		// the ring. The descriptor is kept, unread, until replaced.
		d.stop(int(f.Index))
		closeFD(vr.kick)
		vr.kick, vr.kickSet = fd, true
		// The queue reads it empty when it goes idle with a read that
		// does not wait whatever the file's O_NONBLOCK, which the
		// front-end shares and may clear.
	case ReqSetVringCall:
		// The queue writes to the call descriptor, so it may change
		// only while the ring is stopped.
		d.stop(int(f.Index))
		closeFD(vr.call)
		vr.call = fd
	}
	if want == 1 {
		m.FDs[0] = -1 // kept
	}
	return d.startReady()
}

// setMemTable maps the regions of a SET_MEM_TABLE, then swaps the device's
// memory: the rings stop, restart over the new memory, and only then is
// the old memory unmapped (no queue of the data path refers to it any
// more).
func (d *device) setMemTable(m *message) error {
	regions, err := decodeMemTable(m.Req, m.Payload)
	if err != nil {
		return err
	}
	if len(m.FDs) != len(regions) {
		return fmt.Errorf("vhost-user: %w: SET_MEM_TABLE: %d regions, %d descriptors", ErrMalformed, len(regions), len(m.FDs))
	}
	gm := &guestMem{maps: make([][]byte, 0, len(regions))}
	rs := make([]Region, len(regions))
	for i, r := range regions {
		whole, mem, err := mapRegion(m.FDs[i], r)
		if err != nil {
			gm.unmap()
			return fmt.Errorf("vhost-user: SET_MEM_TABLE: region %d: %w", i, err)
		}
		gm.maps = append(gm.maps, whole)
		rs[i] = Region{GuestPhys: r.GuestPhys, Size: r.Size, UserAddr: r.UserAddr, Mem: mem}
	}
	// The mappings hold the memory; the descriptors are closed by the
	// caller.
	gm.mem, err = NewMemory(rs)
	if err != nil {
		gm.unmap()
		return fmt.Errorf("vhost-user: %w: SET_MEM_TABLE: %w", ErrMalformed, err)
	}
	d.stopAll()
	old := d.mem
	d.mem = gm
	err = d.startReady()
	old.unmap()
	return err
}

// unmap releases the mappings. It is safe on nil.
func (g *guestMem) unmap() {
	if g == nil {
		return
	}
	for _, w := range g.maps {
		unmap(w) // an munmap of our own mapping cannot fail usefully
	}
	g.maps = nil
}

// ready reports whether ring i has everything it needs to run: memory,
// size, addresses, a kick, and enabled (rings start enabled unless
// VHOST_USER_F_PROTOCOL_FEATURES was negotiated).
func (d *device) ready(i int) bool {
	vr := &d.vrings[i]
	enabled := vr.enabled || d.features&vhostUserFProtocolFeatures == 0
	return d.mem != nil && vr.num != 0 && vr.hasAddr && vr.kickSet && enabled
}

// startReady starts every ready ring that is not running and publishes the
// running set. A ring that cannot start (addresses outside guest memory, a
// ring that does not fit) is a protocol error.
func (d *device) startReady() error {
	started := false
	var err error
	for i := range d.vrings {
		vr := &d.vrings[i]
		if vr.q != nil || !d.ready(i) {
			continue
		}
		cfg := QueueConfig{
			Size:  vr.num,
			Desc:  vr.addr.Desc,
			Avail: vr.addr.Avail,
			Used:  vr.addr.Used,
			Base:  vr.base,
			Call:  vr.call,
			Kick:  -1,
		}
		if i%2 == 1 { // the guest's transmit ring: Receive waits for its kicks
			cfg.Kick = vr.kick
			cfg.MaxFrame = d.p.mtu + ethHdrLen + ethVLANLen // as Transmit refuses
		}
		cfg.setFeatures(d.features)
		q, qerr := NewQueue(d.mem.mem, cfg)
		if qerr != nil {
			err = fmt.Errorf("vhost-user: %w: %v: start ring %d (size %d, desc %#x, avail %#x, used %#x): %w",
				ErrMalformed, d.req, i, vr.num, vr.addr.Desc, vr.addr.Avail, vr.addr.Used, qerr)
			break
		}
		vr.q = q
		if cfg.Kick >= 0 {
			d.p.watchKick(cfg.Kick)
		}
		started = true
	}
	if started {
		d.publish()
	}
	return err
}

// stop stops ring i if it runs: it is withdrawn from the data path, and
// its position is kept as the base it restarts from.
func (d *device) stop(i int) {
	vr := &d.vrings[i]
	if vr.q == nil {
		return
	}
	q := vr.q
	vr.q = nil
	if i%2 == 1 {
		d.p.unwatchKick(vr.kick)
	}
	d.p.statsMu.Lock()
	d.publish()
	// No Receive or Transmit uses q any more.
	vr.base = q.LastAvail()
	d.p.retire(i, q)
	d.p.statsMu.Unlock()
}

// stopAll stops every running ring at once.
func (d *device) stopAll() {
	var qs []*Queue
	var idx []int
	for i := range d.vrings {
		if q := d.vrings[i].q; q != nil {
			qs = append(qs, q)
			idx = append(idx, i)
			d.vrings[i].q = nil
			if i%2 == 1 {
				d.p.unwatchKick(d.vrings[i].kick)
			}
		}
	}
	if len(qs) == 0 {
		return
	}
	d.p.statsMu.Lock()
	d.publish()
	for k, q := range qs {
		d.vrings[idx[k]].base = q.LastAvail()
		d.p.retire(idx[k], q)
	}
	d.p.statsMu.Unlock()
}

// publish hands the running queues to the data path: even rings (the
// guest's RX) to Transmit, odd rings (the guest's TX) to Receive. When it
// returns, no Receive or Transmit uses a queue that is not running.
func (d *device) publish() {
	var rx, tx []liveQueue
	for i := range d.vrings {
		q := d.vrings[i].q
		if q == nil {
			continue
		}
		lq := liveQueue{q: q, ring: i}
		if i%2 == 0 {
			rx = append(rx, lq)
		} else {
			tx = append(tx, lq)
		}
	}
	d.p.publish(rx, tx)
}

// reset returns the device to its state before any request: rings
// stopped, descriptors closed, memory unmapped, nothing negotiated. It is
// what a new connection finds.
func (d *device) reset() {
	d.stopAll()
	for i := range d.vrings {
		vr := &d.vrings[i]
		closeFD(vr.kick)
		closeFD(vr.call)
		*vr = vring{kick: -1, call: -1}
	}
	d.mem.unmap()
	d.mem = nil
	d.features = 0
	d.p.negotiated.Store(0)
	d.p.negotiatedProtocol.Store(0)
}

// safeHandle is handle with a panic turned into a protocol error: a bug
// met by one front-end's messages drops that connection, not the switch.
// A fault in guest memory (the front-end shrank a region's file) is such
// a panic too.
func (d *device) safeHandle(m *message) (res result, err error) {
	prev := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(prev)
		if r := recover(); r != nil {
			res = result{}
			err = fmt.Errorf("vhost-user: %v: internal error: %v\n%s", m.Req, r, debug.Stack())
		}
	}()
	return d.handle(m)
}
