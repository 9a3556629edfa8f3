#!/usr/bin/env bash
# make demo-wnv / make demo-wnv-clean: two hosts, two tenants with
# overlapping addresses, network virtualization across a provider fabric.
#
#   xvs-fabric: bridge fabric0 (the physical network; capture here)
#   xvs-host1 (PA 192.168.100.1): xvsd; VMs xvs-blue1 10.0.0.5, xvs-red1 10.0.0.5
#   xvs-host2 (PA 192.168.100.2): xvsd; VMs xvs-blue2 10.0.0.7, xvs-blue3 10.0.1.5, xvs-red2 10.0.0.7
#   Blue (RD blue): VSID 5001 10.0.0.0/24, VSID 5002 10.0.1.0/24; Red (RD red): VSID 6001 10.0.0.0/24
#
# Blue uses NVGRE; REWRITE=1 runs Blue with IP rewrite instead.
# PASSTHROUGH=1 is the baseline for benchmarks: the same hosts and fabric,
# VM ports in VSID 0 (no virtualization, untranslated), Blue's VMs only.
# Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
RUN=/run/xvs
REWRITE=${REWRITE:-0}
PASSTHROUGH=${PASSTHROUGH:-0}

# vm host vsid ca gateway rewrite-PA
VMS=(
	"xvs-blue1 1 5001 10.0.0.5 10.0.0.1 192.168.100.11"
	"xvs-red1 1 6001 10.0.0.5 10.0.0.1 -"
	"xvs-blue2 2 5001 10.0.0.7 10.0.0.1 192.168.100.12"
	"xvs-blue3 2 5002 10.0.1.5 10.0.1.1 192.168.100.13"
	"xvs-red2 2 6001 10.0.0.7 10.0.0.1 -"
)

[ "$(id -u)" = 0 ] || { echo "demo-wnv: needs root" >&2; exit 1; }

clean() {
	for h in 1 2; do
		if [ -f "$RUN/wnv-host$h.pid" ]; then
			kill "$(cat "$RUN/wnv-host$h.pid")" 2>/dev/null || true
			rm -f "$RUN/wnv-host$h.pid"
		fi
	done
	sleep 0.5
	for ns in xvs-host1 xvs-host2 xvs-fabric xvs-blue1 xvs-blue2 xvs-blue3 xvs-red1 xvs-red2; do
		pids=$(ip netns pids $ns 2>/dev/null || true)
		[ -n "$pids" ] && kill $pids 2>/dev/null || true
		ip netns del $ns 2>/dev/null || true
	done
	rm -f "$RUN"/wnv-host?.yaml "$RUN"/wnv-host?.sock
}

up() {
	clean
	mkdir -p "$RUN"
	ip netns add xvs-fabric
	ip -n xvs-fabric link set lo up
	ip -n xvs-fabric link add fabric0 type bridge
	ip -n xvs-fabric link set fabric0 up
	for h in 1 2; do
		ip netns add xvs-host$h
		ip -n xvs-host$h link set lo up
		ip link add uplink netns xvs-host$h mtu 1542 type veth peer name host$h netns xvs-fabric mtu 1542
		ip -n xvs-fabric link set host$h master fabric0
		ip -n xvs-fabric link set host$h up
		ip netns exec xvs-fabric ethtool -K host$h gro on >/dev/null
		ip -n xvs-host$h link set uplink up
		ip netns exec xvs-host$h sysctl -qw net.ipv6.conf.all.disable_ipv6=1
	done
	declare -A MAC
	for vm in "${VMS[@]}"; do
		set -- $vm
		ip netns add "$1"
		ip -n "$1" link set lo up
		ip link add "${1#xvs-}" type veth peer name eth0 netns "$1"
		ip link set "${1#xvs-}" netns xvs-host$2
		ip -n xvs-host$2 link set "${1#xvs-}" up
		ip -n "$1" addr add "$4/24" dev eth0
		ip -n "$1" link set eth0 up
		ip -n "$1" route add default via "$5"
		ip netns exec "$1" ethtool -K eth0 tx off >/dev/null
		ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
		MAC[$1]=$(ip netns exec "$1" cat /sys/class/net/eth0/address)
	done
	for h in 1 2; do
		conf=$RUN/wnv-host$h.yaml
		{
			echo "# written by scripts/demo-wnv.sh"
			echo "api_socket: $RUN/wnv-host$h.sock"
			echo "metrics_address: 127.0.0.1:$((9477 + h))"
			echo "ports:"
			echo "  - {name: uplink, type: afxdp, dev: uplink, vsid: 0}"
			for vm in "${VMS[@]}"; do
				set -- $vm
				[ "$2" = "$h" ] || continue
				if [ "$PASSTHROUGH" = 1 ]; then
					[ "$6" = - ] || echo "  - {name: ${1#xvs-}, type: afxdp, dev: ${1#xvs-}, vsid: 0}"
				else
					echo "  - {name: ${1#xvs-}, type: afxdp, dev: ${1#xvs-}, vsid: $3}"
				fi
			done
			if [ "$PASSTHROUGH" != 1 ]; then
			echo "policy:"
			echo "  routing_domains: [{id: blue}, {id: red}]"
			echo "  virtual_subnets:"
			echo "    - {vsid: 5001, routing_domain: blue, ipv4_prefix: 10.0.0.0/24}"
			echo "    - {vsid: 5002, routing_domain: blue, ipv4_prefix: 10.0.1.0/24}"
			echo "    - {vsid: 6001, routing_domain: red, ipv4_prefix: 10.0.0.0/24}"
			echo "  provider_addresses:"
			echo "    - {interface: uplink, pa: 192.168.100.$h, prefix_length: 24}"
			if [ "$REWRITE" = 1 ]; then
				for vm in "${VMS[@]}"; do
					set -- $vm
					[ "$2" = "$h" ] && [ "$6" != - ] && echo "    - {interface: uplink, pa: $6, prefix_length: 24}"
				done
			fi
			echo "  lookup_records:"
			for vm in "${VMS[@]}"; do
				set -- $vm
				pa=192.168.100.$2 rule=encap
				if [ "$REWRITE" = 1 ] && [ "$6" != - ]; then pa=$6 rule=rewrite; fi
				echo "    - {vsid: $3, ca: $4, mac: \"${MAC[$1]}\", pa: $pa, rule: $rule, vm_name: ${1#xvs-}}"
			done
			fi
		} >"$conf"
		ip netns exec xvs-host$h "$BIN/xvsd" --config "$conf" >"$RUN/wnv-host$h.log" 2>&1 &
		echo $! >"$RUN/wnv-host$h.pid"
	done
	for h in 1 2; do
		for _ in $(seq 100); do
			"$BIN/xvsctl" --socket "$RUN/wnv-host$h.sock" version >/dev/null 2>&1 && break
			sleep 0.1
		done
		"$BIN/xvsctl" --socket "$RUN/wnv-host$h.sock" version >/dev/null || { echo "demo-wnv: host$h's xvsd did not start:"; cat "$RUN/wnv-host$h.log"; exit 1; }
	done
	if [ "$PASSTHROUGH" = 1 ]; then
		echo "demo-wnv: two hosts up, VSID 0 pass-through (baseline)"
		try() { :; }
		ip netns exec xvs-blue1 ping -c 3 -i 0.2 -W 1 10.0.0.7 >/dev/null && echo "  xvs-blue1 -> 10.0.0.7 untranslated: ok"
		return 0
	fi
	mode=NVGRE
	[ "$REWRITE" = 1 ] && mode="IP rewrite"
	echo "demo-wnv: two hosts up (Blue over $mode, Red over NVGRE)"
	try() { # expect desc ns target
		local expect=$1 desc=$2 ns=$3 dst=$4
		ip netns exec "$ns" ping -c 1 -W 1 "$dst" >/dev/null 2>&1 || true # first echo resolves the fabric
		if ip netns exec "$ns" ping -c 2 -i 0.2 -W 1 "$dst" >/dev/null 2>&1; then got=yes; else got=no; fi
		printf '  %-44s %s\n' "$desc" "$([ $got = $expect ] && echo ok || echo "FAILED (got $got, want $expect)")"
		[ $got = $expect ]
	}
	ok=0
	try yes "xvs-blue1 -> 10.0.0.7 (blue2, other host)" xvs-blue1 10.0.0.7 || ok=1
	try yes "xvs-blue1 -> 10.0.1.5 (blue3, routed)" xvs-blue1 10.0.1.5 || ok=1
	try yes "xvs-red1  -> 10.0.0.7 (red2, other host)" xvs-red1 10.0.0.7 || ok=1
	try no "xvs-red1  -> 10.0.1.5 (Blue only: isolated)" xvs-red1 10.0.1.5 || ok=1
	cat <<MSG

Look around:
  $BIN/xvsctl --socket $RUN/wnv-host1.sock stats
  $BIN/xvsctl --socket $RUN/wnv-host1.sock lookup-record get
  $BIN/xvsctl --socket $RUN/wnv-host1.sock trace --port blue1 --frame HEX
  ip netns exec xvs-fabric tshark -i fabric0 -f 'ip proto 47' -T fields -e ip.src -e ip.dst -e gre.key
  ip netns exec xvs-blue2 iperf3 -s -D; ip netns exec xvs-blue1 iperf3 -c 10.0.0.7
Remove it all: make demo-wnv-clean
MSG
	exit $ok
}

case "${1:-up}" in
up) up ;;
clean) clean; echo "demo-wnv: removed" ;;
*) echo "usage: $0 up|clean" >&2; exit 2 ;;
esac
