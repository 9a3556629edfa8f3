// Package exttest builds extension binaries for tests and benchmarks that
// run real extension processes.
package exttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	mu   sync.Mutex
	dir  string
	bins = map[string]string{}
)

// Build compiles the main package pkg (a path below the module root, such
// as "extensions/examples/aclfilter") once per process and returns the
// binary's path. It skips the test when the go command is missing.
func Build(tb testing.TB, pkg string) string {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	if p, ok := bins[pkg]; ok {
		return p
	}
	if _, err := exec.LookPath("go"); err != nil {
		tb.Skip("building extensions needs the go command")
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "xvs-extensions-")
		if err != nil {
			tb.Fatal(err)
		}
		dir = d
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, "github.com/xvswitch/xvs/"+pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
	bins[pkg] = out
	return out
}

// Cleanup removes the binaries; call it from TestMain after m.Run.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
		dir = ""
		bins = map[string]string{}
	}
}
