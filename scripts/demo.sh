#!/usr/bin/env bash
# make demo / make demo-clean: four "VMs" (network namespaces xvs-vm1..4)
# on one xvs switch, two virtual subnets. Idempotent: "up" first removes
# whatever an earlier demo left, "clean" removes everything "up" made.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin}
RUN=/run/xvs
PIDFILE=$RUN/demo.pid
CONF=$RUN/demo.yaml
LOG=$RUN/demo.log

# name  address     VSID
VMS=(
	"xvs-vm1 10.0.0.1 5001"
	"xvs-vm2 10.0.0.2 5001"
	"xvs-vm3 10.0.0.3 5002"
	"xvs-vm4 10.0.0.4 5002"
)

need_root() {
	if [ "$(id -u)" != 0 ]; then
		echo "demo: needs root (network namespaces, AF_XDP): run it with sudo" >&2
		exit 1
	fi
}

clean() {
	if [ -f "$PIDFILE" ]; then
		pid=$(cat "$PIDFILE")
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid"
			for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
		fi
		rm -f "$PIDFILE"
	fi
	for vm in "${VMS[@]}"; do
		set -- $vm
		ip netns del "$1" 2>/dev/null || true
		ip link del "$1-h" 2>/dev/null || true   # host end, if the namespace went first
	done
	rm -f "$CONF"
}

up() {
	clean
	mkdir -p "$RUN"
	{
		echo "# written by scripts/demo.sh"
		echo "log_level: info"
		echo "ports:"
	} >"$CONF"
	for vm in "${VMS[@]}"; do
		set -- $vm
		ns=$1 addr=$2 vsid=$3 host="$1-h"
		ip netns add "$ns"
		ip link add "$host" type veth peer name eth0 netns "$ns"
		# The host end belongs to the switch: no addresses, no IPv6 chatter.
		sysctl -qw "net.ipv6.conf.$host.disable_ipv6=1"
		ip link set "$host" up
		ip -n "$ns" link set lo up
		ip -n "$ns" addr add "$addr/24" dev eth0
		ip -n "$ns" link set eth0 up
		# The kernel fills in TCP checksums lazily on veth; through AF_XDP
		# they would leave unfilled.
		ip netns exec "$ns" ethtool -K eth0 tx off >/dev/null
		# GRO gives eth0 NAPI, so the fast path can XDP_REDIRECT into it.
		ip netns exec "$ns" ethtool -K eth0 gro on >/dev/null
		# A queue, as a VM's NIC has: a veth has none, and when the switch
		# side polls in a NAPI thread (threaded_napi) the VM's TCP fills its
		# 256-frame ring faster than the thread empties it; without a qdisc
		# veth drops the rest (the port's peer-dropped counter), with one it
		# stops the queue and TCP waits (Linux 6.16+).
		ip netns exec "$ns" tc qdisc replace dev eth0 root pfifo_fast
		echo "  - {name: ${ns#xvs-}, type: afxdp, dev: $host, vsid: $vsid, fast_path: true, threaded_napi: true}" >>"$CONF"
	done
	echo "demo: starting xvsd ($LOG)"
	nohup "$BIN/xvsd" --config "$CONF" >"$LOG" 2>&1 &
	echo $! >"$PIDFILE"
	for _ in $(seq 100); do
		[ -S "$RUN/xvsd.sock" ] && "$BIN/xvsctl" version >/dev/null 2>&1 && break
		kill -0 "$(cat "$PIDFILE")" 2>/dev/null || { echo "demo: xvsd exited:"; cat "$LOG"; exit 1; }
		sleep 0.1
	done
	"$BIN/xvsctl" port list
	echo
	echo "demo: xvs-vm1 -> xvs-vm2 (same VSID 5001): should answer"
	ip netns exec xvs-vm1 ping -c 3 -i 0.2 -W 1 10.0.0.2
	echo
	echo "demo: xvs-vm1 -> xvs-vm3 (VSID 5002): must not answer"
	if ip netns exec xvs-vm1 ping -c 2 -i 0.2 -W 1 10.0.0.3; then
		echo "demo: FAILED: traffic crossed from VSID 5001 to 5002" >&2
		exit 1
	fi
	echo
	echo "demo: xvs-vm3 -> xvs-vm4 (same VSID 5002): should answer"
	ip netns exec xvs-vm3 ping -c 3 -i 0.2 -W 1 10.0.0.4
	cat <<MSG

The switch is running (pid $(cat "$PIDFILE"), log $LOG). Look around:
  $BIN/xvsctl port list
  $BIN/xvsctl stats                 # counters and drops by reason
  $BIN/xvsctl mac list              # learned MACs per VSID
  curl -s 127.0.0.1:9477/metrics | grep xvs_
  ip netns exec xvs-vm1 ping 10.0.0.2
  ip netns exec xvs-vm2 iperf3 -s -D; ip netns exec xvs-vm1 iperf3 -c 10.0.0.2
  $BIN/xvsctl port set vm3 --vsid 5001   # move vm3 into vm1's subnet
Remove everything with: make demo-clean
MSG
}

need_root
case "${1:-up}" in
up) up ;;
clean) clean; echo "demo: removed" ;;
*) echo "usage: $0 up|clean" >&2; exit 2 ;;
esac
