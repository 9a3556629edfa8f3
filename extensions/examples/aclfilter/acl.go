package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/xvswitch/xvs/extensions/sdk"
)

// host is the part of *sdk.Host the filter uses; tests pass a fake.
type host interface {
	Config() map[string]string
	Invalidate()
}

// logger is the part of hclog.Logger the filter uses.
type logger interface {
	Info(msg string, args ...any)
	Error(msg string, args ...any)
}

// Config keys.
const keyRules = "rules"

// maxRulesBytes bounds the rules file read into memory.
const maxRulesBytes = 16 << 20

// pollInterval is how often the rules file is checked for a change. A
// change is read once the file has looked the same for one interval, so a
// file written in place (truncated, then written) is not read half-written.
const pollInterval = 500 * time.Millisecond

// Verdicts that the switch must not cache.
var (
	// dropMalformed is the verdict for a frame whose IP headers do not
	// hold together: the switch's flow key (which reads what is there)
	// may put it in a flow whose well-formed frames deserve their own
	// verdict.
	dropMalformed = sdk.Verdict{Action: sdk.ActionDrop, NoCache: true}
	// For 802.1Q-tagged frames: the switch keys them by MAC addresses
	// only (its flow key does not look behind the tag), so a verdict
	// decided on their IP header must not stand for the whole key.
	passOnce = sdk.Verdict{Action: sdk.ActionPass, NoCache: true}
	dropOnce = sdk.Verdict{Action: sdk.ActionDrop, NoCache: true}
)

// ACL is the filter. Its zero value is ready for Start; Filter and Stats
// may be called from several goroutines at once.
type ACL struct {
	rules atomic.Pointer[ruleset]

	allowed      atomic.Uint64
	denied       atomic.Uint64
	malformed    atomic.Uint64
	reloads      atomic.Uint64
	reloadErrors atomic.Uint64

	// interval overrides pollInterval (tests).
	interval time.Duration

	// Set by start, then owned by the watch goroutine.
	path string
	host host
	log  logger
	last os.FileInfo // the rules file as last read

	// Owned by the watch goroutine.
	settling    os.FileInfo // a change seen at the last poll, not yet read
	statFailing bool        // the last poll could not stat the file

	started  bool
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
	hup      chan os.Signal
}

var (
	_ sdk.Extension = (*ACL)(nil)
	_ sdk.Filter    = (*ACL)(nil)
	_ sdk.Stopper   = (*ACL)(nil)
	_ sdk.Stater    = (*ACL)(nil)
)

// Info describes the filter. Verdicts are per flow: the switch caches them.
func (a *ACL) Info() sdk.Info {
	return sdk.Info{
		Name:        "aclfilter",
		Description: "allow or deny frames by VSID, direction and 5-tuple (rules reloaded on change)",
	}
}

// start reads the configuration and the rules, and starts watching the
// rules file. It fails, and the extension with it, if the rules do not
// load: a filter must not run without its rules.
func (a *ACL) start(h host, log logger) error {
	if a.started {
		return errors.New("start: already started")
	}
	cfg := h.Config()
	for k := range cfg {
		if k != keyRules {
			return fmt.Errorf("config key %q: unknown: want %s", k, keyRules)
		}
	}
	path := cfg[keyRules]
	if path == "" {
		return fmt.Errorf("config %s: missing: want the path of the YAML rules file", keyRules)
	}
	rs, fi, err := loadRules(path)
	if err != nil {
		return err
	}
	a.rules.Store(rs)
	a.path, a.host, a.log, a.last = path, h, log, fi
	if a.interval <= 0 {
		a.interval = pollInterval
	}
	a.started = true
	a.stop = make(chan struct{})
	a.done = make(chan struct{})
	a.hup = make(chan os.Signal, 1)
	signal.Notify(a.hup, syscall.SIGHUP)
	go a.watch()
	log.Info("rules loaded", "path", path, "rules", len(rs.rules), "default", actionName(rs.defaultAllow))
	return nil
}

// Stop stops watching the rules file. It is safe to call twice, and
// before Start.
func (a *ACL) Stop() {
	if !a.started {
		return
	}
	a.stopOnce.Do(func() {
		signal.Stop(a.hup)
		close(a.stop)
		<-a.done
	})
}

// Filter passes or drops one frame by the first rule that matches its
// flow. frame is only read, and not kept.
func (a *ACL) Filter(m *sdk.Meta, frame []byte) sdk.Verdict {
	f, err := parseFrame(frame)
	if err != nil {
		a.malformed.Add(1)
		return dropMalformed
	}
	rs := a.rules.Load()
	if rs == nil { // not started: fail closed
		a.denied.Add(1)
		return sdk.Drop
	}
	allow := rs.decide(m.VSID, m.Dir, &f)
	switch {
	case allow && f.tagged:
		a.allowed.Add(1)
		return passOnce
	case allow:
		a.allowed.Add(1)
		return sdk.Pass
	case f.tagged:
		a.denied.Add(1)
		return dropOnce
	}
	a.denied.Add(1)
	return sdk.Drop
}

// Stats returns the filter's counters. rule-N counts the frames decided by
// rule N of the rules now loaded (numbered from 1; they restart at zero
// when the rules are reloaded), default those no rule matched.
func (a *ACL) Stats() map[string]uint64 {
	s := map[string]uint64{
		"allowed":       a.allowed.Load(),
		"denied":        a.denied.Load(),
		"malformed":     a.malformed.Load(),
		"reloads":       a.reloads.Load(),
		"reload-errors": a.reloadErrors.Load(),
	}
	if rs := a.rules.Load(); rs != nil {
		for i := range rs.hits {
			s["rule-"+strconv.Itoa(i+1)] = rs.hits[i].Load()
		}
		s["default"] = rs.defaultHits.Load()
	}
	return s
}

// watch reloads the rules when the file changes (size, modification time
// or the file itself, as after a rename over it) and on SIGHUP.
func (a *ACL) watch() {
	defer close(a.done)
	t := time.NewTicker(a.interval)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-a.hup:
			a.reload("SIGHUP")
		case <-t.C:
			a.poll()
		}
	}
}

// poll looks at the rules file once and reloads it if it changed and has
// stayed as it is since the previous poll.
func (a *ACL) poll() {
	fi, err := os.Stat(a.path)
	if err != nil {
		if !a.statFailing { // log once, not every poll
			a.reloadErrors.Add(1)
			a.log.Error("rules file unreadable, keeping the loaded rules", "path", a.path, "error", err)
		}
		a.statFailing, a.settling = true, nil
		return
	}
	a.statFailing = false
	if sameFile(a.last, fi) {
		a.settling = nil
		return
	}
	if !sameFile(a.settling, fi) {
		// Changed since the last poll: a writer may still be at it
		// (os.WriteFile truncates before it writes).
		a.settling = fi
		return
	}
	a.settling = nil
	a.reload("file changed")
}

// reload reads the rules file again. On success it swaps the rules and
// tells the switch to forget its cached verdicts; on failure it keeps the
// rules it has and logs why. The file is not retried until it changes.
func (a *ACL) reload(reason string) {
	rs, fi, err := loadRules(a.path)
	if fi != nil {
		a.last = fi
	}
	if err != nil {
		a.reloadErrors.Add(1)
		a.log.Error("rules not reloaded, keeping the previous rules", "reason", reason, "error", err)
		return
	}
	a.rules.Store(rs)
	a.reloads.Add(1)
	a.host.Invalidate()
	a.log.Info("rules reloaded", "reason", reason, "path", a.path, "rules", len(rs.rules), "default", actionName(rs.defaultAllow))
}

// loadRules reads and compiles the rules file. The FileInfo, when not nil,
// is that of the file read, even if its rules were refused.
func loadRules(path string) (*ruleset, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("load rules: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("load rules: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxRulesBytes+1))
	if err != nil {
		return nil, fi, fmt.Errorf("load rules %s: %w", path, err)
	}
	if len(data) > maxRulesBytes {
		return nil, fi, fmt.Errorf("load rules %s: larger than %d bytes", path, maxRulesBytes)
	}
	rs, err := parseRules(data)
	if err != nil {
		return nil, fi, fmt.Errorf("load rules %s: %w", path, err)
	}
	return rs, fi, nil
}

// sameFile reports whether b is the file a was, unchanged.
func sameFile(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) &&
		a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

func actionName(allow bool) string {
	if allow {
		return "allow"
	}
	return "deny"
}
