package main

// A kernel that refuses XDP live frames, played on any kernel: with
// XVS_PKTGEN_REFUSE_LIVE=1 the test process (and xvs-pktgen children
// started from it) runs under a seccomp filter that answers every
// bpf(BPF_PROG_TEST_RUN) with EPERM, which is what such kernels answer a
// live-frames run with. "make test" runs the package both ways, so every
// test that does not need live mode is known to pass without it.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/xvswitch/xvs/cmd/xvs-pktgen/internal/gen"
	"github.com/xvswitch/xvs/internal/testutil"
)

const refuseLiveEnv = "XVS_PKTGEN_REFUSE_LIVE"

// refuseLive installs, for every thread of the process and its children,
// a seccomp filter that fails bpf(BPF_PROG_TEST_RUN, ...) with EPERM.
func refuseLive() error {
	arch, ok := map[string]uint32{"amd64": unix.AUDIT_ARCH_X86_64, "arm64": unix.AUDIT_ARCH_AARCH64}[runtime.GOARCH]
	if !ok {
		return fmt.Errorf("refuse live frames: no seccomp arch for %s", runtime.GOARCH)
	}
	const (
		offNr   = 0  // struct seccomp_data: int nr
		offArch = 4  // __u32 arch
		offArg0 = 16 // __u64 args[0], low half first on little-endian
		ldAbsW  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeqK    = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		retK    = unix.BPF_RET | unix.BPF_K
	)
	filter := []unix.SockFilter{
		{Code: ldAbsW, K: offArch},
		{Code: jeqK, Jt: 0, Jf: 5, K: arch},
		{Code: ldAbsW, K: offNr},
		{Code: jeqK, Jt: 0, Jf: 3, K: unix.SYS_BPF},
		{Code: ldAbsW, K: offArg0},
		{Code: jeqK, Jt: 0, Jf: 1, K: unix.BPF_PROG_TEST_RUN},
		{Code: retK, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		{Code: retK, K: unix.SECCOMP_RET_ALLOW},
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	const seccompSetModeFilter = 1
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, seccompSetModeFilter, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog))); errno != 0 {
		return fmt.Errorf("refuse live frames: seccomp: %w", errno)
	}
	return nil
}

func init() {
	if os.Getenv(refuseLiveEnv) != "1" {
		return
	}
	if err := refuseLive(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(exitError)
	}
}

// requireLive skips a test of live mode where the kernel refuses it, with
// the kernel's reason, found by the probe xvs-pktgen itself uses.
func requireLive(t *testing.T) {
	t.Helper()
	testutil.NeedRoot(t, "network namespaces, XDP, BPF")
	const lo = 1
	if err := gen.ProbeLive(lo); err != nil {
		t.Skipf("live mode: %v", err)
	}
}

// TestLiveRefused plays a kernel that refuses live frames: auto mode says
// so in one line and sends with AF_XDP; --mode live fails with the same
// reason and exit 1, and neither says "needs root".
func TestLiveRefused(t *testing.T) {
	tp := newTopo(t)
	env := []string{refuseLiveEnv + "=1"}
	cmd, out, errOut := child(t, "send", "--dev", tp.devA, "--netns", tp.nsA, "--count", "1000", "--json", "--quiet",
		"--sink-dev", tp.devB, "--sink-netns", tp.nsB)
	cmd.Env = append(cmd.Env, env...)
	if err := cmd.Run(); err != nil {
		t.Fatalf("auto: %v: %s", err, errOut)
	}
	const line = "xvs-pktgen send: live frames refused by the kernel (EPERM) - using afxdp\n"
	if errOut.String() != line {
		t.Errorf("auto: stderr %q, want %q", errOut, line)
	}
	s := parseSummary(t, out.String())
	if s.Mode != gen.ModeAFXDP || s.Sent != 1000 || s.Received == nil || *s.Received != 1000 {
		t.Errorf("auto: mode %s sent %d received %v, want afxdp 1000 1000", s.Mode, s.Sent, deref(s.Received))
	}

	cmd, out, errOut = child(t, "send", "--dev", tp.devA, "--netns", tp.nsA, "--count", "1000", "--mode", "live")
	cmd.Env = append(cmd.Env, env...)
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitError {
		t.Fatalf("--mode live: %v, want exit %d", err, exitError)
	}
	if got := errOut.String(); !strings.HasPrefix(got, "xvs-pktgen send: live frames refused by the kernel (EPERM)") || strings.Contains(got, "root") {
		t.Errorf("--mode live: stderr %q, want the kernel's refusal and no word of root", got)
	}
	if out.Len() != 0 {
		t.Errorf("--mode live: stdout %q, want nothing (nothing was sent)", out)
	}
}
