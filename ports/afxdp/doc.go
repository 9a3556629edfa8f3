// Package afxdp is a [github.com/xvswitch/xvs/ports.Port] on an AF_XDP socket: it moves frames
// between the switch and one queue of a network device (a NIC or a veth)
// without the kernel's network stack.
//
// # Attaching
//
// One Port is one socket bound to one queue of one device:
//
//	p, err := afxdp.New(afxdp.Config{
//		Name:   "uplink",
//		Dev:    "eth1",
//		Queue:  0,
//		Logger: log, // zerolog; the zero value is silent
//	})
//	if err != nil {
//		return err // e.g. afxdp.ErrNoDevice, afxdp.ErrMTUTooLarge, EPERM
//	}
//	defer p.Close()
//
// New attaches a small XDP program to the device (asavie/xdp's, a copy of
// libbpf's default) that redirects the frames of each queue with a socket
// to that socket and passes the others to the kernel stack. Ports on other
// queues of the same device share the program; the last Close detaches it.
// A device with several rx queues spreads its traffic over them (RSS):
// open one Port per queue, or reduce the device to one queue
// (ethtool -L DEV combined 1). Any XDP program already on the device,
// in any mode, is replaced (a program left by a process that died stays
// attached); the log says so. Close leaves the device with no XDP program
// in any mode, and may be called more than once. A program attached
// through netlink outlives its process: if the process dies, the device
// drops the frames of the queues it served (the program redirects them to
// a socket that is gone) until a new port replaces the program or
// ip link set DEV xdp off removes it. [Available] tells
// whether this process may open AF_XDP sockets at all: it needs
// CAP_NET_RAW, and CAP_BPF plus CAP_NET_ADMIN for the program; root has
// them.
//
// # Modes
//
// Two independent choices, both logged by New and reported by
// [Port.XDPMode] and [Port.ZeroCopy]:
//
//   - The XDP program runs in native (driver) mode where the driver has it,
//     and in generic (skb) mode otherwise ([ModeAuto]). Generic mode works on
//     any device but builds an skb for every frame first, which costs most of
//     what AF_XDP saves. [ModeNative] and [ModeGeneric] force one.
//   - The socket is bound in zero-copy mode when the driver supports it
//     (the NIC DMAs straight into the socket's memory) and in copy mode
//     otherwise, where the kernel copies each frame. Config.Copy forces copy
//     mode; generic mode always copies.
//
// A veth gets native XDP and copy mode: veth has no zero-copy support.
//
// # Memory and rings
//
// The port owns a UMEM, NumFrames frames of FrameSize bytes (2048 or 4096)
// registered with the kernel. Frames [0, FillRingSize) receive: they
// circulate between the fill ring and the rx ring, and Receive returns
// each one to the fill ring as soon as it has copied the frame out, in one
// publication per call. The remaining frames transmit: Transmit copies
// into free ones (a stack, no scan), and completed ones are reclaimed in
// bulk at the start of the next Transmit. The switch owns frame memory
// (see package ports): Receive copies into the batch's buffers and
// Transmit copies out of them, so the port keeps no reference to a batch.
//
// The defaults, 2048 fill and rx descriptors, 1024 tx and completion
// descriptors, 3072 frames of 2048 bytes (6 MiB locked per port), trade
// memory for tolerance of a receiver that loses its CPU: it may be away
// for as long as the device takes to deliver 2048 frames before the
// kernel runs out of fill buffers (counted as "rx-dropped" and
// "fill-ring-empty"). Per-frame ring work in this package does not grow
// with the ring size, and neither Receive nor Transmit allocates. Copy
// mode sends during the sendto that Transmit makes, so the tx ring never
// holds more than one batch there; a zero-copy NIC drains it on its own,
// and 1024 covers its bursts.
//
// The kernel writes a received frame 256 bytes into its UMEM frame
// (XDP_PACKET_HEADROOM), so a UMEM frame of 2048 bytes carries frames of
// up to 1792 bytes and one of 4096 up to 3840. Larger frames the kernel
// drops without telling anyone but a counter, so New refuses a device
// whose MTU plus [EthOverhead] does not fit ([ErrMTUTooLarge]; see
// [MaxMTU]): set FrameSize 4096 for MTUs up to 3822.
//
// # Receive
//
// Receive never blocks: with nothing in the rx ring it returns 0. A worker
// that wants to sleep while idle polls the descriptors of [Port.WaitFDs]
// (the socket; POLLIN while frames wait), which makes Port a
// [github.com/xvswitch/xvs/ports.Waiter].
//
// # Transmit
//
// In copy mode the kernel transmits inside sendto, by default at most 32
// frames per call. Where the kernel accepts the XDP_MAX_TX_SKB_BUDGET
// socket option the port raises that to the tx ring size, so one sendto
// sends a whole batch; elsewhere Transmit kicks until the ring is empty,
// so no frame waits for the next call. A sendto error never panics:
// ENETDOWN (link down) counts the frames as "link-down" drops and makes
// later calls drop without queueing until a probe kick succeeds; EBUSY
// (the device refused one frame) counts "tx-dropped"; anything else
// counts "tx-error" and is logged through a sampled logger.
//
// # Statistics
//
// [Port.Stats] reads the kernel's struct xdp_statistics for the socket
// (getsockopt XDP_STATISTICS) and reports it in Drops under "rx-dropped",
// "rx-invalid", "tx-invalid", "rx-ring-full" and "fill-ring-empty", beside
// the port's own "too-big", "tx-too-big", "link-down", "tx-dropped",
// "tx-error" and "rx-bad-desc". On a veth, "peer-dropped" is the other
// end's tx_dropped since the port opened: frames lost before they reached
// the device, which no counter of the device or the socket shows.
//
// # Veth caveats
//
//   - Native XDP on a veth requires the peer's MTU to be at most 3506
//     (with 4 KiB pages); otherwise the kernel refuses with ERANGE and
//     ModeAuto falls back to generic mode (logged as "native_refused").
//   - Frames reach the port only while both ends are up.
//   - A veth created with several queues (numrxqueues) delivers each frame
//     on the rx queue numbered like the tx queue the peer sent it on; by
//     default a veth has one active queue.
//   - Frames that an XDP program elsewhere redirects into a veth
//     (XDP_REDIRECT, e.g. a kernel fast path next to the switch) are
//     dropped unless the veth's peer has NAPI enabled: attach an XDP
//     program to the peer (any, even one that passes everything) or turn
//     on GRO there (ethtool -K PEER gro on). Frames the port transmits
//     are not redirected and need neither.
//   - The XDP program gives the device NAPI, and with it a ring of 256
//     frames that the peer fills; a full ring makes the peer drop
//     ("peer-dropped") unless the peer has a qdisc, which a kernel that
//     holds veth senders back then stops instead (the README says which
//     kernels do). veths start with none (noqueue). With ThreadedNAPI the
//     ring's consumer runs on another CPU than its producer and falls
//     behind, so a peer without a qdisc drops TCP segments (figures in
//     bench/RESULTS.md); tc qdisc replace dev PEER root pfifo_fast gives
//     it one. New warns about a threaded port whose peer has no qdisc.
//
// # Fast path
//
// With Config.FastPath set, the device runs xvs's own XDP program (see
// FastPath): known unicast between fast-path ports of one switch, in one
// VSID, is XDP_REDIRECTed in the kernel and never reaches the socket; the
// switch decides what is known through FastPath.Learn, Forget and SetVSID.
// The egress device must accept XDP_REDIRECT (on a veth: NAPI on the peer).
package afxdp
