package main

import (
	"fmt"
	"io"

	"github.com/xvswitch/xvs/cmd/xvs-pktgen/internal/gen"
)

// verbRun is what every verb starts with: where its errors and its progress
// go, once it is known to have the capabilities it needs.
type verbRun struct {
	verb     string
	stderr   io.Writer
	progress io.Writer // stdout; stderr with --json (stdout is the summary); nowhere with --quiet
}

// startRun checks the process's capabilities for verb and chooses where
// progress goes; nil and the exit code when it cannot run.
func startRun(verb string, quiet, jsonOut bool, stdout, stderr io.Writer) (*verbRun, int) {
	r := &verbRun{verb: verb, stderr: stderr, progress: stdout}
	switch {
	case quiet:
		r.progress = io.Discard
	case jsonOut:
		r.progress = stderr
	}
	if missing := gen.MissingCaps(); len(missing) > 0 {
		return nil, r.fail(gen.PermissionError(missing))
	}
	return r, 0
}

// fail reports err as the verb's and returns the exit code for it.
func (r *verbRun) fail(err error) int {
	fmt.Fprintf(r.stderr, "xvs-pktgen %s: %v\n", r.verb, err)
	return exitError
}
