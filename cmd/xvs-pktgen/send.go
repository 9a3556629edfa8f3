package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/xvswitch/xvs/cmd/xvs-pktgen/internal/frame"
	"github.com/xvswitch/xvs/cmd/xvs-pktgen/internal/gen"
)

const sendHelp = `xvs-pktgen send: transmit UDP/IPv4 test frames on a device.

MODES (--mode)
  live    BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES: the kernel runs an
          XDP program that returns XDP_TX on a copy of the frame, Repeat
          times per call, and transmits each copy out of --dev; with
          --flows > 1 the program rewrites the source MAC/IP/port per frame
          (round robin over the flows). Several Mpps from one core. Frames
          up to about 3.4 KB (a page less the kernel's head- and
          tailroom). The device must accept XDP frames: on a veth
          the PEER must have NAPI enabled, i.e. an XDP program attached
          (a sink, xvs, an AF_XDP user) or GRO on ("ethtool -K PEER gro
          on"); otherwise the kernel drops every frame silently (auto
          mode checks this with 64 probe frames and moves on to afxdp;
          live mode warns at the end when dev_tx stayed low).
  afxdp   AF_XDP socket on queue 0 (copy mode on a veth: an skb per
          frame); about 1 Mpps here. Frames up to 4096 bytes. Needs
          nothing from the peer.
  packet  AF_PACKET raw socket, one write per frame; slow, any size up to
          the MTU.
  auto    live, else afxdp, else packet: the first that works for the size.

  Live mode is probed once at the start (a frame the kernel runs an
  XDP_DROP program on, so nothing is sent). Some kernels refuse live
  frames even to root; auto mode then says so in one line on stderr,
  e.g. "live frames refused by the kernel (EPERM) - using afxdp", and
  --mode live fails with that reason (exit 1). "needs root" is said only
  when the process lacks a capability it needs (read from the kernel).

  A send waits up to 2 s for the device's carrier, and stops with an error
  if the device goes down or loses its carrier (a veth: its peer went
  down) while sending.

FRAMES
  Untagged Ethernet + IPv4 (20-byte header, DF, TTL 64) + UDP, checksum 0;
  the payload starts with "XVSP" and is zero-filled up to --size. Flow f
  (0 <= f < --flows) adds f to each field named in --vary: the low 16 bits
  of the source MAC, the source IP, the UDP source port.

`

const examples = `EXAMPLES
  # 5 s at full speed on veth xvspg0, counting at its peer xvspg1 in netns b
  xvs-pktgen send --dev xvspg0 --duration 5s --sink-dev xvspg1 --sink-netns b

  # exactly 1e6 frames of 1500 bytes, 1000 flows, 100 kpps, JSON summary
  xvs-pktgen send --dev xvspg0 --count 1000000 --size 1500 --flows 1000 --rate 100000 --json

  # count what arrives on xvspg1 until Ctrl-C
  xvs-pktgen sink --dev xvspg1
`

type macFlag struct{ mac net.HardwareAddr }

func (m *macFlag) String() string {
	if m.mac == nil {
		return ""
	}
	return m.mac.String()
}

func (m *macFlag) Set(s string) error {
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return fmt.Errorf("not a 6-byte MAC address: %q", s)
	}
	m.mac = mac
	return nil
}

type ipFlag struct{ ip netip.Addr }

func (a *ipFlag) String() string { return a.ip.String() }

func (a *ipFlag) Set(s string) error {
	ip, err := netip.ParseAddr(s)
	if err != nil || !ip.Is4() {
		return fmt.Errorf("not an IPv4 address: %q", s)
	}
	a.ip = ip
	return nil
}

type varyFlag struct{ f frame.Fields }

func (v *varyFlag) String() string { return v.f.String() }

func (v *varyFlag) Set(s string) (err error) {
	v.f, err = frame.ParseFields(s)
	return err
}

// Defaults of the frame fields.
var (
	defaultDstMAC = net.HardwareAddr{0x02, 0x58, 0x56, 0x50, 0x00, 0x02}
	defaultSrcIP  = netip.MustParseAddr("198.18.0.1") // RFC 2544 benchmarking range
	defaultDstIP  = netip.MustParseAddr("198.19.0.1")
)

type sendFlags struct {
	dev, netns, mode   string
	size, flows        int
	count, rate        uint64
	duration           time.Duration
	srcMAC, dstMAC     macFlag
	srcIP, dstIP       ipFlag
	srcPort, dstPort   uint
	vary               varyFlag
	sinkDev, sinkNetns string
	sinkXDPMode        string
	countFlows         bool
	drain, interval    time.Duration
	jsonOut, quiet     bool
}

func parseSend(args []string, stdout, stderr io.Writer) (*sendFlags, int) {
	f := &sendFlags{
		dstMAC: macFlag{defaultDstMAC},
		srcIP:  ipFlag{defaultSrcIP},
		dstIP:  ipFlag{defaultDstIP},
		vary:   varyFlag{frame.VaryAll},
	}
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.dev, "dev", "", "`device` to send on (required)")
	fs.StringVar(&f.netns, "netns", "", "network `namespace` of --dev: a name from \"ip netns\" or a path such as /proc/PID/ns/net (default: the current one)")
	fs.StringVar(&f.mode, "mode", gen.ModeAuto, "how to send: auto, live, afxdp or packet (see `MODES`)")
	fs.IntVar(&f.size, "size", 64, fmt.Sprintf("frame size in `bytes`, %d..%d, Ethernet header included, FCS excluded", frame.MinSize, frame.MaxSize))
	fs.Uint64Var(&f.count, "count", 0, "stop after `N` frames (0 = no limit); with --duration too, whichever comes first; with neither, 10s")
	fs.DurationVar(&f.duration, "duration", 0, "stop after this `long`, e.g. 5s (0 = no limit); Ctrl-C also stops")
	fs.Uint64Var(&f.rate, "rate", 0, "limit to `pps` frames per second (0 = as fast as possible); paced in bursts of about 0.5 ms")
	fs.IntVar(&f.flows, "flows", 1, fmt.Sprintf("number of `flows`, 1..%d (see FRAMES)", frame.MaxFlows))
	fs.Var(&f.vary, "vary", "`fields` that differ between flows: comma-separated mac, ip, port (or all)")
	fs.Var(&f.srcMAC, "src-mac", "source `MAC` of flow 0 (default: the MAC of --dev)")
	fs.Var(&f.dstMAC, "dst-mac", "destination `MAC`")
	fs.Var(&f.srcIP, "src-ip", "source `IPv4` address of flow 0")
	fs.Var(&f.dstIP, "dst-ip", "destination `IPv4` address")
	fs.UintVar(&f.srcPort, "src-port", 1024, "UDP source `port` of flow 0")
	fs.UintVar(&f.dstPort, "dst-port", 9, "UDP destination `port`")
	fs.StringVar(&f.sinkDev, "sink-dev", "", "also run a sink on this `device` (e.g. the veth peer) and report received frames and loss")
	fs.StringVar(&f.sinkNetns, "sink-netns", "", "network `namespace` of --sink-dev (name or path; default: the current one)")
	fs.StringVar(&f.sinkXDPMode, "sink-xdp-mode", gen.XDPModeAuto, "XDP attach `mode` of the sink: auto, native or generic")
	fs.BoolVar(&f.countFlows, "count-flows", false, "let the sink count distinct flows (received_flows); costs a hash lookup per frame")
	fs.DurationVar(&f.drain, "drain", 200*time.Millisecond, "how long the sink keeps counting after the last frame is sent")
	fs.DurationVar(&f.interval, "interval", time.Second, "progress line `interval`")
	fs.BoolVar(&f.jsonOut, "json", false, "print the summary as one JSON object on stdout (progress lines go to stderr)")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress lines")
	if code, done := parseFlags(fs, args, sendHelp, stdout, stderr); done {
		return nil, code
	}
	usage := func(format string, a ...any) (*sendFlags, int) {
		fmt.Fprintf(stderr, "xvs-pktgen send: "+format+"\n", a...)
		return nil, exitUsage
	}
	switch {
	case fs.NArg() > 0:
		return usage("unexpected argument %q", fs.Arg(0))
	case f.dev == "":
		return usage("--dev is required")
	case f.srcPort > 0xffff || f.dstPort > 0xffff:
		return usage("ports must be 0..65535")
	case f.interval <= 0:
		return usage("--interval %v: must be positive", f.interval)
	case f.drain < 0:
		return usage("--drain %v: must not be negative", f.drain)
	case f.sinkNetns != "" && f.sinkDev == "":
		return usage("--sink-netns needs --sink-dev")
	case !oneOf(f.mode, gen.ModeAuto, gen.ModeLive, gen.ModeAFXDP, gen.ModePacket):
		return usage("--mode %q: want auto, live, afxdp or packet", f.mode)
	case !oneOf(f.sinkXDPMode, gen.XDPModeAuto, gen.XDPModeNative, gen.XDPModeGeneric):
		return usage("--sink-xdp-mode %q: want auto, native or generic", f.sinkXDPMode)
	}
	if f.count == 0 && f.duration == 0 {
		f.duration = 10 * time.Second
	}
	fc := f.frameConfig()
	fc.SrcMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0} // checked against the device later
	if err := fc.Validate(); err != nil {
		return usage("%v", err)
	}
	return f, exitOK
}

func (f *sendFlags) frameConfig() frame.Config {
	return frame.Config{
		Size:    f.size,
		SrcMAC:  f.srcMAC.mac,
		DstMAC:  f.dstMAC.mac,
		SrcIP:   f.srcIP.ip,
		DstIP:   f.dstIP.ip,
		SrcPort: uint16(f.srcPort),
		DstPort: uint16(f.dstPort),
		Flows:   f.flows,
		Vary:    f.vary.f,
	}
}

func runSend(args []string, stdout, stderr io.Writer) int {
	f, code := parseSend(args, stdout, stderr)
	if f == nil {
		return code
	}
	r, code := startRun("send", f.quiet, f.jsonOut, stdout, stderr)
	if r == nil {
		return code
	}
	fail, progress := r.fail, r.progress

	var sink *gen.Sink
	if f.sinkDev != "" {
		var err error
		sink, err = gen.OpenSink(gen.SinkOptions{
			Dev:       f.sinkDev,
			Netns:     f.sinkNetns,
			XDPMode:   f.sinkXDPMode,
			FlowTable: flowTable(f.countFlows),
		})
		if err != nil {
			return fail(err)
		}
		defer sink.Close()
	}
	var base gen.SinkCounters
	if sink != nil {
		var err error
		if base, err = sink.Counters(); err != nil {
			return fail(err)
		}
	}

	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigc)

	g, err := gen.Start(gen.Options{
		Mode:     f.mode,
		Dev:      f.dev,
		Netns:    f.netns,
		Frame:    f.frameConfig(),
		Count:    f.count,
		Duration: f.duration,
		Rate:     f.rate,
	})
	if err != nil {
		return fail(err)
	}
	if n := g.Notice(); n != "" {
		fmt.Fprintf(stderr, "xvs-pktgen send: %s\n", n)
	}

	start := time.Now()
	tick := time.NewTicker(f.interval)
	defer tick.Stop()
	lastT, lastSent, lastRecv := start, uint64(0), base
	size := uint64(f.size)
loop:
	for {
		select {
		case <-g.Done():
			break loop
		case <-sigc:
			g.Stop()
			signal.Stop(sigc) // a second Ctrl-C kills; the kernel then detaches the sink
		case now := <-tick.C:
			sent := g.Sent()
			dt := now.Sub(lastT).Seconds()
			var line fields
			line.add("t", fixed{now.Sub(start).Seconds(), 2})
			line.add("sent", sent)
			line.add("sent_pps", fixed{rate(sent-lastSent, dt), 0})
			line.add("sent_mbps", fixed{mbps((sent-lastSent)*size, dt), 2})
			if sink != nil {
				c, err := sink.Counters()
				if err != nil {
					fmt.Fprintf(stderr, "xvs-pktgen send: %v\n", err)
				} else {
					recv := c.Packets - base.Packets
					line.add("received", recv)
					line.add("received_pps", fixed{rate(c.Packets-lastRecv.Packets, dt), 0})
					line.add("received_mbps", fixed{mbps(c.Bytes-lastRecv.Bytes, dt), 2})
					line.add("loss_pct", fixed{lossPct(sent, recv), 2})
					lastRecv = c
				}
			}
			fmt.Fprintln(progress, line.text())
			lastT, lastSent = now, sent
		}
	}
	res, runErr := g.Wait()
	if runErr != nil && res.Sent == 0 {
		return fail(runErr)
	}

	var out fields
	secs := res.Elapsed.Seconds()
	out.add("mode", res.Mode)
	out.add("dev", f.dev)
	out.add("size", f.size)
	out.add("flows", f.flows)
	out.add("rate", f.rate)
	out.add("duration_s", fixed{secs, 6})
	out.add("sent", res.Sent)
	out.add("sent_pps", fixed{rate(res.Sent, secs), 0})
	out.add("sent_mbps", fixed{mbps(res.Bytes, secs), 2})
	if res.DevStats {
		out.add("dev_tx", res.DevTx)
		out.add("dev_tx_dropped", res.DevTxDropped)
	}
	if res.Warning != "" {
		fmt.Fprintf(stderr, "xvs-pktgen send: warning: %s\n", res.Warning)
	}
	if res.DevStats && res.Mode == gen.ModeLive && res.Sent >= 100 && res.DevTx < res.Sent/2 {
		fmt.Fprintf(stderr, "xvs-pktgen send: warning: %s counted %d of %d frames as transmitted (%d dropped): "+
			"the device refused the rest; a veth accepts live frames only while its peer has NAPI "+
			"(an XDP program on the peer, such as a sink, or GRO on: ethtool -K PEER gro on); or use --mode afxdp\n",
			f.dev, res.DevTx, res.Sent, res.DevTxDropped)
	}
	if sink != nil {
		time.Sleep(f.drain)
		c, err := sink.Counters()
		if err != nil {
			return fail(err)
		}
		recv := c.Packets - base.Packets
		out.add("sink_dev", f.sinkDev)
		out.add("received", recv)
		out.add("received_pps", fixed{rate(recv, secs), 0})
		out.add("received_mbps", fixed{mbps(c.Bytes-base.Bytes, secs), 2})
		out.add("received_all", c.AllPackets-base.AllPackets)
		out.add("loss_pct", fixed{lossPct(res.Sent, recv), 2})
		if fc, ok, err := sink.FlowCounts(); err != nil {
			return fail(err)
		} else if ok {
			out.add("received_flows", fc.Flows)
		}
		if err := sink.Close(); err != nil {
			return fail(err)
		}
	}
	if f.jsonOut {
		fmt.Fprintln(stdout, out.json())
	} else {
		fmt.Fprintln(stdout, "summary "+out.text())
	}
	if runErr != nil {
		return fail(runErr)
	}
	return exitOK
}

// flowTableSize is the size of a sink's flow table with --count-flows.
const flowTableSize = 1 << 17

func flowTable(on bool) int {
	if on {
		return flowTableSize
	}
	return 0
}
