package vhostuser

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/xvswitch/xvs/internal/testutil"
)

// watchEnv, set to a path, makes the test binary a socket watcher (see
// watchSocket) rather than run the tests.
const watchEnv = "XVS_VHOSTUSER_WATCH_SOCKET"

func TestMain(m *testing.M) {
	if path := os.Getenv(watchEnv); path != "" {
		os.Exit(watchSocket(path))
	}
	os.Exit(m.Run())
}

// watchSocket is the watcher process: it says "ready", looks at path with
// lstat in a tight loop until its stdin closes, and then prints each mode
// a socket there had, in octal, and how many times it was seen with it.
func watchSocket(path string) int {
	var stop atomic.Bool
	go func() {
		io.Copy(io.Discard, os.Stdin)
		stop.Store(true)
	}()
	var modes [0o1000]int
	var st unix.Stat_t
	fmt.Println("ready")
	for !stop.Load() {
		if unix.Lstat(path, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFSOCK {
			modes[st.Mode&0o777]++
		}
	}
	for m, n := range modes {
		if n > 0 {
			fmt.Printf("%o %d\n", m, n)
		}
	}
	return 0
}

// watchSocketMode starts a watcher on path and returns the function that
// stops it (or the test's end does), which returns how many times a socket was seen there, and
// the modes other than want it was seen with (and how many times). The
// watcher is another process, as a front-end is: a goroutine here would
// share the runtime's scheduler with the port's goroutines, which may run
// all of a short window of theirs while it waits for its turn.
func watchSocketMode(t *testing.T, path string, want os.FileMode) func() (seen int, bad map[os.FileMode]int) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), watchEnv+"="+path)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(out)
	if line, err := r.ReadString('\n'); line != "ready\n" {
		in.Close()
		cmd.Wait()
		t.Fatalf("socket watcher: %q, %v", line, err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			in.Close()
			cmd.Wait()
		}
	})
	return func() (int, map[os.FileMode]int) {
		t.Helper()
		stopped = true
		in.Close()
		b, rerr := io.ReadAll(r)
		if err := cmd.Wait(); err != nil || rerr != nil {
			t.Fatalf("socket watcher: %v, %v: %s", err, rerr, b)
		}
		seen, bad := 0, map[os.FileMode]int{}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var m os.FileMode
			var n int
			if line == "" {
				continue
			}
			if _, err := fmt.Sscanf(line, "%o %d", &m, &n); err != nil {
				t.Fatalf("socket watcher: %q: %v", line, err)
			}
			seen += n
			if m != want {
				bad[m] += n
			}
		}
		return seen, bad
	}
}

// socketModeWant is a SocketMode that bind alone does not give (bind
// gives 0777 less the umask), so that a socket file seen before its mode
// is set shows.
func socketModeWant(t *testing.T) os.FileMode {
	t.Helper()
	path := filepath.Join(t.TempDir(), "probe.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() == 0o660 {
		return 0o600
	}
	return 0o660
}

// checkOnlyFiles fails unless dir holds exactly names (sorted): no
// temporary socket is left behind.
func checkOnlyFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, "/") != strings.Join(names, "/") {
		t.Errorf("files in %s: %q, want %q", dir, got, names)
	}
}

// checkModes fails if the watcher saw the socket with a mode other than
// want, or never saw it (then it proves nothing).
func checkModes(t *testing.T, want os.FileMode, seen int, bad map[os.FileMode]int) {
	t.Helper()
	if len(bad) != 0 {
		t.Errorf("socket seen with modes (and times) %v; want only %v", bad, want)
	}
	if seen == 0 {
		t.Errorf("the watcher never saw the socket")
	}
}

// The socket file New creates is never seen with a mode other than
// Config.SocketMode, not even for an instant: a front-end (or a user the
// mode keeps out) must not find a socket whose mode is not set yet.
func TestPortSocketModeAtNew(t *testing.T) {
	testutil.CheckLeaks(t)
	want := socketModeWant(t)
	path := feSocket(t)
	stop := watchSocketMode(t, path, want)
	for i := 0; i < 500; i++ {
		p, err := New(Config{Socket: path, Server: true, SocketMode: want})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	}
	seen, bad := stop()
	checkModes(t, want, seen, bad)
	checkOnlyFiles(t, filepath.Dir(path))
}

// Likewise for the socket file a server port creates again when it is
// removed while the port runs. Close then removes the last one.
func TestPortSocketModeRecreated(t *testing.T) {
	testutil.CheckLeaks(t)
	want := socketModeWant(t)
	p := feServer(t, Config{SocketMode: want})
	path := p.Socket()
	stop := watchSocketMode(t, path, want)
	const rounds = 10
	for i := 1; i <= rounds; i++ {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, feTimeout, func() bool {
			_, err := os.Lstat(path)
			return err == nil && p.ControlStats().SocketRecreated == uint64(i)
		}, "the socket to be created again")
	}
	seen, bad := stop()
	checkModes(t, want, seen, bad)
	checkOnlyFiles(t, filepath.Dir(path), filepath.Base(path))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	checkOnlyFiles(t, filepath.Dir(path))
}

// A socket path as long as sun_path allows, whose directory leaves room
// for a one-byte name only, still gets a temporary name beside it.
func TestPortSocketLongPath(t *testing.T) {
	dir := t.TempDir()
	for len(dir) < maxSocketLen-2-len("/d") {
		dir += "/d"
	}
	dir += strings.Repeat("x", maxSocketLen-2-len(dir))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := dir + "/s"
	if len(path) != maxSocketLen {
		t.Fatalf("path of %d bytes, want %d", len(path), maxSocketLen)
	}
	want := socketModeWant(t)
	for i := 0; i < 20; i++ {
		p, err := New(Config{Socket: path, Server: true, SocketMode: want})
		if err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Lstat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("socket %v, %v; want mode %v", fi, err, want)
		}
		checkOnlyFiles(t, dir, "s")
		p.Close()
		checkOnlyFiles(t, dir)
	}
}

// The temporary socket has mode 0 until listen sets it: nobody but root
// connects through it meanwhile.
func TestListenTempMode(t *testing.T) {
	path := feSocket(t)
	l, tmp, err := listenTemp(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if filepath.Dir(tmp) != filepath.Dir(path) || tmp == path || !strings.HasPrefix(filepath.Base(tmp), ".xvs-") {
		t.Errorf("temporary socket %s for %s", tmp, path)
	}
	fi, err := os.Lstat(tmp)
	if err != nil || fi.Mode() != os.ModeSocket {
		t.Errorf("temporary socket %v, %v; want mode %v", fi, err, os.ModeSocket)
	}
}

// Both ways of renaming move the file (the same inode) and neither
// replaces a file already at the new name.
func TestRenameNoReplace(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rename func(oldpath, newpath string) error
	}{
		{"renameat2", renameNoReplace},
		{"link", linkUnlink},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
			os.WriteFile(a, []byte("a"), 0o600)
			id, err := lstatID(a)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.rename(a, b); err != nil {
				t.Fatal(err)
			}
			if got, err := lstatID(b); err != nil || got != id {
				t.Errorf("after the rename: %v, %v; want %v", got, err, id)
			}
			checkOnlyFiles(t, dir, "b")

			os.WriteFile(a, []byte("new"), 0o600)
			if err := tc.rename(a, b); !errors.Is(err, os.ErrExist) {
				t.Errorf("rename onto a file: %v, want one matching os.ErrExist", err)
			}
			if got, _ := os.ReadFile(b); string(got) != "a" {
				t.Errorf("the file at the new name was replaced: %q", got)
			}
		})
	}
}
