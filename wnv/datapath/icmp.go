package datapath

import (
	"github.com/xvswitch/xvs/header"
	"github.com/xvswitch/xvs/wnv"
)

// ICMP errors the module sends for frames it drops while routing: time
// exceeded when a routed frame's TTL or hop limit runs out, fragmentation
// needed (IPv4 with DF) or packet too big (IPv6) when a frame no longer
// fits the provider network once encapsulated (the provider network never
// fragments NVGRE; path MTU discovery does the rest). They come from the
// source subnet's gateway, as a router's would, and go back to the VM's
// port. At most Config.ICMPPerSecond per second per module (RFC 1812
// 4.3.2.8 and RFC 4443 2.4(f) ask for a limit); the frames they answer are
// counted (ttl, mtu) whether or not an error is sent.

// icmpBudget counts the errors sent in the current second.
type icmpBudget struct {
	second uint32
	sent   int
}

func (m *Module) icmpAllowed() bool {
	if m.icmp.second != m.now {
		m.icmp.second, m.icmp.sent = m.now, 0
	}
	if m.icmp.sent >= m.cfg.ICMPPerSecond {
		return false
	}
	m.icmp.sent++
	return true
}

// timeExceeded answers a routed frame whose TTL (ip4) or hop limit (ip6)
// ran out, sent by vmMAC on port in.
func (m *Module) timeExceeded(in *Port, vmMAC wnv.MAC, ip4 header.IPv4, ip6 header.IPv6) {
	m.icmpError(in, vmMAC, ip4, ip6, func(buf []byte, sub *wnv.VirtualSubnet) (int, error) {
		if ip4 != nil {
			return header.WriteICMPv4TimeExceeded(buf, vmMAC, ip4, m.pol.GatewayMAC(), sub.Gateway4().As4())
		}
		return header.WriteICMPv6Error(buf, vmMAC, ip6, m.pol.GatewayMAC(), sub.Gateway6().As16(), header.ICMPv6TimeExceeded, 0, 0)
	})
}

// tooBig answers a frame that no longer fits the provider network once
// encapsulated, telling the VM the largest IP packet that does (mtu).
// IPv4 without DF is only dropped (mtu): xvs does not fragment.
func (m *Module) tooBig(in *Port, vmMAC wnv.MAC, ip4 header.IPv4, ip6 header.IPv6, mtu int) {
	if ip4 != nil && !ip4.DF() {
		return
	}
	m.icmpError(in, vmMAC, ip4, ip6, func(buf []byte, sub *wnv.VirtualSubnet) (int, error) {
		if ip4 != nil {
			return header.WriteICMPv4FragNeeded(buf, vmMAC, ip4, m.pol.GatewayMAC(), sub.Gateway4().As4(), uint16(mtu))
		}
		return header.WriteICMPv6PacketTooBig(buf, vmMAC, ip6, m.pol.GatewayMAC(), sub.Gateway6().As16(), uint32(mtu))
	})
}

// icmpError builds an error with write and emits it toward the VM, within
// the budget. Errors about errors and the other cases RFC 1122 and RFC 4443
// forbid come back from header as ErrICMPSuppressed: nothing is sent.
func (m *Module) icmpError(in *Port, vmMAC wnv.MAC, ip4 header.IPv4, ip6 header.IPv6, write func([]byte, *wnv.VirtualSubnet) (int, error)) {
	sub, ok := m.pol.Subnet(in.VSID)
	if !ok || (ip6 != nil && !sub.IPv6Prefix.IsValid()) || !m.icmpAllowed() {
		return
	}
	buf, idx, ok := m.spare()
	if !ok {
		return
	}
	n, err := write(buf, sub)
	if err == header.ErrICMPSuppressed {
		m.pool.Put(idx)
		return
	}
	m.emit(in.Index, idx, n, err)
}
