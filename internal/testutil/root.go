package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// IsRoot reports whether the process runs as root (effective UID 0).
func IsRoot() bool { return os.Geteuid() == 0 }

// NeedRoot skips t unless the process runs as root. why says what the
// test needs root for; it is part of the skip message, e.g.
// NeedRoot(t, "creates network namespaces and veth pairs").
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if !IsRoot() {
		t.Skipf("skipping: needs root: %s", why)
	}
}

// packages names the Debian package of the commands tests run, for the
// skip message.
var packages = map[string]string{
	"ip":                 "iproute2",
	"tc":                 "iproute2",
	"ping":               "iputils-ping",
	"arping":             "iputils-arping",
	"ethtool":            "ethtool",
	"tshark":             "tshark",
	"iperf3":             "iperf3",
	"qemu-system-x86_64": "qemu-system-x86",
}

// NeedCommands skips t unless every command is found in PATH.
func NeedCommands(t testing.TB, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			if pkg, ok := packages[c]; ok {
				t.Skipf("skipping: needs the %s command (apt-get install %s)", c, pkg)
			}
			t.Skipf("skipping: needs the %s command, not found in PATH", c)
		}
	}
}
