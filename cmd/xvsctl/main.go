// Command xvsctl controls a running xvsd: it lists and changes ports and
// shows counters, through xvsd's control socket.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/xvswitch/xvs/api"
	"github.com/xvswitch/xvs/header"
)

var version = "0.1.0-dev"

// vsidRange is the VSIDs of a virtual subnet, as help texts show them.
var vsidRange = fmt.Sprintf("%d..%d", header.MinVSID, header.MaxVSID)

const usage = `xvsctl - control a running xvsd

Usage:
  xvsctl [--socket PATH] [-o table|json] VERB [ARGS]

Verbs:
  version              print the versions of xvsctl and of the running xvsd
  port list            list the switch's ports: name, type, device (a vhostuser
                       port's socket), VSID, MAC, MTU, worker
  stats [PORT]         show rx/tx frames and bytes and drops by reason, for one
                       port or all; drop reasons: malformed, no-vsid, learn-cap
                       (source not learned, frame still forwarded), ring-full,
                       same-port, port-error, and the port's own (e.g. too-big)
  port add NAME --type afxdp|tap --dev DEV --vsid N [--fast-path] [--threaded-napi]
  port add NAME --type vhostuser --socket PATH [--server|--client] --vsid N
                       attach a device, or a VM's vhost-user socket, as a new
                       port, without restarting xvsd
  port del NAME        detach a port and release its device
  port set NAME --vsid N
                       move a port to another VSID (0 = non-virtualized)
  mac list             show the learned MAC addresses per VSID with their port and age
  trace --port P --frame HEX
                       show each stage's decision for a frame, without sending it

Switch extensions (out-of-process capture, filter and forwarding programs;
mirroring Get-/Enable-/Disable-VMSwitchExtension):
  extension list       the chain in order: position, name, kind, state, enabled,
                       fail mode, direction, VSIDs, ports, restarts
  extension stats [NAME]
                       the switch's and the extension's own counters
  extension load NAME PATH [--fail open|closed] [--position N] [--set K=V]...
                       [-- ARGS...]
                       start an extension and insert it in the chain
  extension unload NAME
                       take an extension out of the chain and stop it
  extension enable NAME, extension disable NAME
                       put a loaded extension in or out of the data path
  extension order NAME...
                       reorder the chain (name every loaded extension once)

Network virtualization policy (mirroring the HNV cmdlets), each with add, get
and remove:
  routing-domain       --id
  virtual-subnet       --vsid --rd --prefix [--prefix6]
  lookup-record        --vsid --ca --mac --pa [--rule encap|rewrite] [--port P]
  customer-route       --rd [--vsid] --destination [--next-hop] [--metric]
  provider-address     --interface --pa --prefix-length [--vlan]
  provider-route       --destination [--next-hop] [--metric]

Run 'xvsctl VERB --help' for the flags of a verb.

Global flags:
  --socket PATH   xvsd's control socket (default $XVS_SOCKET or ` + api.DefaultSocket + `)
  -o FORMAT       table (default, for people) or json (for scripts)

Exit status: 0 on success, 1 when xvsd refused or could not be reached, 2 on a
usage error.
`

type cli struct {
	out    io.Writer
	client *api.Client
	format string
	// after are the arguments after "--" of a verb that takes them.
	after []string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("xvsctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sock := api.DefaultSocket
	if s := os.Getenv("XVS_SOCKET"); s != "" {
		sock = s
	}
	socket := fs.String("socket", sock, "xvsd control socket")
	format := fs.String("o", "table", "output format: table or json")
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *format != "table" && *format != "json" {
		fmt.Fprintf(stderr, "xvsctl: -o %q: want table or json\n", *format)
		return 2
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	c := &cli{out: stdout, client: api.NewClient(*socket), format: *format}
	err := c.dispatch(rest)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "xvsctl: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "xvsctl: %v\n", err)
		return 1
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// verb is one command: its flags, its help and what it does.
type verb struct {
	args  string
	help  string
	nargs [2]int                 // min, max positional arguments
	setup func(fs *flag.FlagSet) // registers the verb's flags
	run   func(c *cli, fs *flag.FlagSet) error
	// after: the arguments after "--" are the verb's (c.after), not flags
	// or positional arguments.
	after bool
}

func (c *cli) verbs() map[string]verb {
	vs := map[string]verb{
		"version": {help: "Print the versions of xvsctl and of the running xvsd, the API version, and how xvsd runs.",
			run: (*cli).version},
		"port list": {help: "List the ports of the switch.\n\nColumns: NAME, TYPE (afxdp, tap, vhostuser, ...), DEV (device; the socket of a vhostuser\nport, whose mode is in -o json), VSID (0 = non-virtualized, " + vsidRange + " = virtual\nsubnet), MAC, MTU and the WORKER polling it.",
			run: (*cli).portList},
		"stats": {args: "[PORT]", nargs: [2]int{0, 1},
			help: "Show the counters of one port, or of all ports.\n\nRX/TX frames and bytes are what the switch received from and sent to the port.\nDrops are by reason; only non-zero reasons are shown in the table, all of them\nin JSON (-o json).",
			run:  (*cli).stats},
		"port add": {args: "NAME --type afxdp|tap --dev DEV --vsid N [--fast-path] [--threaded-napi]\n   or: xvsctl port add NAME --type vhostuser --socket PATH [--server|--client] --vsid N", nargs: [2]int{1, 1},
			help: portAddHelp, setup: portFlags(true), run: (*cli).portAdd},
		"port del": {args: "NAME", nargs: [2]int{1, 1},
			help: "Detach port NAME from the running switch and release its device (an AF_XDP port\nleaves no XDP program behind; a TAP device xvsd created is removed; a vhostuser port\ndisconnects its VM and removes the socket it listened on).",
			run:  (*cli).portDel},
		"port set": {args: "NAME --vsid N", nargs: [2]int{1, 1},
			help:  "Move port NAME to another VSID. The MACs it had learned are forgotten.",
			setup: portFlags(false), run: (*cli).portSet},
		"trace": {args: "--port P --frame HEX",
			help: "Show what each stage of the pipeline (ingress, proxy, extensions, route, forwarding,\negress) would decide for a frame arriving on port P, without sending it, learning\nfrom it or counting it. The frame is hex, spaces and colons allowed (e.g. copied\nfrom tshark -x).",
			setup: func(fs *flag.FlagSet) {
				fs.String("port", "", "ingress port")
				fs.String("frame", "", "the frame in hex, Ethernet header first")
			},
			run: (*cli).trace},
		"mac list": {help: "List the MAC addresses the switch has learned, per VSID, with the port\nthey are behind and the seconds since they were last seen.",
			run: (*cli).macList},
	}
	policyVerbs(vs)
	extensionVerbs(vs)
	return vs
}

// interspersed lets flags follow positional arguments (port add NAME --type ...).
func interspersed(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return fs.Parse(pos)
}

func (c *cli) dispatch(args []string) error {
	vs := c.verbs()
	name := args[0]
	rest := args[1:]
	if _, ok := vs[name]; !ok && len(args) > 1 {
		if _, ok := vs[args[0]+" "+args[1]]; ok {
			name, rest = args[0]+" "+args[1], args[2:]
		}
	}
	v, ok := vs[name]
	if !ok {
		// "xvsctl lookup-record" alone, or with --help: name its verbs.
		var subs []string
		for k := range vs {
			if strings.HasPrefix(k, args[0]+" ") {
				subs = append(subs, "xvsctl "+k)
			}
		}
		if len(subs) > 0 {
			sort.Strings(subs)
			return usagef("%s: say what to do:\n  %s\n(each takes --help)", args[0], strings.Join(subs, "\n  "))
		}
		return usagef("unknown verb %q (see xvsctl --help)", strings.Join(args[:min(2, len(args))], " "))
	}
	fs := flag.NewFlagSet("xvsctl "+name, flag.ContinueOnError)
	fs.SetOutput(c.out)
	fs.Usage = func() {
		fmt.Fprintf(c.out, "Usage: xvsctl [-o table|json] %s %s\n\n%s\n", name, v.args, v.help)
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintln(c.out, "\nFlags:")
			fs.PrintDefaults()
		}
	}
	if v.setup != nil {
		v.setup(fs)
	}
	if v.after {
		for i, a := range rest {
			if a == "--" {
				rest, c.after = rest[:i], rest[i+1:]
				break
			}
		}
	}
	if err := interspersed(fs, rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if n := fs.NArg(); n < v.nargs[0] || n > v.nargs[1] {
		if v.nargs[1] == 0 {
			return usagef("%s takes no arguments, got %q", name, fs.Args())
		}
		return usagef("%s: want %s, got %q", name, v.args, fs.Args())
	}
	return v.run(c, fs)
}

func (c *cli) json(v any) error {
	enc := json.NewEncoder(c.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (c *cli) table() *tabwriter.Writer { return tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0) }

func (c *cli) version(fs *flag.FlagSet) error {
	var v api.VersionInfo
	if err := c.client.Do("GET", "/version", nil, &v); err != nil {
		return err
	}
	if c.format == "json" {
		return c.json(map[string]any{"xvsctl": version, "xvsd": v})
	}
	fmt.Fprintf(c.out, "xvsctl %s\nxvsd   %s (API %s, %d workers, %s polling, up since %s)\n",
		version, v.Version, v.API, v.Workers, v.Poll, v.Started.Format("2006-01-02 15:04:05"))
	return nil
}

func vsidString(v uint32) string {
	if v == api.VSIDUnassigned {
		return "none"
	}
	return strconv.FormatUint(uint64(v), 10)
}

func (c *cli) portList(fs *flag.FlagSet) error {
	var ps []api.Port
	if err := c.client.Do("GET", "/ports", nil, &ps); err != nil {
		return err
	}
	if c.format == "json" {
		if ps == nil {
			ps = []api.Port{}
		}
		return c.json(ps)
	}
	tw := c.table()
	fmt.Fprintln(tw, "NAME\tTYPE\tDEV\tVSID\tMAC\tMTU\tWORKER\tFAST-PATH")
	for _, p := range ps {
		fp := "no"
		if p.FastPath {
			fp = "yes"
		}
		dev := p.Dev
		if dev == "" {
			dev = p.Socket // a vhostuser port
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", p.Name, dash(p.Type), dash(dev), vsidString(p.VSID), dash(p.MAC), p.MTU, p.Worker, fp)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (c *cli) stats(fs *flag.FlagSet) error {
	path := "/stats"
	if fs.NArg() == 1 {
		path += "?port=" + api.PathEscape(fs.Arg(0))
	}
	var st []api.PortStats
	if err := c.client.Do("GET", path, nil, &st); err != nil {
		return err
	}
	if c.format == "json" {
		if st == nil {
			st = []api.PortStats{}
		}
		return c.json(st)
	}
	tw := c.table()
	fmt.Fprintln(tw, "PORT\tVSID\tRX FRAMES\tRX BYTES\tTX FRAMES\tTX BYTES\tFAST-PATH RX/TX\tDROPS")
	for _, s := range st {
		var reasons []string
		for r, n := range s.Drops {
			if n != 0 {
				reasons = append(reasons, fmt.Sprintf("%s=%d", r, n))
			}
		}
		sort.Strings(reasons)
		drops := "0"
		if len(reasons) > 0 {
			drops = strings.Join(reasons, " ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d/%d\t%s\n", s.Name, vsidString(s.VSID), s.RxFrames, s.RxBytes, s.TxFrames, s.TxBytes, s.OffloadRxFrames, s.OffloadTxFrames, drops)
	}
	return tw.Flush()
}

func (c *cli) macList(fs *flag.FlagSet) error {
	var ms []api.MACEntry
	if err := c.client.Do("GET", "/macs", nil, &ms); err != nil {
		return err
	}
	if c.format == "json" {
		if ms == nil {
			ms = []api.MACEntry{}
		}
		return c.json(ms)
	}
	tw := c.table()
	fmt.Fprintln(tw, "VSID\tMAC\tPORT\tAGE(s)")
	for _, m := range ms {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\n", m.VSID, m.MAC, m.Port, m.Age)
	}
	return tw.Flush()
}

var portAddHelp = `Attach a device, or a VM's vhost-user socket, to the running switch as port
NAME. Traffic on other ports is not interrupted. --vsid is required: 0 for
non-virtualized traffic, ` + vsidRange + ` for a virtual subnet.

Types:
  afxdp      a NIC or veth (--dev), through an AF_XDP socket
  tap        a TAP device (--dev) for a VM; created if it does not exist
  vhostuser  a VM's virtio-net device, served over a unix socket (--socket;
             no --dev): QEMU's -netdev vhost-user, or DPDK's virtio-user.
             A relative PATH is taken from the current directory.

A vhostuser port has one of two modes:
  --server   (the default) xvs listens on PATH (its directory is created,
             the socket is removed with the port) and QEMU connects, with a
             chardev without server=on:
               -chardev socket,id=chr0,path=PATH
  --client   QEMU listens and xvs connects to it, waiting for QEMU if it is
             not there yet and connecting again when QEMU restarts:
               -chardev socket,id=chr0,path=PATH,server=on,wait=off
In both, QEMU shares the guest memory (of the VM's size, -m) and attaches
the NIC to the chardev:
  -m 256M -object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem
  -netdev vhost-user,id=net0,chardev=chr0
  -device virtio-net-pci,netdev=net0,mac=02:00:00:00:00:01,vectors=0
(give the same MAC to --mac). DPDK, in server mode:
  dpdk-testpmd --no-huge -m 256 --no-pci --file-prefix=vm1 \
    --vdev=net_virtio_user0,path=PATH -- -i --total-num-mbufs=2048

Examples:
  xvsctl port add vm5 --type afxdp --dev veth5 --vsid 5001 --fast-path
  xvsctl port add vm1 --type vhostuser --socket /run/xvs/vm1.sock --server --vsid 5001
  xvsctl port add vm2 --type vhostuser --socket /run/xvs/vm2.sock --client --vsid 5001`

// portFlags registers --vsid (and the flags of port add when adding). A
// VSID left unset is an error, not a silent 0.
func portFlags(add bool) func(fs *flag.FlagSet) {
	return func(fs *flag.FlagSet) {
		if add {
			fs.String("type", "", "port type: afxdp, tap or vhostuser")
			fs.String("dev", "", "device to attach: a NIC or veth for afxdp, a TAP name for tap")
			fs.Bool("fast-path", false, "afxdp: forward learned unicast between fast-path ports in the kernel (XDP_REDIRECT);\nthe device must accept redirected frames (a NIC, or a veth whose peer has GRO on or an XDP program)")
			fs.Bool("threaded-napi", false, "afxdp: the device polls in kernel threads (threaded NAPI), so its XDP program runs on a free core:\nmore TCP throughput when the sending VM's CPU is the bottleneck; recommended for veths with --fast-path")
			fs.String("socket", "", "vhostuser: the vhost-user unix socket (made absolute from the current directory)")
			fs.Bool("server", false, "vhostuser: xvs listens on the socket, QEMU connects (chardev without server=on); the default")
			fs.Bool("client", false, "vhostuser: QEMU listens (chardev server=on,wait=off), xvs connects and reconnects")
			fs.String("mac", "", "vhostuser: the VM NIC's MAC, as QEMU's virtio-net-pci mac= (default: derived from NAME)")
			fs.Int("queues", 0, "vhostuser: queue pairs offered, as QEMU's vhost-user queues= (default 1)")
		}
		fs.String("vsid", "", "virtual subnet ID: 0 (non-virtualized) or "+vsidRange)
	}
}

func vsidFlag(fs *flag.FlagSet) (*uint32, error) {
	s := fs.Lookup("vsid").Value.String()
	if s == "" {
		return nil, usagef("--vsid is required: 0 for non-virtualized traffic or %s", vsidRange)
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || (v != uint64(api.VSIDNone) && !header.ValidVSID(uint32(v))) {
		return nil, usagef("--vsid %q: want 0 or %s", s, vsidRange)
	}
	u := uint32(v)
	return &u, nil
}

// typeVhostUser is the port type whose flags differ: --socket instead of --dev.
const typeVhostUser = api.TypeVhostUser

func (c *cli) portAdd(fs *flag.FlagSet) error {
	vsid, err := vsidFlag(fs)
	if err != nil {
		return err
	}
	str := func(name string) string { return fs.Lookup(name).Value.String() }
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	req := api.AddPort{Name: fs.Arg(0), Type: str("type"), Dev: str("dev"), VSID: vsid, FastPath: str("fast-path") == "true",
		ThreadedNAPI: str("threaded-napi") == "true"}
	server, client := str("server") == "true", str("client") == "true"
	switch {
	case req.Type == "":
		return usagef("--type is required: afxdp, tap or vhostuser")
	case server && client:
		return usagef("--server and --client exclude each other: --server (the default) when xvs listens on the socket, --client when QEMU does (server=on)")
	case req.Type != typeVhostUser:
		for _, f := range []string{"socket", "server", "client", "mac", "queues"} {
			if set[f] {
				return usagef("--%s: only --type %s ports take it (%s ports attach to --dev)", f, typeVhostUser, req.Type)
			}
		}
		if req.Dev == "" {
			return usagef("--dev is required: the device to attach")
		}
	case set["dev"]:
		return usagef("--dev: a %s port has no device: give --socket", typeVhostUser)
	case req.FastPath:
		return usagef("--fast-path: only afxdp ports have a fast path")
	case req.ThreadedNAPI:
		return usagef("--threaded-napi: only afxdp ports poll a device's NAPI")
	case str("socket") == "":
		return usagef("--socket is required for --type %s: the path of the vhost-user socket", typeVhostUser)
	default:
		sock, err := filepath.Abs(str("socket"))
		if err != nil {
			return usagef("--socket %q: %v", str("socket"), err)
		}
		q, _ := strconv.Atoi(str("queues"))
		if set["queues"] && q < 1 {
			return usagef("--queues %d: want 1 or more queue pairs", q)
		}
		req.Socket, req.MAC, req.Queues = sock, str("mac"), q
		req.Mode = api.ModeServer
		if client {
			req.Mode = api.ModeClient
		}
	}
	var p api.Port
	if err := c.client.Do("POST", "/ports", req, &p); err != nil {
		return err
	}
	if c.format == "json" {
		return c.json(p)
	}
	if p.Socket != "" {
		fmt.Fprintf(c.out, "port %s added: %s %s (%s), VSID %s, MAC %s, MTU %d\n", p.Name, p.Type, p.Socket, p.Mode, vsidString(p.VSID), p.MAC, p.MTU)
		return nil
	}
	fmt.Fprintf(c.out, "port %s added: %s %s, VSID %s, MTU %d\n", p.Name, p.Type, p.Dev, vsidString(p.VSID), p.MTU)
	return nil
}

func (c *cli) portDel(fs *flag.FlagSet) error {
	if err := c.client.Do("DELETE", "/ports/"+api.PathEscape(fs.Arg(0)), nil, nil); err != nil {
		return err
	}
	if c.format != "json" {
		fmt.Fprintf(c.out, "port %s removed\n", fs.Arg(0))
	}
	return nil
}

func (c *cli) portSet(fs *flag.FlagSet) error {
	vsid, err := vsidFlag(fs)
	if err != nil {
		return err
	}
	var p api.Port
	if err := c.client.Do("PATCH", "/ports/"+api.PathEscape(fs.Arg(0)), api.SetPort{VSID: vsid}, &p); err != nil {
		return err
	}
	if c.format == "json" {
		return c.json(p)
	}
	fmt.Fprintf(c.out, "port %s now in VSID %s\n", p.Name, vsidString(p.VSID))
	return nil
}

func (c *cli) trace(fs *flag.FlagSet) error {
	req := api.Trace{Port: fs.Lookup("port").Value.String(), Frame: fs.Lookup("frame").Value.String()}
	if req.Port == "" || req.Frame == "" {
		return usagef("trace: --port and --frame are required")
	}
	var steps []api.TraceStep
	if err := c.client.Do("POST", "/trace", req, &steps); err != nil {
		return err
	}
	if c.format == "json" {
		return c.json(steps)
	}
	tw := c.table()
	fmt.Fprintln(tw, "STAGE\tDECISION")
	for _, s := range steps {
		fmt.Fprintf(tw, "%s\t%s\n", s.Stage, s.Decision)
	}
	return tw.Flush()
}
