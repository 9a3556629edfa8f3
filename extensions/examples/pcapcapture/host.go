package main

import "github.com/xvswitch/xvs/extensions/sdk"

// The SDK's host must offer what the capture uses.
var _ host = (*sdk.Host)(nil)

// Start checks the configuration and opens the first capture file.
func (c *Capture) Start(h *sdk.Host) error { return c.start(h, h.Logger()) }
