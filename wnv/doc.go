// Package wnv will hold the network virtualization policy of xvs: lookup
// records (customer address to provider address per VSID), customer
// routes, routing domains, provider addresses, the ARP/ND proxy, NVGRE
// encapsulation (RFC 7637) and IP rewrite. It uses the standard library
// only and knows nothing of ports. Until then the pipeline's egress stage
// is an empty hook in package vswitch.
package wnv
