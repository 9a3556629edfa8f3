package gen

import (
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// XDP attach modes for the sink.
const (
	XDPModeAuto    = "auto"    // native where the driver has it, else generic
	XDPModeNative  = "native"  // driver mode
	XDPModeGeneric = "generic" // skb mode
)

// SinkOptions configure a sink.
type SinkOptions struct {
	Dev   string // device to attach to
	Netns string // network namespace of Dev ("" = current)
	// XDPMode is XDPModeAuto, XDPModeNative or XDPModeGeneric.
	XDPMode string
	// FlowTable, if > 0, counts generator frames per flow in a hash
	// table of that many entries (see flowKey); it costs a lookup per
	// frame.
	FlowTable int
	// Reflect makes the sink a reflector (see sinkProgram): it sends the
	// generator's frames back with the Ethernet addresses swapped until
	// StopReflecting, and passes other frames to the stack. Not with
	// FlowTable.
	Reflect bool
}

// SinkCounters are cumulative counts since the sink was attached.
type SinkCounters struct {
	Packets    uint64 // generator frames (frame.Magic at the start of the UDP payload)
	Bytes      uint64
	AllPackets uint64 // every frame, generator or not
	AllBytes   uint64
	Stopped    uint64 // generator frames dropped after StopReflecting
}

// FlowCounts summarises the flow table.
type FlowCounts struct {
	Flows    int    // distinct flows seen
	Min, Max uint64 // frames of the least and the most frequent flow
}

// Sink is an XDP program attached (through a BPF link) to a device that
// counts the frames arriving on it and drops them. If the process dies,
// the kernel detaches it with the link's last file descriptor.
type Sink struct {
	dev   string
	stats *ebpf.Map
	flows *ebpf.Map
	ctl   *ebpf.Map // reflectors only: ctl[0] != 0 stops reflecting
	prog  *ebpf.Program
	link  link.Link
}

// OpenSink loads the sink program and attaches it to o.Dev.
func OpenSink(o SinkOptions) (*Sink, error) {
	var flags link.XDPAttachFlags
	switch o.XDPMode {
	case XDPModeAuto, "":
	case XDPModeNative:
		flags = link.XDPDriverMode
	case XDPModeGeneric:
		flags = link.XDPGenericMode
	default:
		return nil, fmt.Errorf("sink: xdp-mode %q: want auto, native or generic", o.XDPMode)
	}
	if o.Reflect && o.FlowTable > 0 {
		return nil, errors.New("sink: a reflector counts no flows")
	}
	s := &Sink{dev: o.Dev}
	err := inNetns(o.Netns, func() error {
		ifi, err := lookupDev(o.Dev)
		if err != nil {
			return err
		}
		s.stats, err = ebpf.NewMap(&ebpf.MapSpec{
			Name:       "xvspg_stats",
			Type:       ebpf.PerCPUArray,
			KeySize:    4,
			ValueSize:  sinkStatsSize,
			MaxEntries: 1,
		})
		if err != nil {
			return fmt.Errorf("sink: create stats map: %w", wrapPerm(err))
		}
		if o.FlowTable > 0 {
			s.flows, err = ebpf.NewMap(&ebpf.MapSpec{
				Name:       "xvspg_flows",
				Type:       ebpf.Hash,
				KeySize:    flowKeySize,
				ValueSize:  8,
				MaxEntries: uint32(o.FlowTable),
			})
			if err != nil {
				return fmt.Errorf("sink: create flow table: %w", wrapPerm(err))
			}
		}
		if o.Reflect {
			s.ctl, err = ebpf.NewMap(&ebpf.MapSpec{
				Name:       "xvspg_ctl",
				Type:       ebpf.Array,
				KeySize:    4,
				ValueSize:  4,
				MaxEntries: 1,
			})
			if err != nil {
				return fmt.Errorf("sink: create control map: %w", wrapPerm(err))
			}
		}
		s.prog, err = ebpf.NewProgram(sinkProgram(s.stats, s.flows, s.ctl))
		if err != nil {
			return fmt.Errorf("sink: load xdp program: %w", wrapPerm(err))
		}
		s.link, err = link.AttachXDP(link.XDPOptions{Program: s.prog, Interface: ifi.Index, Flags: flags})
		if err != nil {
			return attachError(o.Dev, err)
		}
		return nil
	})
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func attachError(dev string, err error) error {
	switch {
	case errors.Is(err, unix.EBUSY), errors.Is(err, unix.EEXIST):
		return fmt.Errorf("attach xdp to %s: another XDP program is attached to it (remove it first, e.g. ip link set dev %s xdp off): %w", dev, dev, err)
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EINVAL):
		return fmt.Errorf("attach xdp to %s: refused by the device (try --xdp-mode generic): %w", dev, err)
	}
	return fmt.Errorf("attach xdp to %s: %w", dev, wrapPerm(err))
}

// Dev is the device the sink is attached to.
func (s *Sink) Dev() string { return s.dev }

// Counters sums the per-CPU counters.
func (s *Sink) Counters() (SinkCounters, error) {
	var per []sinkStats
	if err := s.stats.Lookup(uint32(0), &per); err != nil {
		return SinkCounters{}, fmt.Errorf("sink %s: read counters: %w", s.dev, err)
	}
	var c SinkCounters
	for _, v := range per {
		c.Packets += v.MagicPackets
		c.Bytes += v.MagicBytes
		c.AllPackets += v.AllPackets
		c.AllBytes += v.AllBytes
		c.Stopped += v.Stopped
	}
	return c, nil
}

// StopReflecting makes a reflector drop the generator's frames (counting
// them as Stopped) instead of sending them back.
func (s *Sink) StopReflecting() error {
	if s.ctl == nil {
		return fmt.Errorf("sink %s: not a reflector", s.dev)
	}
	if err := s.ctl.Update(uint32(0), uint32(1), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("sink %s: stop reflecting: %w", s.dev, err)
	}
	return nil
}

// DeviceMAC is the hardware address of dev in the network namespace netns
// ("" = the current one).
func DeviceMAC(dev, netns string) (mac net.HardwareAddr, err error) {
	err = inNetns(netns, func() error {
		ifi, err := lookupDev(dev)
		if err == nil {
			mac = ifi.HardwareAddr
		}
		return err
	})
	return mac, err
}

// FlowCounts walks the flow table; ok is false when the sink has none.
func (s *Sink) FlowCounts() (fc FlowCounts, ok bool, err error) {
	if s.flows == nil {
		return fc, false, nil
	}
	var k flowKey
	var v uint64
	it := s.flows.Iterate()
	for it.Next(&k, &v) {
		if fc.Flows == 0 || v < fc.Min {
			fc.Min = v
		}
		fc.Max = max(fc.Max, v)
		fc.Flows++
	}
	if err := it.Err(); err != nil {
		return fc, true, fmt.Errorf("sink %s: read flow table: %w", s.dev, err)
	}
	return fc, true, nil
}

// Close detaches the program and frees the maps. It is safe to call more
// than once.
func (s *Sink) Close() error {
	var errs []error
	if s.link != nil {
		if err := s.link.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach xdp from %s: %w", s.dev, err))
		}
		s.link = nil
	}
	if s.prog != nil {
		errs = append(errs, s.prog.Close())
	}
	for _, m := range []*ebpf.Map{s.stats, s.flows, s.ctl} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	s.prog, s.stats, s.flows, s.ctl = nil, nil, nil, nil
	return errors.Join(errs...)
}

// ErrNoDevice is wrapped when the named device does not exist.
var ErrNoDevice = errors.New("no such device")

// lookupDev finds a device in the calling thread's network namespace.
func lookupDev(name string) (*net.Interface, error) {
	if name == "" {
		return nil, fmt.Errorf("dev: %w: no device given", ErrNoDevice)
	}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("dev %s: %w", name, ErrNoDevice)
	}
	return ifi, nil
}
