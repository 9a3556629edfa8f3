package main

import (
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strings"

	"github.com/xvswitch/xvs/api"
	"github.com/xvswitch/xvs/ports"
)

// portSpec is one port to create: an entry of ports: in the config file,
// or the body of POST /v1/ports. check says which fields its type takes.
type portSpec struct {
	Name     string
	Type     string
	Dev      string // the device (every type but vhostuser)
	FastPath bool   // afxdp: forward learned unicast in the kernel
	// afxdp: the device's NAPI in kernel threads (afxdp.Config.ThreadedNAPI)
	ThreadedNAPI bool

	// vhostuser:
	Socket string // absolute path of the vhost-user socket
	Mode   string // api.ModeServer ("" before check) or api.ModeClient
	MAC    string // the VM NIC's address; "" derives one from Name
	Queues int    // queue pairs offered; 0 before check means 1
}

// The port types with settings of their own.
const (
	typeAFXDP     = api.TypeAFXDP
	typeVhostUser = api.TypeVhostUser
)

// maxSocketLen is the longest unix socket path (sun_path less its NUL).
const maxSocketLen = 107

// maxQueues bounds the queue pairs of a vhostuser port; set by the
// platform's port types.
var maxQueues = 1

// portFactory creates a port of one type from a spec that passed check.
type portFactory func(d *daemon, s portSpec) (ports.Port, error)

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

// check validates s and fills its defaults (Mode, Queues) and canonical
// forms (Socket, MAC); a second call changes nothing. Errors begin with
// the field's name (the config file's key) and give the value.
func (s *portSpec) check() error {
	if _, ok := portTypes[s.Type]; !ok {
		return fmt.Errorf("type: %q: want one of %s", s.Type, portTypeList())
	}
	if s.Type != typeAFXDP {
		switch {
		case s.FastPath:
			return fmt.Errorf("fast_path: only %s ports have a fast path", typeAFXDP)
		case s.ThreadedNAPI:
			return fmt.Errorf("threaded_napi: only %s ports poll a device's NAPI", typeAFXDP)
		}
	}
	if s.Type != typeVhostUser {
		switch {
		case s.Dev == "":
			return fmt.Errorf("dev: missing: name the device the %s port attaches to", s.Type)
		case s.Socket != "":
			return fmt.Errorf("socket: %q: only %s ports have a socket (%s ports attach to dev)", s.Socket, typeVhostUser, s.Type)
		case s.Mode != "":
			return fmt.Errorf("mode: %q: only %s ports have a mode", s.Mode, typeVhostUser)
		case s.MAC != "":
			return fmt.Errorf("mac: %q: only %s ports take a MAC (%s ports have their device's)", s.MAC, typeVhostUser, s.Type)
		case s.Queues != 0:
			return fmt.Errorf("queues: %d: only %s ports take queues", s.Queues, typeVhostUser)
		}
		return nil
	}
	switch {
	case s.Dev != "":
		return fmt.Errorf("dev: %q: a %s port has no device: give its socket", s.Dev, typeVhostUser)
	case s.Socket == "":
		return fmt.Errorf("socket: missing: give the path of the %s socket, such as /run/xvs/%s.sock", typeVhostUser, s.Name)
	case !filepath.IsAbs(s.Socket):
		return fmt.Errorf("socket: %q: want an absolute path", s.Socket)
	}
	s.Socket = filepath.Clean(s.Socket)
	if len(s.Socket) > maxSocketLen {
		return fmt.Errorf("socket: %q: too long for a unix socket (%d bytes, at most %d)", s.Socket, len(s.Socket), maxSocketLen)
	}
	switch s.Mode {
	case "":
		s.Mode = api.ModeServer
	case api.ModeServer, api.ModeClient:
	default:
		return fmt.Errorf("mode: %q: want %s (xvs listens, QEMU connects) or %s (QEMU listens with server=on, xvs connects)", s.Mode, api.ModeServer, api.ModeClient)
	}
	if s.MAC != "" {
		mac, err := net.ParseMAC(s.MAC)
		if err != nil {
			return fmt.Errorf("mac: %q: want an EUI-48 address such as 02:00:00:00:00:01", s.MAC)
		}
		if err := ports.CheckMAC(mac); err != nil {
			return fmt.Errorf("mac: %q: %w", s.MAC, err)
		}
		s.MAC = mac.String()
	}
	switch {
	case s.Queues == 0:
		s.Queues = 1
	case s.Queues < 0 || s.Queues > maxQueues:
		return fmt.Errorf("queues: %d: want 1..%d queue pairs", s.Queues, maxQueues)
	}
	return nil
}
