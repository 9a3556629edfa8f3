// Package gen sends and counts the frames of xvs-pktgen.
//
// A [Generator] sends on one device from one OS thread of its own, which it
// moves into the device's network namespace and on which it blocks the
// asynchronous signals (so that no BPF_PROG_RUN is cut short and its frame
// count stays exact). It sends in one of three modes:
//
//   - live: BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES. The kernel runs an
//     XDP program (written here with cilium/ebpf's asm package) on a fresh
//     copy of the frame Repeat times per call and transmits what it returns
//     XDP_TX for out of the device named in the context. For several flows
//     the program rewrites the frame per run from a counter in an array map.
//   - afxdp: an AF_XDP socket (github.com/asavie/xdp) in copy mode.
//   - packet: an AF_PACKET socket, one write per frame, for frames the
//     other two cannot carry.
//
// Auto mode tries them in that order. A [Sink] is an XDP program attached
// through a BPF link that counts and drops what arrives on a device.
//
// Ownership: a Generator owns its thread, its sockets, programs and maps
// until Wait returns; a Sink owns its program, maps and link until Close.
// Nothing here changes a device's configuration. Programs are attached
// through BPF links only, which the kernel removes if the process dies: the
// sink's to its device, and the live sender's to the loopback device of a
// private network namespace it makes for the purpose (see dispatcherPin).
package gen
