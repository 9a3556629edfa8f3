package main

import (
	"flag"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/xvswitch/xvs/api"
	"github.com/xvswitch/xvs/header"
)

// The extension verbs: out-of-process capture, filter and forwarding
// extensions of the switch, as Hyper-V's Get-, Enable- and
// Disable-VMSwitchExtension (and Set-VMSwitchExtensionPortFeature for the
// order) manage them.

func extensionVerbs(vs map[string]verb) {
	vs["extension list"] = verb{
		help: `List the extensions in chain order, the order in which they see a frame.

Columns: POS (0 = first), NAME, KIND (capture, filter or forward; unknown until
first started), STATE (starting, running, failed, stopped), ENABLED (no: loaded
but out of the data path), FAIL (open: a failed extension is skipped; closed:
the frames it would have seen are dropped), DIRECTION (ingress, egress or both),
VSIDS and PORTS it sees (all: no restriction) and RESTARTS after failures.

Example:
  xvsctl extension list`,
		run: (*cli).extensionList}
	vs["extension stats"] = verb{args: "[NAME]", nargs: [2]int{0, 1},
		help: `Show the counters of one extension, or of all: the switch's (frames sent,
verdicts, cached verdicts, drops by reason, verdict latency) and the
extension's own (FROM plugin). -o json gives every field.

Example:
  xvsctl extension stats acl`,
		run: (*cli).extensionStats}
	vs["extension load"] = verb{args: "NAME PATH [FLAGS] [-- ARGS...]", nargs: [2]int{2, 2}, after: true,
		help: `Start the extension program PATH (relative paths are from the current directory)
as extension NAME and insert it in the chain, by default at the end. Arguments
after -- are the program's. xvsd waits for it to start: an error means it is
not loaded. The kind (capture, filter or forward) is the program's; at most one
forwarding extension per switch. To load it at every start of xvsd, list it under
extensions: in xvsd's configuration instead.

Examples:
  xvsctl extension load acl /usr/local/lib/xvs/aclfilter --fail closed \
      --vsid 5001 --set rules=/etc/xvs/acl.yaml
  xvsctl extension load cap /usr/local/lib/xvs/pcapcapture --position 0 \
      --port vm1,vm2 --direction ingress
  xvsctl extension load mon /opt/mon/xvs-monitor --disabled -- --listen :9100`,
		setup: extensionLoadFlags, run: (*cli).extensionLoad}
	vs["extension unload"] = verb{args: "NAME", nargs: [2]int{1, 1},
		help: `Take extension NAME out of the chain and stop its program. Frames no longer
go to it, whatever its fail mode.

Example:
  xvsctl extension unload acl`,
		run: (*cli).extensionUnload}
	vs["extension enable"] = verb{args: "NAME", nargs: [2]int{1, 1},
		help: `Put a loaded extension back in the data path (Enable-VMSwitchExtension).

Example:
  xvsctl extension enable acl`,
		run: func(c *cli, fs *flag.FlagSet) error { return c.extensionEnable(fs, true) }}
	vs["extension disable"] = verb{args: "NAME", nargs: [2]int{1, 1},
		help: `Take an extension out of the data path without stopping it
(Disable-VMSwitchExtension): frames pass as if it were absent, whatever its fail
mode, until 'xvsctl extension enable NAME'.

Example:
  xvsctl extension disable acl`,
		run: func(c *cli, fs *flag.FlagSet) error { return c.extensionEnable(fs, false) }}
	vs["extension order"] = verb{args: "NAME...", nargs: [2]int{1, 1 << 20},
		help: `Reorder the chain: name every loaded extension once, first to see a frame
first. The new order applies to all frames at once.

Example:
  xvsctl extension order cap acl`,
		run: (*cli).extensionOrder}
}

// listFlag is a flag that can be repeated and takes comma-separated lists.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// settingsFlag collects --set key=value; a key given again replaces its value.
type settingsFlag map[string]string

func (m settingsFlag) String() string {
	var kv []string
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

func (m settingsFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	m[k] = v
	return nil
}

func extensionLoadFlags(fs *flag.FlagSet) {
	fs.String("fail", "", "`open|closed`: while it is failed or restarting, skip it (open) or drop the frames\nit would have seen (closed) (default: closed for a filter, open otherwise)")
	fs.String("direction", "", "`ingress|egress|both`: the frames it sees, from ports (ingress), to ports (egress)\nor both (default both)")
	fs.Var(&listFlag{}, "vsid", "the `VSID`s whose frames it sees (0 = non-virtualized); repeat the flag or separate\nwith commas (default: all)")
	fs.Var(&listFlag{}, "port", "the `PORT`s whose frames it sees; repeat the flag or separate with commas (default: all)")
	fs.Bool("every-frame", false, "a filter or forwarding extension sees every frame, not the first of each flow")
	fs.String("deadline", "", "how long a verdict may take before the extension is declared failed, a `duration`\nsuch as 500ms (default 500ms)")
	fs.String("cache-ttl", "", "how long a cached verdict lives, a `duration` such as 60s or 5m (default 60s)")
	fs.String("ring-size", "", "`N` descriptors per ring, a power of two (default 1024)")
	fs.String("slot-size", "", "`N` frame bytes per descriptor, a multiple of 64 (default 2048)")
	fs.String("position", "", "its place in the chain, `N` = 0 for first (default: last)")
	fs.Var(settingsFlag{}, "set", "a `key=value` of the extension's own configuration; repeat the flag for more")
	fs.Bool("disabled", false, "load it but keep it out of the data path until 'xvsctl extension enable'")
}

// extensionLoadRequest builds the body of POST /v1/extensions from the
// flags, refusing what is certainly wrong as a usage error; the daemon
// checks the rest.
func extensionLoadRequest(fs *flag.FlagSet, after []string) (api.LoadExtension, error) {
	var req api.LoadExtension
	e := &req.Extension
	e.Name = fs.Arg(0)
	path := fs.Arg(1)
	if path == "" {
		return req, usagef("extension load: PATH is empty")
	}
	if !filepath.IsAbs(path) {
		abs, err := filepath.Abs(path)
		if err != nil {
			return req, fmt.Errorf("extension load: %s: %w", path, err)
		}
		path = abs
	}
	e.Path = path
	e.Args = after
	str := func(name string) string { return fs.Lookup(name).Value.String() }
	switch e.Fail = str("fail"); e.Fail {
	case "", "open", "closed":
	default:
		return req, usagef("--fail %q: want open or closed", e.Fail)
	}
	switch e.Direction = str("direction"); e.Direction {
	case "", "ingress", "egress", "both":
	default:
		return req, usagef("--direction %q: want ingress, egress or both", e.Direction)
	}
	for _, s := range *fs.Lookup("vsid").Value.(*listFlag) {
		v, err := strconv.ParseUint(s, 10, 32)
		if err != nil || (v != uint64(api.VSIDNone) && !header.ValidVSID(uint32(v))) {
			return req, usagef("--vsid %q: want 0 or %s", s, vsidRange)
		}
		e.VSIDs = append(e.VSIDs, int64(v))
	}
	e.Ports = *fs.Lookup("port").Value.(*listFlag)
	e.EveryFrame = str("every-frame") == "true"
	for _, d := range []struct {
		flag string
		dst  *string
	}{{"deadline", &e.Deadline}, {"cache-ttl", &e.CacheTTL}} {
		if *d.dst = str(d.flag); *d.dst != "" {
			if _, err := time.ParseDuration(*d.dst); err != nil {
				return req, usagef("--%s %q: want a duration such as 500ms or 2s", d.flag, *d.dst)
			}
		}
	}
	for _, n := range []struct {
		flag string
		dst  *int
	}{{"ring-size", &e.RingSize}, {"slot-size", &e.SlotSize}} {
		if s := str(n.flag); s != "" {
			v, err := strconv.Atoi(s)
			if err != nil || v <= 0 {
				return req, usagef("--%s %q: want a positive number", n.flag, s)
			}
			*n.dst = v
		}
	}
	if s := str("position"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			return req, usagef("--position %q: want 0 (first) or more", s)
		}
		req.Position = &v
	}
	if set := fs.Lookup("set").Value.(settingsFlag); len(set) > 0 {
		e.Config = map[string]string(set)
	}
	if str("disabled") == "true" {
		f := false
		e.Enabled = &f
	}
	return req, nil
}

func (c *cli) extensionLoad(fs *flag.FlagSet) error {
	req, err := extensionLoadRequest(fs, c.after)
	if err != nil {
		return err
	}
	var x *api.ExtensionInfo
	if err := c.client.Do("POST", "/extensions", req, &x); err != nil {
		return err
	}
	if c.format == "json" {
		return c.json(x)
	}
	if x == nil {
		fmt.Fprintf(c.out, "extension %s loaded\n", req.Name)
		return nil
	}
	fmt.Fprintf(c.out, "extension %s loaded: %s at position %d, %s, %s, fail %s\n", x.Name, x.Kind, x.Position, x.State, enabledWord(x.Enabled), x.Fail)
	return nil
}

func enabledWord(b bool) string {
	if b {
		return "enabled"
	}
	return "disabled"
}

func (c *cli) extensionUnload(fs *flag.FlagSet) error {
	if err := c.client.Do("DELETE", "/extensions/"+api.PathEscape(fs.Arg(0)), nil, nil); err != nil {
		return err
	}
	if c.format != "json" {
		fmt.Fprintf(c.out, "extension %s unloaded\n", fs.Arg(0))
	}
	return nil
}

func (c *cli) extensionEnable(fs *flag.FlagSet, enable bool) error {
	action := "disable"
	if enable {
		action = "enable"
	}
	var x *api.ExtensionInfo
	if err := c.client.Do("POST", "/extensions/"+api.PathEscape(fs.Arg(0))+"/"+action, nil, &x); err != nil {
		return err
	}
	if c.format == "json" {
		return c.json(x)
	}
	fmt.Fprintf(c.out, "extension %s %s\n", fs.Arg(0), enabledWord(enable))
	return nil
}

func (c *cli) extensionOrder(fs *flag.FlagSet) error {
	var xs []api.ExtensionInfo
	if err := c.client.Do("PUT", "/extensions/order", api.OrderExtensions{Names: fs.Args()}, &xs); err != nil {
		return err
	}
	return c.extensionTable(xs)
}

func (c *cli) extensionList(fs *flag.FlagSet) error {
	var xs []api.ExtensionInfo
	if err := c.client.Do("GET", "/extensions", nil, &xs); err != nil {
		return err
	}
	return c.extensionTable(xs)
}

func (c *cli) extensionTable(xs []api.ExtensionInfo) error {
	if xs == nil {
		xs = []api.ExtensionInfo{}
	}
	if c.format == "json" {
		return c.json(xs)
	}
	tw := c.table()
	fmt.Fprintln(tw, "POS\tNAME\tKIND\tSTATE\tENABLED\tFAIL\tDIRECTION\tVSIDS\tPORTS\tRESTARTS")
	for _, x := range xs {
		var vsids []string
		for _, v := range x.VSIDs {
			vsids = append(vsids, strconv.FormatUint(uint64(v), 10))
		}
		en := "no"
		if x.Enabled {
			en = "yes"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", x.Position, x.Name, dash(x.Kind), dash(x.State), en, dash(x.Fail), dash(x.Directions),
			allIfEmpty(vsids), allIfEmpty(x.Ports), x.Restarts)
	}
	return tw.Flush()
}

func allIfEmpty(l []string) string {
	if len(l) == 0 {
		return "all"
	}
	return strings.Join(l, ",")
}

func (c *cli) extensionStats(fs *flag.FlagSet) error {
	var xs []api.ExtensionInfo
	if fs.NArg() == 1 {
		var x api.ExtensionInfo
		if err := c.client.Do("GET", "/extensions/"+api.PathEscape(fs.Arg(0)), nil, &x); err != nil {
			return err
		}
		xs = append(xs, x)
	} else {
		if err := c.client.Do("GET", "/extensions", nil, &xs); err != nil {
			return err
		}
		// The list has the switch's counters; each extension's own come
		// with its stats (kept from the list if it went in between).
		for i := range xs {
			var x api.ExtensionInfo
			if c.client.Do("GET", "/extensions/"+api.PathEscape(xs[i].Name), nil, &x) == nil {
				xs[i] = x
			}
		}
	}
	if c.format == "json" {
		if xs == nil {
			xs = []api.ExtensionInfo{}
		}
		return c.json(xs)
	}
	tw := c.table()
	fmt.Fprintln(tw, "EXTENSION\tFROM\tCOUNTER\tVALUE")
	for _, x := range xs {
		for _, from := range []struct {
			name string
			m    map[string]uint64
		}{{"switch", x.Counters}, {"plugin", x.Plugin}} {
			keys := make([]string, 0, len(from.m))
			for k := range from.m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", x.Name, from.name, k, from.m[k])
			}
		}
		if x.LastError != "" {
			fmt.Fprintf(tw, "%s\tswitch\tlast-error\t%s\n", x.Name, x.LastError)
		}
	}
	return tw.Flush()
}
