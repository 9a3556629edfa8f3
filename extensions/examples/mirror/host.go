package main

import "github.com/xvswitch/xvs/extensions/sdk"

// The SDK's host must offer what the mirror uses.
var _ host = (*sdk.Host)(nil)

// Start claims the configured VSIDs and looks for the monitor port.
func (mr *Mirror) Start(h *sdk.Host) error { return mr.start(h, h.Logger()) }
