package main

import (
	"github.com/xvswitch/xvs/ports"
	"github.com/xvswitch/xvs/ports/afxdp"
	"github.com/xvswitch/xvs/ports/tap"
)

func init() {
	portTypes["afxdp"] = func(d *daemon, name, dev string) (ports.Port, error) {
		return afxdp.New(afxdp.Config{Name: name, Dev: dev, Logger: d.log.With().Str("port", name).Logger()})
	}
	portTypes["tap"] = func(d *daemon, name, dev string) (ports.Port, error) {
		return tap.New(tap.Config{Name: name, Dev: dev, Logger: d.log.With().Str("port", name).Logger()})
	}
}
