// Command xvs-pktgen is the packet generator and sink of xvs's pktgen
// benchmarks.
//
// "xvs-pktgen send" transmits UDP/IPv4 frames on a device, by default in
// the kernel's XDP live-frames mode (BPF_PROG_RUN with
// BPF_F_TEST_XDP_LIVE_FRAMES: an XDP program that returns XDP_TX, run
// millions of times per call from one core), falling back to an AF_XDP
// socket and then to an AF_PACKET socket. "xvs-pktgen sink" attaches an
// XDP program that counts and drops what arrives on a device. A send can
// run its own sink on a second device (--sink-dev), in another network
// namespace if need be, and then reports loss. "xvs-pktgen loop" measures
// a forwarder with a fixed number of frames that two reflectors send back
// and forth through it, so that no sender limits the rate.
//
// Output is one line of key=value pairs per interval and a summary line,
// or a JSON object with --json; see the help (xvs-pktgen -h) for the exact
// format, which scripts such as bench/ports.sh parse.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the run failed
	exitUsage = 2 // bad command line
)

const synopsis = `usage:
  xvs-pktgen [send] --dev DEV (--count N | --duration D) [options]
  xvs-pktgen sink --dev DEV [--duration D] [options]
  xvs-pktgen loop --dev DEV --peer-dev DEV [--frames N] [--duration D] [options]
  xvs-pktgen help [send|sink|loop]
`

// run is main without the process: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	cmd := "send"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "send":
		return runSend(args, stdout, stderr)
	case "sink":
		return runSink(args, stdout, stderr)
	case "loop":
		return runLoop(args, stdout, stderr)
	case "help":
		switch {
		case len(args) > 0 && args[0] == "sink":
			return runSink([]string{"-h"}, stdout, stdout)
		case len(args) > 0 && args[0] == "loop":
			return runLoop([]string{"-h"}, stdout, stdout)
		default:
			return runSend([]string{"-h"}, stdout, stdout)
		}
	}
	fmt.Fprintf(stderr, "xvs-pktgen: unknown command %q\n%s", cmd, synopsis)
	return exitUsage
}

func oneOf(s string, choices ...string) bool {
	for _, c := range choices {
		if s == c {
			return true
		}
	}
	return false
}

// parseFlags parses args with fs. With -h it prints the full help (intro,
// options, output format, examples) on stdout; on a bad flag the flag
// package has printed the error on stderr and a short usage follows. done
// says the command should return code now.
func parseFlags(fs *flag.FlagSet, args []string, intro string, stdout, stderr io.Writer) (code int, done bool) {
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	err := fs.Parse(args)
	switch {
	case err == nil:
		return exitOK, false
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fmt.Fprint(stdout, synopsis, "\n", intro, "OPTIONS\n")
		fs.PrintDefaults()
		fmt.Fprint(stdout, "\n", outputHelp, "\n", examples)
		return exitOK, true
	}
	fmt.Fprintf(stderr, "%s(xvs-pktgen help %s: options, output format, examples)\n", synopsis, fs.Name())
	return exitUsage, true
}

const outputHelp = `OUTPUT
  Text (default): every --interval a progress line, at the end a summary
  line, both key=value pairs separated by single spaces:

    t=1.00 sent=7012352 sent_pps=7012345 sent_mbps=3590.32 received=7012100 received_pps=7012100 received_mbps=3590.20 loss_pct=0.00
    summary mode=live dev=xvspg0 size=64 flows=1 rate=0 duration_s=5.000848 sent=35061760 sent_pps=7011663 sent_mbps=3589.97 dev_tx=35061760 dev_tx_dropped=0 sink_dev=xvspg1 received=35061760 received_pps=7011663 received_mbps=3589.97 received_all=35061760 loss_pct=0.00

  A progress line starts with "t=" (seconds since the start); sent and
  received are cumulative, *_pps and *_mbps cover the last interval and
  loss_pct is cumulative (it can dip below 0 while a burst is in flight:
  the sink counts frames before the sender has added them up). The sink
  command's progress line has t, received, received_pps, received_mbps
  and received_all. The summary line starts with "summary "; its rates
  are averages over duration_s.

  JSON (--json): stdout holds only one JSON object with the keys of the
  summary line, in the same order; progress lines go to stderr (none
  with --quiet). Keys, in order (those marked * only when present):
    mode           "live", "afxdp" or "packet" (send), "sink" (sink)
    dev            device sent on (sink: counted on)
    size           frame size in bytes                          (send)
    flows          number of flows                              (send)
    rate           requested frames/s, 0 = unlimited            (send)
    duration_s     seconds from the first frame to the end of sending
                   (sink: from attach to exit)
    sent           frames sent                                  (send)
    sent_pps       sent / duration_s                            (send)
    sent_mbps      sent × size × 8 / duration_s / 1e6           (send)
    dev_tx       * growth of the device's TX packet counter during the
                   run, other traffic included                  (send)
    dev_tx_dropped * growth of its TX drop counter (on a veth: frames
                   the peer's receive ring had no room for)     (send)
    sink_dev     * device of the in-process sink      (send --sink-dev)
    received     * generator frames the sink counted: IPv4/UDP frames
                   with "XVSP" at the start of the UDP payload (offset 42)
    received_pps * received / duration_s
    received_mbps* bytes of those frames × 8 / duration_s / 1e6
    received_all * every frame the sink counted, generator's or not
    loss_pct     * (sent - received) / sent × 100     (send --sink-dev)
    received_flows * distinct flows among received frames (--count-flows)

  "sent" means: live, frames the kernel ran the program on and passed to
  the device's transmit function (see dev_tx for what the device took);
  afxdp, frames the kernel completed; packet, frames the socket accepted.
  Bytes are frame bytes as the device sees them: Ethernet header to the
  end of the payload, no FCS, preamble or gap. The in-process sink keeps
  counting for --drain after the last frame is sent.

EXIT STATUS
  0 on success, 1 if the run failed (no such device, not root, XDP attach
  refused, send error; a summary is still printed if frames were sent),
  2 for a bad command line.
`
