// Command pcapcapture is an xvs capture extension: it writes the frames
// the switch shows it to pcapng files that tshark, tcpdump and Wireshark
// read, with the port, VSID and direction of each frame in the packet's
// comment:
//
//	port=vm1 vsid=5001 dir=ingress
//
// The port is the one the frame came in on (ingress) or leaves by
// (egress); a port the switch has not named is written as #index. In
// Wireshark the comment is the field frame.comment, so a display filter
// such as
//
//	frame.comment contains "vsid=5001"
//
// selects one virtual subnet, and tshark prints them with
//
//	tshark -r xvs-20250101-120000-000001.pcapng -T fields -e frame.comment
//
// xvsd starts it; run by hand it explains that it is a plugin and exits.
// Load it from the switch configuration; the switch's own keys choose
// which frames it sees (direction, vsids, ports):
//
//	extensions:
//	  - name: capture
//	    path: /usr/local/lib/xvs/pcapcapture
//	    fail: open            # capture never blocks traffic
//	    direction: both
//	    vsids: [5001]
//	    slot-size: 9216       # frames longer than the slot are cut to it
//	    config:
//	      dir: /var/lib/xvs/capture
//	      prefix: vsid5001
//	      max-bytes: 64M
//	      max-files: 8
//	      snaplen: 65535
//
// # Configuration
//
//	dir        required: directory of the capture files, created if missing
//	prefix     file name prefix, default xvs (a-z A-Z 0-9 . _ -)
//	max-bytes  size of one file before the next is started, default 64M;
//	           a plain byte count or with K, M or G (powers of 1024)
//	max-files  files kept: the oldest are removed, default 8; 0 keeps all
//	snaplen    bytes kept of each frame, default 65535 (1..262144)
//
// Any other key is refused, so that a misspelt key fails at start. The
// first file is created at start, so a directory that cannot be written
// fails the start with its error.
//
// # Files
//
// Files are named <prefix>-<YYYYmmdd-HHMMSS>-<seq>.pcapng, the time in UTC
// when the file was started, seq counting the files of this run from 1.
// A new file is started before a packet would take the current one beyond
// max-bytes, so no file exceeds it unless a single packet does. When
// max-files is not 0, the oldest files with the prefix in the directory —
// of this run or of earlier ones, the current file included in the count —
// are removed so that at most max-files remain; other files are never
// touched.
//
// Each packet's time stamp is the time the switch received the frame
// (nanoseconds), and its original length the frame's length in the
// switch: the switch cuts copies for capture to its slot size (the
// extension's slot-size, default 2048), so raise slot-size to capture
// jumbo frames whole.
//
// Packets are buffered and written to the file every 100 ms and at stop,
// so a reader following the file (tail -f -c +1 file | tshark -r -) sees
// them within a fraction of a second.
//
// # Errors
//
// When a write fails (disk full, directory removed), the file is closed,
// the error logged once, and frames are dropped for a second before a new
// file is tried; the counters say how many.
//
// # Counters
//
// "xvsctl extension stats capture" shows frames and bytes (of frame data)
// written, files started, write-errors, and frames dropped because of
// write errors. Frames the switch could not hand over (the ring was full)
// are the switch's counters, not these.
package main

import "github.com/xvswitch/xvs/extensions/sdk"

func main() { sdk.Serve(&Capture{}) }
