// Package extensions runs the switch's capture, filter and forwarding
// extensions, each in its own process, and is the only package (with its
// sdk) that knows hashicorp/go-plugin.
//
// An [Extension] supervises one extension: it starts the process (go-plugin
// handshake, gRPC control), hands it a shared-memory region with one pair of
// descriptor rings per switch worker (layout in package extensions/api),
// watches it, and when it crashes, stops consuming its rings or misses a
// verdict deadline, marks it failed, kills it and starts it again with
// exponential backoff, logging each step. The switch's workers reach the
// running process through [Extension.Live]: nil while it is failed, and the
// worker then applies the extension's [FailMode].
//
// The data path itself (which frames go to which extension, the per-flow
// verdict cache, parking frames until their verdict) lives in package
// vswitch; this package gives it the rings ([Instance.Channel]), the flow
// key ([FlowKey]) and the verdict cache ([Cache]).
//
// Extensions are written with package extensions/sdk; three real ones are
// under extensions/examples.
package extensions
