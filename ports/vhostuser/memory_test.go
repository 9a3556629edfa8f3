package vhostuser

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestMemoryNewErrors(t *testing.T) {
	buf := make([]byte, 0x4000)
	reg := func(gpa, size, uva uint64) Region {
		return Region{GuestPhys: gpa, Size: size, UserAddr: uva, Mem: buf[:size]}
	}
	for _, tc := range []struct {
		name    string
		regions []Region
		want    string
	}{
		{"size 0", []Region{reg(0, 0, 0)}, "size 0"},
		{"mapping too short", []Region{{GuestPhys: 0, Size: 0x2000, Mem: buf[:0x1000]}}, "mapping of 4096 bytes"},
		{"mapping too long", []Region{{GuestPhys: 0, Size: 0x1000, Mem: buf[:0x2000]}}, "mapping of 8192 bytes"},
		{"guest wraps", []Region{reg(math.MaxUint64-0xfff+1, 0x1000, 0), reg(math.MaxUint64-0xfff, 0x1000, 0x10000)}, "guest address"},
		{"user wraps", []Region{reg(0, 0x1000, math.MaxUint64-0x800)}, "user address"},
		{"guest overlap", []Region{reg(0x1000, 0x2000, 0), reg(0x2fff, 0x1000, 0x10000)}, "guest ranges"},
		{"guest same start", []Region{reg(0x1000, 0x1000, 0), reg(0x1000, 0x1000, 0x10000)}, "guest ranges"},
		{"user overlap", []Region{reg(0, 0x1000, 0x10000), reg(0x10000, 0x1000, 0x10fff)}, "user ranges"},
		{"user contains", []Region{reg(0, 0x4000, 0x10000), reg(0x10000, 0x1000, 0x11000)}, "user ranges"},
		{"too many", make([]Region, MaxRegions+1), "9 regions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := NewMemory(tc.regions)
			if err == nil || m != nil {
				t.Fatalf("NewMemory: got %v, want an error", err)
			}
			if !errors.Is(err, ErrBadMemory) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q: want ErrBadMemory mentioning %q", err, tc.want)
			}
		})
	}
	// Adjacent regions, the top of the address space, and none at all are
	// fine.
	for _, regions := range [][]Region{
		{reg(0, 0x1000, 0x2000), reg(0x1000, 0x1000, 0x1000), reg(math.MaxUint64-0xfff, 0x1000, math.MaxUint64-0xfff)},
		nil,
	} {
		if _, err := NewMemory(regions); err != nil {
			t.Fatalf("NewMemory(%v): %v", regions, err)
		}
	}
}

func TestMemoryTranslate(t *testing.T) {
	buf := make([]byte, 0x5000)
	a := buf[0:0x1000:0x1000]
	b := buf[0x1000:0x3000:0x3000] // adjacent to a in guest and in our memory
	c := buf[0x3000:0x4000:0x4000]
	m, err := NewMemory([]Region{
		{GuestPhys: 0x2000, Size: 0x2000, UserAddr: 0x5000, Mem: b},
		{GuestPhys: 0x1000, Size: 0x1000, UserAddr: 0x10000, Mem: a},
		{GuestPhys: math.MaxUint64 - 0xfff, Size: 0x1000, UserAddr: 0x100000, Mem: c},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		user   bool
		addr   uint64
		n      uint64
		region []byte // nil: refused
		off    int
	}{
		{"start of a", false, 0x1000, 16, a, 0},
		{"end of a", false, 0x1ff0, 16, a, 0xff0},
		{"whole a", false, 0x1000, 0x1000, a, 0},
		{"across a and b", false, 0x1ff0, 32, nil, 0},
		{"just past a is b", false, 0x2000, 1, b, 0},
		{"below all", false, 0xfff, 1, nil, 0},
		{"below all, reaching a", false, 0xff0, 32, nil, 0},
		{"gap", false, 0x4000, 1, nil, 0},
		{"past b", false, 0x3fff, 2, nil, 0},
		{"empty inside", false, 0x2fff, 0, b, 0xfff},
		{"empty in a gap", false, 0x4000, 0, nil, 0},
		{"top byte", false, math.MaxUint64, 1, c, 0xfff},
		{"top region, n wraps", false, math.MaxUint64 - 0xfff, 0x1001, nil, 0},
		{"huge n", false, 0x1000, math.MaxUint64, nil, 0},
		{"huge n at the top", false, math.MaxUint64, math.MaxUint64, nil, 0},
		{"user a", true, 0x10010, 0x10, a, 0x10},
		{"user b end", true, 0x6fff, 1, b, 0x1fff},
		{"user range past the end of b", true, 0x6ff0, 32, nil, 0},
		{"user c", true, 0x100000, 0x1000, c, 0},
		{"guest address as user", true, 0x1000, 1, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := m.Guest
			if tc.user {
				tr = m.User
			}
			got, ok := tr(tc.addr, tc.n)
			if ok != (tc.region != nil) {
				t.Fatalf("ok = %v", ok)
			}
			if !ok {
				if got != nil {
					t.Fatalf("refused, but returned %d bytes", len(got))
				}
				return
			}
			if uint64(len(got)) != tc.n || uint64(cap(got)) != tc.n {
				t.Fatalf("len %d cap %d, want %d", len(got), cap(got), tc.n)
			}
			if tc.n > 0 && &got[0] != &tc.region[tc.off] {
				t.Fatal("slice does not start at the expected byte")
			}
		})
	}
}

// TestMemoryManyRegions fills a Memory with MaxRegions regions, given in
// reverse order, in both address spaces.
func TestMemoryManyRegions(t *testing.T) {
	const n = MaxRegions
	buf := make([]byte, n*0x100)
	var regions []Region
	for i := n - 1; i >= 0; i-- { // in reverse order
		regions = append(regions, Region{
			GuestPhys: uint64(i) * 0x1000, // gaps between regions
			Size:      0x100,
			UserAddr:  uint64(n-i) * 0x100, // adjacent, in the other order
			Mem:       buf[i*0x100 : (i+1)*0x100 : (i+1)*0x100],
		})
	}
	m, err := NewMemory(regions)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		r := buf[i*0x100:]
		if got, ok := m.Guest(uint64(i)*0x1000+0x80, 0x80); !ok || &got[0] != &r[0x80] {
			t.Fatalf("region %d: guest lookup", i)
		}
		if _, ok := m.Guest(uint64(i)*0x1000+0x100, 1); ok {
			t.Fatalf("region %d: gap accepted", i)
		}
		if got, ok := m.User(uint64(n-i)*0x100, 0x100); !ok || &got[0] != &r[0] {
			t.Fatalf("region %d: user lookup", i)
		}
		if _, ok := m.User(uint64(n-i)*0x100+0x80, 0x100); ok {
			t.Fatalf("region %d: user range across two regions accepted", i)
		}
	}
}

// FuzzMemory builds a memory table from arbitrary regions and checks every
// translation against a plain search: a slice is returned only when one
// region holds all of the range, and it is that region's bytes.
func FuzzMemory(f *testing.F) {
	enc := func(vals ...uint64) []byte {
		var b []byte
		for _, v := range vals {
			b = binary.LittleEndian.AppendUint64(b, v)
		}
		return b
	}
	// Regions: count, then {gpa, uva, size} each; then queries.
	f.Add(enc(2, 0x0, 0x7f0000000000, 0x800, 0x800, 0x7e0000000000, 0x800, 0x7f0, 0x20, 0x1, 0x7e00000007ff))
	f.Add(enc(3, math.MaxUint64-0xff, 0x100, 0x100, 0, 0, 0x100, 0x1000, 0x1000, 0x10, math.MaxUint64, 1, math.MaxUint64, math.MaxUint64))
	f.Add(enc(1, 0x1000, 0x1000, 0x100, 0x10ff, 2))
	f.Add(enc(12, 0, 0, 1, 1, 1, 1, 2, 2, 1, 3, 3, 1, 4, 4, 1, 5, 5, 1, 6, 6, 1, 7, 7, 1, 8, 8, 1, 9, 9, 1, 10, 10, 1, 11, 11, 1, 5, 1, 11, 1))
	f.Add(enc(2, 0, 0, 0x100, 0x80, 0x1000, 0x100))
	f.Fuzz(func(t *testing.T, data []byte) {
		next := func() uint64 {
			if len(data) < 8 {
				data = nil
				return 0
			}
			v := binary.LittleEndian.Uint64(data)
			data = data[8:]
			return v
		}
		n := int(next() % 20)
		backing := make([]byte, 0, 20*0x1000)
		regions := make([]Region, n)
		for i := range regions {
			gpa, uva := next(), next()
			size := next() % 0x1001 // includes 0: refused
			mem := backing[len(backing) : len(backing)+int(size) : len(backing)+int(size)]
			backing = backing[:len(backing)+int(size)]
			regions[i] = Region{GuestPhys: gpa, UserAddr: uva, Size: size, Mem: mem}
		}
		m, err := NewMemory(regions)
		if want := memoryValid(regions); (err == nil) != want {
			t.Fatalf("NewMemory(%+v): %v, want valid=%v", regions, err, want)
		}
		if err != nil {
			return
		}
		for len(data) >= 16 {
			addr, size := next(), next()
			// Half the queries near a region boundary, so that they hit.
			if size&(1<<63) != 0 && n > 0 {
				r := regions[int(addr%uint64(n))]
				start := r.GuestPhys
				if size&(1<<62) != 0 {
					start = r.UserAddr
				}
				addr = start + (addr>>32)%(r.Size+2) - 1
				size = (size >> 8) % (r.Size + 2)
			}
			for _, user := range []bool{false, true} {
				tr := m.Guest
				if user {
					tr = m.User
				}
				got, ok := tr(addr, size)
				r, off, want := holder(regions, user, addr, size)
				if ok != want {
					t.Fatalf("user=%v %#x+%#x: ok=%v, want %v", user, addr, size, ok, want)
				}
				if !ok {
					continue
				}
				if uint64(len(got)) != size || uint64(cap(got)) != size {
					t.Fatalf("user=%v %#x+%#x: len %d cap %d", user, addr, size, len(got), cap(got))
				}
				if size > 0 && &got[0] != &r.Mem[off] {
					t.Fatalf("user=%v %#x+%#x: wrong bytes", user, addr, size)
				}
			}
		}
	})
}

// memoryValid is what NewMemory must accept, by brute force.
func memoryValid(regions []Region) bool {
	if len(regions) > MaxRegions {
		return false
	}
	for _, r := range regions {
		if r.Size == 0 || uint64(len(r.Mem)) != r.Size || r.GuestPhys+r.Size-1 < r.GuestPhys || r.UserAddr+r.Size-1 < r.UserAddr {
			return false
		}
	}
	overlap := func(a, b, sa, sb uint64) bool { // [a, a+sa) and [b, b+sb) intersect
		last := func(x, s uint64) uint64 { return x + s - 1 }
		return a <= last(b, sb) && b <= last(a, sa)
	}
	for i, r := range regions {
		for _, s := range regions[i+1:] {
			if overlap(r.GuestPhys, s.GuestPhys, r.Size, s.Size) || overlap(r.UserAddr, s.UserAddr, r.Size, s.Size) {
				return false
			}
		}
	}
	return true
}

// holder finds, by brute force, the region that holds [addr, addr+n).
func holder(regions []Region, user bool, addr, n uint64) (Region, uint64, bool) {
	for _, r := range regions {
		start := r.GuestPhys
		if user {
			start = r.UserAddr
		}
		if addr < start {
			continue
		}
		off := addr - start
		if off < r.Size && n <= r.Size-off {
			return r, off, true
		}
	}
	return Region{}, 0, false
}
