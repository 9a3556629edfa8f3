package testutil

import (
	"fmt"
	"net"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// InNetNS runs f on a thread inside the named network namespace (as
// created by ip netns add: /run/netns/name) and returns f's error. A
// socket f creates stays in that namespace. It may be called from any
// goroutine. If the thread cannot return to its namespace it stays
// locked, and Go discards it with the goroutine.
func InNetNS(name string, f func() error) error {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open this thread's namespace: %w", err)
	}
	defer unix.Close(orig)
	target, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open namespace %s: %w", name, err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter namespace %s: %w", name, err)
	}
	ferr := f()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("return from namespace %s: %w", name, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// PacketSocket opens an AF_PACKET socket bound to device dev of network
// namespace netns ("" for the test's own) that sees only frames of
// EtherType proto. Frames written to it leave through dev as they are;
// reads return the frames dev received, not those it sent. It has large
// buffers and bypasses the qdisc. t's cleanup closes it.
func PacketSocket(t testing.TB, netns, dev string, proto uint16) int {
	t.Helper()
	fd := -1
	open := func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		s, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(proto)))
		if err != nil {
			return fmt.Errorf("AF_PACKET socket: %w", err)
		}
		if err := unix.Bind(s, &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: ifi.Index}); err != nil {
			unix.Close(s)
			return fmt.Errorf("bind AF_PACKET socket to %s: %w", dev, err)
		}
		fd = s
		return nil
	}
	var err error
	if netns == "" {
		err = open()
	} else {
		err = InNetNS(netns, open)
	}
	if err != nil {
		t.Fatalf("packet socket on %s in namespace %q: %v", dev, netns, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 32<<20)
	unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
	unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	return fd
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
