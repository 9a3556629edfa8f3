package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/xvswitch/xvs/extensions/api"
)

func TestParseRulesExample(t *testing.T) {
	rs, err := parseRules([]byte(`
default: deny
rules:
  - action: deny        # the example of the package documentation
    vsid: 5001
    direction: ingress
    protocol: tcp
    src: 10.0.0.0/24
    dst: 10.0.0.2/32
    sport: 1024-65535
    dport: 5201
  - action: ALLOW
    protocol: 58
    src: fd00::1/64
  - action: allow
    direction: any
    protocol: any
    dst: 10.0.0.9
`))
	if err != nil {
		t.Fatal(err)
	}
	if rs.defaultAllow {
		t.Error("default allow, want deny")
	}
	want := []rule{
		{allow: false, hasVSID: true, vsid: 5001, dir: dirIngress, ipOnly: true, proto: protoTCP,
			src: netip.MustParsePrefix("10.0.0.0/24"), dst: netip.MustParsePrefix("10.0.0.2/32"),
			sport: portRange{true, 1024, 65535}, dport: portRange{true, 5201, 5201}},
		{allow: true, ipOnly: true, proto: protoICMPv6, src: netip.MustParsePrefix("fd00::/64")},
		{allow: true, ipOnly: true, anyProto: true, dst: netip.MustParsePrefix("10.0.0.9/32")},
	}
	if len(rs.rules) != len(want) || len(rs.hits) != len(want) {
		t.Fatalf("%d rules, %d counters, want %d", len(rs.rules), len(rs.hits), len(want))
	}
	for i := range want {
		if rs.rules[i] != want[i] {
			t.Errorf("rule %d = %+v\nwant %+v", i+1, rs.rules[i], want[i])
		}
	}
}

func TestParseRulesDefaults(t *testing.T) {
	for _, doc := range []string{"rules: []", "default: allow", "rules:\n"} {
		rs, err := parseRules([]byte(doc))
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if !rs.defaultAllow || len(rs.rules) != 0 {
			t.Errorf("%q: default allow %v, %d rules; want allow, 0", doc, rs.defaultAllow, len(rs.rules))
		}
	}
}

func TestParseRulesErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string // each must be in the error
	}{
		{"empty file", "", []string{"empty file"}},
		{"comment only", "# nothing\n", []string{"empty file"}},
		{"not yaml", "rules: [", []string{"line 1"}},
		{"top-level unknown key", "default: allow\nrule:\n  - action: deny\n", []string{"line 2", `field rule not found`, "top level"}},
		{"rule unknown key", "rules:\n  - action: deny\n    dports: 80\n", []string{"rule 1: line 3", "field dports not found", "in a rule"}},
		{"rules not a list", "rules:\n  action: deny\n", []string{"line 2", "want a list of rules"}},
		{"rule not a mapping", "rules:\n  - allow\n  - deny\n", []string{"rule 2: line 3", "want a mapping"}},
		{"unknown key in a later rule", "rules:\n  - action: allow\n  - action: deny\n\n    # comment\n    port: 22\n", []string{"rule 2: line 6", "field port not found"}},
		{"second document", "default: allow\n---\ndefault: deny\n", []string{"second YAML document"}},
		{"bad default", "default: maybe\n", []string{"line 1", `default "maybe"`, "allow or deny"}},
		{"default list", "default: [allow]\n", []string{"line 1", "default", "single value"}},
		{"missing action", "rules:\n  - dport: 80\n    protocol: tcp\n", []string{"rule 1", "line 2", "action: missing"}},
		{"empty rule", "rules:\n  - {}\n", []string{"rule 1", "action: missing"}},
		{"bad action", "rules:\n  - action: allow\n  - action: reject\n", []string{"rule 2", "line 3", `action "reject"`}},
		{"empty action", "rules:\n  - action:\n", []string{"rule 1", "line 2", "action: empty value"}},
		{"vsid text", "rules:\n  - action: deny\n    vsid: five\n", []string{"rule 1", "line 3", `vsid "five"`, "4096..16777214"}},
		{"vsid too small", "rules:\n  - action: deny\n    vsid: 100\n", []string{`vsid "100"`}},
		{"vsid too big", "rules:\n  - action: deny\n    vsid: 16777215\n", []string{`vsid "16777215"`}},
		{"vsid negative", "rules:\n  - action: deny\n    vsid: -5001\n", []string{`vsid "-5001"`}},
		{"bad direction", "rules:\n  - action: deny\n    direction: inbound\n", []string{"line 3", `direction "inbound"`, "ingress, egress or any"}},
		{"bad protocol", "rules:\n  - action: deny\n    protocol: tcpp\n", []string{`protocol "tcpp"`, "0..255"}},
		{"protocol 256", "rules:\n  - action: deny\n    protocol: 256\n", []string{`protocol "256"`}},
		{"protocol list", "rules:\n  - action: deny\n    protocol: [tcp, udp]\n", []string{"line 3", "protocol", "single value"}},
		{"bad prefix", "rules:\n  - action: deny\n    src: 10.0.0.0/33\n", []string{"line 3", `src "10.0.0.0/33"`}},
		{"bad address", "rules:\n  - action: deny\n    dst: example.com\n", []string{`dst "example.com"`}},
		{"zone", "rules:\n  - action: deny\n    dst: fe80::1%eth0\n", []string{`dst "fe80::1%eth0"`}},
		{"families differ", "rules:\n  - action: deny\n    src: 10.0.0.0/8\n    dst: fd00::/8\n", []string{"rule 1", "line 4", "other address family"}},
		{"icmp with v6", "rules:\n  - action: deny\n    protocol: icmp\n    dst: fd00::/8\n", []string{"line 4", "want icmpv6"}},
		{"icmpv6 with v4", "rules:\n  - action: deny\n    protocol: icmpv6\n    src: 10.0.0.1\n", []string{"line 4", "want icmp"}},
		{"port too big", "rules:\n  - action: deny\n    protocol: tcp\n    dport: 70000\n", []string{"rule 1", "line 4", `dport "70000"`, "0..65535"}},
		{"port range reversed", "rules:\n  - action: deny\n    sport: 2000-1000\n", []string{`sport "2000-1000"`, "above its end"}},
		{"port range open", "rules:\n  - action: deny\n    sport: 1000-\n", []string{`sport "1000-"`}},
		{"port text", "rules:\n  - action: deny\n    dport: http\n", []string{`dport "http"`}},
		{"ports with icmp", "rules:\n  - action: deny\n    protocol: icmp\n    dport: 80\n", []string{"line 4", "need protocol tcp, udp, sctp or any"}},
		{"later rule numbered", "rules:\n  - action: allow\n  - action: allow\n  - action: deny\n    dport: x\n", []string{"rule 3", "line 5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseRules([]byte(tt.doc))
			if err == nil {
				t.Fatalf("parseRules(%q) succeeded, want an error", tt.doc)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParsePortRange(t *testing.T) {
	tests := []struct {
		in   string
		want portRange
		ok   bool
	}{
		{"0", portRange{true, 0, 0}, true},
		{"65535", portRange{true, 65535, 65535}, true},
		{"80-80", portRange{true, 80, 80}, true},
		{"1024 - 65535", portRange{true, 1024, 65535}, true},
		{"65536", portRange{}, false},
		{"-1", portRange{}, false},
		{"1-2-3", portRange{}, false},
		{"", portRange{}, false},
		{"+80", portRange{}, false},
	}
	for _, tt := range tests {
		got, err := parsePortRange(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parsePortRange(%q) = %+v, %v; want %+v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// TestDecide runs frames through small rule files: which rule decides,
// and what. hit 0 means the default decided.
func TestDecide(t *testing.T) {
	tcp := tcp4(t, "10.0.0.1", "10.0.0.2", 40000, 5201)
	tests := []struct {
		name  string
		rules string
		vsid  uint32
		dir   api.Direction
		frame []byte
		allow bool
		hit   int
	}{
		{"no rules: default allow", "rules: []", 5001, api.Ingress, tcp, true, 0},
		{"no rules: default deny", "default: deny", 5001, api.Ingress, tcp, false, 0},

		{"vsid matches", "rules: [{action: deny, vsid: 5001}]", 5001, api.Ingress, tcp, false, 1},
		{"vsid differs", "rules: [{action: deny, vsid: 5001}]", 5002, api.Ingress, tcp, true, 0},

		{"direction ingress on ingress", "rules: [{action: deny, direction: ingress}]", 5001, api.Ingress, tcp, false, 1},
		{"direction ingress on egress", "rules: [{action: deny, direction: ingress}]", 5001, api.Egress, tcp, true, 0},
		{"direction egress on egress", "rules: [{action: deny, direction: egress}]", 5001, api.Egress, tcp, false, 1},
		{"direction any on egress", "rules: [{action: deny, direction: any}]", 5001, api.Egress, tcp, false, 1},

		{"protocol tcp", "rules: [{action: deny, protocol: tcp}]", 5001, api.Ingress, tcp, false, 1},
		{"protocol udp on tcp", "rules: [{action: deny, protocol: udp}]", 5001, api.Ingress, tcp, true, 0},
		{"protocol by number", "rules: [{action: deny, protocol: 6}]", 5001, api.Ingress, tcp, false, 1},
		{"protocol icmp", "rules: [{action: deny, protocol: icmp}]", 5001, api.Ingress, icmp4(t, "10.0.0.1", "10.0.0.2"), false, 1},
		{"protocol icmpv6", "rules: [{action: deny, protocol: icmpv6}]", 5001, api.Ingress, icmp6(t, "fd00::1", "fd00::2"), false, 1},
		{"protocol icmp on icmpv6", "rules: [{action: deny, protocol: icmp}]", 5001, api.Ingress, icmp6(t, "fd00::1", "fd00::2"), true, 0},

		{"src exact", "rules: [{action: deny, src: 10.0.0.1}]", 5001, api.Ingress, tcp, false, 1},
		{"src exact other", "rules: [{action: deny, src: 10.0.0.3}]", 5001, api.Ingress, tcp, true, 0},
		{"src prefix first", "rules: [{action: deny, src: 10.0.0.0/31}]", 5001, api.Ingress, tcp4(t, "10.0.0.0", "10.0.0.2", 1, 2), false, 1},
		{"src prefix last", "rules: [{action: deny, src: 10.0.0.0/31}]", 5001, api.Ingress, tcp4(t, "10.0.0.1", "10.0.0.2", 1, 2), false, 1},
		{"src prefix beyond", "rules: [{action: deny, src: 10.0.0.0/31}]", 5001, api.Ingress, tcp4(t, "10.0.0.2", "10.0.0.2", 1, 2), true, 0},
		{"dst prefix", "rules: [{action: deny, dst: 10.0.0.0/24}]", 5001, api.Ingress, tcp, false, 1},
		{"dst is not src", "rules: [{action: deny, dst: 10.0.0.1}]", 5001, api.Ingress, tcp, true, 0},
		{"v4 prefix on v6", "rules: [{action: deny, src: 0.0.0.0/0}]", 5001, api.Ingress, tcp6(t, "fd00::1", "fd00::2", 1, 2), true, 0},
		{"v6 prefix", "rules: [{action: deny, dst: 'fd00::/64'}]", 5001, api.Ingress, tcp6(t, "fd00::1", "fd00::2", 1, 2), false, 1},
		{"v6 prefix beyond", "rules: [{action: deny, dst: 'fd00::/64'}]", 5001, api.Ingress, tcp6(t, "fd00::1", "fd00:0:0:1::2", 1, 2), true, 0},

		{"dport exact", "rules: [{action: deny, dport: 5201}]", 5001, api.Ingress, tcp, false, 1},
		{"dport range low edge", "rules: [{action: deny, dport: 5201-5210}]", 5001, api.Ingress, tcp, false, 1},
		{"dport range high edge", "rules: [{action: deny, dport: 5190-5201}]", 5001, api.Ingress, tcp, false, 1},
		{"dport range below", "rules: [{action: deny, dport: 5202-5210}]", 5001, api.Ingress, tcp, true, 0},
		{"dport range above", "rules: [{action: deny, dport: 5190-5200}]", 5001, api.Ingress, tcp, true, 0},
		{"sport range", "rules: [{action: deny, sport: 32768-60999}]", 5001, api.Ingress, tcp, false, 1},
		{"sport is not dport", "rules: [{action: deny, sport: 5201}]", 5001, api.Ingress, tcp, true, 0},
		{"udp6 ports", "rules: [{action: deny, protocol: udp, dport: 53}]", 5001, api.Ingress, udp6(t, "fd00::1", "fd00::2", 5353, 53), false, 1},
		{"ports never match icmp", "rules: [{action: deny, dport: 0-65535}]", 5001, api.Ingress, icmp4(t, "10.0.0.1", "10.0.0.2"), true, 0},
		{"ports never match a later fragment", "rules: [{action: deny, dport: 22}]", 5001, api.Ingress, fragment4(t, 185, false), true, 0},
		{"ports match a first fragment", "rules: [{action: deny, dport: 22}]", 5001, api.Ingress, fragment4(t, 0, true), false, 1},

		{"arp under default allow", "rules: [{action: deny, protocol: any, src: 10.0.0.0/8}]", 5001, api.Ingress, arp(t), true, 0},
		{"arp skips protocol rule", "default: deny\nrules: [{action: allow, protocol: tcp}]", 5001, api.Ingress, arp(t), false, 0},
		{"arp skips port rule", "rules: [{action: deny, dport: 1-65535}]", 5001, api.Ingress, arp(t), true, 0},
		{"arp matches vsid-only rule", "default: deny\nrules: [{action: allow, vsid: 5001, direction: ingress}]", 5001, api.Ingress, arp(t), true, 1},
		{"protocol any is no protocol", "rules: [{action: deny, protocol: any}]", 5001, api.Ingress, arp(t), false, 1},

		{"first match wins (deny first)", "rules: [{action: deny, dport: 5201}, {action: allow, protocol: tcp}]", 5001, api.Ingress, tcp, false, 1},
		{"first match wins (allow first)", "default: deny\nrules: [{action: allow, protocol: tcp}, {action: deny, dport: 5201}]", 5001, api.Ingress, tcp, true, 1},
		{"falls through to the second", "default: deny\nrules: [{action: deny, dport: 22}, {action: allow, dport: 5201}]", 5001, api.Ingress, tcp, true, 2},
		{"all fields", `rules: [{action: deny, vsid: 5001, direction: ingress, protocol: tcp, src: 10.0.0.0/24, dst: 10.0.0.2/32, sport: 1024-65535, dport: 5201}]`, 5001, api.Ingress, tcp, false, 1},
		{"all fields but one", `rules: [{action: deny, vsid: 5001, direction: ingress, protocol: tcp, src: 10.0.0.0/24, dst: 10.0.0.2/32, sport: 1024-65535, dport: 5202}]`, 5001, api.Ingress, tcp, true, 0},
		{"vlan-tagged frame matched by its IP header", "rules: [{action: deny, dport: 5201}]", 5001, api.Ingress, vlanTagged(tcp), false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := parseRules([]byte(tt.rules))
			if err != nil {
				t.Fatal(err)
			}
			f, err := parseFrame(tt.frame)
			if err != nil {
				t.Fatal(err)
			}
			if got := rs.decide(tt.vsid, tt.dir, &f); got != tt.allow {
				t.Errorf("allow = %v, want %v", got, tt.allow)
			}
			for i := range rs.hits {
				want := uint64(0)
				if i+1 == tt.hit {
					want = 1
				}
				if got := rs.hits[i].Load(); got != want {
					t.Errorf("rule %d hits = %d, want %d", i+1, got, want)
				}
			}
			wantDefault := uint64(0)
			if tt.hit == 0 {
				wantDefault = 1
			}
			if got := rs.defaultHits.Load(); got != wantDefault {
				t.Errorf("default hits = %d, want %d", got, wantDefault)
			}
		})
	}
}

// TestExampleFile checks the example rules file shipped beside the
// filter, and what it does to a few frames.
func TestExampleFile(t *testing.T) {
	rs, _, err := loadRules("testdata/acl.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		frame []byte
		allow bool
	}{
		{"https", tcp4(t, "198.51.100.7", "10.0.0.2", 50000, 443), true},
		{"ssh from the admin subnet", tcp4(t, "192.0.2.9", "10.0.0.2", 50000, 22), true},
		{"ssh from elsewhere", tcp4(t, "198.51.100.7", "10.0.0.2", 50000, 22), false},
		{"ssh over IPv6", tcp6(t, "2001:db8::7", "fd00::2", 50000, 22), false},
		{"dns reply", udp4(t, "10.0.0.53", "10.0.0.2", 53, 40000), true},
		{"other udp", udp4(t, "10.0.0.53", "10.0.0.2", 123, 123), false},
		{"ping", icmp4(t, "198.51.100.7", "10.0.0.2"), true},
		{"arp", arp(t), true},
	}
	for _, tt := range tests {
		f, err := parseFrame(tt.frame)
		if err != nil {
			t.Fatal(err)
		}
		if got := rs.decide(5001, api.Ingress, &f); got != tt.allow {
			t.Errorf("%s: allow = %v, want %v", tt.name, got, tt.allow)
		}
	}
}
