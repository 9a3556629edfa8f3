// Command tagger is a test filter that writes its tag (config key "tag",
// one byte) into the first zero byte of a frame's UDP payload, so that a
// test can read the order in which extensions saw a frame. With config key
// "inject" (a port name) it also injects, at start, one broadcast frame
// carrying its tag as if received on that port.
package main

import (
	"errors"

	"github.com/xvswitch/xvs/extensions/api"

	"github.com/xvswitch/xvs/extensions/sdk"
)

type tagger struct{ tag byte }

func (*tagger) Info() sdk.Info { return sdk.Info{Name: "tagger", EveryFrame: true} }

func (t *tagger) Start(h *sdk.Host) error {
	tag := h.Config()["tag"]
	if len(tag) != 1 {
		return errors.New("config tag: want one character")
	}
	t.tag = tag[0]
	if name := h.Config()["inject"]; name != "" {
		p, ok := h.PortByName(name)
		if !ok {
			return errors.New("config inject: no port " + name)
		}
		f := make([]byte, 60)
		copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x99, 0x88, 0xb5, 'i', 'n', 'j', t.tag})
		if err := h.Inject(p.Index, api.Ingress, f); err != nil {
			return err
		}
	}
	return nil
}

func (t *tagger) Filter(_ *sdk.Meta, f []byte) sdk.Verdict {
	for i := 42; i < len(f); i++ { // Ethernet + IPv4 + UDP
		if f[i] == 0 {
			f[i] = t.tag
			return sdk.Verdict{Action: sdk.ActionModified}
		}
	}
	return sdk.Pass
}

func main() { sdk.Serve(&tagger{}) }
