package wnv

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/xvswitch/xvs/header"
)

// VSID limits: package header's, the one definition (RFC 7637 reserves
// 0..0xFFF and 0xFFFFFF; 0 means non-virtualized).
const (
	MinVSID = header.MinVSID
	MaxVSID = header.MaxVSID
)

// DefaultGatewayMAC answers ARP and Neighbor Discovery for every virtual
// subnet's default gateway unless [Builder.SetGatewayMAC] picks another. It
// is locally administered (02:) and unicast; 78:76:73 is "xvs" in ASCII.
var DefaultGatewayMAC = MAC{0x02, 0x78, 0x76, 0x73, 0x00, 0x01}

// MAC is an Ethernet address. A [6]byte converts to it implicitly.
type MAC [6]byte

// ParseMAC accepts 02:00:00:00:00:01, 02-00-00-00-00-01 (Hyper-V's form)
// and 020000000001, in either case.
func ParseMAC(s string) (MAC, error) {
	var m MAC
	t := s
	switch len(s) {
	case 17:
		sep := s[2]
		if sep != ':' && sep != '-' {
			return m, errorf(ErrInvalid, "%q: not a mac address", s)
		}
		var b strings.Builder
		for i := 0; i < 17; i++ {
			if i%3 == 2 {
				if s[i] != sep {
					return m, errorf(ErrInvalid, "%q: not a mac address", s)
				}
				continue
			}
			b.WriteByte(s[i])
		}
		t = b.String()
	case 12:
	default:
		return m, errorf(ErrInvalid, "%q: not a mac address", s)
	}
	for i := 0; i < 6; i++ {
		hi, ok1 := unhex(t[2*i])
		lo, ok2 := unhex(t[2*i+1])
		if !ok1 || !ok2 {
			return MAC{}, errorf(ErrInvalid, "%q: not a mac address", s)
		}
		m[i] = hi<<4 | lo
	}
	return m, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// String formats m as 02:00:00:00:00:01.
func (m MAC) String() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// IsZero reports whether m is 00:00:00:00:00:00.
func (m MAC) IsZero() bool { return m == MAC{} }

// IsMulticast reports whether the group bit is set (broadcast included).
func (m MAC) IsMulticast() bool { return m[0]&1 == 1 }

// IsBroadcast reports whether m is ff:ff:ff:ff:ff:ff.
func (m MAC) IsBroadcast() bool { return m == MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff} }

// checkUnicast refuses the addresses a station cannot have.
func (m MAC) checkUnicast() error {
	switch {
	case m.IsZero():
		return errorf(ErrInvalid, "mac %s: zero", m)
	case m.IsBroadcast():
		return errorf(ErrInvalid, "mac %s: broadcast", m)
	case m.IsMulticast():
		return errorf(ErrInvalid, "mac %s: multicast", m)
	}
	return nil
}

// Rule is how a lookup record's traffic crosses the physical network.
type Rule uint8

const (
	// RuleEncap (HNV TranslationMethodEncap) wraps the customer frame in
	// NVGRE between provider addresses; many CAs share one PA.
	RuleEncap Rule = iota
	// RuleRewrite (HNV TranslationMethodNat) rewrites CA to PA in the IP
	// header; each CA needs a PA of its own, and the CA is IPv4.
	RuleRewrite
)

func (r Rule) String() string {
	switch r {
	case RuleEncap:
		return "encap"
	case RuleRewrite:
		return "rewrite"
	}
	return fmt.Sprintf("rule(%d)", uint8(r))
}

// ParseRule accepts "encap", "nvgre", "TranslationMethodEncap", "rewrite",
// "nat" and "TranslationMethodNat" in any case; "" is encap.
func ParseRule(s string) (Rule, error) {
	switch strings.ToLower(s) {
	case "", "encap", "nvgre", "translationmethodencap":
		return RuleEncap, nil
	case "rewrite", "nat", "translationmethodnat":
		return RuleRewrite, nil
	}
	return 0, errorf(ErrInvalid, "%q: want encap or rewrite", s)
}

// RecordType says which lookups find a record.
type RecordType uint8

const (
	// TypeStatic: a VM's CA and MAC; found by CA and by MAC.
	TypeStatic RecordType = iota
	// TypeL2Only: a MAC without a CA (non-IP or not yet addressed
	// traffic); found by MAC only. Its CA is empty.
	TypeL2Only
	// TypeGatewayWildcard: CA 0.0.0.0 or ::, "everything in this VSID not
	// otherwise known goes to this PA" (a gateway appliance). At most one
	// per VSID and family; not found by MAC.
	TypeGatewayWildcard
)

func (t RecordType) String() string {
	switch t {
	case TypeStatic:
		return "static"
	case TypeL2Only:
		return "l2only"
	case TypeGatewayWildcard:
		return "gatewaywildcard"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// ParseRecordType accepts static, l2only and gatewaywildcard in any case
// ("" is static). Hyper-V's Dynamic is not supported.
func ParseRecordType(s string) (RecordType, error) {
	switch strings.ToLower(s) {
	case "", "static":
		return TypeStatic, nil
	case "l2only":
		return TypeL2Only, nil
	case "gatewaywildcard":
		return TypeGatewayWildcard, nil
	case "dynamic":
		return 0, errorf(ErrInvalid, "%q: not supported (want static, l2only or gatewaywildcard)", s)
	}
	return 0, errorf(ErrInvalid, "%q: want static, l2only or gatewaywildcard", s)
}

// RoutingDomain is one tenant's network. Virtual subnets of one routing
// domain route to each other; nothing routes between routing domains.
type RoutingDomain struct {
	// ID is kept as given and compared exactly: HNV uses a GUID such as
	// "{11111111-2222-3333-4444-000000000000}"; any 1..64 printable
	// characters without spaces are accepted.
	ID string
}

// VirtualSubnet is a VSID in one routing domain with its prefixes.
type VirtualSubnet struct {
	VSID          uint32
	RoutingDomain string
	// IPv4Prefix is required, masked (10.0.1.0/24), /1 to /30.
	IPv4Prefix netip.Prefix
	// IPv6Prefix is optional (the zero Prefix means none), masked, /1 to
	// /126.
	IPv6Prefix netip.Prefix
}

// Gateway4 is the subnet's IPv4 default gateway: the first address after
// the prefix's network address (10.0.1.1 for 10.0.1.0/24).
func (s *VirtualSubnet) Gateway4() netip.Addr { return gatewayOf(s.IPv4Prefix) }

// Gateway6 is the IPv6 default gateway, prefix::1, or the zero Addr when
// the subnet has no IPv6 prefix.
func (s *VirtualSubnet) Gateway6() netip.Addr { return gatewayOf(s.IPv6Prefix) }

func gatewayOf(p netip.Prefix) netip.Addr {
	if !p.IsValid() {
		return netip.Addr{}
	}
	return p.Addr().Next()
}

// prefixFor returns the subnet's prefix in a's family.
func (s *VirtualSubnet) prefixFor(a netip.Addr) netip.Prefix {
	if a.Is4() {
		return s.IPv4Prefix
	}
	return s.IPv6Prefix
}

// LookupRecord maps a customer address (and MAC) in a VSID to the provider
// address of the host that has it.
type LookupRecord struct {
	VSID uint32
	// CA: the customer address, IPv4 or IPv6, inside the subnet's prefix
	// of that family. Empty for TypeL2Only; 0.0.0.0 or :: for
	// TypeGatewayWildcard.
	CA  netip.Addr
	MAC MAC
	// PA: the provider address (unicast IPv4) of the host that owns CA.
	PA   netip.Addr
	Rule Rule
	// VMName optionally names the VM or port the record belongs to.
	VMName string
	Type   RecordType
}

// CustomerRoute routes a destination prefix inside a routing domain.
type CustomerRoute struct {
	RoutingDomain string
	// VSID is the source subnet the route applies to; 0 applies it to
	// every subnet of the routing domain.
	VSID        uint32
	Destination netip.Prefix
	// NextHop is a CA inside one of the routing domain's subnets (a
	// gateway or appliance VM), or the zero Addr for on-link: the
	// destination is looked up in the source VSID, falling back to its
	// gateway wildcard record. 0.0.0.0 and :: are stored as the zero Addr.
	NextHop netip.Addr
	Metric  uint32
}

// ProviderAddress is one of this host's addresses on the physical network.
type ProviderAddress struct {
	Interface string
	PA        netip.Addr
	PrefixLen int
	// VLAN is the 802.1Q VLAN ID of the uplink, 0 (untagged) to 4094.
	VLAN uint16
}

// Prefix is the on-link network of the provider address.
func (a *ProviderAddress) Prefix() netip.Prefix {
	return netip.PrefixFrom(a.PA, a.PrefixLen).Masked()
}

// ProviderRoute is a route on the physical (provider) network, IPv4.
type ProviderRoute struct {
	Destination netip.Prefix
	// NextHop must be on-link (inside a provider address's prefix); the
	// zero Addr (or 0.0.0.0) means the destination itself is on-link.
	NextHop netip.Addr
	Metric  uint32
}

// ---- field validation shared by the builder ----

func checkID(id string) error {
	if id == "" {
		return errorf(ErrInvalid, "id %q: empty", id)
	}
	if len(id) > 64 {
		return errorf(ErrInvalid, "id %q: longer than 64 characters", id)
	}
	if !utf8.ValidString(id) {
		return errorf(ErrInvalid, "id %q: not utf-8", id)
	}
	for _, r := range id {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return errorf(ErrInvalid, "id %q: has space or unprintable character %q", id, r)
		}
	}
	return nil
}

func checkVSID(v uint32) error {
	if v < MinVSID || v > MaxVSID {
		return errorf(ErrInvalid, "vsid: %d: want %d..%d", v, MinVSID, MaxVSID)
	}
	return nil
}

func checkName(field, s string) error {
	if len(s) > 256 {
		return errorf(ErrInvalid, "%s %q: longer than 256 bytes", field, s)
	}
	if !utf8.ValidString(s) {
		return errorf(ErrInvalid, "%s %q: not utf-8", field, s)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return errorf(ErrInvalid, "%s %q: has control character %q", field, s, r)
		}
	}
	return nil
}

// checkPA refuses what cannot be a host's unicast IPv4 address.
func checkPA(field string, a netip.Addr) error {
	switch {
	case !a.IsValid():
		return errorf(ErrInvalid, "%s: missing", field)
	case !a.Is4():
		return errorf(ErrInvalid, "%s %s: want ipv4", field, a)
	case a.IsUnspecified():
		return errorf(ErrInvalid, "%s %s: unspecified", field, a)
	case a.IsMulticast():
		return errorf(ErrInvalid, "%s %s: multicast", field, a)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return errorf(ErrInvalid, "%s %s: broadcast", field, a)
	case a.IsLoopback():
		return errorf(ErrInvalid, "%s %s: loopback", field, a)
	}
	return nil
}

var (
	reserved4 = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("224.0.0.0/3"),
	}
	reserved6 = []netip.Prefix{
		netip.MustParsePrefix("::/8"),
		netip.MustParsePrefix("ff00::/8"),
	}
)

// checkSubnetPrefix validates a virtual subnet's prefix of one family.
func checkSubnetPrefix(field string, p netip.Prefix, v6 bool) error {
	if !p.IsValid() {
		return errorf(ErrInvalid, "%s: missing", field)
	}
	a := p.Addr()
	maxBits, reserved := 30, reserved4
	if v6 {
		maxBits, reserved = 126, reserved6
		if !a.Is6() || a.Is4In6() {
			return errorf(ErrInvalid, "%s %s: want ipv6", field, p)
		}
	} else if !a.Is4() {
		return errorf(ErrInvalid, "%s %s: want ipv4", field, p)
	}
	if p.Bits() < 1 || p.Bits() > maxBits {
		return errorf(ErrInvalid, "%s %s: want /1../%d", field, p, maxBits)
	}
	if p.Masked() != p {
		return errorf(ErrInvalid, "%s %s: host bits set (want %s)", field, p, p.Masked())
	}
	for _, r := range reserved {
		if r.Overlaps(p) {
			return errorf(ErrInvalid, "%s %s: overlaps reserved %s", field, p, r)
		}
	}
	return nil
}

func checkRoutePrefix(field string, p netip.Prefix) error {
	if !p.IsValid() {
		return errorf(ErrInvalid, "%s: missing", field)
	}
	if p.Addr().Is4In6() {
		return errorf(ErrInvalid, "%s %s: ipv4-mapped", field, p)
	}
	if p.Masked() != p {
		return errorf(ErrInvalid, "%s %s: host bits set (want %s)", field, p, p.Masked())
	}
	return nil
}
