package api

// The switch's answers. Package vswitch returns these types (it declares
// aliases of them), and xvsd sends them as they are.

// PortInfo describes a port.
type PortInfo struct {
	Name   string `json:"name"`
	Index  int    `json:"index"`
	VSID   uint32 `json:"vsid"`
	MAC    string `json:"mac"`
	MTU    int    `json:"mtu"`
	Worker int    `json:"worker"`
}

// PortStats are a port's counters: the switch's and the port's own.
type PortStats struct {
	Name     string            `json:"name"`
	VSID     uint32            `json:"vsid"`
	RxFrames uint64            `json:"rx_frames"`
	RxBytes  uint64            `json:"rx_bytes"`
	TxFrames uint64            `json:"tx_frames"`
	TxBytes  uint64            `json:"tx_bytes"`
	Drops    map[string]uint64 `json:"drops"`
	// Of the rx/tx frames above, those forwarded by an offload (the
	// in-kernel fast path) without passing through the switch's workers.
	OffloadRxFrames uint64 `json:"offload_rx_frames"`
	OffloadTxFrames uint64 `json:"offload_tx_frames"`
}

// MACEntry is one learned address.
type MACEntry struct {
	VSID uint32 `json:"vsid"`
	MAC  string `json:"mac"`
	Port string `json:"port"`
	Age  int    `json:"age_s"`
}

// TraceStep is one stage's decision about a traced frame.
type TraceStep struct {
	Stage    string `json:"stage"`
	Decision string `json:"decision"`
}

// ExtensionInfo describes one loaded extension.
type ExtensionInfo struct {
	Name       string   `json:"name"`
	Path       string   `json:"path"`
	Kind       string   `json:"kind"` // capture, filter, forward ("unknown" until first started)
	Position   int      `json:"position"`
	Enabled    bool     `json:"enabled"`
	State      string   `json:"state"` // starting, running, failed, stopped
	Fail       string   `json:"fail"`  // open or closed
	Directions string   `json:"directions"`
	VSIDs      []uint32 `json:"vsids,omitempty"`
	Ports      []string `json:"ports,omitempty"`
	EveryFrame bool     `json:"every_frame"`
	PID        int      `json:"pid,omitempty"`
	Restarts   uint64   `json:"restarts"`
	LastError  string   `json:"last_error,omitempty"`
	// Counters are the switch's view: frames sent, verdicts, cache hits,
	// drops by reason, verdict latency.
	Counters map[string]uint64 `json:"counters"`
	// Plugin are the extension's own counters, filled in for one
	// extension only (GET /v1/extensions/{name}; vswitch's ExtensionStats).
	Plugin map[string]uint64 `json:"plugin,omitempty"`
}

// VSIDs with a meaning of their own in PortInfo.VSID and PortStats.VSID.
// Any other VSID is a virtual subnet's, in [header.MinVSID,
// header.MaxVSID] (RFC 7637 reserves 0..0xFFF and 0xFFFFFF).
const (
	VSIDNone       uint32 = 0          // non-virtualized: a plain learning bridge
	VSIDUnassigned uint32 = 0xFFFFFFFF // the port forwards nothing (no-vsid); xvsctl shows "none"
)
