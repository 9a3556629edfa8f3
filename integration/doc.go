// Package integration holds xvs's end-to-end tests: real xvsd and xvsctl
// binaries, real network namespaces joined by veth pairs or TAP devices,
// real traffic (ping, arping, iperf3, broadcasts) and an independent
// decoder (tshark) checking what arrived where. They need root and skip
// with a message without it; each test removes the namespaces, devices and
// processes it made, also when it fails.
package integration
