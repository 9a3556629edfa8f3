package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/xvswitch/xvs/ports"
)

// portFactory creates a port of one type from its name and device.
type portFactory func(d *daemon, name, dev string, fastPath bool) (ports.Port, error)

// portTypes are the port types xvsd can create, by the name used in the
// config file and in `xvsctl port add --type`.
var portTypes = map[string]portFactory{}

func portTypeList() string {
	var names []string
	for n := range portTypes {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "(none built in)"
	}
	return strings.Join(names, ", ")
}

func newPort(d *daemon, typ, name, dev string, fastPath bool) (ports.Port, error) {
	f, ok := portTypes[typ]
	if !ok {
		return nil, fmt.Errorf("type: %q: want one of %s", typ, portTypeList())
	}
	if dev == "" {
		return nil, fmt.Errorf("dev: missing: name the device the %s port attaches to", typ)
	}
	return f(d, name, dev, fastPath)
}
