package shm

import (
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"testing"

	"github.com/xvswitch/xvs/extensions/api"
)

func pairRegion(t testing.TB, channels, ringSize, slotSize int) (*Region, *Region) {
	t.Helper()
	host, err := Create("test", channels, ringSize, slotSize)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	f, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(host.File().Fd())), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := Open(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	return host, peer
}

// Descriptors and slot bytes cross between two mappings of one region, in
// order, across the index wrap of a small ring.
func TestRingAcrossMappings(t *testing.T) {
	host, peer := pairRegion(t, 2, 8, 128)
	tx, rx := &host.Channel(1).Down, &peer.Channel(1).Down
	rx.AttachConsumer()
	var d api.Desc
	for i := range 100 {
		if i%8 == 0 && tx.Free() != 8 {
			t.Fatalf("free %d, want 8 after the consumer released everything", tx.Free())
		}
		for j := range 3 {
			w, slot, ok := tx.Reserve()
			if !ok {
				t.Fatalf("ring full at %d/%d", i, j)
			}
			binary.LittleEndian.PutUint32(slot, uint32(i*3+j))
			w.Cookie, w.Len = uint64(i*3+j), 4
		}
		tx.Publish()
		for j := range 3 {
			if !rx.Next(&d) {
				t.Fatalf("descriptor %d/%d missing", i, j)
			}
			b, ok := rx.Slot(&d)
			if !ok || d.Cookie != uint64(i*3+j) || binary.LittleEndian.Uint32(b) != uint32(i*3+j) {
				t.Fatalf("got cookie %d slot ok %v, want %d", d.Cookie, ok, i*3+j)
			}
		}
		if rx.Next(&d) {
			t.Fatal("a descriptor that was never published")
		}
		rx.Release()
	}
	if host.Generation() != 0 {
		t.Fatal("generation starts at 0")
	}
	peer.BumpGeneration()
	if host.Generation() != 1 {
		t.Fatal("a generation bump did not cross")
	}
}

func TestRingFull(t *testing.T) {
	host, _ := pairRegion(t, 1, 4, 64)
	r := &host.Channel(0).Up
	for range 4 {
		if _, _, ok := r.Reserve(); !ok {
			t.Fatal("full too early")
		}
	}
	if _, _, ok := r.Reserve(); ok {
		t.Fatal("reserved a fifth descriptor in a ring of four nobody consumed")
	}
}

func TestSlotValidation(t *testing.T) {
	host, _ := pairRegion(t, 1, 4, 128)
	r := &host.Channel(0).Up
	for _, tc := range []struct {
		d  api.Desc
		ok bool
	}{
		{api.Desc{Slot: 3, Offset: 0, Len: 128}, true},
		{api.Desc{Slot: 3, Offset: 100, Len: 28}, true},
		{api.Desc{Slot: 4, Len: 1}, false},
		{api.Desc{Slot: 0, Offset: 100, Len: 29}, false},
		{api.Desc{Slot: 0, Offset: 129}, false},
		{api.Desc{Slot: 0, Offset: 0xFFFFFFFF, Len: 2}, false},
		{api.Desc{Slot: 0, Offset: 2, Len: 0xFFFFFFFF}, false},
	} {
		if _, ok := r.Slot(&tc.d); ok != tc.ok {
			t.Errorf("%+v: ok %v, want %v", tc.d, ok, tc.ok)
		}
	}
}

func TestOpenRefusesBadRegions(t *testing.T) {
	for name, mutate := range map[string]func(f *os.File){
		"magic":   func(f *os.File) { f.WriteAt([]byte{0, 0, 0, 0}, api.OffMagic) },
		"version": func(f *os.File) { f.WriteAt([]byte{9, 0, 0, 0}, api.OffVersion) },
		"ring":    func(f *os.File) { f.WriteAt([]byte{3, 0, 0, 0}, api.OffRingSize) },
		"size":    func(f *os.File) { f.WriteAt([]byte{2, 0, 0, 0}, api.OffChannels) },
	} {
		t.Run(name, func(t *testing.T) {
			host, err := Create("bad", 1, 4, 64)
			if err != nil {
				t.Fatal(err)
			}
			defer host.Close()
			mutate(host.File())
			f, _ := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(host.File().Fd())), os.O_RDWR, 0)
			defer f.Close()
			if r, err := Open(f); !errors.Is(err, ErrBadRegion) {
				if r != nil {
					r.Close()
				}
				t.Fatalf("Open: %v, want ErrBadRegion", err)
			}
		})
	}
}

// The extension gets the region's memfd and is not trusted: it cannot
// change the file's size, neither shrink it under the switch's mapping
// (SIGBUS on the next access) nor grow it, through its own descriptor
// either.
func TestRegionSizeSealed(t *testing.T) {
	host, peer := pairRegion(t, 1, 4, 64)
	size := api.RegionSize(1, 4, 64)
	peerFile, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(host.File().Fd())), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer peerFile.Close()
	for _, n := range []int64{0, api.HeaderSize, int64(size) + 4096} {
		if err := peerFile.Truncate(n); !errors.Is(err, os.ErrPermission) {
			t.Errorf("truncate the region to %d bytes: %v, want a permission error", n, err)
		}
	}
	if fi, err := host.File().Stat(); err != nil || fi.Size() != int64(size) {
		t.Fatalf("region file: %v, %v; want %d bytes", fi, err, size)
	}
	host.Channel(0).Down.Free() // both mappings still usable
	peer.SetSleeping(true)
	if !host.Sleeping() {
		t.Fatal("the mappings no longer share memory")
	}
}

// FuzzRingFromPeer plays a hostile peer: it writes arbitrary shared
// indexes and descriptors; the consumer must never read outside the ring,
// more than a ring's worth, or return a slot outside the slot area, and
// the producer must never count more room than the ring has or hand out a
// descriptor it does not have. An index outside the geometry must leave
// the ring Broken, and a broken ring moves nothing.
func FuzzRingFromPeer(f *testing.F) {
	f.Add(uint32(3), uint32(0), uint32(0), uint32(0), []byte{1, 2, 3})
	f.Add(uint32(0xFFFFFFFF), uint32(5), uint32(7), uint32(9), make([]byte, 64))
	f.Add(uint32(100), uint32(0), uint32(0), uint32(100), []byte{0})
	host, err := Create("fuzz", 1, 8, 64)
	if err != nil {
		f.Fatal(err)
	}
	defer host.Close()
	f.Fuzz(func(t *testing.T, prod, cons, dprod, dcons uint32, junk []byte) {
		r := &host.Channel(0).Up
		*r.prod, *r.cons = prod, cons
		copy(r.descs, junk)
		r.AttachConsumer()
		var d api.Desc
		read := 0
		for n := 0; n < 20 && r.Next(&d); n++ {
			read++
			if b, ok := r.Slot(&d); ok && len(b) > r.SlotSize() {
				t.Fatalf("slot of %d bytes", len(b))
			}
		}
		if read > r.Cap() {
			t.Fatalf("read %d descriptors from a ring of %d", read, r.Cap())
		}
		if bad := prod-cons > uint32(r.Cap()); bad != r.Broken() {
			t.Fatalf("prod %d cons %d: broken %v", prod, cons, r.Broken())
		}
		if r.Broken() && (r.Next(&d) || r.Pending() != 0) {
			t.Fatal("a broken ring still moves descriptors")
		}
		r.Release()

		// The producer's side: the peer moves the consumer's index.
		w := &host.Channel(0).Down
		*w.prod, *w.cons = dprod, dprod
		w.AttachProducer()
		for range 3 {
			w.Reserve()
		}
		w.Publish()
		*w.cons = dcons
		if n := w.Free(); n < 0 || n > w.Cap() {
			t.Fatalf("free %d in a ring of %d", n, w.Cap())
		}
		for range 2 * w.Cap() {
			d, slot, ok := w.Reserve()
			if ok != (d != nil) || ok != (slot != nil) {
				t.Fatalf("Reserve: %v %v %v", d, len(slot), ok)
			}
			if !ok {
				break
			}
		}
		if bad := dprod+3-dcons > uint32(w.Cap()); bad && !w.Broken() {
			t.Fatalf("consumer index %d, producer at %d: not broken", dcons, dprod+3)
		}
	})
}
