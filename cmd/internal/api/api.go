// Package api is the control API between xvsd and xvsctl: JSON over HTTP on
// a unix socket, every path under a version prefix so that old clients get
// a clear error instead of a misread answer when the API changes.
//
//	GET    /v1/version           VersionInfo
//	GET    /v1/ports             []Port
//	POST   /v1/ports             AddPort -> Port
//	PATCH  /v1/ports/{name}      SetPort -> Port
//	DELETE /v1/ports/{name}
//	GET    /v1/stats[?port=NAME] []vswitch.PortStats
//	GET    /v1/macs              []vswitch.MACEntry
//	POST   /v1/trace             Trace -> []vswitch.TraceStep
//	GET    /v1/policy            wnv.PolicyConfig
//	POST   /v1/policy/{kind}     one object (add); DELETE removes it
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

	"github.com/xvswitch/xvs/vswitch"
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
// created.
type Port struct {
	vswitch.PortInfo
	Type     string `json:"type"`
	Dev      string `json:"dev,omitempty"`
	FastPath bool   `json:"fast_path"`
}

// AddPort is the body of POST /v1/ports. VSID is a pointer so that a
// missing VSID is an error rather than a silent 0 (non-virtualized).
type AddPort struct {
	Name     string  `json:"name"`
	Type     string  `json:"type"`
	Dev      string  `json:"dev"`
	VSID     *uint32 `json:"vsid"`
	FastPath bool    `json:"fast_path,omitempty"`
}

// SetPort is the body of PATCH /v1/ports/{name}.
type SetPort struct {
	VSID *uint32 `json:"vsid"`
}

// Trace is the body of POST /v1/trace: a frame, in hex, as if it arrived
// on Port. The answer is []vswitch.TraceStep.
type Trace struct {
	Port  string `json:"port"`
	Frame string `json:"frame"`
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

// PathEscape escapes a port name for a path.
func PathEscape(s string) string { return url.PathEscape(s) }
