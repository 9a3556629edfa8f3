package main

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/xvswitch/xvs/extensions/api"
	"github.com/xvswitch/xvs/extensions/examples/internal/logtest"
	"github.com/xvswitch/xvs/extensions/sdk"
	"github.com/xvswitch/xvs/internal/testutil"
)

// fakeHost stands in for *sdk.Host.
type fakeHost struct {
	config      map[string]string
	invalidated atomic.Int32
}

func (h *fakeHost) Config() map[string]string { return h.config }
func (h *fakeHost) Invalidate()               { h.invalidated.Add(1) }

// writeRules writes a rules file and gives it a modification time of its
// own, so that a change is seen even on file systems with coarse times. It
// renames a complete file into place, as editors do: the watcher never sees
// it half-written (TestPollWaitsForWriter covers writes in place).
var mtime = time.Now().Add(-time.Hour)

func writeRules(t *testing.T, path, doc string) {
	t.Helper()
	tmp := path + ".tmp"
	writeInPlace(t, tmp, doc)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// writeInPlace truncates and writes path, as os.WriteFile and shells do.
func writeInPlace(t *testing.T, path, doc string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	mtime = mtime.Add(time.Second)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// startACL starts a filter on a rules file with doc, polled every 5 ms.
func startACL(t *testing.T, doc string) (*ACL, *fakeHost, *logtest.Log, string) {
	t.Helper()
	return startACLPolling(t, doc, 5*time.Millisecond)
}

func startACLPolling(t *testing.T, doc string, interval time.Duration) (*ACL, *fakeHost, *logtest.Log, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "acl.yaml")
	writeRules(t, path, doc)
	a := &ACL{interval: interval}
	h := &fakeHost{config: map[string]string{"rules": path}}
	l := &logtest.Log{}
	if err := a.start(h, l); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	return a, h, l, path
}

func TestStartConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	writeRules(t, bad, "rules:\n  - action: deny\n    dport: 99999\n")
	tests := []struct {
		name   string
		config map[string]string
		want   []string
	}{
		{"no rules key", map[string]string{}, []string{"config rules: missing"}},
		{"empty rules", map[string]string{"rules": ""}, []string{"config rules: missing"}},
		{"unknown key", map[string]string{"rules": bad, "rule": "x"}, []string{`config key "rule": unknown`}},
		{"no such file", map[string]string{"rules": filepath.Join(dir, "nope.yaml")}, []string{"load rules", "nope.yaml", "no such file"}},
		{"invalid file", map[string]string{"rules": bad}, []string{"load rules", "bad.yaml", "rule 1: line 3", `dport "99999"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testutil.CheckGoroutines(t)
			a := &ACL{}
			err := a.start(&fakeHost{config: tt.config}, &logtest.Log{})
			if err == nil {
				a.Stop()
				t.Fatal("start succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			a.Stop() // harmless after a failed start
		})
	}
}

func TestFilter(t *testing.T) {
	a, _, _, _ := startACL(t, `
default: allow
rules:
  - action: deny
    protocol: tcp
    dport: 22
  - action: allow
    protocol: tcp
`)
	ssh := tcp4(t, "10.0.0.1", "10.0.0.2", 40000, 22)
	web := tcp4(t, "10.0.0.1", "10.0.0.2", 40000, 80)
	tooShort := mutate(ssh, func(b []byte) []byte {
		b[16], b[17] = 0, 22 // total length 22: two bytes of TCP
		return b[:14+22]
	})
	tests := []struct {
		name  string
		frame []byte
		want  sdk.Verdict
	}{
		{"denied by rule 1", ssh, sdk.Drop},
		{"allowed by rule 2", web, sdk.Pass},
		{"allowed by default", arp(t), sdk.Pass},
		{"tagged and denied: not cached", vlanTagged(ssh), sdk.Verdict{Action: sdk.ActionDrop, NoCache: true}},
		{"tagged and allowed: not cached", vlanTagged(web), sdk.Verdict{Action: sdk.ActionPass, NoCache: true}},
		{"malformed: dropped, not cached", tooShort, sdk.Verdict{Action: sdk.ActionDrop, NoCache: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := a.Filter(&sdk.Meta{VSID: 5001, Dir: api.Ingress, InPort: 1, OutPort: api.NoPort}, tt.frame)
			if got.Action != tt.want.Action || got.NoCache != tt.want.NoCache || got.Frame != nil {
				t.Errorf("verdict %+v, want %+v", got, tt.want)
			}
		})
	}
	want := map[string]uint64{
		"allowed": 3, "denied": 2, "malformed": 1, "reloads": 0, "reload-errors": 0,
		"rule-1": 2, "rule-2": 2, "default": 1,
	}
	got := a.Stats()
	if len(got) != len(want) {
		t.Errorf("stats %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("stats[%q] = %d, want %d", k, got[k], v)
		}
	}
}

func TestFilterAllocs(t *testing.T) {
	a, _, _, _ := startACL(t, "rules: [{action: deny, src: 10.9.0.0/16}, {action: deny, dst: 'fd00::/8', dport: 22}]")
	frames := [][]byte{tcp4(t, "10.0.0.1", "10.0.0.2", 1, 2), udp6(t, "fd00::1", "fd00::2", 1, 2), arp(t)}
	m := &sdk.Meta{VSID: 5001}
	if n := testing.AllocsPerRun(100, func() {
		for _, f := range frames {
			a.Filter(m, f)
		}
	}); n != 0 {
		t.Errorf("Filter allocates %v times per run, want 0", n)
	}
}

func TestFilterBeforeStartDrops(t *testing.T) {
	var a ACL
	if v := a.Filter(&sdk.Meta{}, tcp4(t, "10.0.0.1", "10.0.0.2", 1, 2)); v.Action != sdk.ActionDrop {
		t.Errorf("verdict %+v before Start, want a drop", v)
	}
	a.Stop()
}

func TestReload(t *testing.T) {
	testutil.CheckGoroutines(t)
	a, h, l, path := startACL(t, "rules: [{action: deny, protocol: tcp, dport: 22}]")
	ssh := tcp4(t, "10.0.0.1", "10.0.0.2", 40000, 22)
	web := tcp4(t, "10.0.0.1", "10.0.0.2", 40000, 80)
	m := &sdk.Meta{VSID: 5001}
	verdicts := func() (sshV, webV sdk.Action) {
		return a.Filter(m, ssh).Action, a.Filter(m, web).Action
	}
	if s, w := verdicts(); s != sdk.ActionDrop || w != sdk.ActionPass {
		t.Fatalf("before reload: ssh %v, web %v; want drop, pass", s, w)
	}

	// A valid change: swapped in, and the switch told.
	writeRules(t, path, "rules: [{action: deny, protocol: tcp, dport: 80}]\n")
	testutil.Eventually(t, 5*time.Second, func() bool { return h.invalidated.Load() == 1 }, "the reload")
	if s, w := verdicts(); s != sdk.ActionPass || w != sdk.ActionDrop {
		t.Fatalf("after reload: ssh %v, web %v; want pass, drop", s, w)
	}
	if st := a.Stats(); st["reloads"] != 1 || st["reload-errors"] != 0 || st["rule-1"] != 1 {
		t.Errorf("stats after reload %v: want reloads 1, reload-errors 0, rule-1 1 (counters of the new rules)", st)
	}

	// An invalid change: logged with its line, the rules stay.
	writeRules(t, path, "rules:\n  - action: deny\n    protocol: tcp\n    dport: eighty\n")
	testutil.Eventually(t, 5*time.Second, func() bool { return a.Stats()["reload-errors"] == 1 }, "the reload error")
	if s, w := verdicts(); s != sdk.ActionPass || w != sdk.ActionDrop {
		t.Fatalf("after a bad file: ssh %v, web %v; want the previous rules (pass, drop)", s, w)
	}
	if errs := l.Lines("error: "); len(errs) != 1 || !strings.Contains(errs[0], `rule 1: line 4: dport "eighty"`) {
		t.Errorf("logged errors %q: want one naming rule 1, line 4 and the value", errs)
	}
	// The bad file is not retried (or logged again) until it changes.
	time.Sleep(30 * time.Millisecond)
	if n := a.Stats()["reload-errors"]; n != 1 || len(l.Lines("error: ")) != 1 {
		t.Errorf("reload-errors %d, %d logged errors while the bad file stayed: want 1, 1", n, len(l.Lines("error: ")))
	}

	// Fixed: a new default and rules.
	writeRules(t, path, "default: deny\nrules: [{action: allow, protocol: tcp, dport: 22}]\n")
	testutil.Eventually(t, 5*time.Second, func() bool { return h.invalidated.Load() == 2 }, "the reload of the fixed file")
	if s, w := verdicts(); s != sdk.ActionPass || w != sdk.ActionDrop {
		t.Fatalf("after the fix: ssh %v, web %v; want pass, drop (by default deny)", s, w)
	}

	// Removed: logged once, rules kept.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return a.Stats()["reload-errors"] == 2 }, "the missing file error")
	time.Sleep(30 * time.Millisecond)
	if n := a.Stats()["reload-errors"]; n != 2 {
		t.Errorf("reload-errors %d while the file is missing: want 2 (counted once)", n)
	}
	if s, _ := verdicts(); s != sdk.ActionPass {
		t.Errorf("rules lost when the file went away")
	}
	a.Stop()
	a.Stop()
	if st := a.Stats(); st["reloads"] != 2 {
		t.Errorf("reloads %d, want 2", st["reloads"])
	}
}

// TestPollWaitsForWriter drives the watcher's polls by hand through a file
// written in place: no state it passes through is read until it stays for
// a poll.
func TestPollWaitsForWriter(t *testing.T) {
	testutil.CheckGoroutines(t)
	// The ticker never fires: the test's polls are the only ones.
	a, h, l, path := startACLPolling(t, "rules: [{action: deny, protocol: tcp, dport: 22}]", time.Hour)
	stats := func() (reloads, errs uint64) {
		st := a.Stats()
		return st["reloads"], st["reload-errors"]
	}

	a.poll() // unchanged
	writeInPlace(t, path, "")
	a.poll() // truncated: changed since the last poll
	writeInPlace(t, path, "rules: [{action: deny,")
	a.poll() // half written: changed again
	if r, e := stats(); r != 0 || e != 0 || len(l.Lines("error: ")) != 0 {
		t.Fatalf("reloads %d, reload-errors %d, errors logged %q while the file was being written: want none", r, e, l.Lines("error: "))
	}
	writeInPlace(t, path, "rules: [{action: deny, protocol: tcp, dport: 80}]\n")
	a.poll() // complete, but not yet seen to stay
	if r, _ := stats(); r != 0 {
		t.Fatalf("reloaded on the first poll that saw the change")
	}
	a.poll()
	if r, e := stats(); r != 1 || e != 0 || h.invalidated.Load() != 1 {
		t.Fatalf("reloads %d, reload-errors %d, invalidations %d after the file stayed: want 1, 0, 1", r, e, h.invalidated.Load())
	}
	if v := a.Filter(&sdk.Meta{VSID: 5001}, tcp4(t, "10.0.0.1", "10.0.0.2", 40000, 80)); v.Action != sdk.ActionDrop {
		t.Errorf("port 80 %v after the reload, want drop", v.Action)
	}

	// A bad file that stays is read once, and logged once.
	writeInPlace(t, path, "rules: [{action: deny, dport: eighty}]\n")
	a.poll()
	a.poll()
	a.poll()
	if r, e := stats(); r != 1 || e != 1 || len(l.Lines("error: ")) != 1 {
		t.Errorf("reloads %d, reload-errors %d, errors logged %q for a bad file: want 1, 1, one", r, e, l.Lines("error: "))
	}
}

func TestReloadOnSIGHUP(t *testing.T) {
	testutil.CheckGoroutines(t)
	a, h, _, _ := startACL(t, "rules: [{action: deny, protocol: tcp, dport: 22}]")
	// The file is unchanged: only SIGHUP makes it reload.
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return h.invalidated.Load() == 1 }, "the reload on SIGHUP")
	if n := a.Stats()["reloads"]; n != 1 {
		t.Errorf("reloads %d, want 1", n)
	}
}
