package main

import "github.com/xvswitch/xvs/extensions/sdk"

// The SDK's host must offer what the filter uses.
var _ host = (*sdk.Host)(nil)

// Start loads the rules named by the config key rules and starts watching
// the file.
func (a *ACL) Start(h *sdk.Host) error { return a.start(h, h.Logger()) }
