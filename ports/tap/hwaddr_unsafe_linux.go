package tap

import (
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ifreqHW is struct ifreq with its union read as ifr_hwaddr (a struct
// sockaddr: family, then 14 bytes of which an Ethernet address uses 6).
// unix.Ifreq has no accessor for it. Invariant: the layout matches the C
// struct on every Linux ABI: a 16-byte name, the 16-byte sockaddr at offset
// 16, padded to 40 bytes, the size of struct ifreq on 64-bit platforms (on
// 32-bit ones it is 32 and the kernel reads only that prefix).
type ifreqHW struct {
	name   [unix.IFNAMSIZ]byte
	family uint16
	addr   [14]byte
	_      [8]byte
}

// The layout above, checked at compile time.
var _ [40 - unsafe.Sizeof(ifreqHW{})]byte
var _ [unsafe.Sizeof(ifreqHW{}) - 40]byte
var _ [16 - unsafe.Offsetof(ifreqHW{}.family)]byte

func ioctlHW(sock int, req uint, r *ifreqHW) error {
	// The pointer is only used for the duration of the system call.
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(sock), uintptr(req), uintptr(unsafe.Pointer(r)))
	if e != 0 {
		return e
	}
	return nil
}

// getHWAddr reads dev's Ethernet address through control socket sock.
func getHWAddr(sock int, dev string) (net.HardwareAddr, error) {
	var r ifreqHW
	copy(r.name[:maxDevLen], dev)
	if err := ioctlHW(sock, unix.SIOCGIFHWADDR, &r); err != nil {
		return nil, err
	}
	return append(net.HardwareAddr(nil), r.addr[:6]...), nil
}

// setHWAddr sets dev's Ethernet address through control socket sock.
func setHWAddr(sock int, dev string, mac net.HardwareAddr) error {
	r := ifreqHW{family: unix.ARPHRD_ETHER}
	copy(r.name[:maxDevLen], dev)
	copy(r.addr[:], mac)
	return ioctlHW(sock, unix.SIOCSIFHWADDR, &r)
}
