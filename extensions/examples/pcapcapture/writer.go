package main

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// bufSize is the write buffer of a capture file. pcapgo.NgWriter wraps
// its writer in a bufio.Writer of 4 KiB unless it is given one at least
// that large, which it then uses as is: so the buffer here is the only
// one, and flushing it puts every packet written so far in the file.
const bufSize = 256 << 10

// nameTime is the layout of the time in file names (UTC).
const nameTime = "20060102-150405"

// rotator writes pcapng files <prefix>-<YYYYmmdd-HHMMSS>-<seq>.pcapng in
// a directory, starting a new file before a packet would take the current
// one beyond maxBytes (unless the file has no packet yet: a file holds at
// least one), and removing the oldest files beyond maxFiles. It is not
// safe for concurrent use.
type rotator struct {
	cfg    config
	ifName string // the pcapng interface name: the extension's instance
	now    func() time.Time
	// create opens a new file for writing and fails if it exists.
	create func(path string) (io.WriteCloser, error)
	log    logger
	files  *atomic.Uint64 // counts the files opened

	seq      int // of the last file opened
	f        io.WriteCloser
	name     string // of the open file
	cw       countingWriter
	bw       *bufio.Writer
	ng       *pcapgo.NgWriter
	packets  int // in the open file
	buffered int // packets written since the last flush
	comments [1]string
}

func newRotator(cfg config, ifName string, log logger, files *atomic.Uint64) *rotator {
	return &rotator{
		cfg:    cfg,
		ifName: ifName,
		now:    time.Now,
		create: createExclusive,
		log:    log,
		files:  files,
		bw:     bufio.NewWriterSize(nil, bufSize),
	}
}

func createExclusive(path string) (io.WriteCloser, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
}

// countingWriter counts the bytes written to the file.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// size is the length of the open file once flushed.
func (r *rotator) size() int64 { return r.cw.n + int64(r.bw.Buffered()) }

// open starts a new file: section header and interface description.
func (r *rotator) open() error {
	if err := os.MkdirAll(r.cfg.dir, 0o750); err != nil {
		return fmt.Errorf("create capture directory: %w", err)
	}
	stamp := r.now().UTC().Format(nameTime)
	var f io.WriteCloser
	var name string
	for tries := 0; ; tries++ {
		r.seq++
		name = filepath.Join(r.cfg.dir, fileName(r.cfg.prefix, stamp, r.seq))
		var err error
		f, err = r.create(name)
		if err == nil {
			break
		}
		// A file of an earlier run in the same second: take the next
		// number.
		if !errors.Is(err, fs.ErrExist) || tries == 100 {
			return fmt.Errorf("create capture file: %w", err)
		}
	}
	r.cw = countingWriter{w: f}
	r.bw.Reset(&r.cw)
	ng, err := pcapgo.NewNgWriterInterface(r.bw, pcapgo.NgInterface{
		Name:                r.ifName,
		Description:         "xvs switch frames; each packet's comment names its port, VSID and direction",
		OS:                  runtime.GOOS,
		LinkType:            layers.LinkTypeEthernet,
		SnapLength:          uint32(r.cfg.snaplen),
		TimestampResolution: 9,
	}, pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{
		Hardware:    runtime.GOARCH,
		OS:          runtime.GOOS,
		Application: "xvs pcapcapture",
	}})
	if err != nil {
		f.Close()
		return fmt.Errorf("write capture file %s: %w", name, err)
	}
	// The headers go out at once: a reader of the new file sees a valid,
	// empty capture rather than nothing.
	if err := r.bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write capture file %s: %w", name, err)
	}
	r.f, r.name, r.ng, r.packets, r.buffered = f, name, ng, 0, 0
	r.files.Add(1)
	r.log.Info("capture file opened", "file", name)
	r.prune()
	return nil
}

// write writes one packet. data is copied, not kept. A file is opened
// first if none is (the last was closed, or failed).
func (r *rotator) write(ts time.Time, data []byte, origLen int, comment string) error {
	if r.ng != nil && r.packets > 0 && r.size()+epbLen(len(data), len(comment)) > r.cfg.maxBytes {
		if err := r.close(); err != nil {
			return err
		}
	}
	if r.ng == nil {
		if err := r.open(); err != nil {
			return err
		}
	}
	var opts pcapgo.NgPacketOptions
	if comment != "" {
		r.comments[0] = comment
		opts.Comments = r.comments[:]
	}
	ci := gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(data), Length: origLen}
	if err := r.ng.WritePacketWithOptions(ci, data, opts); err != nil {
		return fmt.Errorf("write capture file %s: %w", r.name, err)
	}
	r.packets++
	r.buffered++
	return nil
}

// epbLen is the length of the enhanced packet block pcapgo writes for a
// packet of n bytes with one comment of c bytes.
func epbLen(n, c int) int64 {
	l := 32 + pad4(n) // header, data, trailing length
	if c > 0 {
		l += 4 + pad4(c) + 4 // comment option and end of options
	}
	return int64(l)
}

func pad4(n int) int { return (n + 3) &^ 3 }

// flush writes what is buffered to the open file.
func (r *rotator) flush() error {
	if r.ng == nil || r.bw.Buffered() == 0 {
		return nil
	}
	if err := r.bw.Flush(); err != nil {
		return fmt.Errorf("write capture file %s: %w", r.name, err)
	}
	r.buffered = 0
	return nil
}

// close flushes and closes the open file, if any.
func (r *rotator) close() error {
	if r.ng == nil {
		return nil
	}
	err := r.flush()
	if cerr := r.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close capture file %s: %w", r.name, cerr)
	}
	r.f, r.ng = nil, nil
	return err
}

// abandon closes the open file after a write error, discarding what is
// buffered: the next write opens a new file. It returns the number of
// packets written since the last flush (lost, or partly in the file).
func (r *rotator) abandon() int {
	lost := r.buffered
	r.buffered = 0
	r.bw.Reset(nil)
	if r.ng == nil {
		return lost
	}
	r.f.Close()
	r.f, r.ng = nil, nil
	return lost
}

// prune removes the oldest capture files of the prefix beyond maxFiles,
// the open one included in the count. Files of earlier runs count too, so
// the directory stays bounded across restarts; other files are left
// alone.
func (r *rotator) prune() {
	if r.cfg.maxFiles == 0 {
		return
	}
	entries, err := os.ReadDir(r.cfg.dir)
	if err != nil {
		r.log.Error("list capture directory", "dir", r.cfg.dir, "error", err)
		return
	}
	type capFile struct {
		name  string
		stamp string
		seq   int
	}
	var files []capFile
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if stamp, seq, ok := parseFileName(r.cfg.prefix, e.Name()); ok {
			files = append(files, capFile{e.Name(), stamp, seq})
		}
	}
	if len(files) <= r.cfg.maxFiles {
		return
	}
	slices.SortFunc(files, func(a, b capFile) int {
		return cmp.Or(strings.Compare(a.stamp, b.stamp), cmp.Compare(a.seq, b.seq))
	})
	for _, f := range files[:len(files)-r.cfg.maxFiles] {
		path := filepath.Join(r.cfg.dir, f.name)
		if path == r.name {
			continue
		}
		if err := os.Remove(path); err != nil {
			r.log.Error("remove old capture file", "file", path, "error", err)
		}
	}
}

// fileName is the name of capture file seq started at stamp.
func fileName(prefix, stamp string, seq int) string {
	return fmt.Sprintf("%s-%s-%06d.pcapng", prefix, stamp, seq)
}

// parseFileName returns the time stamp and sequence number of a capture
// file name of prefix; ok is false for any other name.
func parseFileName(prefix, name string) (stamp string, seq int, ok bool) {
	rest, ok1 := strings.CutPrefix(name, prefix+"-")
	rest, ok2 := strings.CutSuffix(rest, ".pcapng")
	if !ok1 || !ok2 || len(rest) < len(nameTime)+2 || rest[len(nameTime)] != '-' {
		return "", 0, false
	}
	stamp, digits := rest[:len(nameTime)], rest[len(nameTime)+1:]
	if _, err := time.Parse(nameTime, stamp); err != nil {
		return "", 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return "", 0, false
		}
	}
	seq, err := strconv.Atoi(digits)
	if err != nil {
		return "", 0, false
	}
	return stamp, seq, true
}
