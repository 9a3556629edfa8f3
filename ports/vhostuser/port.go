//go:build linux

package vhostuser

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	pktheader "github.com/xvswitch/xvs/header" // this package has a type header (msg.go)
	"github.com/xvswitch/xvs/ports"
	"github.com/xvswitch/xvs/ring"
)

// Limits of a Config.
const (
	// MaxQueuePairs bounds Config.QueuePairs. The vring index of
	// SET_VRING_KICK has 8 bits (128 pairs); 16 is more than a VM's vCPUs
	// usefully drive through one port.
	MaxQueuePairs = 16
	// MinMTU and MaxMTU bound Config.MTU, as for TAP ports.
	MinMTU = minMTU
	MaxMTU = 65535 - ethHdrLen
	// maxSocketLen is sun_path less its terminating NUL.
	maxSocketLen = 107
)

const (
	ethHdrLen  = 14
	ethVLANLen = 4
)

// Reconnection backoff of a client-mode port.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// socketCheck is how often a server port checks that its socket file is
// still there (and still its own), and retries creating it when not.
const socketCheck = 250 * time.Millisecond

// ErrBadConfig is wrapped by every error about a Config field.
var ErrBadConfig = errors.New("bad vhost-user configuration")

// Config describes one vhost-user port.
type Config struct {
	// Name is the port's name in the switch; empty means the socket's
	// file name.
	Name string
	// Socket is the path of the vhost-user unix socket.
	Socket string
	// Server: the port listens on Socket and the front-end connects
	// (QEMU's chardev socket without server=on, DPDK virtio-user's
	// default). Otherwise the front-end listens (QEMU server=on) and the
	// port connects, retrying with backoff until it is there and
	// whenever the connection drops.
	Server bool
	// SocketMode is the permission of the socket a server port creates;
	// 0 means 0600 (a QEMU running as another user needs more). The file
	// appears at Socket with this mode, never with the umask's: it is
	// created under a temporary name beside Socket and renamed.
	SocketMode os.FileMode
	// QueuePairs is the most queue pairs the port offers (the answer to
	// GET_QUEUE_NUM, to match QEMU's queues=); 0 means 1.
	QueuePairs int
	// MTU is the largest frame payload the port carries; 0 means 1500.
	// A guest's NET_SET_MTU (QEMU host_mtu=) above it is refused.
	MTU int
	// MAC is the VM NIC's address, which the port reports as its own;
	// the VM's address is set in QEMU (-device virtio-net-pci,mac=), so
	// give the same one. Nil means 02:xx:xx:xx:xx:xx derived from Name.
	MAC net.HardwareAddr
	// AllowedUIDs are, in client mode, the users whose listening socket
	// the port may talk to: whoever listens at Socket gets the VM's
	// traffic, so the listener's uid (SO_PEERCRED) is checked after each
	// connect and others are refused (ControlStats.PeerRefused, logged).
	// Empty means root and the switch's own uid.
	AllowedUIDs []uint32
	// Logger receives connection and protocol events; the zero value is
	// silent.
	Logger zerolog.Logger
}

// normalize fills defaults and checks every field.
func (c *Config) normalize() error {
	switch {
	case c.Socket == "":
		return fmt.Errorf("vhost-user: %w: Socket is empty", ErrBadConfig)
	case len(c.Socket) > maxSocketLen:
		return fmt.Errorf("vhost-user: %w: Socket %q: path too long (%d bytes, at most %d)", ErrBadConfig, c.Socket, len(c.Socket), maxSocketLen)
	}
	if c.Name == "" {
		c.Name = filepath.Base(c.Socket)
	}
	if err := ports.Range("QueuePairs", &c.QueuePairs, 1, 1, MaxQueuePairs); err != nil {
		return fmt.Errorf("vhost-user: %w: %w", ErrBadConfig, err)
	}
	if err := ports.Range("MTU", &c.MTU, 1500, MinMTU, MaxMTU); err != nil {
		return fmt.Errorf("vhost-user: %w: %w", ErrBadConfig, err)
	}
	switch {
	case c.SocketMode == 0:
		c.SocketMode = 0o600
	case c.SocketMode&^os.ModePerm != 0:
		return fmt.Errorf("vhost-user: %w: SocketMode %v: permission bits only", ErrBadConfig, c.SocketMode)
	}
	if c.MAC == nil {
		h := fnv.New64a()
		h.Write([]byte(c.Name))
		s := h.Sum(nil)
		c.MAC = net.HardwareAddr{0x02, s[0], s[1], s[2], s[3], s[4]}
		return nil
	}
	if err := ports.CheckMAC(c.MAC); err != nil {
		return fmt.Errorf("vhost-user: %w: MAC %v: %w", ErrBadConfig, c.MAC, err)
	}
	c.MAC = append(net.HardwareAddr(nil), c.MAC...)
	return nil
}

// dropReason indexes the port's own drop counters; the queues count the
// rest (see Stats).
type dropReason int

const (
	dropNotConnected dropReason = iota // no running guest receive queue (no VM, or not started)
	dropQueueError                     // the queue stopped: the guest broke the ring protocol
	dropTooBig                         // longer than MTU+18 (transmit)
	dropMalformed                      // shorter than an Ethernet header (transmit)
	dropMemoryFault                    // lost when guest memory faulted (the front-end shrank its file)
	numDropReasons
)

var dropNames = [numDropReasons]string{
	dropNotConnected: "not-connected",
	dropQueueError:   "queue-error",
	dropTooBig:       "too-big",
	dropMalformed:    "malformed",
	dropMemoryFault:  "memory-fault",
}

// liveQueue is a running queue as the data path sees it.
type liveQueue struct {
	q    *Queue
	ring int // vring index, for logs
}

// Port is a vhost-user port: the switch's side of a VM's virtio-net
// device. Receive and Transmit may run concurrently with each other (each
// from one goroutine at a time), and with Stats and Close.
type Port struct {
	name, socket string
	allowedUIDs  []uint32 // client mode: who may listen at socket (nil: root and ours)
	server       bool
	sockMode     os.FileMode
	mac          net.HardwareAddr
	mtu          int
	log          zerolog.Logger

	// The data path. rxMu is held by Receive for a whole batch and
	// guards rxq, the guest's running transmit queues; txMu likewise for
	// Transmit and txq, the guest's receive queues. The protocol
	// goroutine takes them to replace the slices (publish), so once it
	// has, no batch uses a queue it withdrew, nor the guest memory under
	// it.
	rxMu   sync.Mutex
	rxq    []liveQueue
	rxNext int // queue Receive starts with, round-robin
	txMu   sync.Mutex
	txq    []liveQueue
	// Transmit's scratch: each queue's share of the batch, as frame
	// indices. Fixed arrays, so that a batch from any arena (every switch
	// worker has its own) needs no batch of the port's over that arena.
	txIdx [MaxQueuePairs][ring.BatchSize]uint8
	txCnt [MaxQueuePairs]int

	// kicks is an epoll descriptor over the kick eventfds of the guest's
	// running transmit rings (WaitFDs); -1 where there is no epoll.
	kicks int

	closed atomic.Bool
	stop   chan struct{}
	wg     sync.WaitGroup
	// Server mode: the listener and the identity of its socket file.
	// The accept loop replaces them when the file is removed or
	// replaced, under lnMu; Close reads them under it.
	lnMu   sync.Mutex
	ln     *net.UnixListener
	lnID   fileID
	watch  sockWatch // the accept loop's own
	connMu sync.Mutex
	cur    *conn // the connection being served, for Close
	busy   atomic.Bool
	dev    *device

	negotiated, negotiatedProtocol atomic.Uint64

	drops [numDropReasons]atomic.Uint64
	ctl   ctlCounters

	// Frames and bytes are counted by the queues. retired sums the
	// counters of queues that stopped; the running ones are read from
	// the queues. statsMu makes withdrawing a queue and adding its
	// counters to retired one step for Stats, so no counter ever goes
	// back. Lock order: statsMu, then rxMu or txMu.
	statsMu sync.Mutex
	retired retiredStats
}

type retiredStats struct {
	rx, tx QueueStats // the guest's transmit (our receive) and receive queues
}

type ctlCounters struct {
	connects, disconnects, protocolErrors, declined, unsupported, rejected, socketRecreated atomic.Uint64
	memoryFaults, peerRefused                                                               atomic.Uint64
	// faulted: guest memory of the current connection faulted, logged
	// once; cleared when a connection is served.
	faulted atomic.Bool
}

// sockWatch is what the accept loop remembers of a socket file that went
// away, so that it logs each state once rather than at every check.
type sockWatch struct {
	lost    bool   // the file is not ours; a new one is not created yet
	lastErr string // the last error creating it, logged
}

var _ ports.Port = (*Port)(nil)

// New creates the port and starts listening on, or connecting to,
// cfg.Socket. It returns without waiting for a front-end: until one has
// set the device up, Receive finds nothing and Transmit drops (counted as
// "not-connected"). In server mode an error to create the socket is
// returned; in client mode a front-end that is not there yet is waited
// for.
func New(cfg Config) (*Port, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	p := &Port{
		name:        cfg.Name,
		socket:      cfg.Socket,
		server:      cfg.Server,
		sockMode:    cfg.SocketMode,
		allowedUIDs: slices.Clone(cfg.AllowedUIDs),
		mac:         cfg.MAC,
		mtu:         cfg.MTU,
		log:         cfg.Logger,
		stop:        make(chan struct{}),
	}
	p.dev = newDevice(p, cfg.QueuePairs)
	var err error
	if p.kicks, err = newKickSet(); err != nil {
		return nil, fmt.Errorf("vhost-user: %w", err)
	}
	if cfg.Server {
		ln, id, err := listen(cfg.Socket, cfg.SocketMode)
		if err != nil {
			closeKickSet(p.kicks)
			return nil, err
		}
		p.ln, p.lnID = ln, id
		p.wg.Add(1)
		go p.acceptLoop()
	} else {
		p.wg.Add(1)
		go p.dialLoop()
	}
	p.log.Info().Str("port", p.name).Str("socket", p.socket).Bool("server", p.server).
		Int("queue_pairs", cfg.QueuePairs).Int("mtu", p.mtu).Str("mac", p.mac.String()).Msg("vhost-user port open")
	return p, nil
}

// Name implements ports.Port.
func (p *Port) Name() string { return p.name }

// MAC implements ports.Port: Config.MAC, the VM NIC's address.
func (p *Port) MAC() net.HardwareAddr { return p.mac }

// MTU implements ports.Port.
func (p *Port) MTU() int { return p.mtu }

// Socket is the path of the vhost-user socket.
func (p *Port) Socket() string { return p.socket }

// Features returns what the current front-end negotiated: virtio feature
// bits (SET_FEATURES) and vhost-user protocol feature bits; zero when
// none is connected.
func (p *Port) Features() (virtio, protocol uint64) {
	return p.negotiated.Load(), p.negotiatedProtocol.Load()
}

// Receive implements ports.Port: frames the guest sent, from its running
// transmit queues, round-robin. Without a front-end, or before it started
// the queues, it returns 0. It does not block and does not allocate.
func (p *Port) Receive(b *ring.Batch) (n int, err error) {
	p.rxMu.Lock()
	defer p.rxMu.Unlock()
	b.N = 0
	if p.closed.Load() {
		return 0, ports.ErrPortClosed
	}
	// A fault in guest memory (see memoryFault) ends this call with the
	// frames of the queues read before the faulting one.
	n0 := 0
	prev := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(prev)
		if r := recover(); r != nil {
			p.memoryFault(r, p.rxq, uint64(b.N-n0))
			b.N = n0
			n, err = n0, nil
		}
	}()
	nq := len(p.rxq)
	for k := 0; k < nq && b.N < ring.BatchSize; k++ {
		lq := &p.rxq[(p.rxNext+k)%nq]
		if lq.q.stopped {
			continue
		}
		n0 = b.N
		if _, err := lq.q.Dequeue(b); err != nil {
			// The frames taken before the bad chain are valid.
			p.queueFailed(lq, err)
		}
	}
	if nq > 1 {
		p.rxNext = (p.rxNext + 1) % nq
	}
	return b.N, nil
}

// Transmit implements ports.Port: it delivers b.Frames[:b.N] into the
// guest's receive buffers. A frame goes to queue Meta.Hash mod the running
// receive queues, which keeps a flow in order (a Hash of 0 is computed with
// header.FlowHash and written into the frame's Meta). It returns the frames it
// consumed: those delivered and those it dropped and counted itself
// (not-connected, too-big, malformed, queue-error), so that the switch
// does not count them again. Frames the guest had posted no receive
// buffers for are not consumed: the switch counts them (ring-full), as it
// does a TAP queue that is full. With several queues those frames need not
// be the last of the batch, so the switch's transmitted byte count is then
// that of the first frames, not of the ones delivered. It does not block
// and does not allocate.
func (p *Port) Transmit(b *ring.Batch) (consumed int, err error) {
	p.txMu.Lock()
	defer p.txMu.Unlock()
	if p.closed.Load() {
		return 0, ports.ErrPortClosed
	}
	n := min(b.N, ring.BatchSize)
	if n <= 0 {
		return 0, nil
	}
	nq := len(p.txq)
	if nq == 0 {
		p.drops[dropNotConnected].Add(uint64(n))
		return n, nil
	}
	// One pass sorts the frames into per-queue index lists, in order.
	maxLen := p.mtu + ethHdrLen + ethVLANLen
	cnt := p.txCnt[:nq]
	clear(cnt)
	var tooBig, malformed uint64
	for i := range n {
		f := &b.Frames[i]
		switch l := int(f.Len); {
		case l > maxLen:
			tooBig++
			continue
		case l < ethHdrLen:
			malformed++
			continue
		}
		qi := 0
		if nq > 1 {
			if f.Hash == 0 { // not computed yet
				f.Hash = pktheader.FlowHash(b.Data(i))
			}
			qi = int(f.Hash % uint32(nq))
		}
		p.txIdx[qi][cnt[qi]] = uint8(i)
		cnt[qi]++
	}
	if tooBig > 0 {
		p.drops[dropTooBig].Add(tooBig)
	}
	if malformed > 0 {
		p.drops[dropMalformed].Add(malformed)
	}
	// A fault in guest memory (see memoryFault) drops the frames of the
	// faulting queue and of those after it.
	consumed = n
	qf := 0
	prev := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(prev)
		if r := recover(); r != nil {
			lost := 0
			for _, c := range cnt[qf:] {
				lost += c
			}
			p.memoryFault(r, p.txq, uint64(lost))
			consumed, err = n, nil
		}
	}()
	for qi, c := range cnt {
		if c > 0 {
			qf = qi
			consumed -= p.enqueue(&p.txq[qi], b, p.txIdx[qi][:c])
		}
	}
	return consumed, nil
}

// memoryFault handles a panic r of Receive or Transmit. A fault (an
// access to guest memory that raised SIGBUS or SIGSEGV: the front-end
// shrank a region's file after SET_MEM_TABLE, which xvs cannot prevent
// for a file it did not create and that is not sealed) is turned into a
// panic by debug.SetPanicOnFault, set around the data path's access to
// guest memory; it ends this port, not the switch: the queues of the
// direction that faulted stop, the frames lost are counted
// (memory-fault), the fault is counted and logged once, and the
// connection is closed, so that the device resets, unmapping the memory,
// and the front-end must set it up again. Any other panic is a bug and
// goes on. The caller holds the lock of qs.
func (p *Port) memoryFault(r any, qs []liveQueue, lost uint64) {
	if _, ok := r.(interface{ Addr() uintptr }); !ok {
		panic(r)
	}
	for i := range qs {
		qs[i].q.stopped = true
	}
	p.drops[dropMemoryFault].Add(lost)
	p.ctl.memoryFaults.Add(1)
	if !p.ctl.faulted.Swap(true) {
		p.log.Error().Str("port", p.name).Interface("fault", r).
			Msg("vhost-user guest memory faulted (its file shrank?): port stopped, connection closed")
	}
	p.connMu.Lock()
	if p.cur != nil {
		p.cur.Close() // the protocol goroutine's read returns; it resets the device
	}
	p.connMu.Unlock()
}

// enqueue delivers the frames of b listed in idx to one queue and returns
// how many found no receive buffers (the queue counts them as NoBuffers;
// they are left to the switch). Frames a broken ring refused are dropped
// and counted here.
func (p *Port) enqueue(lq *liveQueue, b *ring.Batch, idx []uint8) int {
	if lq.q.stopped {
		p.drops[dropQueueError].Add(uint64(len(idx)))
		return 0
	}
	n, err := lq.q.enqueue(b, idx)
	if err != nil {
		p.drops[dropQueueError].Add(uint64(len(idx) - n))
		p.queueFailed(lq, err)
		return 0
	}
	return len(idx) - n
}

// queueFailed logs a queue that failed. It stays stopped (Queue.stopped;
// its frames dropped) until the front-end sets the ring up again, and the
// data path skips it meanwhile, so the log is bounded by ring setups, not
// by frames.
func (p *Port) queueFailed(lq *liveQueue, err error) {
	p.log.Warn().Str("port", p.name).Int("ring", lq.ring).Err(err).Msg("vhost-user ring stopped")
}

// publish replaces the running queues (called by the device).
func (p *Port) publish(rx, tx []liveQueue) {
	p.rxMu.Lock()
	p.rxq = tx // the guest's transmit queues are what Receive reads
	p.rxNext = 0
	p.rxMu.Unlock()
	p.txMu.Lock()
	p.txq = rx
	p.txMu.Unlock()
}

// retire adds the counters of a stopped queue to the port's. The caller
// holds statsMu, and withdrew q from the data path under it.
func (p *Port) retire(vring int, q *Queue) {
	s := q.Stats()
	if vring%2 == 0 {
		addQueueStats(&p.retired.tx, &s)
	} else {
		addQueueStats(&p.retired.rx, &s)
	}
}

func addQueueStats(to, s *QueueStats) {
	to.Frames += s.Frames
	to.Bytes += s.Bytes
	to.TooBig += s.TooBig
	to.Malformed += s.Malformed
	to.NoBuffers += s.NoBuffers
	to.Interrupts += s.Interrupts
	to.CallErrors += s.CallErrors
	for i := range s.Faults {
		to.Faults[i] += s.Faults[i]
	}
}

// queueStats sums the counters of every queue, stopped or running, by
// direction: rx are the guest's transmit queues, tx its receive queues.
func (p *Port) queueStats() (rx, tx QueueStats) {
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	rx, tx = p.retired.rx, p.retired.tx
	// Queue.Stats is safe beside Dequeue and Enqueue, and publish
	// replaces the slices rather than changing them: the data path's
	// locks are only taken to read the current slices.
	p.rxMu.Lock()
	live := p.rxq
	p.rxMu.Unlock()
	for i := range live {
		s := live[i].q.Stats()
		addQueueStats(&rx, &s)
	}
	p.txMu.Lock()
	live = p.txq
	p.txMu.Unlock()
	for i := range live {
		s := live[i].q.Stats()
		addQueueStats(&tx, &s)
	}
	return rx, tx
}

// Stats implements ports.Port. Drops holds every reason the port counts,
// zero or not: the port's own (not-connected, queue-error, memory-fault,
// and too-big and malformed on transmit) and the queues' (too-big: a frame larger than the
// switch's buffer, or than a guest buffer without mergeable buffers;
// malformed: a guest chain shorter than the virtio-net header). Frames
// the guest had posted no receive buffers for are not among them: Transmit
// leaves those to the switch, which counts them as ring-full.
func (p *Port) Stats() ports.Stats {
	rx, tx := p.queueStats()
	s := ports.Stats{
		RxFrames: rx.Frames,
		RxBytes:  rx.Bytes,
		TxFrames: tx.Frames,
		TxBytes:  tx.Bytes,
		Drops:    make(map[string]uint64, numDropReasons+1),
	}
	for r := range numDropReasons {
		s.Drops[dropNames[r]] = p.drops[r].Load()
	}
	s.Drops[dropNames[dropTooBig]] += rx.TooBig + tx.TooBig
	s.Drops[dropNames[dropMalformed]] += rx.Malformed + tx.Malformed
	return s
}

// ControlStats are the counters of the port's control plane.
type ControlStats struct {
	Connected      bool   // a front-end is connected now
	Connects       uint64 // connections accepted or made
	Disconnects    uint64 // connections ended, for any reason
	ProtocolErrors uint64 // connections dropped for a bad message or ring setup
	Declined       uint64 // requests answered with a failure (unsupported, not offered, refused)
	Unsupported    uint64 // of those, requests the device does not know
	Rejected       uint64 // server mode: connections refused while one was being served
	// MemoryFaults counts accesses to guest memory that faulted (the
	// front-end shrank a region's file): each stopped the port's queues
	// and closed the connection.
	MemoryFaults uint64
	// PeerRefused counts, in client mode, connections closed at once
	// because the listener's uid is not in Config.AllowedUIDs.
	PeerRefused uint64
	// SocketRecreated counts, in server mode, the times the socket file
	// was found removed or replaced and was created again.
	SocketRecreated uint64
	// RingFaults counts rings stopped because the guest broke the ring
	// protocol, by kind (loop, out-of-memory, bad-index, ...).
	RingFaults map[string]uint64
}

// ControlStats returns the control plane's counters.
func (p *Port) ControlStats() ControlStats {
	rx, tx := p.queueStats()
	s := ControlStats{
		Connected:       p.busy.Load(),
		Connects:        p.ctl.connects.Load(),
		Disconnects:     p.ctl.disconnects.Load(),
		ProtocolErrors:  p.ctl.protocolErrors.Load(),
		Declined:        p.ctl.declined.Load(),
		Unsupported:     p.ctl.unsupported.Load(),
		Rejected:        p.ctl.rejected.Load(),
		SocketRecreated: p.ctl.socketRecreated.Load(),
		MemoryFaults:    p.ctl.memoryFaults.Load(),
		PeerRefused:     p.ctl.peerRefused.Load(),
		RingFaults:      make(map[string]uint64, NumFaults-1),
	}
	for f := Fault(1); f < NumFaults; f++ {
		s.RingFaults[f.String()] = rx.Faults[f] + tx.Faults[f]
	}
	return s
}

// Close implements ports.Port: it stops listening or connecting, drops the
// connection (the device resets: rings stopped, descriptors closed, guest
// memory unmapped), and removes the socket file a server port created.
// Later calls return nil.
func (p *Port) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	close(p.stop)
	var err error
	// The accept loop sees closed under lnMu before it installs a new
	// listener, so this is the last one.
	p.lnMu.Lock()
	ln, id := p.ln, p.lnID
	p.lnMu.Unlock()
	if ln != nil {
		if cerr := ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = fmt.Errorf("vhost-user: close %s: %w", p.socket, cerr)
		}
		removeSocket(p.socket, id)
	}
	p.connMu.Lock()
	if p.cur != nil {
		p.cur.Close()
	}
	p.connMu.Unlock()
	p.wg.Wait()
	closeKickSet(p.kicks) // the device goroutines, which change it, are done
	p.log.Info().Str("port", p.name).Str("socket", p.socket).Err(err).Msg("vhost-user port closed")
	return err
}

// acceptLoop accepts front-ends on the listener, one at a time. A
// connection that arrives while one is served waits up to busyWait for it
// to end (a VM restarting connects again as its old connection closes),
// and is then closed if it still has to wait: the front-end sees the
// socket closed (QEMU with reconnect=, or DPDK, tries again) rather than
// hang unanswered. Every socketCheck it also checks the socket file (see
// checkSocket).
func (p *Port) acceptLoop() {
	defer p.wg.Done()
	ln := p.ln // only this goroutine replaces it
	next := time.Now().Add(socketCheck)
	for {
		if !time.Now().Before(next) {
			ln = p.checkSocket(ln)
			next = time.Now().Add(socketCheck)
		}
		ln.SetDeadline(next)
		c, err := ln.AcceptUnix()
		if err != nil {
			if p.closed.Load() {
				return
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			p.log.Warn().Str("port", p.name).Err(err).Msg("vhost-user accept")
			if !p.sleep(minBackoff) {
				return
			}
			continue
		}
		if !p.claim() {
			if !p.closed.Load() {
				p.ctl.rejected.Add(1)
				p.log.Warn().Str("port", p.name).Msg("vhost-user front-end refused: another one is connected")
			}
			c.Close()
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c)
		}()
	}
}

// checkSocket makes sure the socket file at the port's path is the one
// its listener is bound to. If it was removed, or replaced (by another
// socket, or anything else), it creates the socket again, as at New: a
// stale socket there is removed, but not a live one nor a file that is not
// a socket, which is logged, and tried again at the next check. The old
// listener is then closed, leaving the file at the path alone; the
// connection being served, if any, goes on. It returns the listener to
// accept on.
func (p *Port) checkSocket(ln *net.UnixListener) *net.UnixListener {
	w := &p.watch
	id, err := lstatID(p.socket)
	if err == nil && id == p.lnID { // lnID is written only here
		w.lost, w.lastErr = false, ""
		return ln
	}
	if !w.lost {
		w.lost = true
		what := "replaced"
		if errors.Is(err, os.ErrNotExist) {
			what = "removed"
		} else if err != nil {
			what = err.Error()
		}
		p.log.Warn().Str("port", p.name).Str("socket", p.socket).Str("file", what).
			Msg("vhost-user socket file removed or replaced: creating it again")
	}
	nl, nid, err := listen(p.socket, p.sockMode)
	if err != nil {
		if msg := err.Error(); msg != w.lastErr {
			w.lastErr = msg
			p.log.Error().Str("port", p.name).Err(err).Dur("retry", socketCheck).
				Msg("vhost-user cannot create the socket again; will retry")
		}
		return ln
	}
	p.lnMu.Lock()
	if p.closed.Load() {
		p.lnMu.Unlock()
		nl.Close()
		removeSocket(p.socket, nid)
		return ln
	}
	p.ln, p.lnID = nl, nid
	p.lnMu.Unlock()
	ln.Close()
	w.lost, w.lastErr = false, ""
	p.ctl.socketRecreated.Add(1)
	p.log.Info().Str("port", p.name).Str("socket", p.socket).Msg("vhost-user socket created again")
	return nl
}

// busyWait is how long a new connection waits for the current one to end.
const busyWait = time.Second

// claim marks the port busy, waiting up to busyWait for the connection
// being served to end. It reports false if it did not, or on Close.
func (p *Port) claim() bool {
	deadline := time.Now().Add(busyWait)
	for !p.busy.CompareAndSwap(false, true) {
		if time.Now().After(deadline) || !p.sleep(10*time.Millisecond) {
			return false
		}
	}
	return true
}

// dialLoop connects to the front-end's socket, serves the connection, and
// connects again when it ends, with a backoff from 100 ms to 5 s while
// the front-end is not there.
func (p *Port) dialLoop() {
	defer p.wg.Done()
	backoff := minBackoff
	waiting := false
	refusedUID := int64(-1) // the listener refused last, logged once
	for !p.closed.Load() {
		c, err := dial(p.socket)
		if err == nil {
			if uid, ok := p.peerAllowed(c); !ok {
				c.Close()
				p.ctl.peerRefused.Add(1)
				if int64(uid) != refusedUID {
					p.log.Warn().Str("port", p.name).Str("socket", p.socket).Uint32("uid", uid).
						Msg("vhost-user: the process listening on the socket belongs to a user not allowed (allowed_uids): not connecting")
					refusedUID = int64(uid)
				}
				err = errPeerRefused
			}
		}
		if err != nil {
			if !waiting {
				p.log.Info().Str("port", p.name).Err(err).Msg("vhost-user waiting for front-end")
				waiting = true
			}
			if !p.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		waiting = false
		backoff = minBackoff
		p.busy.Store(true)
		p.serve(c)
		if !p.sleep(minBackoff) {
			return
		}
	}
}

// errPeerRefused: the listener's uid is not allowed.
var errPeerRefused = errors.New("listener's user not allowed")

// peerAllowed reports the uid of the process listening at the other end
// of c and whether Config.AllowedUIDs lets the port talk to it.
func (p *Port) peerAllowed(c *net.UnixConn) (uint32, bool) {
	uid, err := peerUID(c)
	if err != nil {
		return 0, false
	}
	allowed := p.allowedUIDs
	if len(allowed) == 0 {
		allowed = []uint32{0, uint32(os.Getuid())}
	}
	return uid, slices.Contains(allowed, uid)
}

// sleep waits for d or until Close; it reports whether the port is still
// open.
func (p *Port) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.stop:
		return false
	case <-t.C:
		return true
	}
}

// serve runs the protocol on one connection until it ends, then resets
// the device for the next one. p.busy is set by the caller and cleared
// here.
func (p *Port) serve(uc *net.UnixConn) {
	c := newConn(uc)
	p.connMu.Lock()
	if p.closed.Load() {
		p.connMu.Unlock()
		c.Close()
		p.busy.Store(false)
		return
	}
	p.cur = c
	p.connMu.Unlock()
	p.ctl.connects.Add(1)
	p.ctl.faulted.Store(false)
	p.log.Info().Str("port", p.name).Str("socket", p.socket).Msg("vhost-user front-end connected")

	err := p.session(c)

	p.dev.reset()
	p.connMu.Lock()
	p.cur = nil
	p.connMu.Unlock()
	c.Close()
	p.ctl.disconnects.Add(1)
	p.busy.Store(false)
	switch {
	case p.closed.Load():
	case errors.Is(err, errPeerGone):
		p.log.Info().Str("port", p.name).Msg("vhost-user front-end disconnected")
	default:
		p.ctl.protocolErrors.Add(1)
		p.log.Error().Str("port", p.name).Err(err).Msg("vhost-user connection dropped")
	}
}

// session reads and answers requests until the connection fails or a
// request is a protocol error, which it returns.
func (p *Port) session(c *conn) error {
	var status [sizeU64]byte
	for {
		m, err := c.read()
		if err != nil {
			return err
		}
		res, err := p.dev.safeHandle(&m)
		closeFDs(m.FDs)
		declined := err != nil && errors.Is(err, errDeclined)
		if declined {
			p.ctl.declined.Add(1)
			p.log.Info().Str("port", p.name).Err(err).Msg("vhost-user request declined")
		}
		switch {
		case res.hasReply:
			if werr := c.write(m.Req, res.reply); werr != nil {
				return fmt.Errorf("%w: %w", errPeerGone, werr)
			}
		case m.needReply():
			// REPLY_ACK: 0 for success, 1 for failure.
			ok := uint64(0)
			if err != nil {
				ok = 1
			}
			if werr := c.write(m.Req, appendU64(status[:0], ok)); werr != nil {
				return fmt.Errorf("%w: %w", errPeerGone, werr)
			}
		}
		if err != nil && !declined {
			return err
		}
	}
}
