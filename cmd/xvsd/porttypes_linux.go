package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/xvswitch/xvs/api"
	"github.com/xvswitch/xvs/ports"
	"github.com/xvswitch/xvs/ports/afxdp"
	"github.com/xvswitch/xvs/ports/tap"
	"github.com/xvswitch/xvs/ports/vhostuser"
	"github.com/xvswitch/xvs/vswitch"
)

func init() {
	portTypes[typeAFXDP] = func(d *daemon, s portSpec) (ports.Port, error) {
		cfg := afxdp.Config{Name: s.Name, Dev: s.Dev, Logger: d.log.With().Str("port", s.Name).Logger()}
		if s.FastPath {
			if d.fastPath == nil {
				return nil, fmt.Errorf("fast_path: unavailable: %v", d.fastPathErr)
			}
			cfg.FastPath = d.fastPath.fp
		}
		cfg.ThreadedNAPI = s.ThreadedNAPI
		return afxdp.New(cfg)
	}
	portTypes["tap"] = func(d *daemon, s portSpec) (ports.Port, error) {
		return tap.New(tap.Config{Name: s.Name, Dev: s.Dev, Logger: d.log.With().Str("port", s.Name).Logger()})
	}
	portTypes[typeVhostUser] = newVhostUser
	maxQueues = vhostuser.MaxQueuePairs
	newOffload = func(log zerolog.Logger) (*fastPath, error) {
		fp, err := afxdp.NewFastPath(1 << 16)
		if err != nil {
			return nil, err
		}
		return &fastPath{fp: fp, log: log.Sample(&zerolog.BasicSampler{N: 1000})}, nil
	}
}

// newVhostUser creates a vhost-user port. In server mode the socket's
// directory is created if need be (as for api_socket), and the socket is
// removed when the port is; in client mode the port connects to QEMU's
// socket, waiting for it and reconnecting with backoff.
func newVhostUser(d *daemon, s portSpec) (ports.Port, error) {
	cfg := vhostuser.Config{
		Name:       s.Name,
		Socket:     s.Socket,
		Server:     s.Mode != api.ModeClient,
		QueuePairs: s.Queues,
		Logger:     d.log, // its events name the port
	}
	if s.MAC != "" {
		mac, err := net.ParseMAC(s.MAC)
		if err != nil {
			return nil, fmt.Errorf("mac: %q: %w", s.MAC, err)
		}
		cfg.MAC = mac
	}
	if cfg.Server {
		if err := os.MkdirAll(filepath.Dir(s.Socket), 0o755); err != nil {
			return nil, fmt.Errorf("socket: %s: %w", s.Socket, err)
		}
	}
	p, err := vhostuser.New(cfg)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// fastPath tells the AF_XDP ports' in-kernel fast path what the switch
// learns. Errors are logged (sampled): a station the fast path misses is
// still forwarded by the switch.
type fastPath struct {
	fp  *afxdp.FastPath
	log zerolog.Logger
}

var _ vswitch.Offload = (*fastPath)(nil)

func (f *fastPath) Learn(vsid uint32, mac uint64, p ports.Port) {
	ap, _ := p.(*afxdp.Port)
	if err := f.fp.Learn(vsid, mac, ap); err != nil {
		f.log.Warn().Err(err).Msg("fast path")
	}
}

func (f *fastPath) Forget(vsid uint32, mac uint64) {
	if err := f.fp.Forget(vsid, mac); err != nil {
		f.log.Warn().Err(err).Msg("fast path")
	}
}

func (f *fastPath) SetVSID(p ports.Port, vsid uint32) {
	ap, ok := p.(*afxdp.Port)
	if !ok {
		return
	}
	if err := f.fp.SetVSID(ap, vsid, vsid != vswitch.VSIDUnassigned); err != nil {
		f.log.Warn().Err(err).Msg("fast path")
	}
}

func (f *fastPath) close() { f.fp.Close() }
