// Command testfilter is the extension TestPlugin starts through go-plugin:
// a filter that drops frames whose first byte is 0xdd and passes the rest
// without caching, counts what it filtered, and injects the frame of its setting "hello" (hex)
// on port 7 when it starts.
package main

import (
	"encoding/hex"
	"fmt"
	"sync/atomic"

	"github.com/xvswitch/xvs/extensions/api"
	"github.com/xvswitch/xvs/extensions/sdk"
)

type testFilter struct{ filtered atomic.Uint64 }

func (*testFilter) Info() sdk.Info {
	return sdk.Info{Name: "testfilter", Description: "drops frames that start with 0xdd"}
}

func (f *testFilter) Start(h *sdk.Host) error {
	hello, err := hex.DecodeString(h.Config()["hello"])
	if err != nil {
		return fmt.Errorf("setting hello: %w", err)
	}
	if err := h.Inject(7, api.Ingress, hello); err != nil {
		return err
	}
	h.Logger().Info("test filter started", "instance", h.Instance(), "ports", len(h.Ports()))
	return nil
}

func (f *testFilter) Filter(m *sdk.Meta, frame []byte) sdk.Verdict {
	f.filtered.Add(1)
	if len(frame) > 0 && frame[0] == 0xdd {
		return sdk.Drop
	}
	return sdk.Verdict{Action: sdk.ActionPass, NoCache: true}
}

func (f *testFilter) Stats() map[string]uint64 {
	return map[string]uint64{"filtered": f.filtered.Load()}
}

func main() { sdk.Serve(&testFilter{}) }
