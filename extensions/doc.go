// Package extensions will host the switch's out-of-process capture, filter
// and forwarding extensions (hashicorp/go-plugin lives here and nowhere
// else). Until then the pipeline's extension stage is an empty hook in
// package vswitch.
package extensions
