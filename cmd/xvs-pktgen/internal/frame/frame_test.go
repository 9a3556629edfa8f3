package frame

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
)

// decoded is what decode finds in a frame. decode is written from the
// RFCs (791, 768, 1071), not from Frame, as an independent reference.
type decoded struct {
	dst, src         net.HardwareAddr
	srcIP, dstIP     netip.Addr
	ttl              uint8
	df               bool
	srcPort, dstPort uint16
	payload          []byte
}

func decode(b []byte) (decoded, error) {
	var d decoded
	if len(b) < 14+20+8 {
		return d, fmt.Errorf("short frame: %d bytes", len(b))
	}
	d.dst, d.src = net.HardwareAddr(b[0:6]), net.HardwareAddr(b[6:12])
	if et := uint16(b[12])<<8 | uint16(b[13]); et != 0x0800 {
		return d, fmt.Errorf("ethertype %#04x, want IPv4", et)
	}
	ip := b[14:]
	if ip[0]>>4 != 4 || ip[0]&0xf != 5 {
		return d, fmt.Errorf("version/IHL %#02x, want 0x45", ip[0])
	}
	total := int(ip[2])<<8 | int(ip[3])
	if total != len(ip) {
		return d, fmt.Errorf("IPv4 total length %d, frame carries %d", total, len(ip))
	}
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(ip[i])<<8 | uint32(ip[i+1])
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	if sum != 0xffff {
		return d, fmt.Errorf("IPv4 header checksum wrong: sum %#04x", sum)
	}
	if ip[6]&0x40 != 0 {
		d.df = true
	}
	if ip[6]&0x3f != 0 || ip[7] != 0 || ip[6]&0x20 != 0 {
		return d, errors.New("fragment bits set")
	}
	d.ttl = ip[8]
	if ip[9] != 17 {
		return d, fmt.Errorf("protocol %d, want UDP", ip[9])
	}
	d.srcIP = netip.AddrFrom4([4]byte(ip[12:16]))
	d.dstIP = netip.AddrFrom4([4]byte(ip[16:20]))
	udp := ip[20:]
	d.srcPort = uint16(udp[0])<<8 | uint16(udp[1])
	d.dstPort = uint16(udp[2])<<8 | uint16(udp[3])
	if l := int(udp[4])<<8 | int(udp[5]); l != len(udp) {
		return d, fmt.Errorf("UDP length %d, datagram is %d", l, len(udp))
	}
	if udp[6] != 0 || udp[7] != 0 {
		return d, errors.New("UDP checksum not zero")
	}
	d.payload = udp[8:]
	return d, nil
}

func testConfig() Config {
	return Config{
		Size:    64,
		SrcMAC:  net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x01, 0x01},
		DstMAC:  net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x02, 0x02},
		SrcIP:   netip.MustParseAddr("198.18.0.1"),
		DstIP:   netip.MustParseAddr("198.19.0.1"),
		SrcPort: 1024,
		DstPort: 9,
		Flows:   1,
		Vary:    VaryAll,
	}
}

func TestFrameDecodes(t *testing.T) {
	for _, size := range []int{MinSize, 65, 128, 1514, 3000, MaxSize} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			c := testConfig()
			c.Size = size
			b := c.Frame(make([]byte, size), 0)
			d, err := decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(d.dst, c.DstMAC) || !bytes.Equal(d.src, c.SrcMAC) {
				t.Errorf("MACs %v > %v, want %v > %v", d.src, d.dst, c.SrcMAC, c.DstMAC)
			}
			if d.srcIP != c.SrcIP || d.dstIP != c.DstIP {
				t.Errorf("IPs %v > %v, want %v > %v", d.srcIP, d.dstIP, c.SrcIP, c.DstIP)
			}
			if d.srcPort != c.SrcPort || d.dstPort != c.DstPort {
				t.Errorf("ports %d > %d, want %d > %d", d.srcPort, d.dstPort, c.SrcPort, c.DstPort)
			}
			if d.ttl != 64 || !d.df {
				t.Errorf("ttl %d df %v, want 64 true", d.ttl, d.df)
			}
			if len(d.payload) != size-HeaderLen || !bytes.HasPrefix(d.payload, Magic[:]) {
				t.Errorf("payload %d bytes starting %x, want %d starting %x", len(d.payload), d.payload[:4], size-HeaderLen, Magic)
			}
		})
	}
}

// golden64 is the 64-byte frame of testConfig, checked by hand: IPv4
// total length 0x32 (50), UDP length 0x1e (30), header checksum
// ^fold(4500+0032+0000+4000+4011+c612+0001+c613+0001 = 0x2516a) =
// ^0x516c = 0xae93.
const golden64 = "020000000202" + "020000000101" + "0800" +
	"4500" + "0032" + "0000" + "4000" + "4011" + "ae93" + "c6120001" + "c6130001" +
	"0400" + "0009" + "001e" + "0000" +
	"58565350" + "000000000000000000000000000000000000"

func TestFrameGolden(t *testing.T) {
	got := hex.EncodeToString(testConfig().Frame(make([]byte, 64), 0))
	if got != golden64 {
		t.Errorf("frame\n got %s\nwant %s", got, golden64)
	}
}

func TestChecksumKnownHeader(t *testing.T) {
	// The IPv4 header example commonly used to explain the checksum:
	// 4500 0073 0000 4000 4011 [b861] c0a8 0001 c0a8 00c7.
	h, _ := hex.DecodeString("450000730000400040110000c0a80001c0a800c7")
	if got := Checksum(h); got != 0xb861 {
		t.Errorf("Checksum = %#04x, want 0xb861", got)
	}
	binary.BigEndian.PutUint16(h[10:], 0xb861)
	if got := Checksum(h); got != 0 {
		t.Errorf("Checksum over a correct header = %#04x, want 0", got)
	}
	if got := Checksum([]byte{0x01}); got != 0xfeff {
		t.Errorf("Checksum of an odd byte = %#04x, want 0xfeff", got)
	}
}

func TestFlowsAreDistinct(t *testing.T) {
	for _, vary := range []Fields{VaryMAC, VaryIP, VaryPort, VaryAll, VaryMAC | VaryPort} {
		t.Run(vary.String(), func(t *testing.T) {
			c := testConfig()
			c.Flows = 1000
			c.Vary = vary
			seen := map[string]int{}
			b := make([]byte, c.Size)
			for f := range c.Flows {
				d, err := decode(c.Frame(b, f))
				if err != nil {
					t.Fatalf("flow %d: %v", f, err)
				}
				if d.dstIP != c.DstIP || d.dstPort != c.DstPort || !bytes.Equal(d.dst, c.DstMAC) {
					t.Fatalf("flow %d changed a destination field", f)
				}
				// Only the fields named in vary change, each by f.
				wantMAC := uint16(0x0101 + f)
				if vary&VaryMAC == 0 {
					wantMAC = 0x0101
				}
				if got := binary.BigEndian.Uint16(d.src[4:]); got != wantMAC || !bytes.Equal(d.src[:4], c.SrcMAC[:4]) {
					t.Fatalf("flow %d: src MAC %v, want low bits %#04x", f, d.src, wantMAC)
				}
				wantIP := c.SrcIP
				if vary&VaryIP != 0 {
					for range f {
						wantIP = wantIP.Next()
					}
				}
				if d.srcIP != wantIP {
					t.Fatalf("flow %d: src IP %v, want %v", f, d.srcIP, wantIP)
				}
				wantPort := c.SrcPort
				if vary&VaryPort != 0 {
					wantPort += uint16(f)
				}
				if d.srcPort != wantPort {
					t.Fatalf("flow %d: src port %d, want %d", f, d.srcPort, wantPort)
				}
				key := fmt.Sprint(d.src, d.srcIP, d.srcPort)
				if g, dup := seen[key]; dup {
					t.Fatalf("flows %d and %d are the same: %s", g, f, key)
				}
				seen[key] = f
			}
		})
	}
}

func TestFlowFieldsWrap(t *testing.T) {
	c := testConfig()
	c.SrcMAC = net.HardwareAddr{0x02, 0, 0, 0x07, 0xff, 0xff}
	c.SrcIP = netip.MustParseAddr("255.255.255.255")
	c.SrcPort = 0xffff
	c.Flows = 2
	d, err := decode(c.Frame(make([]byte, c.Size), 1))
	if err != nil {
		t.Fatal(err)
	}
	if want := (net.HardwareAddr{0x02, 0, 0, 0x07, 0, 0}); !bytes.Equal(d.src, want) {
		t.Errorf("src MAC %v, want %v (only the low 16 bits wrap)", d.src, want)
	}
	if want := netip.MustParseAddr("0.0.0.0"); d.srcIP != want {
		t.Errorf("src IP %v, want %v", d.srcIP, want)
	}
	if d.srcPort != 0 {
		t.Errorf("src port %d, want 0", d.srcPort)
	}
}

func TestFrameReusesBuffer(t *testing.T) {
	c := testConfig()
	c.Flows = 5
	b := make([]byte, c.Size)
	for i := range b {
		b[i] = 0xee
	}
	want := c.Frame(make([]byte, c.Size), 3)
	c.Frame(b, 4)
	if got := c.Frame(b, 3); !bytes.Equal(got, want) {
		t.Errorf("a reused buffer gives\n%x\nwant\n%x", got, want)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		field string
		mut   func(*Config)
	}{
		{"size 63", func(c *Config) { c.Size = 63 }},
		{"size 9001", func(c *Config) { c.Size = 9001 }},
		{"src-mac", func(c *Config) { c.SrcMAC = nil }},
		{"dst-mac", func(c *Config) { c.DstMAC = net.HardwareAddr{1, 2, 3} }},
		{"src-ip", func(c *Config) { c.SrcIP = netip.MustParseAddr("::1") }},
		{"dst-ip", func(c *Config) { c.DstIP = netip.Addr{} }},
		{"flows 0", func(c *Config) { c.Flows = 0 }},
		{"flows 65537", func(c *Config) { c.Flows = MaxFlows + 1 }},
		{"vary=none", func(c *Config) { c.Flows = 2; c.Vary = 0 }},
	} {
		c := testConfig()
		tc.mut(&c)
		err := c.Validate()
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: Validate() = %v, want an ErrConfig naming %q", tc.field, err, tc.field)
		}
	}
	if err := testConfig().Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

func TestParseFields(t *testing.T) {
	for in, want := range map[string]Fields{
		"mac": VaryMAC, "ip,port": VaryIP | VaryPort, "all": VaryAll, "none": 0, "MAC, IP": VaryMAC | VaryIP,
	} {
		got, err := ParseFields(in)
		if err != nil || got != want {
			t.Errorf("ParseFields(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseFields("mac,vlan"); err == nil {
		t.Error(`ParseFields("mac,vlan") succeeded`)
	}
	if got := (VaryMAC | VaryPort).String(); got != "mac,port" {
		t.Errorf("String() = %q", got)
	}
}

func FuzzFrame(f *testing.F) {
	f.Add(64, 1, 0, uint8(VaryAll), uint32(0xc6120001), uint16(1024))
	f.Add(1514, 1000, 999, uint8(VaryIP), uint32(0xffffffff), uint16(0xffff))
	f.Add(9000, 65536, 65535, uint8(VaryMAC|VaryPort), uint32(1), uint16(0))
	f.Fuzz(func(t *testing.T, size, flows, flow int, vary uint8, ip uint32, port uint16) {
		c := testConfig()
		c.Size, c.Flows, c.Vary, c.SrcPort = size, flows, Fields(vary)&VaryAll, port
		c.SrcIP = netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)})
		if c.Validate() != nil || flow < 0 || flow >= flows {
			t.Skip()
		}
		d, err := decode(c.Frame(make([]byte, size), flow))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(d.payload, Magic[:]) {
			t.Fatal("no magic")
		}
	})
}
