//go:build linux

package vhostuser

import (
	"errors"
	"os"

	"github.com/xvswitch/xvs/internal/sysio"
)

// A vhost-user port is a ports.Waiter. The guest kicks an eventfd when it
// makes a chain available on a ring that asked for kicks, which a queue
// does when Dequeue finds nothing. An idle worker therefore blocks in one
// poll(2) on an epoll descriptor holding the kick eventfds of the guest's
// running transmit rings, instead of sleeping and polling (which kept an
// idle xvsd with one vhost-user port at 7% of a core), and a guest that
// sends after a pause wakes it. The descriptor stays the same for the
// port's life, because the switch asks for WaitFDs only when its ports
// change, while rings come and go with the guest.

func newKickSet() (int, error) {
	ep, err := sysio.NewEpoll()
	return ep.FD(), err
}

func closeKickSet(fd int) {
	if fd >= 0 {
		sysio.Epoll(fd).Close()
	}
}

// WaitFDs implements ports.Waiter.
func (p *Port) WaitFDs() []int { return []int{p.kicks} }

// watchKick adds a running transmit ring's kick eventfd to the set. A
// failure is logged: an idle worker then notices this ring's frames only
// at the end of its idle wait (milliseconds), nothing is lost.
func (p *Port) watchKick(fd int) {
	if err := sysio.Epoll(p.kicks).Add(fd); err != nil && !errors.Is(err, os.ErrExist) {
		p.log.Warn().Str("port", p.name).Err(err).Msg("vhost-user: cannot wait for the guest's kicks; an idle worker wakes less promptly")
	}
}

// unwatchKick removes a ring's kick eventfd from the set before the ring's
// descriptor is closed: the front-end holds the same eventfd, so closing
// ours would leave it in the set.
func (p *Port) unwatchKick(fd int) {
	if fd >= 0 {
		sysio.Epoll(p.kicks).Remove(fd) // os.ErrNotExist: never added
	}
}
