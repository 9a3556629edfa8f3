// Package sysio owns the system calls that the extension host, the
// extension SDK, vhost-user ports and the switch's idle wait make on
// descriptors and memory: eventfd doorbells and interrupts ([EventFD]),
// memfd shared memory and its mappings ([MemFD], [Map]), poll and epoll
// waits ([PollSet], [Epoll]) and the descriptor flags they need. Its
// callers import it instead of golang.org/x/sys/unix; the ports whose
// system calls are their own business (ports/afxdp, ports/tap, the
// vhost-user socket) keep them in their own _linux.go files.
//
// Descriptors are plain integers with methods, so the data path holds them
// without indirection. Errors say what failed on which descriptor and wrap
// the errno ("write eventfd 7: bad file descriptor"), so errors.Is matches
// it against unix errnos and os.ErrExist and the like.
//
// The calls made per batch - [EventFD.Signal], [EventFD.Drain] and
// [PollSet.Wait] - are one system call each: no lock, no allocation (the
// race detector's instrumentation aside) and no interface conversion when
// they succeed; an error value is built only when the call fails.
//
// xvs runs on Linux only, so everything here is Linux. On any other
// system the package does not compile, on purpose: the build stops with
// one error, "undefined: xvs_runs_on_Linux_only", instead of at undefined
// names across the tree.
package sysio
