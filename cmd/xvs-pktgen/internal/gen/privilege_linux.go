package gen

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// ErrPermission is wrapped when the kernel refuses and the process lacks a
// capability xvs-pktgen needs (see MissingCaps): the fix is the user's.
var ErrPermission = errors.New("permission denied")

// ErrRefused is wrapped when the kernel refuses with EPERM although the
// process has every capability xvs-pktgen needs: a hardened or
// distribution kernel, an LSM, a container or VM policy. Becoming root
// would not help, so the message must not say so.
var ErrRefused = errors.New("refused by the kernel")

// ErrLiveRefused is wrapped (with ErrUnsupported) when the kernel will not
// run XDP programs in live-frames mode; auto mode then uses the next mode.
var ErrLiveRefused = errors.New("live frames refused by the kernel")

// neededCaps are the capabilities a run may use: loading BPF programs and
// maps (CAP_BPF, or CAP_SYS_ADMIN), packet pointer arithmetic in them
// (CAP_PERFMON, or CAP_SYS_ADMIN), attaching XDP and AF_XDP sockets
// (CAP_NET_ADMIN), raw sockets (CAP_NET_RAW).
var neededCaps = []struct {
	name      string
	bit, alt  int // alt: a capability that also grants it, or -1
	altSuffix string
}{
	{"CAP_BPF", unix.CAP_BPF, unix.CAP_SYS_ADMIN, " (or CAP_SYS_ADMIN)"},
	{"CAP_PERFMON", unix.CAP_PERFMON, unix.CAP_SYS_ADMIN, " (or CAP_SYS_ADMIN)"},
	{"CAP_NET_ADMIN", unix.CAP_NET_ADMIN, -1, ""},
	{"CAP_NET_RAW", unix.CAP_NET_RAW, -1, ""},
}

// MissingCaps reads the process's effective capabilities and returns the
// names of those it needs but lacks (nil when it has them all, or when
// they cannot be read: then the kernel's answer decides).
func MissingCaps() []string {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return nil
	}
	has := func(bit int) bool {
		return bit >= 0 && bit < 64 && data[bit/32].Effective&(1<<(uint(bit)%32)) != 0
	}
	var missing []string
	for _, c := range neededCaps {
		if !has(c.bit) && !has(c.alt) {
			missing = append(missing, c.name+c.altSuffix)
		}
	}
	return missing
}

// PermissionError says what the process lacks: "needs root" only when it
// is not root, the missing capabilities always.
func PermissionError(missing []string) error {
	who := "xvs-pktgen needs root"
	if os.Geteuid() == 0 {
		who = "xvs-pktgen runs as root but"
	} else {
		who += " or"
	}
	return fmt.Errorf("%w: %s lacks %s", ErrPermission, who, strings.Join(missing, ", "))
}

// wrapPerm explains an EPERM or EACCES from the kernel: a missing
// capability is the user's to grant; with every capability present it is
// the kernel's policy, named as such.
func wrapPerm(err error) error {
	if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EACCES) {
		return err
	}
	if missing := MissingCaps(); len(missing) > 0 {
		return fmt.Errorf("%w: %w", PermissionError(missing), err)
	}
	return fmt.Errorf("%w (%s) with every capability xvs-pktgen needs: %w", ErrRefused, errnoName(err), err)
}

// errnoName is the symbolic name of the errno in err ("EPERM"), or "".
func errnoName(err error) string {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		if errors.Is(err, ebpf.ErrNotSupported) {
			return "not supported"
		}
		return "error"
	}
	return unix.ErrnoName(errno)
}

// ProbeLive asks the kernel once whether it runs an XDP program in
// live-frames mode (BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES) on a
// frame from the device with index ifindex, in the calling thread's
// network namespace. The program drops the frame, so nothing is sent.
//
// It returns nil when the kernel does; an error wrapping ErrPermission
// when the process lacks a capability; one wrapping ErrLiveRefused and
// ErrUnsupported when the kernel refuses although the process has them
// all (seen: EPERM for root on some kernels, while the same call without
// the flag works), or has no live frames (EINVAL before Linux 5.18). The
// error's text names the kernel's errno, for example
// "live frames refused by the kernel (EPERM)".
func ProbeLive(ifindex int) error {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "xvspg_probe",
		Type:         ebpf.XDP,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, xdpDrop), asm.Return()},
	})
	if err != nil {
		return fmt.Errorf("live: load probe program: %w", wrapPerm(err))
	}
	defer prog.Close()
	data := make([]byte, 64)
	ctx := xdpMD{DataEnd: uint32(len(data)), IngressIfindex: uint32(ifindex)}
	_, err = prog.Run(&ebpf.RunOptions{
		Data:    data,
		Context: &ctx,
		Repeat:  1,
		Flags:   unix.BPF_F_TEST_XDP_LIVE_FRAMES,
	})
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		if missing := MissingCaps(); len(missing) > 0 {
			return fmt.Errorf("live: %w: %w", PermissionError(missing), err)
		}
	}
	return &liveRefusedError{reason: errnoName(err), err: err}
}

// liveRefusedError is ProbeLive's answer when the kernel refuses live
// frames; its text is what a user reads: "live frames refused by the
// kernel (EPERM)".
type liveRefusedError struct {
	reason string // the errno's name
	err    error
}

func (e *liveRefusedError) Error() string { return fmt.Sprintf("%v (%s)", ErrLiveRefused, e.reason) }
func (e *liveRefusedError) Unwrap() []error {
	return []error{ErrLiveRefused, ErrUnsupported, e.err}
}
