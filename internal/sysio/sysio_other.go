//go:build !linux

package sysio

// xvs runs on Linux only: its ports are AF_XDP sockets, vhost-user and TAP
// devices, and extensions share memfd memory and eventfd doorbells. This
// names nothing on purpose, so that building xvs for another system stops
// here, with the sentence as the one error, instead of at undefined names
// in every package that needs Linux.
var _ = xvs_runs_on_Linux_only
