package sdk

import (
	"time"

	"github.com/xvswitch/xvs/extensions/api"
)

// Extension is what every extension implements, together with exactly one
// of Capture, Filter or Forward. It may also implement Starter, Stopper
// and Stater.
type Extension interface {
	Info() Info
}

// Info describes an extension to the switch.
type Info struct {
	Name        string // short name, for logs
	Description string
	// EveryFrame asks the switch to send every frame instead of the first
	// of each flow (filter and forward only; capture always sees every one).
	EveryFrame bool
}

// Capture observes copies of frames. m and frame are valid only during the
// call: copy what you keep.
// Capture must not block for long: while it runs, further copies queue in
// shared memory and are dropped (and counted by the switch) when it fills.
type Capture interface {
	Capture(m *Meta, frame []byte)
}

// Filter decides whether a frame continues. m and frame are valid only
// during the call; the extension may modify frame in place and return
// Modified, or return a Verdict whose Frame holds a replacement.
type Filter interface {
	Filter(m *Meta, frame []byte) Verdict
}

// Forward decides where a frame of a claimed VSID goes. m and frame are
// valid only during the call.
type Forward interface {
	Forward(m *Meta, frame []byte) Destinations
}

// Starter is called once the switch has started the extension, before any
// frame, with the host handle; an error fails the switch's Start RPC with
// its text, and the switch does not use this process.
type Starter interface {
	Start(h *Host) error
}

// Stopper is called once when the switch stops an extension whose Start
// succeeded, after the last frame callback has returned. The host handle
// still works during Stop and no longer afterwards.
type Stopper interface {
	Stop()
}

// Stater reports the extension's own counters (xvsctl extension stats).
// It is called from the control goroutine, concurrently with the frame
// callbacks. Names starting with "sdk_" are the SDK's own and win.
type Stater interface {
	Stats() map[string]uint64
}

// Meta is what the switch says about a frame.
type Meta struct {
	Dir     api.Direction
	InPort  uint16 // index of the ingress port; Host.Port names it
	OutPort uint16 // egress: index of the port it leaves on; ingress: api.NoPort
	VSID    uint32
	Time    time.Time // when the switch received it
	OrigLen int       // the frame's length in the switch (capture copies may be shorter)
}

// Action is a filter's decision.
type Action uint8

const (
	ActionPass     Action = Action(api.VerdictPass)
	ActionDrop     Action = Action(api.VerdictDrop)
	ActionModified Action = Action(api.VerdictModified)
)

// Verdict is a filter's answer for one frame.
type Verdict struct {
	Action Action
	// NoCache: decide again for the next frame of this flow.
	NoCache bool
	// Frame replaces the frame when Action is ActionModified; nil: the
	// frame as modified in place. It is copied before Filter's caller
	// returns, so the filter may reuse the buffer for the next frame. It
	// must hold 14 bytes (an Ethernet header) to a slot (Host.SlotSize);
	// anything else is answered as a drop and counted (sdk_bad_verdicts).
	Frame []byte
}

// The verdicts most filters return. Modified sends the frame as the filter
// changed it in place.
var (
	Pass     = Verdict{Action: ActionPass}
	Drop     = Verdict{Action: ActionDrop}
	Modified = Verdict{Action: ActionModified}
)

// Destinations is a forwarding extension's answer for one frame.
type Destinations struct {
	Ports   []uint16 // port indexes, at most api.MaxPorts
	Default bool     // also where the switch's own lookup would send it
	Drop    bool     // send it nowhere
	NoCache bool     // decide again for the next frame of this flow
}

// Port is one switch port as the extension sees it.
type Port struct {
	Index uint16
	Name  string
	VSID  uint32
}
