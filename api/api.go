// Package api is the control API between xvsd and xvsctl: JSON over HTTP on
// a unix socket, every path under a version prefix so that old clients get
// a clear error instead of a misread answer when the API changes.
//
// It owns every type that crosses the socket, the switch's answers
// (PortInfo, PortStats, MACEntry, TraceStep, ExtensionInfo) included:
// package vswitch returns these types, so the package uses the standard
// library only and sits below vswitch, and a client (xvsctl) links no data
// plane.
//
//	GET    /v1/version           VersionInfo
//	GET    /v1/ports             []Port
//	POST   /v1/ports             AddPort -> Port
//	PATCH  /v1/ports/{name}      SetPort -> Port
//	DELETE /v1/ports/{name}
//	GET    /v1/stats[?port=NAME] []PortStats
//	GET    /v1/macs              []MACEntry
//	POST   /v1/trace             Trace -> []TraceStep
//	GET    /v1/policy            wnv.PolicyConfig
//	POST   /v1/policy/{kind}     one object (add); DELETE removes it
//	GET    /v1/extensions        []ExtensionInfo, in chain order
//	POST   /v1/extensions        LoadExtension -> ExtensionInfo
//	GET    /v1/extensions/{name} ExtensionInfo with the plugin's counters
//	DELETE /v1/extensions/{name}
//	POST   /v1/extensions/{name}/enable, /disable -> ExtensionInfo
//	PUT    /v1/extensions/order  OrderExtensions -> []ExtensionInfo
//
// Errors come back with a 4xx/5xx status and an Error body.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Version is the API version: the path prefix is "/" + Version.
const Version = "v1"

// DefaultSocket is where xvsd listens and xvsctl connects by default.
const DefaultSocket = "/run/xvs/xvsd.sock"

// VersionInfo answers GET /v1/version.
type VersionInfo struct {
	Version string    `json:"version"`
	API     string    `json:"api"`
	Started time.Time `json:"started"`
	Workers int       `json:"workers"`
	Poll    string    `json:"poll_mode"`
}

// Port is a port as the daemon knows it: the switch's view plus how it was
// created. A vhostuser port has a Socket, its Mode and its Queues instead
// of a Dev; its MAC (in PortInfo) is the VM NIC's.
type Port struct {
	PortInfo
	Type         string `json:"type"`
	Dev          string `json:"dev,omitempty"`
	FastPath     bool   `json:"fast_path"`
	ThreadedNAPI bool   `json:"threaded_napi,omitempty"`
	Socket       string `json:"socket,omitempty"`
	Mode         string `json:"mode,omitempty"`   // ModeServer or ModeClient
	Queues       int    `json:"queues,omitempty"` // queue pairs offered
}

// AddPort is the body of POST /v1/ports. VSID is a pointer so that a
// missing VSID is an error rather than a silent 0 (non-virtualized).
//
// A vhostuser port takes Socket (an absolute path) instead of Dev, and
// optionally Mode ("" is ModeServer), MAC (the VM NIC's address, as given
// to QEMU's virtio-net-pci mac=; "" derives one from the name) and Queues
// (queue pairs, 0 means 1); the other types refuse these fields.
type AddPort struct {
	Name         string  `json:"name"`
	Type         string  `json:"type"`
	Dev          string  `json:"dev,omitempty"`
	VSID         *uint32 `json:"vsid"`
	FastPath     bool    `json:"fast_path,omitempty"`
	ThreadedNAPI bool    `json:"threaded_napi,omitempty"` // afxdp only
	Socket       string  `json:"socket,omitempty"`
	Mode         string  `json:"mode,omitempty"`
	MAC          string  `json:"mac,omitempty"`
	Queues       int     `json:"queues,omitempty"`
}

// Port types whose settings differ (Port.Type, AddPort.Type).
const (
	// TypeAFXDP: a device through AF_XDP; the only type with a fast path
	// and a device NAPI to thread.
	TypeAFXDP = "afxdp"
	// TypeVhostUser: a VM's virtio-net device over a unix socket; Socket
	// instead of Dev.
	TypeVhostUser = "vhostuser"
)

// The modes of a vhostuser port (Port.Mode, AddPort.Mode).
const (
	// ModeServer: xvs listens on the socket and the front-end connects
	// (QEMU -chardev socket,path=... without server=on).
	ModeServer = "server"
	// ModeClient: the front-end listens (QEMU -chardev
	// socket,path=...,server=on,wait=off) and xvs connects, and connects
	// again whenever the connection drops.
	ModeClient = "client"
)

// SetPort is the body of PATCH /v1/ports/{name}.
type SetPort struct {
	VSID *uint32 `json:"vsid"`
}

// Trace is the body of POST /v1/trace: a frame, in hex, as if it arrived
// on Port. The answer is []TraceStep.
type Trace struct {
	Port  string `json:"port"`
	Frame string `json:"frame"`
}

// Extension is one out-of-process switch extension to load: an entry of
// xvsd's extensions: list (the YAML keys are the JSON names) and, with a
// position, the body of POST /v1/extensions. Empty fields take the
// defaults of package extensions.
type Extension struct {
	Name       string   `json:"name" yaml:"name"`
	Path       string   `json:"path" yaml:"path"` // absolute
	Args       []string `json:"args,omitempty" yaml:"args"`
	Fail       string   `json:"fail,omitempty" yaml:"fail"`           // open or closed; "": closed for filters, open otherwise
	Direction  string   `json:"direction,omitempty" yaml:"direction"` // ingress, egress or both ("")
	VSIDs      []int64  `json:"vsids,omitempty" yaml:"vsids"`         // empty: all
	Ports      []string `json:"ports,omitempty" yaml:"ports"`         // empty: all
	EveryFrame bool     `json:"every-frame,omitempty" yaml:"every-frame"`
	Deadline   string   `json:"deadline,omitempty" yaml:"deadline"`   // Go duration, e.g. 500ms
	CacheTTL   string   `json:"cache-ttl,omitempty" yaml:"cache-ttl"` // Go duration, e.g. 60s
	RingSize   int      `json:"ring-size,omitempty" yaml:"ring-size"`
	SlotSize   int      `json:"slot-size,omitempty" yaml:"slot-size"`
	Enabled    *bool    `json:"enabled,omitempty" yaml:"enabled"` // nil: true
	// Config is handed to the extension. The config file accepts any
	// scalar (xvsd decodes it itself, hence no YAML key here).
	Config map[string]string `json:"config,omitempty" yaml:"-"`
}

// LoadExtension is the body of POST /v1/extensions. Position is 0-based
// in the chain; nil or -1 loads the extension at the end.
type LoadExtension struct {
	Extension
	Position *int `json:"position,omitempty"`
}

// OrderExtensions is the body of PUT /v1/extensions/order: every loaded
// extension, each once, in the new chain order.
type OrderExtensions struct {
	Names []string `json:"names"`
}

// Error is the body of every failed request.
type Error struct {
	Error string `json:"error"`
}

// Client talks to xvsd.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client for the daemon listening on socket.
func NewClient(socket string) *Client {
	return &Client{
		socket: socket,
		hc: &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, "unix", socket)
				},
			},
		},
	}
}

// Do sends a request with an optional JSON body and decodes the answer into
// out (when not nil).
func (c *Client) Do(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, "http://xvsd/"+Version+path, body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("cannot reach xvsd: socket %s does not exist (is xvsd running? see --socket)", c.socket)
			}
			if errors.Is(err, os.ErrPermission) {
				return fmt.Errorf("cannot reach xvsd at %s: permission denied (the control socket is root only)", c.socket)
			}
		}
		return fmt.Errorf("cannot reach xvsd at %s: %w", c.socket, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer of xvsd: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e Error
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("xvsd answered %s", resp.Status)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode answer of xvsd: %w", err)
	}
	return nil
}

// PathEscape escapes a port or extension name for a path.
func PathEscape(s string) string { return url.PathEscape(s) }
