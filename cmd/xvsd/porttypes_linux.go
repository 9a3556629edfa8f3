package main

import (
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/xvswitch/xvs/ports"
	"github.com/xvswitch/xvs/ports/afxdp"
	"github.com/xvswitch/xvs/ports/tap"
	"github.com/xvswitch/xvs/vswitch"
)

func init() {
	portTypes["afxdp"] = func(d *daemon, name, dev string, fastPath bool) (ports.Port, error) {
		cfg := afxdp.Config{Name: name, Dev: dev, Logger: d.log.With().Str("port", name).Logger()}
		if fastPath {
			if d.fastPath == nil {
				return nil, fmt.Errorf("fast_path: unavailable: %v", d.fastPathErr)
			}
			cfg.FastPath = d.fastPath.fp
		}
		return afxdp.New(cfg)
	}
	portTypes["tap"] = func(d *daemon, name, dev string, fastPath bool) (ports.Port, error) {
		if fastPath {
			return nil, errors.New("fast_path: only afxdp ports have a fast path")
		}
		return tap.New(tap.Config{Name: name, Dev: dev, Logger: d.log.With().Str("port", name).Logger()})
	}
	newOffload = func(log zerolog.Logger) (*fastPath, error) {
		fp, err := afxdp.NewFastPath(1 << 16)
		if err != nil {
			return nil, err
		}
		return &fastPath{fp: fp, log: log.Sample(&zerolog.BasicSampler{N: 1000})}, nil
	}
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
