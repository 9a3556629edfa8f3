package extensions

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/xvswitch/xvs/header"
)

// ErrBadConfig is wrapped by every configuration error.
var ErrBadConfig = errors.New("invalid extension configuration")

// FailMode says what the switch does with an extension's frames while the
// extension is failed or restarting.
type FailMode uint8

const (
	// FailDefault is fail-closed for filters (a broken firewall must not
	// let everything through) and fail-open for capture and forwarding.
	FailDefault FailMode = iota
	FailOpen             // skip the extension: frames continue as if it were absent
	FailClosed           // drop the frames it would have seen (extension-failed)
)

func (m FailMode) String() string {
	switch m {
	case FailOpen:
		return "open"
	case FailClosed:
		return "closed"
	}
	return "default"
}

// ParseFailMode parses "open", "closed" or "" (the default for the kind).
func ParseFailMode(s string) (FailMode, error) {
	switch s {
	case "":
		return FailDefault, nil
	case "open":
		return FailOpen, nil
	case "closed":
		return FailClosed, nil
	}
	return 0, fmt.Errorf("%w: fail %q: want open or closed", ErrBadConfig, s)
}

// Directions is which directions an extension sees.
type Directions uint8

const (
	DirIngress Directions = 1 << iota
	DirEgress
	DirBoth = DirIngress | DirEgress
)

func (d Directions) String() string {
	switch d {
	case DirIngress:
		return "ingress"
	case DirEgress:
		return "egress"
	}
	return "both"
}

// ParseDirections parses "ingress", "egress", "both" or "" (both).
func ParseDirections(s string) (Directions, error) {
	switch s {
	case "", "both":
		return DirBoth, nil
	case "ingress":
		return DirIngress, nil
	case "egress":
		return DirEgress, nil
	}
	return 0, fmt.Errorf("%w: direction %q: want ingress, egress or both", ErrBadConfig, s)
}

// Config is one extension as the switch configuration describes it.
type Config struct {
	Name string   // unique in the switch: [a-zA-Z0-9._-]{1,32}
	Path string   // the extension's executable, absolute
	Args []string // its arguments

	Fail       FailMode
	Directions Directions // zero: both
	VSIDs      []uint32   // the VSIDs whose frames it sees; empty: all
	Ports      []string   // the ports whose frames it sees; empty: all
	// EveryFrame sends every frame to a filter or forwarding extension
	// instead of the first of each flow (the extension may also ask).
	EveryFrame bool
	// Deadline is how long a verdict may take before the extension is
	// declared failed (default 500 ms).
	Deadline time.Duration
	// CacheTTL is how long a cached verdict lives (default 60 s).
	CacheTTL time.Duration
	// Settings are handed to the extension (sdk Host.Config).
	Settings map[string]string
	// RingSize is descriptors per ring (default 1024, a power of two);
	// SlotSize the bytes of frame data per descriptor (default 2048):
	// capture copies are cut to it, longer frames bypass filters by the
	// fail mode.
	RingSize int
	SlotSize int
	// Disabled loads the extension but keeps it out of the data path.
	Disabled bool
}

const (
	defaultDeadline = 500 * time.Millisecond
	defaultCacheTTL = 60 * time.Second
	defaultRingSize = 1024
	defaultSlotSize = 2048
)

// CheckName returns an error unless name is a valid extension name.
func CheckName(name string) error {
	if name == "" || len(name) > 32 || strings.IndexFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}) >= 0 {
		return fmt.Errorf("%w: name %q: want 1..32 of a-z A-Z 0-9 . _ -", ErrBadConfig, name)
	}
	return nil
}

// Validate checks c and fills defaults.
func (c *Config) Validate() error {
	if err := CheckName(c.Name); err != nil {
		return err
	}
	if c.Path == "" || !filepath.IsAbs(c.Path) {
		return fmt.Errorf("%w: extension %s: path %q: want an absolute path to the executable", ErrBadConfig, c.Name, c.Path)
	}
	if c.Directions == 0 {
		c.Directions = DirBoth
	}
	if c.Directions > DirBoth {
		return fmt.Errorf("%w: extension %s: directions %d", ErrBadConfig, c.Name, c.Directions)
	}
	if c.Fail > FailClosed {
		return fmt.Errorf("%w: extension %s: fail mode %d", ErrBadConfig, c.Name, c.Fail)
	}
	if c.Deadline == 0 {
		c.Deadline = defaultDeadline
	}
	if c.Deadline < time.Millisecond || c.Deadline > time.Minute {
		return fmt.Errorf("%w: extension %s: deadline %v: want 1ms..1m", ErrBadConfig, c.Name, c.Deadline)
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = defaultCacheTTL
	}
	if c.CacheTTL < time.Second || c.CacheTTL > 24*time.Hour {
		return fmt.Errorf("%w: extension %s: cache-ttl %v: want 1s..24h", ErrBadConfig, c.Name, c.CacheTTL)
	}
	if c.RingSize == 0 {
		c.RingSize = defaultRingSize
	}
	if c.RingSize < 64 || c.RingSize > 1<<16 || c.RingSize&(c.RingSize-1) != 0 {
		return fmt.Errorf("%w: extension %s: ring-size %d: want a power of two in 64..65536", ErrBadConfig, c.Name, c.RingSize)
	}
	if c.SlotSize == 0 {
		c.SlotSize = defaultSlotSize
	}
	if c.SlotSize < 128 || c.SlotSize > 65536 || c.SlotSize%64 != 0 {
		return fmt.Errorf("%w: extension %s: slot-size %d: want a multiple of 64 in 128..65536", ErrBadConfig, c.Name, c.SlotSize)
	}
	for _, v := range c.VSIDs {
		if v != 0 && !header.ValidVSID(v) {
			return fmt.Errorf("%w: extension %s: vsid %d: want 0 or %d..%d", ErrBadConfig, c.Name, v, header.MinVSID, header.MaxVSID)
		}
	}
	for k := range c.Settings {
		if k == "" {
			return fmt.Errorf("%w: extension %s: config has an empty key", ErrBadConfig, c.Name)
		}
	}
	return nil
}
