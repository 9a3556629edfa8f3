package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/xvswitch/xvs/cmd/xvs-pktgen/internal/gen"
)

const sinkHelp = `xvs-pktgen sink: count and drop the frames arriving on a device.

  Attaches an XDP program (through a BPF link, so the kernel detaches it
  even if xvs-pktgen is killed) that counts every frame and, separately,
  the generator's frames (IPv4/UDP with "XVSP" at the start of the UDP
  payload), in a per-CPU array, and returns XDP_DROP. The counters are
  read every --interval. The program is detached on exit, on Ctrl-C and
  on SIGTERM. Attaching fails if the device already has an XDP program.
  On a veth the sink also gives the device NAPI, which a peer sending in
  live mode needs.

`

func runSink(args []string, stdout, stderr io.Writer) int {
	var (
		dev, netns, xdpMode string
		duration, interval  time.Duration
		countFlows          bool
		jsonOut, quiet      bool
	)
	fs := flag.NewFlagSet("sink", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&dev, "dev", "", "`device` to count on (required)")
	fs.StringVar(&netns, "netns", "", "network `namespace` of --dev: a name from \"ip netns\" or a path (default: the current one)")
	fs.StringVar(&xdpMode, "xdp-mode", gen.XDPModeAuto, "XDP attach `mode`: auto, native or generic")
	fs.DurationVar(&duration, "duration", 0, "stop after this `long` (0 = until Ctrl-C or SIGTERM)")
	fs.DurationVar(&interval, "interval", time.Second, "progress line `interval`")
	fs.BoolVar(&countFlows, "count-flows", false, "count distinct flows among generator frames (received_flows); costs a hash lookup per frame")
	fs.BoolVar(&jsonOut, "json", false, "print the summary as one JSON object on stdout (progress lines go to stderr)")
	fs.BoolVar(&quiet, "quiet", false, "no progress lines")
	if code, done := parseFlags(fs, args, sinkHelp, stdout, stderr); done {
		return code
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "xvs-pktgen sink: "+format+"\n", a...)
		return exitUsage
	}
	switch {
	case fs.NArg() > 0:
		return usage("unexpected argument %q", fs.Arg(0))
	case dev == "":
		return usage("--dev is required")
	case interval <= 0:
		return usage("--interval %v: must be positive", interval)
	case duration < 0:
		return usage("--duration %v: must not be negative", duration)
	case !oneOf(xdpMode, gen.XDPModeAuto, gen.XDPModeNative, gen.XDPModeGeneric):
		return usage("--xdp-mode %q: want auto, native or generic", xdpMode)
	}
	r, code := startRun("sink", quiet, jsonOut, stdout, stderr)
	if r == nil {
		return code
	}
	fail, progress := r.fail, r.progress

	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigc)

	sink, err := gen.OpenSink(gen.SinkOptions{Dev: dev, Netns: netns, XDPMode: xdpMode, FlowTable: flowTable(countFlows)})
	if err != nil {
		return fail(err)
	}
	defer sink.Close()

	start := time.Now()
	var end <-chan time.Time
	if duration > 0 {
		t := time.NewTimer(duration)
		defer t.Stop()
		end = t.C
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	lastT := start
	var last gen.SinkCounters
loop:
	for {
		select {
		case <-end:
			break loop
		case <-sigc:
			break loop
		case now := <-tick.C:
			c, err := sink.Counters()
			if err != nil {
				return fail(err)
			}
			dt := now.Sub(lastT).Seconds()
			var line fields
			line.add("t", fixed{now.Sub(start).Seconds(), 2})
			line.add("received", c.Packets)
			line.add("received_pps", fixed{rate(c.Packets-last.Packets, dt), 0})
			line.add("received_mbps", fixed{mbps(c.Bytes-last.Bytes, dt), 2})
			line.add("received_all", c.AllPackets)
			fmt.Fprintln(progress, line.text())
			lastT, last = now, c
		}
	}
	secs := time.Since(start).Seconds()
	c, err := sink.Counters()
	if err != nil {
		return fail(err)
	}
	fc, hasFlows, err := sink.FlowCounts()
	if err != nil {
		return fail(err)
	}
	if err := sink.Close(); err != nil {
		return fail(err)
	}
	var out fields
	out.add("mode", "sink")
	out.add("dev", dev)
	out.add("duration_s", fixed{secs, 6})
	out.add("received", c.Packets)
	out.add("received_pps", fixed{rate(c.Packets, secs), 0})
	out.add("received_mbps", fixed{mbps(c.Bytes, secs), 2})
	out.add("received_all", c.AllPackets)
	if hasFlows {
		out.add("received_flows", fc.Flows)
	}
	if jsonOut {
		fmt.Fprintln(stdout, out.json())
	} else {
		fmt.Fprintln(stdout, "summary "+out.text())
	}
	return exitOK
}
