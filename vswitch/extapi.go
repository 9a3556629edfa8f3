package vswitch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	ctlapi "github.com/xvswitch/xvs/api"
	"github.com/xvswitch/xvs/extensions/api"

	"github.com/xvswitch/xvs/extensions"
)

// Sentinel errors of the extension control plane.
var (
	ErrNoSuchExtension = errors.New("no such extension")
	ErrExtensionExists = errors.New("extension already loaded")
	ErrTwoForwarders   = errors.New("a forwarding extension is already loaded (at most one per switch)")
	ErrBadOrder        = errors.New("order must name every loaded extension exactly once")
)

// ExtensionInfo describes one loaded extension; it is the control API's
// type.
type ExtensionInfo = ctlapi.ExtensionInfo

// LoadExtension starts an extension process and inserts it in the chain at
// position (0-based; -1 or past the end: last). The process has started and
// answered by the time it returns; an error means it did not.
func (s *Switch) LoadExtension(cfg extensions.Config, position int) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.findExtLocked(cfg.Name) >= 0 {
		s.mu.Unlock()
		return fmt.Errorf("load extension %s: %w", cfg.Name, ErrExtensionExists)
	}
	s.mu.Unlock()
	ext, err := extensions.Start(cfg, extensions.Options{
		Workers: len(s.workers), Logger: s.log, Quiesce: s.quiesce, Ports: s.extPorts,
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fail := func(err error) error {
		s.mu.Unlock()
		ext.Close()
		s.mu.Lock()
		return err
	}
	if s.closed {
		return fail(ErrClosed)
	}
	if s.findExtLocked(cfg.Name) >= 0 {
		return fail(fmt.Errorf("load extension %s: %w", cfg.Name, ErrExtensionExists))
	}
	if ext.Kind() == api.KindForward {
		for _, o := range s.exts {
			if o.ext().Kind() == api.KindForward {
				return fail(fmt.Errorf("load extension %s: %w: %s", cfg.Name, ErrTwoForwarders, o.ext().Name()))
			}
		}
	}
	st := &extState{link: extensions.NewLink(ext, len(s.workers)), enabled: !cfg.Disabled}
	if position < 0 || position > len(s.exts) {
		position = len(s.exts)
	}
	s.exts = slices.Insert(s.exts, position, st)
	s.publishLocked()
	s.log.Info().Str("extension", cfg.Name).Str("kind", ext.Kind().String()).Int("position", position).
		Bool("enabled", st.enabled).Msg("extension loaded")
	return nil
}

func (s *Switch) findExtLocked(name string) int {
	for i, st := range s.exts {
		if st.ext().Name() == name {
			return i
		}
	}
	return -1
}

// UnloadExtension takes an extension out of the chain and stops its
// process. Frames waiting for its verdict go on as if it were absent.
func (s *Switch) UnloadExtension(name string) error {
	s.mu.Lock()
	i := s.findExtLocked(name)
	if i < 0 {
		s.mu.Unlock()
		return fmt.Errorf("unload extension %s: %w", name, ErrNoSuchExtension)
	}
	st := s.exts[i]
	s.exts = slices.Delete(s.exts, i, i+1)
	s.publishLocked()
	s.waitQuiescentLocked()
	s.mu.Unlock()
	err := st.ext().Close()
	s.log.Info().Str("extension", name).Msg("extension unloaded")
	return err
}

// SetExtensionEnabled puts a loaded extension in or out of the data path;
// its process keeps running.
func (s *Switch) SetExtensionEnabled(name string, enabled bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.findExtLocked(name)
	if i < 0 {
		return fmt.Errorf("extension %s: %w", name, ErrNoSuchExtension)
	}
	if s.exts[i].enabled != enabled {
		s.exts[i].enabled = enabled
		s.publishLocked()
		s.log.Info().Str("extension", name).Bool("enabled", enabled).Msg("extension enabled changed")
	}
	return nil
}

// OrderExtensions sets the chain order. names must list every loaded
// extension exactly once.
func (s *Switch) OrderExtensions(names []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(names) != len(s.exts) {
		return fmt.Errorf("%w: got %d names, %d extensions are loaded", ErrBadOrder, len(names), len(s.exts))
	}
	out := make([]*extState, 0, len(names))
	seen := map[string]bool{}
	for _, n := range names {
		i := s.findExtLocked(n)
		if i < 0 {
			return fmt.Errorf("%w: %s: %w", ErrBadOrder, n, ErrNoSuchExtension)
		}
		if seen[n] {
			return fmt.Errorf("%w: %s named twice", ErrBadOrder, n)
		}
		seen[n] = true
		out = append(out, s.exts[i])
	}
	s.exts = out
	s.publishLocked()
	s.log.Info().Strs("order", names).Msg("extension order changed")
	return nil
}

// Extensions lists the loaded extensions in chain order.
func (s *Switch) Extensions() []ExtensionInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ExtensionInfo, 0, len(s.exts))
	for i, st := range s.exts {
		out = append(out, st.info(i))
	}
	return out
}

// ExtensionStats describes one extension, with the extension's own
// counters when it is running.
func (s *Switch) ExtensionStats(name string) (ExtensionInfo, error) {
	s.mu.Lock()
	i := s.findExtLocked(name)
	if i < 0 {
		s.mu.Unlock()
		return ExtensionInfo{}, fmt.Errorf("extension %s: %w", name, ErrNoSuchExtension)
	}
	st := s.exts[i]
	info := st.info(i)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if m, err := st.ext().PluginStats(ctx); err == nil {
		info.Plugin = m
	} else if info.LastError == "" {
		info.LastError = err.Error()
	}
	return info, nil
}

func (st *extState) info(pos int) ExtensionInfo {
	e := st.ext()
	cfg := e.Config()
	return ExtensionInfo{
		Name: cfg.Name, Path: cfg.Path, Kind: e.Kind().String(), Position: pos, Enabled: st.enabled,
		State: e.State().String(), Fail: e.FailMode().String(), Directions: cfg.Directions.String(),
		VSIDs: cfg.VSIDs, Ports: cfg.Ports, EveryFrame: e.EveryFrame(), PID: e.PID(),
		Restarts: e.Restarts(), LastError: e.LastError(), Counters: e.Counters.Map(),
	}
}

// extState is a loaded extension as the control plane keeps it.
type extState struct {
	link    *extensions.Link
	enabled bool
}

func (st *extState) ext() *extensions.Extension { return st.link.Extension() }

// chainLocked lists the enabled extensions' links in chain order.
func (s *Switch) chainLocked() []*extensions.Link {
	var links []*extensions.Link
	for _, st := range s.exts {
		if st.enabled {
			links = append(links, st.link)
		}
	}
	return links
}

// quiesce returns once every running worker has started a new round.
// Unlike waitQuiescentLocked it takes no lock: extension supervisors call
// it.
func (s *Switch) quiesce() {
	seen := make([]uint64, len(s.workers))
	for i, w := range s.workers {
		seen[i] = w.epoch.Load()
	}
	deadline := time.Now().Add(5 * time.Second)
	for i, w := range s.workers {
		for w.epoch.Load() == seen[i] && !w.stopped.Load() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Microsecond)
		}
	}
}

// extPorts is the port table extensions are told of, from the current
// snapshot (no lock: supervisors call it).
func (s *Switch) extPorts() []extensions.Port {
	snap := s.snap.Load()
	var out []extensions.Port
	for _, v := range snap.views {
		if v == nil {
			continue
		}
		p := extensions.Port{Index: v.st.idx, Name: v.st.name, VSID: VSIDUnassigned}
		if v.dom != nil {
			p.VSID = v.dom.vsid
		}
		out = append(out, p)
	}
	return out
}

// closeExtensions stops every extension (the switch is closing).
func (s *Switch) closeExtensions() {
	s.mu.Lock()
	exts := s.exts
	s.exts = nil
	s.publishLocked()
	s.mu.Unlock()
	for _, st := range exts {
		st.ext().Close()
	}
}
