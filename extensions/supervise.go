package extensions

import (
	"context"
	"time"

	"github.com/xvswitch/xvs/extensions/api/pb"
)

// supervise watches the running instance and replaces it when it fails.
func (e *Extension) supervise(inst *Instance) {
	defer close(e.done)
	backoff := restartMin
	tick := time.NewTicker(watchEvery)
	defer tick.Stop()
	w := newWatchdog(e.cfg.Deadline)
	for {
		var reason string
		select {
		case <-e.stop:
			e.takeDown(inst, "stopped")
			e.state.Store(uint32(StateStopped))
			e.log.Info().Msg("extension stopped")
			return
		case reason = <-e.fail:
		case <-e.portsCh:
			e.sendPorts(inst)
			continue
		case <-tick.C:
			reason = w.check(inst)
			if reason == "" {
				continue
			}
		}
		// Failed: take the process out of the data path, then down.
		inst.failed.Store(true)
		e.lastErr.Store(&reason)
		e.state.Store(uint32(StateFailed))
		ran := time.Since(inst.started)
		e.log.Warn().Str("reason", reason).Str("fail", e.FailMode().String()).Dur("ran", ran).
			Msg("extension failed; its frames now follow its fail mode")
		e.takeDown(inst, reason)
		if ran > stableAfter {
			backoff = restartMin
		}
		for inst = nil; inst == nil; {
			e.log.Info().Dur("in", backoff).Msg("extension restart scheduled")
			select {
			case <-e.stop:
				e.state.Store(uint32(StateStopped))
				e.log.Info().Msg("extension stopped while failed")
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, restartMax)
			n, err := e.launch(e.restarts.Load() + 2)
			if err != nil {
				msg := "restart: " + err.Error()
				e.lastErr.Store(&msg)
				e.log.Error().Err(err).Msg("extension restart failed")
				continue
			}
			inst = n
		}
		// a failure reported against the old instance is stale now
		select {
		case <-e.fail:
		default:
		}
		w = newWatchdog(e.cfg.Deadline)
		e.restarts.Add(1)
		e.live.Store(inst)
		e.state.Store(uint32(StateRunning))
		e.log.Info().Int("pid", inst.pid).Uint64("restarts", e.restarts.Load()).Msg("extension restarted")
	}
}

// takeDown removes inst from the data path, waits until no worker uses it
// and stops its process.
func (e *Extension) takeDown(inst *Instance, why string) {
	e.live.CompareAndSwap(inst, nil)
	e.opts.Quiesce()
	inst.close()
	e.log.Debug().Str("why", why).Int("pid", inst.pid).Msg("extension process ended")
}

func (e *Extension) sendPorts(inst *Instance) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := inst.rpc.SetPorts(ctx, &pb.PortsRequest{Ports: e.portTable()}); err != nil {
		e.log.Warn().Err(err).Msg("extension: port table not delivered")
	}
}

// watchdog finds a process that exited or stopped consuming its rings.
type watchdog struct {
	deadline time.Duration
	since    []time.Time // per channel: when its down ring was last seen to progress or empty
	last     []uint32
}

func newWatchdog(d time.Duration) *watchdog { return &watchdog{deadline: d} }

func (w *watchdog) check(inst *Instance) string {
	if inst.client.Exited() {
		return "process exited"
	}
	n := inst.region.Channels()
	if w.since == nil {
		w.since = make([]time.Time, n)
		w.last = make([]uint32, n)
	}
	now := time.Now()
	for c := range n {
		backlog, cons := inst.region.Channel(c).Down.Backlog()
		if backlog == 0 || cons != w.last[c] || w.since[c].IsZero() {
			w.since[c], w.last[c] = now, cons
			continue
		}
		inst.Kick() // in case a wake-up was lost: a sleeping process must not look hung
		if now.Sub(w.since[c]) > w.deadline {
			return "stopped reading its frames (deadline " + w.deadline.String() + ")"
		}
	}
	return ""
}
