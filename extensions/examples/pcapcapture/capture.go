package main

import (
	"errors"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xvswitch/xvs/extensions/api"
	"github.com/xvswitch/xvs/extensions/sdk"
)

// host is the part of *sdk.Host the capture uses; tests pass a fake.
type host interface {
	Instance() string
	Config() map[string]string
	PortByIndex(i uint16) (sdk.Port, bool)
}

// logger is the part of hclog.Logger the capture uses.
type logger interface {
	Info(msg string, args ...any)
	Error(msg string, args ...any)
}

const (
	// flushInterval is how often buffered packets are written to the
	// file, so that a reader (tail -f | tshark -r -) sees them soon.
	flushInterval = 100 * time.Millisecond
	// retryInterval is how long frames are dropped after a write error
	// before a new file is tried.
	retryInterval = time.Second
)

// Capture writes the frames it sees to rotating pcapng files. Its zero
// value is ready for Start. Capture is called by the SDK from one
// goroutine; Stats and the flusher run beside it, hence the mutex.
type Capture struct {
	host host
	log  logger
	cfg  config
	// Tests shorten these; zero: the constants above.
	flushEvery time.Duration
	retryAfter time.Duration
	// create, if set, replaces the rotator's file creation (tests).
	create func(path string) (io.WriteCloser, error)

	mu      sync.Mutex
	w       *rotator // nil before Start and after Stop
	failing bool     // the last write failed: dropping until retryAt
	retryAt time.Time

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}

	frames      atomic.Uint64
	bytes       atomic.Uint64
	files       atomic.Uint64
	writeErrors atomic.Uint64
	dropped     atomic.Uint64
}

var (
	_ sdk.Extension = (*Capture)(nil)
	_ sdk.Capture   = (*Capture)(nil)
	_ sdk.Stopper   = (*Capture)(nil)
	_ sdk.Stater    = (*Capture)(nil)
)

// Info describes the extension.
func (c *Capture) Info() sdk.Info {
	return sdk.Info{
		Name:        "pcapcapture",
		Description: "writes frames to rotating pcapng files, with port, VSID and direction in each packet's comment",
	}
}

// start checks the configuration and opens the first file, so that a
// directory that cannot be written fails the start rather than the first
// frame.
func (c *Capture) start(h host, log logger) error {
	if c.stop != nil {
		return errors.New("start: already started")
	}
	cfg, err := parseConfig(h.Config())
	if err != nil {
		return err
	}
	ifName := h.Instance()
	if ifName == "" {
		ifName = "xvs"
	}
	w := newRotator(cfg, ifName, log, &c.files)
	if c.create != nil {
		w.create = c.create
	}
	if err := w.open(); err != nil {
		return err
	}
	c.host, c.log, c.cfg, c.w = h, log, cfg, w
	if c.flushEvery <= 0 {
		c.flushEvery = flushInterval
	}
	if c.retryAfter <= 0 {
		c.retryAfter = retryInterval
	}
	c.stop = make(chan struct{})
	c.done = make(chan struct{})
	go c.flusher()
	log.Info("capturing", "dir", cfg.dir, "prefix", cfg.prefix, "max-bytes", cfg.maxBytes,
		"max-files", cfg.maxFiles, "snaplen", cfg.snaplen)
	return nil
}

// Capture writes one frame, cut to snaplen, with Meta.Time as its time
// stamp and Meta.OrigLen as its original length. frame is copied into the
// write buffer, not kept.
func (c *Capture) Capture(m *sdk.Meta, frame []byte) {
	if c.host == nil { // not started
		return
	}
	data := frame
	if len(data) > c.cfg.snaplen {
		data = data[:c.cfg.snaplen]
	}
	ts := m.Time
	if ts.IsZero() {
		ts = time.Now()
	}
	comment := c.comment(m)

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.w == nil {
		return
	}
	if c.failing && time.Now().Before(c.retryAt) {
		c.dropped.Add(1)
		return
	}
	if err := c.w.write(ts, data, max(m.OrigLen, len(frame)), comment); err != nil {
		c.dropped.Add(1)
		c.failed(err)
		return
	}
	if c.failing {
		c.failing = false
		c.log.Info("capture resumed", "file", c.w.name)
	}
	c.frames.Add(1)
	c.bytes.Add(uint64(len(data)))
}

// failed handles a write error: count it, drop the file (and count the
// frames still buffered for it as dropped), and drop frames for
// retryAfter before trying a new file. Only the first error of a run of
// them is logged. c.mu is held.
func (c *Capture) failed(err error) {
	c.writeErrors.Add(1)
	c.dropped.Add(uint64(c.w.abandon()))
	c.retryAt = time.Now().Add(c.retryAfter)
	if !c.failing {
		c.log.Error("capture failing, dropping frames until a new file works", "error", err, "retry", c.retryAfter)
	}
	c.failing = true
}

// maxPortName bounds the port name in a comment (pcapng options hold at
// most 65535 bytes; switch port names are far shorter).
const maxPortName = 64

// comment is the packet comment: "port=vm1 vsid=5001 dir=ingress". The
// port is the one the frame came in on (ingress) or leaves by (egress);
// one the switch did not name is written as #index.
func (c *Capture) comment(m *sdk.Meta) string {
	port := m.InPort
	if m.Dir == api.Egress {
		port = m.OutPort
	}
	var buf [128]byte
	b := append(buf[:0], "port="...)
	if p, ok := c.host.PortByIndex(port); ok && p.Name != "" {
		name := p.Name
		if len(name) > maxPortName {
			name = name[:maxPortName]
		}
		b = append(b, name...)
	} else {
		b = append(b, '#')
		b = strconv.AppendUint(b, uint64(port), 10)
	}
	b = append(b, " vsid="...)
	b = strconv.AppendUint(b, uint64(m.VSID), 10)
	b = append(b, " dir="...)
	b = append(b, m.Dir.String()...)
	return string(b)
}

// flusher writes buffered packets to the file every flushEvery.
func (c *Capture) flusher() {
	defer close(c.done)
	t := time.NewTicker(c.flushEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.mu.Lock()
			if c.w != nil {
				if err := c.w.flush(); err != nil {
					c.failed(err)
				}
			}
			c.mu.Unlock()
		}
	}
}

// Stop flushes and closes the capture file. It is safe to call twice,
// and before Start.
func (c *Capture) Stop() {
	if c.stop == nil {
		return
	}
	c.stopOnce.Do(func() {
		close(c.stop)
		<-c.done
		c.mu.Lock()
		defer c.mu.Unlock()
		if err := c.w.close(); err != nil {
			c.writeErrors.Add(1)
			c.log.Error("close capture", "error", err)
		}
		c.w = nil
	})
}

// Stats returns the counters: frames and bytes (of frame data, after
// snaplen) written, files opened, write errors, and frames dropped
// because of them (including frames buffered for a file when a write to
// it failed; some of those may have reached the file).
func (c *Capture) Stats() map[string]uint64 {
	return map[string]uint64{
		"frames":       c.frames.Load(),
		"bytes":        c.bytes.Load(),
		"files":        c.files.Load(),
		"write-errors": c.writeErrors.Load(),
		"dropped":      c.dropped.Load(),
	}
}
