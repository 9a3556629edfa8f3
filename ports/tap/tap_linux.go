package tap

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// tunPath is the TUN/TAP clone device.
const tunPath = "/dev/net/tun"

// queueFlags are the TUNSETIFF flags of every queue.
const queueFlags = unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR | unix.IFF_MULTI_QUEUE

// openQueues opens n non-blocking queues of dev. The first one is opened
// with IFF_TUN_EXCL, which fails with EBUSY exactly when dev exists: that
// tells, without a race, whether the port creates the device or attaches
// to it. On error every queue opened so far is closed.
func openQueues(dev string, n int) (fds []int, created bool, err error) {
	fds = make([]int, 0, n)
	fail := func(err error) ([]int, bool, error) {
		closeQueues(fds)
		return nil, false, err
	}
	fd, err := openQueue(dev, queueFlags|unix.IFF_TUN_EXCL)
	switch {
	case err == nil:
		created = true
	case errors.Is(err, unix.EBUSY):
		fd, err = openQueue(dev, queueFlags)
		if err != nil {
			return fail(attachError(dev, err))
		}
	default:
		return fail(err)
	}
	fds = append(fds, fd)
	for len(fds) < n {
		fd, err := openQueue(dev, queueFlags)
		if err != nil {
			return fail(fmt.Errorf("tap: open queue %d of %s: %w", len(fds), dev, err))
		}
		fds = append(fds, fd)
	}
	return fds, created, nil
}

// openQueue opens /dev/net/tun and binds it to dev with flags.
func openQueue(dev string, flags uint16) (int, error) {
	fd, err := unix.Open(tunPath, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("tap: open %s: %w", tunPath, err)
	}
	ifr, err := unix.NewIfreq(dev)
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("tap: device name %q: %w", dev, err)
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EPERM) {
			return -1, fmt.Errorf("tap: create or attach %s: %w (needs CAP_NET_ADMIN)", dev, err)
		}
		return -1, fmt.Errorf("tap: TUNSETIFF %s: %w", dev, err)
	}
	return fd, nil
}

// attachError explains why a queue could not join an existing device.
func attachError(dev string, err error) error {
	switch {
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("tap: attach to existing device %s: it is not a multi-queue TAP (ip tuntap add dev %s mode tap multi_queue vnet_hdr): %w", dev, dev, err)
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("tap: attach to existing device %s: busy (single-queue TAP in use, or queue limit reached): %w", dev, err)
	}
	return fmt.Errorf("tap: attach to existing device %s: %w", dev, err)
}

// configureDevice sets the per-device state through queue fd: virtio-net
// header size and byte order, offloads off; then, through a control socket,
// MTU, MAC and IFF_UP. It returns the device's MAC address.
func configureDevice(fd int, dev string, mtu int, mac net.HardwareAddr) (net.HardwareAddr, error) {
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, vnetHdrLen); err != nil {
		return nil, fmt.Errorf("tap: TUNSETVNETHDRSZ %s: %w", dev, err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETLE, 1); err != nil {
		return nil, fmt.Errorf("tap: TUNSETVNETLE %s: %w", dev, err)
	}
	if err := setOffload(fd, 0); err != nil {
		return nil, fmt.Errorf("tap: TUNSETOFFLOAD %s: %w", dev, err)
	}

	sock, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("tap: control socket: %w", err)
	}
	defer unix.Close(sock)

	ifr, err := unix.NewIfreq(dev)
	if err != nil {
		return nil, fmt.Errorf("tap: device name %q: %w", dev, err)
	}
	ifr.SetUint32(uint32(mtu))
	if err := unix.IoctlIfreq(sock, unix.SIOCSIFMTU, ifr); err != nil {
		return nil, fmt.Errorf("tap: set MTU %d on %s: %w", mtu, dev, err)
	}
	if mac != nil {
		if err := setHWAddr(sock, dev, mac); err != nil {
			return nil, fmt.Errorf("tap: set MAC %v on %s: %w", mac, dev, err)
		}
	}
	got, err := getHWAddr(sock, dev)
	if err != nil {
		return nil, fmt.Errorf("tap: get MAC of %s: %w", dev, err)
	}
	if err := unix.IoctlIfreq(sock, unix.SIOCGIFFLAGS, ifr); err != nil {
		return nil, fmt.Errorf("tap: get flags of %s: %w", dev, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(sock, unix.SIOCSIFFLAGS, ifr); err != nil {
		return nil, fmt.Errorf("tap: bring %s up: %w", dev, err)
	}
	return got, nil
}

// setOffload sets the device's offload flags (TUN_F_*); the port uses 0.
func setOffload(fd int, flags int) error {
	return unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, flags)
}

// closeQueues closes every fd and returns the first error.
func closeQueues(fds []int) error {
	var first error
	for _, fd := range fds {
		if err := unix.Close(fd); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// readQueue reads one vnet header and frame into buf.
func readQueue(fd int, buf []byte) (int, ioResult, error) {
	n, err := unix.Read(fd, buf)
	return n, classify(err), err
}

// readvQueue reads the header into hdr and the frame into buf.
func readvQueue(fd int, hdr, buf []byte) (int, ioResult, error) {
	iov := [2][]byte{hdr, buf}
	n, err := unix.Readv(fd, iov[:])
	return n, classify(err), err
}

// writeQueue writes the iovecs (header, frame) as one frame.
func writeQueue(fd int, iov [][]byte) ioResult {
	_, err := unix.Writev(fd, iov)
	return classify(err)
}

func classify(err error) ioResult {
	switch err {
	case nil:
		return ioOK
	case unix.EAGAIN:
		return ioAgain
	case unix.EINTR:
		return ioIntr
	case unix.EIO:
		return ioDown
	}
	return ioError
}
