package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"

	"go.yaml.in/yaml/v3"

	"github.com/xvswitch/xvs/extensions/api"
	"github.com/xvswitch/xvs/header"
)

// The VSIDs a rule may name: 0 (frames outside any virtual subnet) or a
// 24-bit virtual subnet ID, as extensions.Config accepts.
const (
	minVSID = header.MinVSID
	maxVSID = header.MaxVSID
)

// dirMatch is the direction a rule applies to.
type dirMatch uint8

const (
	dirAny dirMatch = iota
	dirIngress
	dirEgress
)

// portRange is an inclusive range of TCP, UDP or SCTP ports; set false:
// any port.
type portRange struct {
	set    bool
	lo, hi uint16
}

func (r portRange) contains(p uint16) bool { return p >= r.lo && p <= r.hi }

// rule is one compiled rule. The zero value of each match field means any.
type rule struct {
	allow bool

	hasVSID bool
	vsid    uint32
	dir     dirMatch

	// ipOnly: the rule has a protocol, prefix or port field, so it matches
	// IPv4 and IPv6 frames only.
	ipOnly   bool
	anyProto bool
	proto    uint8
	src, dst netip.Prefix // invalid: any address
	sport    portRange
	dport    portRange
}

// match reports whether the rule covers a frame of vsid seen in dir.
func (r *rule) match(vsid uint32, dir api.Direction, f *flow) bool {
	if r.hasVSID && vsid != r.vsid {
		return false
	}
	switch r.dir {
	case dirIngress:
		if dir != api.Ingress {
			return false
		}
	case dirEgress:
		if dir != api.Egress {
			return false
		}
	}
	if !r.ipOnly {
		return true
	}
	if !f.ip {
		return false
	}
	if !r.anyProto && f.proto != r.proto {
		return false
	}
	if r.src.IsValid() && !r.src.Contains(f.src) {
		return false
	}
	if r.dst.IsValid() && !r.dst.Contains(f.dst) {
		return false
	}
	if r.sport.set && (!f.ports || !r.sport.contains(f.sport)) {
		return false
	}
	if r.dport.set && (!f.ports || !r.dport.contains(f.dport)) {
		return false
	}
	return true
}

// ruleset is one loaded rules file. It is never changed after parseRules
// returns, except for its hit counters; a reload builds a new one.
type ruleset struct {
	defaultAllow bool
	rules        []rule
	hits         []atomic.Uint64 // hits[i]: frames decided by rules[i]
	defaultHits  atomic.Uint64   // frames no rule matched
}

// decide returns whether the first rule that matches allows the frame,
// or the default when none does, and counts the hit.
func (rs *ruleset) decide(vsid uint32, dir api.Direction, f *flow) bool {
	for i := range rs.rules {
		if rs.rules[i].match(vsid, dir, f) {
			rs.hits[i].Add(1)
			return rs.rules[i].allow
		}
	}
	rs.defaultHits.Add(1)
	return rs.defaultAllow
}

// ruleFile is the YAML document. Fields are yaml.Node so that errors can
// name the line of a bad value; the decoder refuses unknown keys.
type ruleFile struct {
	Default yaml.Node   `yaml:"default"`
	Rules   []ruleEntry `yaml:"rules"`
}

type ruleEntry struct {
	Action    yaml.Node `yaml:"action"`
	VSID      yaml.Node `yaml:"vsid"`
	Direction yaml.Node `yaml:"direction"`
	Protocol  yaml.Node `yaml:"protocol"`
	Src       yaml.Node `yaml:"src"`
	Dst       yaml.Node `yaml:"dst"`
	Sport     yaml.Node `yaml:"sport"`
	Dport     yaml.Node `yaml:"dport"`
}

// parseRules compiles a rules file. Errors name the rule (numbered from 1,
// as in the stats key rule-N), the line, the field and the value.
func parseRules(data []byte) (*ruleset, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var file ruleFile
	if err := dec.Decode(&file); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty file: want at least a default or rules")
		}
		return nil, yamlError(data, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, yamlError(data, err)
		}
		return nil, fmt.Errorf("line %d: a second YAML document: want one", extra.Line)
	}

	rs := &ruleset{defaultAllow: true}
	if present(&file.Default) {
		if _, err := scalar("default", &file.Default); err != nil {
			return nil, err
		}
		allow, err := parseAction(&file.Default)
		if err != nil {
			return nil, fieldError("default", &file.Default, "%v", err)
		}
		rs.defaultAllow = allow
	}
	rs.rules = make([]rule, len(file.Rules))
	rs.hits = make([]atomic.Uint64, len(file.Rules))
	for i := range file.Rules {
		if err := compileRule(&file.Rules[i], &rs.rules[i]); err != nil {
			return nil, fmt.Errorf("rule %d: %w", i+1, err)
		}
	}
	return rs, nil
}

// yamlError rewords the decoder's type errors, which name Go types, and
// names the rule of each line they mention.
func yamlError(data []byte, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		m = strings.ReplaceAll(m, "in type main.ruleEntry", "in a rule (want action, vsid, direction, protocol, src, dst, sport, dport)")
		m = strings.ReplaceAll(m, "in type main.ruleFile", "at the top level (want default, rules)")
		m = strings.ReplaceAll(m, "into main.ruleEntry", "into a rule: want a mapping")
		m = strings.ReplaceAll(m, "into []main.ruleEntry", "into rules: want a list of rules")
		var line int
		if _, err := fmt.Sscanf(m, "line %d:", &line); err == nil {
			if n := ruleAtLine(data, line); n > 0 {
				m = fmt.Sprintf("rule %d: %s", n, m)
			}
		}
		msgs[i] = m
	}
	return errors.New(strings.Join(msgs, "; "))
}

// ruleAtLine returns the number (from 1) of the rule written at line, or
// 0 if line is not inside the rules list.
func ruleAtLine(data []byte, line int) int {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return 0
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return 0
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value != "rules" || top.Content[i+1].Kind != yaml.SequenceNode {
			continue
		}
		n := 0
		for j, item := range top.Content[i+1].Content {
			if item.Line <= line {
				n = j + 1
			}
		}
		return n
	}
	return 0
}

// present reports whether a field was given.
func present(n *yaml.Node) bool { return n.Kind != 0 }

// entryLine is "line N: " for the first field of a rule, "" if it has none.
func entryLine(e *ruleEntry) string {
	line := 0
	for _, n := range []*yaml.Node{&e.Action, &e.VSID, &e.Direction, &e.Protocol, &e.Src, &e.Dst, &e.Sport, &e.Dport} {
		if present(n) && (line == 0 || n.Line < line) {
			line = n.Line
		}
	}
	if line == 0 {
		return ""
	}
	return fmt.Sprintf("line %d: ", line)
}

// fieldError is an error about one field: "line 9: dport "70000": ...".
func fieldError(name string, n *yaml.Node, format string, args ...any) error {
	return fmt.Errorf("line %d: %s %q: %s", n.Line, name, n.Value, fmt.Sprintf(format, args...))
}

// scalar returns the text of a field, or an error naming it unless it is a
// non-empty scalar.
func scalar(name string, n *yaml.Node) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("line %d: %s: want a single value, not a list or mapping", n.Line, name)
	}
	if n.Tag == "!!null" || n.Value == "" {
		return "", fmt.Errorf("line %d: %s: empty value", n.Line, name)
	}
	return n.Value, nil
}

func compileRule(e *ruleEntry, r *rule) error {
	if !present(&e.Action) {
		return fmt.Errorf("%saction: missing: want allow or deny", entryLine(e))
	}
	if _, err := scalar("action", &e.Action); err != nil {
		return err
	}
	var err error
	if r.allow, err = parseAction(&e.Action); err != nil {
		return fieldError("action", &e.Action, "%v", err)
	}

	if present(&e.VSID) {
		v, err := scalar("vsid", &e.VSID)
		if err != nil {
			return err
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n != 0 && (n < minVSID || n > maxVSID) {
			return fieldError("vsid", &e.VSID, "want 0 or %d..%d", minVSID, maxVSID)
		}
		r.hasVSID, r.vsid = true, uint32(n)
	}

	if present(&e.Direction) {
		v, err := scalar("direction", &e.Direction)
		if err != nil {
			return err
		}
		switch strings.ToLower(v) {
		case "any":
			r.dir = dirAny
		case "ingress":
			r.dir = dirIngress
		case "egress":
			r.dir = dirEgress
		default:
			return fieldError("direction", &e.Direction, "want ingress, egress or any")
		}
	}

	r.anyProto = true
	if present(&e.Protocol) {
		v, err := scalar("protocol", &e.Protocol)
		if err != nil {
			return err
		}
		p, isAny, err := parseProtocol(v)
		if err != nil {
			return fieldError("protocol", &e.Protocol, "%v", err)
		}
		if !isAny {
			r.anyProto, r.proto, r.ipOnly = false, p, true
		}
	}

	for _, f := range []struct {
		name string
		node *yaml.Node
		out  *netip.Prefix
	}{{"src", &e.Src, &r.src}, {"dst", &e.Dst, &r.dst}} {
		if !present(f.node) {
			continue
		}
		v, err := scalar(f.name, f.node)
		if err != nil {
			return err
		}
		p, err := parsePrefix(v)
		if err != nil {
			return fieldError(f.name, f.node, "%v", err)
		}
		if !r.anyProto && r.proto == protoICMP && p.Addr().Is6() {
			return fieldError(f.name, f.node, "an IPv6 prefix with protocol icmp never matches: want icmpv6")
		}
		if !r.anyProto && r.proto == protoICMPv6 && p.Addr().Is4() {
			return fieldError(f.name, f.node, "an IPv4 prefix with protocol icmpv6 never matches: want icmp")
		}
		*f.out, r.ipOnly = p, true
	}
	if r.src.IsValid() && r.dst.IsValid() && r.src.Addr().Is4() != r.dst.Addr().Is4() {
		return fieldError("dst", &e.Dst, "src %s is of the other address family: the rule would never match", r.src)
	}

	for _, f := range []struct {
		name string
		node *yaml.Node
		out  *portRange
	}{{"sport", &e.Sport, &r.sport}, {"dport", &e.Dport, &r.dport}} {
		if !present(f.node) {
			continue
		}
		v, err := scalar(f.name, f.node)
		if err != nil {
			return err
		}
		pr, err := parsePortRange(v)
		if err != nil {
			return fieldError(f.name, f.node, "%v", err)
		}
		if !r.anyProto && !hasPorts(r.proto) {
			return fieldError(f.name, f.node, "ports need protocol tcp, udp, sctp or any, not %d", r.proto)
		}
		*f.out, r.ipOnly = pr, true
	}
	return nil
}

// parseAction parses allow or deny.
func parseAction(n *yaml.Node) (allow bool, err error) {
	switch strings.ToLower(n.Value) {
	case "allow":
		return true, nil
	case "deny":
		return false, nil
	}
	return false, errors.New("want allow or deny")
}

// parseProtocol parses a protocol name or number; isAny reports "any".
func parseProtocol(s string) (p uint8, isAny bool, err error) {
	switch strings.ToLower(s) {
	case "any":
		return 0, true, nil
	case "tcp":
		return protoTCP, false, nil
	case "udp":
		return protoUDP, false, nil
	case "icmp":
		return protoICMP, false, nil
	case "icmpv6":
		return protoICMPv6, false, nil
	case "sctp":
		return protoSCTP, false, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, false, errors.New("want tcp, udp, sctp, icmp, icmpv6, any or a number 0..255")
	}
	return uint8(n), false, nil
}

// parsePrefix parses a prefix or a single address (a /32 or /128). Bits
// beyond the prefix length are cleared: 10.0.0.1/24 is 10.0.0.0/24.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, errors.New("want an IPv4 or IPv6 prefix like 10.0.0.0/24 or an address")
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, errors.New("want no zone")
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, errors.New("want an IPv4 or IPv6 prefix like 10.0.0.0/24 or an address")
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// parsePortRange parses N or N-M, 0 <= N <= M <= 65535.
func parsePortRange(s string) (portRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	l, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	h, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
	if err1 != nil || err2 != nil {
		return portRange{}, errors.New("want a port 0..65535 or a range N-M")
	}
	if l > h {
		return portRange{}, errors.New("range start above its end")
	}
	return portRange{set: true, lo: uint16(l), hi: uint16(h)}, nil
}
