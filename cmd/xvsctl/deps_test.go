package main

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestLinksNoDataPlane keeps xvsctl a thin client: it speaks JSON to xvsd
// through package api, so it must not link the switch, its ports, its
// frame memory or the extension host (and with it go-plugin and gRPC).
// Needing one of them from xvsctl means a type belongs in package api.
func TestLinksNoDataPlane(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH: cannot list xvsctl's dependencies")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list -deps: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list -deps: %v", err)
	}
	const module = "github.com/xvswitch/xvs/"
	forbidden := []string{"vswitch", "ports", "ring", "extensions"}
	var bad []string
	for _, pkg := range strings.Fields(string(out)) {
		if strings.Contains(pkg, "go-plugin") || strings.Contains(pkg, "grpc") {
			bad = append(bad, pkg)
			continue
		}
		rel, ok := strings.CutPrefix(pkg, module)
		if !ok {
			continue
		}
		for _, f := range forbidden {
			if rel == f || strings.HasPrefix(rel, f+"/") {
				bad = append(bad, pkg)
			}
		}
	}
	if len(bad) > 0 {
		t.Errorf("xvsctl links data plane packages:\n  %s", strings.Join(bad, "\n  "))
	}
}
