package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/xvswitch/xvs/cmd/xvs-pktgen/internal/frame"
	"github.com/xvswitch/xvs/cmd/xvs-pktgen/internal/gen"
)

const loopHelp = `xvs-pktgen loop: measure what joins two devices with frames that circulate.

  A closed loop: a reflector (an XDP program) on --dev and one on
  --peer-dev send every generator frame back out of the device it came in
  on, with the Ethernet addresses swapped, so a fixed number of frames
  (--frames, injected once from --dev through an AF_PACKET socket) goes
  back and forth through whatever joins the two devices (a bridge, a
  switch, an XDP program) for as long as the run lasts. No sender sets
  the rate: it is that of the slowest part of the loop, so the same loop
  measures forwarders faster than any one sending thread, on kernels with
  or without XDP live frames. The reflectors cost the same in every case;
  a loop over a plain veth pair shows how fast they alone go.

  forwarded counts the generator frames both reflectors received during
  the measurement (after --warmup): the frames the forwarder in the
  middle passed, both directions together. At the end the reflectors
  stop and drop what still circulates: frames_left (out of injected) says
  how many frames the loop lost on the way; a loop that lost most of them
  measured too few in flight. Other frames (ARP, the hosts' own traffic)
  pass to the stack, so the hosts can talk (and forwarders learn) first.

  On a veth the reflector's XDP_TX needs NAPI on the receiving end, and an
  XDP program on a veth gives it that.

`

type loopFlags struct {
	dev, netns, peerDev, peerNetns string
	size, flows                    int
	vary                           varyFlag
	dstMAC                         macFlag
	frames                         uint64
	duration, warmup, interval     time.Duration
	jsonOut, quiet                 bool
}

func parseLoop(args []string, stdout, stderr io.Writer) (*loopFlags, int) {
	f := &loopFlags{vary: varyFlag{frame.VaryAll}}
	fs := flag.NewFlagSet("loop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.dev, "dev", "", "`device` that injects the frames and reflects them (required)")
	fs.StringVar(&f.netns, "netns", "", "network `namespace` of --dev (name or path; default: the current one)")
	fs.StringVar(&f.peerDev, "peer-dev", "", "`device` at the other end of the loop, which reflects them too (required)")
	fs.StringVar(&f.peerNetns, "peer-netns", "", "network `namespace` of --peer-dev (name or path; default: the current one)")
	fs.Uint64Var(&f.frames, "frames", 1024, "`frames` to inject into the loop, 1..1048576")
	fs.IntVar(&f.size, "size", 64, fmt.Sprintf("frame size in `bytes`, %d..%d, Ethernet header included, FCS excluded", frame.MinSize, frame.MaxSize))
	fs.IntVar(&f.flows, "flows", 1, fmt.Sprintf("number of `flows`, 1..%d (see xvs-pktgen help send, FRAMES)", frame.MaxFlows))
	fs.Var(&f.vary, "vary", "`fields` that differ between flows: comma-separated mac, ip, port (or all)")
	fs.Var(&f.dstMAC, "dst-mac", "destination `MAC` of the injected frames (default: the MAC of --peer-dev)")
	fs.DurationVar(&f.duration, "duration", 5*time.Second, "how `long` to measure")
	fs.DurationVar(&f.warmup, "warmup", time.Second, "how `long` the frames circulate before the measurement starts")
	fs.DurationVar(&f.interval, "interval", time.Second, "progress line `interval`")
	fs.BoolVar(&f.jsonOut, "json", false, "print the summary as one JSON object on stdout (progress lines go to stderr)")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress lines")
	if code, done := parseFlags(fs, args, loopHelp, stdout, stderr); done {
		return nil, code
	}
	usage := func(format string, a ...any) (*loopFlags, int) {
		fmt.Fprintf(stderr, "xvs-pktgen loop: "+format+"\n", a...)
		return nil, exitUsage
	}
	switch {
	case fs.NArg() > 0:
		return usage("unexpected argument %q", fs.Arg(0))
	case f.dev == "" || f.peerDev == "":
		return usage("--dev and --peer-dev are required")
	case f.dev == f.peerDev && f.netns == f.peerNetns:
		return usage("--dev and --peer-dev are the same device (%s)", f.dev)
	case f.frames < 1 || f.frames > 1<<20:
		return usage("--frames %d: want 1..1048576", f.frames)
	case f.duration <= 0:
		return usage("--duration %v: must be positive", f.duration)
	case f.warmup < 0:
		return usage("--warmup %v: must not be negative", f.warmup)
	case f.interval <= 0:
		return usage("--interval %v: must be positive", f.interval)
	}
	c := f.frameConfig()
	c.SrcMAC, c.DstMAC = make([]byte, 6), make([]byte, 6) // the devices' own, checked later
	if err := c.Validate(); err != nil {
		return usage("%v", err)
	}
	return f, exitOK
}

func (f *loopFlags) frameConfig() frame.Config {
	return frame.Config{
		Size:    f.size,
		DstMAC:  f.dstMAC.mac,
		SrcIP:   defaultSrcIP,
		DstIP:   defaultDstIP,
		SrcPort: 1024,
		DstPort: 9,
		Flows:   f.flows,
		Vary:    f.vary.f,
	}
}

// loopSettle is how long the end of a run waits for the frames still in
// flight to reach a stopped reflector.
const loopSettle = 300 * time.Millisecond

func runLoop(args []string, stdout, stderr io.Writer) int {
	f, code := parseLoop(args, stdout, stderr)
	if f == nil {
		return code
	}
	r, code := startRun("loop", f.quiet, f.jsonOut, stdout, stderr)
	if r == nil {
		return code
	}
	fail, progress := r.fail, r.progress
	fc := f.frameConfig()
	if fc.DstMAC == nil {
		mac, err := gen.DeviceMAC(f.peerDev, f.peerNetns)
		if err != nil {
			return fail(fmt.Errorf("--peer-dev: %w", err))
		}
		fc.DstMAC = mac
	}

	var refl [2]*gen.Sink
	for i, end := range [2][2]string{{f.dev, f.netns}, {f.peerDev, f.peerNetns}} {
		s, err := gen.OpenSink(gen.SinkOptions{Dev: end[0], Netns: end[1], Reflect: true})
		if err != nil {
			return fail(err)
		}
		defer s.Close()
		refl[i] = s
	}
	read := func() (c [2]gen.SinkCounters, err error) {
		for i, s := range refl {
			if c[i], err = s.Counters(); err != nil {
				return c, err
			}
		}
		return c, nil
	}
	base, err := read()
	if err != nil {
		return fail(err)
	}

	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigc)

	// Inject: AF_PACKET leaves --dev's XDP program (the reflector) alone,
	// and needs neither live frames nor a queue of the device's own.
	g, err := gen.Start(gen.Options{Mode: gen.ModePacket, Dev: f.dev, Netns: f.netns, Frame: fc, Count: f.frames})
	if err != nil {
		return fail(fmt.Errorf("inject: %w", err))
	}
	res, err := g.Wait()
	if err != nil {
		return fail(fmt.Errorf("inject: %w", err))
	}

	interrupted := false
	wait := func(d time.Duration) {
		if interrupted {
			return
		}
		select {
		case <-time.After(d):
		case <-sigc:
			interrupted = true
		}
	}
	wait(f.warmup)
	start, err := read()
	if err != nil {
		return fail(err)
	}
	t0 := time.Now()
	tick := time.NewTicker(f.interval)
	defer tick.Stop()
	end := time.NewTimer(f.duration)
	defer end.Stop()
	last, lastT := start, t0
measure:
	for !interrupted {
		select {
		case <-sigc:
			interrupted = true
		case <-end.C:
			break measure
		case now := <-tick.C:
			c, err := read()
			if err != nil {
				return fail(err)
			}
			dt := now.Sub(lastT).Seconds()
			var line fields
			line.add("t", fixed{now.Sub(t0).Seconds(), 2})
			line.add("forwarded", received(c, start))
			line.add("forwarded_pps", fixed{rate(received(c, last), dt), 0})
			fmt.Fprintln(progress, line.text())
			last, lastT = c, now
		}
	}
	stop, err := read()
	secs := time.Since(t0).Seconds()
	if err != nil {
		return fail(err)
	}
	for _, s := range refl {
		if err := s.StopReflecting(); err != nil {
			return fail(err)
		}
	}
	time.Sleep(loopSettle)
	final, err := read()
	if err != nil {
		return fail(err)
	}
	var out fields
	fwd := received(stop, start)
	out.add("mode", "loop")
	out.add("dev", f.dev)
	out.add("peer_dev", f.peerDev)
	out.add("size", f.size)
	out.add("flows", f.flows)
	out.add("injected", res.Sent)
	out.add("duration_s", fixed{secs, 6})
	out.add("forwarded", fwd)
	out.add("forwarded_pps", fixed{rate(fwd, secs), 0})
	out.add("forwarded_mbps", fixed{mbps(fwd*uint64(f.size), secs), 2})
	out.add("dev_received", stop[0].Packets-start[0].Packets)
	out.add("peer_received", stop[1].Packets-start[1].Packets)
	out.add("frames_left", final[0].Stopped+final[1].Stopped-base[0].Stopped-base[1].Stopped)
	for _, s := range refl {
		if err := s.Close(); err != nil {
			return fail(err)
		}
	}
	if f.jsonOut {
		fmt.Fprintln(stdout, out.json())
	} else {
		fmt.Fprintln(stdout, "summary "+out.text())
	}
	if interrupted {
		return exitError
	}
	return exitOK
}

// received is how many generator frames both reflectors received between
// two readings.
func received(now, then [2]gen.SinkCounters) uint64 {
	return now[0].Packets - then[0].Packets + now[1].Packets - then[1].Packets
}
