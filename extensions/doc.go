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
// The data path of the chain is here too: a switch worker owns a [Stage]
// and runs each batch through it ([Stage.Run]: scope, capture copies, the
// per-flow verdict cache, parking a flow's first frame until its verdict).
// At the start of each round [Stage.Poll] reads verdicts and injected
// frames, takes the frames they release through the rest of the chain,
// and hands back those that come out ([Stage.Resumed]) with where they go
// on; the stage never calls into the switch. The chain itself is an
// immutable [Chain] of links ([Link]) the switch rebuilds on every change.
//
// Extensions are written with package extensions/sdk; three real ones are
// under extensions/examples.
package extensions
