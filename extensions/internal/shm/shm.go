// Package shm maps the shared memory of an extension (layout in package
// extensions/api) and moves descriptors through its rings. The switch
// creates a region, a memfd whose size is sealed so that the extension
// cannot shrink it under the switch; the extension opens the one it
// inherited. Both sides use the same Ring type: one side produces, the
// other consumes.
package shm

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/xvswitch/xvs/extensions/api"
	"github.com/xvswitch/xvs/internal/sysio"
)

// ErrBadRegion is returned by Open for memory that does not follow the
// layout.
var ErrBadRegion = errors.New("shared memory does not follow the extension layout")

// Region is one mapped extension region.
type Region struct {
	file     *os.File
	mem      []byte
	channels []Channel
	ringSize int
	slotSize int
}

// Channel is one switch worker's pair of rings.
type Channel struct {
	Down Ring // switch -> extension
	Up   Ring // extension -> switch
}

// Create makes a memfd region with the given geometry, its size sealed,
// and maps it.
func Create(name string, channels, ringSize, slotSize int) (*Region, error) {
	if err := checkGeometry(channels, ringSize, slotSize); err != nil {
		return nil, err
	}
	size := api.RegionSize(channels, ringSize, slotSize)
	// The size is sealed: the extension, which is not trusted, cannot
	// shrink the file under the switch's mapping, which would make the
	// switch's next access to the lost pages raise SIGBUS and kill it.
	f, err := sysio.MemFD("xvs-ext-"+name, size, true)
	if err != nil {
		return nil, fmt.Errorf("create shared memory: %w", err)
	}
	mem, err := sysio.Map(int(f.Fd()), 0, size)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("map shared memory: %w", err)
	}
	put32(mem, api.OffMagic, api.Magic)
	put32(mem, api.OffVersion, api.LayoutVersion)
	put32(mem, api.OffChannels, uint32(channels))
	put32(mem, api.OffRingSize, uint32(ringSize))
	put32(mem, api.OffSlotSize, uint32(slotSize))
	return newRegion(f, mem, channels, ringSize, slotSize), nil
}

// Open maps a region created by the switch, checking its header against
// its size.
func Open(f *os.File) (*Region, error) {
	st, err := sysio.Stat(int(f.Fd()))
	if err != nil {
		return nil, fmt.Errorf("stat shared memory: %w", err)
	}
	if st.Size < api.HeaderSize || st.Size > 1<<34 {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadRegion, st.Size)
	}
	mem, err := sysio.Map(int(f.Fd()), 0, int(st.Size))
	if err != nil {
		return nil, fmt.Errorf("map shared memory: %w", err)
	}
	bad := func(format string, a ...any) (*Region, error) {
		sysio.Unmap(mem)
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrBadRegion}, a...)...)
	}
	if m := get32(mem, api.OffMagic); m != api.Magic {
		return bad("magic %#x", m)
	}
	if v := get32(mem, api.OffVersion); v != api.LayoutVersion {
		return bad("layout version %d, want %d", v, api.LayoutVersion)
	}
	ch, rs, ss := int(get32(mem, api.OffChannels)), int(get32(mem, api.OffRingSize)), int(get32(mem, api.OffSlotSize))
	if err := checkGeometry(ch, rs, ss); err != nil {
		return bad("%v", err)
	}
	if want := api.RegionSize(ch, rs, ss); int64(want) != st.Size {
		return bad("%d bytes, header says %d", st.Size, want)
	}
	return newRegion(f, mem, ch, rs, ss), nil
}

func checkGeometry(channels, ringSize, slotSize int) error {
	switch {
	case channels < 1 || channels > 64:
		return fmt.Errorf("channels %d: want 1..64", channels)
	case ringSize < 2 || ringSize > 1<<16 || ringSize&(ringSize-1) != 0:
		return fmt.Errorf("ring size %d: want a power of two in 2..65536", ringSize)
	case slotSize < 64 || slotSize > 1<<16 || slotSize%64 != 0:
		return fmt.Errorf("slot size %d: want a multiple of 64 in 64..65536", slotSize)
	}
	return nil
}

func newRegion(f *os.File, mem []byte, channels, ringSize, slotSize int) *Region {
	r := &Region{file: f, mem: mem, ringSize: ringSize, slotSize: slotSize}
	cs := api.ChannelSize(ringSize, slotSize)
	descBytes := ringSize * api.DescSize
	slotBytes := ringSize * slotSize
	for i := range channels {
		base := api.HeaderSize + i*cs
		ctl := mem[base : base+api.ControlSize]
		descs := base + api.ControlSize
		slots := descs + 2*descBytes
		r.channels = append(r.channels, Channel{
			Down: newRing(ctl, api.OffDownProducer, api.OffDownConsumer,
				mem[descs:descs+descBytes], mem[slots:slots+slotBytes], ringSize, slotSize),
			Up: newRing(ctl, api.OffUpProducer, api.OffUpConsumer,
				mem[descs+descBytes:descs+2*descBytes], mem[slots+slotBytes:slots+2*slotBytes], ringSize, slotSize),
		})
	}
	return r
}

// File is the memfd, for handing to the extension process.
func (r *Region) File() *os.File { return r.file }

// Channels is the number of channels.
func (r *Region) Channels() int { return len(r.channels) }

// Channel returns channel i.
func (r *Region) Channel(i int) *Channel { return &r.channels[i] }

// SlotSize is the bytes of one data slot.
func (r *Region) SlotSize() int { return r.slotSize }

// RingSize is the number of descriptors per ring.
func (r *Region) RingSize() int { return r.ringSize }

// Generation is the extension's decision generation.
func (r *Region) Generation() uint64 {
	return atomic.LoadUint64((*uint64)(unsafe.Pointer(&r.mem[api.OffGeneration])))
}

// BumpGeneration tells the switch that cached verdicts are stale.
func (r *Region) BumpGeneration() {
	atomic.AddUint64((*uint64)(unsafe.Pointer(&r.mem[api.OffGeneration])), 1)
}

// Sleeping reports whether the extension waits on its doorbell.
func (r *Region) Sleeping() bool {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.mem[api.OffSleeping]))) != 0
}

// SetSleeping is set by the extension before it waits on its doorbell and
// cleared when it wakes.
func (r *Region) SetSleeping(v bool) {
	var x uint32
	if v {
		x = 1
	}
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&r.mem[api.OffSleeping])), x)
}

// Close unmaps the region and closes the memfd. The rings must not be
// used afterwards.
func (r *Region) Close() error {
	if r.mem == nil {
		return nil
	}
	err := sysio.Unmap(r.mem)
	r.mem = nil
	r.channels = nil
	if cerr := r.file.Close(); err == nil {
		err = cerr
	}
	return err
}

func put32(b []byte, off int, v uint32) { *(*uint32)(unsafe.Pointer(&b[off])) = v }
func get32(b []byte, off int) uint32    { return *(*uint32)(unsafe.Pointer(&b[off])) }
