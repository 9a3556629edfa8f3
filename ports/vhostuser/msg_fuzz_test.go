package vhostuser

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// FuzzMessage parses arbitrary bytes as a stream of messages: parsing and
// decoding never panic, errors are ErrMalformed, and every message and
// payload that parses encodes back to what decodes the same.
func FuzzMessage(f *testing.F) {
	seeds := []message{
		{Req: ReqGetFeatures},
		{Req: ReqSetFeatures, Flags: flagNeedReply, Payload: appendU64(nil, offeredFeatures)},
		{Req: ReqSetVringNum, Payload: appendState(nil, vringState{Index: 1, Num: 256})},
		{Req: ReqSetVringAddr, Payload: appendAddr(nil, vringAddr{Index: 1, Desc: 0x7f00_0000_0000, Used: 0x7f00_0000_2000, Avail: 0x7f00_0000_1000})},
		{Req: ReqSetVringKick, Payload: appendVringFD(nil, vringFD{Index: 1, NoFD: true})},
		{Req: ReqSetMemTable, Payload: appendMemTable(nil, []memRegion{{Size: 1 << 20, UserAddr: 0x7f00_0000_0000}, {GuestPhys: 1 << 32, Size: 4096, UserAddr: 0x7e00_0000_0000, MmapOffset: 1 << 20}})},
		{Req: ReqGetConfig, Payload: appendConfig(nil, configHdr{Size: 6}, make([]byte, 6))},
	}
	var all []byte
	for _, m := range seeds {
		b := appendMessage(nil, m)
		f.Add(b)
		all = append(all, b...)
	}
	f.Add(all)
	f.Add([]byte{1, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})

	f.Fuzz(func(t *testing.T, data []byte) {
		for len(data) > 0 {
			m, rest, err := parseMessage(data)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("parse error not ErrMalformed: %v", err)
				}
				if len(rest) != len(data) {
					t.Fatal("bytes consumed on error")
				}
				return
			}
			if len(rest) >= len(data) {
				t.Fatal("no progress")
			}
			data = rest

			// The message itself round-trips.
			enc := appendMessage(nil, m)
			m2, rest2, err := parseMessage(enc)
			if err != nil || len(rest2) != 0 || m2.Req != m.Req || m2.Flags != m.Flags || !bytes.Equal(m2.Payload, m.Payload) {
				t.Fatalf("message round trip: %+v -> %+v, %v", m, m2, err)
			}

			v, err := decodePayload(m)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("decode error not ErrMalformed: %v", err)
				}
				continue
			}
			// A decoded payload encodes to bytes that decode the same.
			var p []byte
			switch x := v.(type) {
			case nil:
				continue
			case uint64:
				p = appendU64(nil, x)
			case vringState:
				p = appendState(nil, x)
			case vringAddr:
				p = appendAddr(nil, x)
			case []memRegion:
				p = appendMemTable(nil, x)
			case vringFD:
				p = appendVringFD(nil, x)
			case configHdr:
				p = appendConfig(nil, x, m.Payload[sizeConfigHdr:])
			default:
				t.Fatalf("unexpected payload type %T", v)
			}
			v2, err := decodePayload(message{Req: m.Req, Payload: p})
			if err != nil || !reflect.DeepEqual(v, v2) {
				t.Fatalf("%v payload round trip: %#v -> %#v, %v", m.Req, v, v2, err)
			}
		}
	})
}
