package vhostuser

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// feHex decodes hex with spaces, for golden messages.
func feHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Golden messages in the host's byte order (the tests assume a
// little-endian host, as every architecture QEMU's vhost-user runs on
// here is).
func TestMessageGolden(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("golden bytes are little-endian")
	}
	for _, tc := range []struct {
		name string
		hex  string
		m    message
		val  any
	}{
		{
			name: "GET_FEATURES request",
			hex:  "01000000 01000000 00000000",
			m:    message{Req: ReqGetFeatures, Flags: 1, Payload: []byte{}},
		},
		{
			name: "GET_FEATURES reply",
			hex:  "01000000 05000000 08000000 00800078 01000000",
			m:    message{Req: ReqGetFeatures, Flags: 5, Payload: feHex(t, "0080007801000000")},
		},
		{
			name: "SET_FEATURES with NEED_REPLY",
			hex:  "02000000 09000000 08000000 00800070 01000000",
			m:    message{Req: ReqSetFeatures, Flags: 9, Payload: feHex(t, "0080007001000000")},
			val:  uint64(0x1_7000_8000),
		},
		{
			name: "SET_VRING_NUM",
			hex:  "08000000 01000000 08000000 01000000 00010000",
			m:    message{Req: ReqSetVringNum, Flags: 1, Payload: feHex(t, "0100000000010000")},
			val:  vringState{Index: 1, Num: 256},
		},
		{
			name: "SET_VRING_ADDR",
			hex: "09000000 01000000 28000000 00000000 00000000" +
				"0000aaaa aa7f0000 0020aaaa aa7f0000 0010aaaa aa7f0000 00000000 00000000",
			m: message{Req: ReqSetVringAddr, Flags: 1, Payload: feHex(t, "0000000000000000"+
				"0000aaaaaa7f0000"+"0020aaaaaa7f0000"+"0010aaaaaa7f0000"+"0000000000000000")},
			val: vringAddr{Desc: 0x7faa_aaaa_0000, Used: 0x7faa_aaaa_2000, Avail: 0x7faa_aaaa_1000},
		},
		{
			name: "SET_VRING_KICK polling",
			hex:  "0c000000 01000000 08000000 03010000 00000000",
			m:    message{Req: ReqSetVringKick, Flags: 1, Payload: feHex(t, "0301000000000000")},
			val:  vringFD{Index: 3, NoFD: true},
		},
		{
			name: "SET_MEM_TABLE one region",
			hex: "05000000 01000000 28000000 01000000 00000000" +
				"00000000 00000000 00000080 00000000 00000040 557f0000 00100000 00000000",
			m: message{Req: ReqSetMemTable, Flags: 1, Payload: feHex(t, "0100000000000000"+
				"0000000000000000"+"0000008000000000"+"00000040557f0000"+"0010000000000000")},
			val: []memRegion{{GuestPhys: 0, Size: 0x8000_0000, UserAddr: 0x7f55_4000_0000, MmapOffset: 0x1000}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := feHex(t, tc.hex)
			m, rest, err := parseMessage(raw)
			if err != nil || len(rest) != 0 {
				t.Fatalf("parse: %v, %d bytes left", err, len(rest))
			}
			if m.Req != tc.m.Req || m.Flags != tc.m.Flags || !bytes.Equal(m.Payload, tc.m.Payload) {
				t.Fatalf("parsed %+v, want %+v", m, tc.m)
			}
			if got := appendMessage(nil, tc.m); !bytes.Equal(got, raw) {
				t.Errorf("encoded %x, want %x", got, raw)
			}
			if tc.val != nil {
				v, err := decodePayload(m)
				if err != nil || !reflect.DeepEqual(v, tc.val) {
					t.Errorf("payload %#v, %v; want %#v", v, err, tc.val)
				}
			}
		})
	}
}

func TestParseMessageErrors(t *testing.T) {
	hdr := func(req Request, flags, size uint32) []byte {
		b := binary.NativeEndian.AppendUint32(nil, uint32(req))
		b = binary.NativeEndian.AppendUint32(b, flags)
		return binary.NativeEndian.AppendUint32(b, size)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "header of 0 bytes"},
		{"short header", hdr(1, 1, 0)[:11], "header of 11 bytes"},
		{"version 0", hdr(1, 0, 0), "version 0"},
		{"version 3", hdr(1, 3|flagNeedReply, 0), "version 3"},
		{"size too large", hdr(2, 1, maxPayload+1), "payload size 4097"},
		{"size 4 GiB", hdr(2, 1, ^uint32(0)), "payload size 4294967295"},
		{"truncated payload", append(hdr(2, 1, 8), 1, 2, 3), "payload of 3 bytes, header says 8"},
	} {
		_, rest, err := parseMessage(tc.b)
		if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want ErrMalformed with %q", tc.name, err, tc.want)
		}
		if len(rest) != len(tc.b) {
			t.Errorf("%s: consumed bytes on error", tc.name)
		}
	}
	// Two messages back to back; the maximum payload is accepted.
	b := append(hdr(1, 1, 0), hdr(24, 1, maxPayload)...)
	b = append(b, make([]byte, maxPayload)...)
	m, rest, err := parseMessage(b)
	if err != nil || m.Req != ReqGetFeatures || len(rest) != hdrSize+maxPayload {
		t.Fatalf("first: %+v, %d left, %v", m, len(rest), err)
	}
	if m, rest, err = parseMessage(rest); err != nil || m.Req != ReqGetConfig || len(m.Payload) != maxPayload || len(rest) != 0 {
		t.Fatalf("second: %v, %d payload, %d left, %v", m.Req, len(m.Payload), len(rest), err)
	}
}

func TestDecodePayloadErrors(t *testing.T) {
	region := appendMemTable(nil, []memRegion{{Size: 4096}})[8:]
	mem := func(n uint32, regions int, extra int) []byte {
		b := binary.NativeEndian.AppendUint32(nil, n)
		b = binary.NativeEndian.AppendUint32(b, 0)
		for range regions {
			b = append(b, region...)
		}
		return append(b, make([]byte, extra)...)
	}
	memOf := func(r memRegion) []byte { return appendMemTable(nil, []memRegion{r}) }
	for _, tc := range []struct {
		name string
		m    message
		want string
	}{
		{"u64 short", message{Req: ReqSetFeatures, Payload: make([]byte, 7)}, "payload of 7 bytes, want 8"},
		{"u64 long", message{Req: ReqSetProtocolFeatures, Payload: make([]byte, 9)}, "payload of 9 bytes, want 8"},
		{"state short", message{Req: ReqSetVringNum, Payload: make([]byte, 4)}, "payload of 4 bytes"},
		{"state long", message{Req: ReqSetVringEnable, Payload: make([]byte, 16)}, "payload of 16 bytes"},
		{"addr short", message{Req: ReqSetVringAddr, Payload: make([]byte, 39)}, "payload of 39 bytes, want 40"},
		{"vring fd empty", message{Req: ReqSetVringKick}, "payload of 0 bytes"},
		{"mem table empty", message{Req: ReqSetMemTable}, "want at least 8"},
		{"mem table 0 regions", message{Req: ReqSetMemTable, Payload: mem(0, 0, 0)}, "0 regions"},
		{"mem table 9 regions", message{Req: ReqSetMemTable, Payload: mem(9, 9, 0)}, "9 regions"},
		{"mem table short", message{Req: ReqSetMemTable, Payload: mem(2, 1, 0)}, "want 72 or 264 for 2 regions"},
		{"mem table between", message{Req: ReqSetMemTable, Payload: mem(1, 1, 8)}, "want 40 or 264"},
		{"mem table too long", message{Req: ReqSetMemTable, Payload: mem(8, 8, 1)}, "payload of 265"},
		{"empty region", message{Req: ReqSetMemTable, Payload: memOf(memRegion{})}, "region 0 is empty"},
		{"guest wraps", message{Req: ReqSetMemTable, Payload: memOf(memRegion{GuestPhys: ^uint64(0) - 10, Size: 4096})}, "wraps around"},
		{"user wraps", message{Req: ReqSetMemTable, Payload: memOf(memRegion{UserAddr: ^uint64(0), Size: 2})}, "wraps around"},
		{"offset wraps", message{Req: ReqSetMemTable, Payload: memOf(memRegion{MmapOffset: 1 << 63, Size: 1 << 63})}, "wraps around"},
		{"config short", message{Req: ReqGetConfig, Payload: make([]byte, 11)}, "want at least 12"},
		{"config size mismatch", message{Req: ReqSetConfig, Payload: appendConfig(nil, configHdr{Size: 8}, make([]byte, 4))}, "want 12+8"},
	} {
		_, err := decodePayload(tc.m)
		if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.m.Req.String()) {
			t.Errorf("%s: error %v, want ErrMalformed naming %v with %q", tc.name, err, tc.m.Req, tc.want)
		}
	}
	// The whole 8-region struct is accepted with fewer regions in use.
	if rs, err := decodeMemTable(ReqSetMemTable, mem(2, 8, 0)); err != nil || len(rs) != 2 {
		t.Errorf("full struct with 2 regions: %d regions, %v", len(rs), err)
	}
	// The kick u64's undefined bits are ignored.
	if f, err := decodeVringFD(ReqSetVringCall, appendU64(nil, 1<<40|1<<8|5)); err != nil || f != (vringFD{Index: 5, NoFD: true}) {
		t.Errorf("vring fd with high bits: %+v, %v", f, err)
	}
}

func TestRequestString(t *testing.T) {
	for r, want := range map[Request]string{ReqGetFeatures: "GET_FEATURES", ReqSetVringEnable: "SET_VRING_ENABLE", ReqGetConfig: "GET_CONFIG", ReqNetSetMTU: "NET_SET_MTU", 77: "request(77)"} {
		if r.String() != want {
			t.Errorf("%d: %q, want %q", uint32(r), r.String(), want)
		}
	}
	// The numbers of the specification (docs/interop/vhost-user.rst).
	for r, n := range map[Request]uint32{ReqGetFeatures: 1, ReqSetMemTable: 5, ReqSetVringKick: 12, ReqGetProtocolFeatures: 15, ReqGetQueueNum: 17, ReqSetVringEnable: 18, ReqSendRARP: 19, ReqNetSetMTU: 20, ReqGetConfig: 24, ReqSetConfig: 25, ReqGetMaxMemSlots: 36, ReqGetStatus: 40} {
		if uint32(r) != n {
			t.Errorf("%v = %d, want %d", r, uint32(r), n)
		}
	}
}
