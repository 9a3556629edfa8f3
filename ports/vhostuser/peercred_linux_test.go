package vhostuser

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xvswitch/xvs/internal/testutil"
)

// foreignListener starts, as user nobody (65534), a process that listens
// on a vhost-user socket path and accepts whatever connects: someone else
// who got to the path first. It returns the path.
func foreignListener(t *testing.T) string {
	t.Helper()
	testutil.NeedRoot(t, "runs a listener as another user")
	testutil.NeedCommands(t, "/usr/bin/python3") // not a shim under /root: nobody runs it
	dir, err := os.MkdirTemp("", "xvs-peercred-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "vm.sock")
	cmd := exec.Command("/usr/bin/python3", "-c", `
import socket, sys, threading
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen(16)
def serve():
    while True:
        c, _ = s.accept()
        c.close()
threading.Thread(target=serve, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
`, path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("listener as nobody: %q, %v", line, err)
	}
	return path
}

// TestPortClientRefusesForeignListener: a client-mode port does not talk to
// a listener of a user it does not allow (it would hand that user the VM's
// traffic): it closes the connection at once, counts it, keeps trying; a
// port that allows that user connects.
func TestPortClientRefusesForeignListener(t *testing.T) {
	path := foreignListener(t)
	p, err := New(Config{Socket: path})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	testutil.Eventually(t, 5*time.Second, func() bool { return p.ControlStats().PeerRefused >= 2 },
		"a listener of uid 65534 was not refused twice (stats %+v)", p.ControlStats())
	if st := p.ControlStats(); st.Connects != 0 {
		t.Fatalf("the port served a connection to a foreign listener: %+v", st)
	}
	p.Close()

	q, err := New(Config{Socket: path, AllowedUIDs: []uint32{65534}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	testutil.Eventually(t, 5*time.Second, func() bool { return q.ControlStats().Connects >= 1 },
		"a port allowing uid 65534 did not connect (stats %+v)", q.ControlStats())
	if st := q.ControlStats(); st.PeerRefused != 0 {
		t.Fatalf("an allowed listener was refused: %+v", st)
	}
}
