package sdk_test

import (
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/xvswitch/xvs/extensions/sdk"
)

// noPing drops pings (ICMP echo requests) on the VSID named by its setting
// vsid. It is the example of the package documentation.
type noPing struct{ vsid uint32 }

func (*noPing) Info() sdk.Info {
	return sdk.Info{Name: "noping", Description: "drops IPv4 pings on one VSID"}
}

func (p *noPing) Start(h *sdk.Host) error {
	v, err := strconv.ParseUint(h.Config()["vsid"], 10, 32)
	if err != nil {
		return fmt.Errorf("setting vsid: %w", err)
	}
	p.vsid = uint32(v)
	return nil
}

func (p *noPing) Filter(m *sdk.Meta, f []byte) sdk.Verdict {
	// Ethernet (14 bytes), IPv4 (EtherType 0x0800), protocol 1: ICMP.
	if m.VSID != p.vsid || len(f) < 34 || binary.BigEndian.Uint16(f[12:14]) != 0x0800 || f[23] != 1 {
		return sdk.Pass // cached: the flow's next frames do not come here
	}
	if ihl := int(f[14]&0x0f) * 4; len(f) > 14+ihl && f[14+ihl] == 8 {
		return sdk.Verdict{Action: sdk.ActionDrop, NoCache: true} // echo request
	}
	return sdk.Verdict{Action: sdk.ActionPass, NoCache: true}
}

// An extension's main function is one call. (This example is compiled but
// not run: Serve exits when the switch did not start the program.)
func Example() {
	sdk.Serve(&noPing{})
}
