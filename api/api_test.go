package api

import (
	"encoding/json"
	"testing"
)

// TestWireNames pins the JSON names of the switch's answers: scripts and
// older xvsctl binaries read them, so a renamed field is an API change.
func TestWireNames(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"Port", Port{PortInfo: PortInfo{Name: "vm1", Index: 2, VSID: 5001, MAC: "02:00:00:00:00:01", MTU: 1500, Worker: 1}, Type: TypeAFXDP, Dev: "veth1", FastPath: true},
			`{"name":"vm1","index":2,"vsid":5001,"mac":"02:00:00:00:00:01","mtu":1500,"worker":1,"type":"afxdp","dev":"veth1","fast_path":true}`},
		{"PortStats", PortStats{Name: "vm1", VSID: 5001, RxFrames: 1, RxBytes: 2, TxFrames: 3, TxBytes: 4, Drops: map[string]uint64{"ttl": 5}, OffloadRxFrames: 6, OffloadTxFrames: 7},
			`{"name":"vm1","vsid":5001,"rx_frames":1,"rx_bytes":2,"tx_frames":3,"tx_bytes":4,"drops":{"ttl":5},"offload_rx_frames":6,"offload_tx_frames":7}`},
		{"MACEntry", MACEntry{VSID: 5001, MAC: "02:00:00:00:00:01", Port: "vm1", Age: 3},
			`{"vsid":5001,"mac":"02:00:00:00:00:01","port":"vm1","age_s":3}`},
		{"TraceStep", TraceStep{Stage: "ingress", Decision: "vsid 5001"},
			`{"stage":"ingress","decision":"vsid 5001"}`},
		{"ExtensionInfo", ExtensionInfo{Name: "acl", Path: "/x", Kind: "filter", Position: 1, Enabled: true, State: "running", Fail: "closed", Directions: "both",
			VSIDs: []uint32{5001}, Ports: []string{"vm1"}, EveryFrame: true, PID: 42, Restarts: 1, LastError: "e", Counters: map[string]uint64{"frames": 1}, Plugin: map[string]uint64{"denied": 2}},
			`{"name":"acl","path":"/x","kind":"filter","position":1,"enabled":true,"state":"running","fail":"closed","directions":"both","vsids":[5001],"ports":["vm1"],"every_frame":true,"pid":42,"restarts":1,"last_error":"e","counters":{"frames":1},"plugin":{"denied":2}}`},
		{"ExtensionInfo empty", ExtensionInfo{},
			`{"name":"","path":"","kind":"","position":0,"enabled":false,"state":"","fail":"","directions":"","every_frame":false,"restarts":0,"counters":null}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.v)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if string(b) != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, b, tt.want)
		}
	}
}
