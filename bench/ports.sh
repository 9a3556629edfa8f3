#!/usr/bin/env bash
# bench/ports.sh (make bench-ports): forwarding between two veths, in one
# run and on one topology, for
#   xdp-redirect  an XDP program XDP_REDIRECTing between the veths (the in-kernel ceiling)
#   bridge        the Linux bridge (br_netfilter off)
#   xvs           xvsd, one worker, two AF_XDP ports in the configuration the
#                 README recommends for veths: fast_path (learned unicast
#                 forwarded by xvs's XDP program) and threaded_napi (that
#                 program runs in the devices' NAPI threads)
#   xvs-softirq   the same without threaded_napi: the fast path runs in the
#                 softirq of the sender's CPU
#   xvs-slowpath  without fast_path and threaded_napi: every frame through
#                 the worker
# at 64B and 1518B frames, 1 flow and 1024 flows. Prints one line per case,
#   CASE SIZE FLOWS MPPS
# then iperf3 TCP through the bridge and through xvs (Gbit/s, the median of
# IPERF_RUNS runs), xvsd's idle CPU, and the ratios xvs/bridge and
# xvs/xdp-redirect for 64B 1 flow (and xvs-softirq/bridge,
# xvs-slowpath/bridge), then iperf3 xvs/bridge and xvs-softirq/bridge.
#
#   gen ns: gen0 ──veth── xbpin ┐ sw ns: forwarder ┌ xbpout ──veth── sink0 :sink ns
#
# xvs-pktgen sends from gen0 (XDP live frames) and counts at sink0 (XDP).
# Everything lives in namespaces xvs-bp-*; they are removed on exit.
# Knobs: DURATION (s per case), SIZES, FLOWS, CASES, IPERF_RUNS, XVS_WORKERS,
# VERBOSE.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
DURATION=${DURATION:-5}
SIZES=${SIZES:-"64 1518"}
FLOWS=${FLOWS:-"1 1024"}
CASES=${CASES:-"xdp-redirect bridge xvs xvs-softirq xvs-slowpath"}

[ "$(id -u)" = 0 ] || { echo "bench-ports: needs root" >&2; exit 1; }
for c in $CASES; do
	case $c in
	xdp-redirect | bridge | xvs | xvs-softirq | xvs-slowpath) ;;
	*) echo "bench-ports: unknown case $c (want xdp-redirect bridge xvs xvs-softirq xvs-slowpath)" >&2; exit 2 ;;
	esac
done
for b in xvsd xvsctl xvs-pktgen xdp-redirect; do
	[ -x "$BIN/$b" ] || { echo "bench-ports: $BIN/$b missing: run make build" >&2; exit 1; }
done

GEN=xvs-bp-gen SW=xvs-bp-sw SINK=xvs-bp-sink
TMP=

# Processes started with "ip netns exec" are found by namespace, not by $!
# (ip forks the command), so nothing outlives the run.
kill_ns() {
	local pids
	pids=$(ip netns pids "$1" 2>/dev/null || true)
	[ -n "$pids" ] || return 0
	kill $pids 2>/dev/null || true
	for _ in $(seq 50); do
		pids=$(ip netns pids "$1" 2>/dev/null || true)
		[ -n "$pids" ] || return 0
		sleep 0.1
	done
	kill -9 $pids 2>/dev/null || true
}
cleanup() {
	for ns in $GEN $SW $SINK; do kill_ns $ns; ip netns del $ns 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT
cleanup
TMP=$(mktemp -d /tmp/xvs-bp.XXXXXX)

inns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

for ns in $GEN $SW $SINK; do ip netns add $ns; ip -n $ns link set lo up; done
ip link add gen0 netns $GEN type veth peer name xbpin netns $SW
ip link add sink0 netns $SINK type veth peer name xbpout netns $SW
inns $GEN ip addr add 10.77.0.1/24 dev gen0
inns $SINK ip addr add 10.77.0.2/24 dev sink0
for pair in "$GEN gen0" "$SW xbpin" "$SW xbpout" "$SINK sink0"; do
	set -- $pair
	inns $1 sysctl -qw net.ipv6.conf.all.disable_ipv6=1
	inns $1 ip link set $2 up
	# live frames and XDP_REDIRECT into a veth need NAPI on the receiving end
	inns $1 ethtool -K $2 gro on >/dev/null 2>&1 || true
done
# TCP through AF_XDP: the kernel must fill checksums itself. The end hosts
# keep GRO on, as a VM's virtio-net does (and as XDP_REDIRECT into their
# veth peers requires).
inns $GEN ethtool -K gen0 tx off >/dev/null
inns $SINK ethtool -K sink0 tx off >/dev/null
SINKMAC=$(inns $SINK cat /sys/class/net/sink0/address)
GENMAC=$(inns $GEN cat /sys/class/net/gen0/address)

# forwarder up/down, one at a time, in the sw namespace
fwd_up() {
	case $1 in
	xdp-redirect)
		inns $SW "$BIN/xdp-redirect" --from xbpin --to xbpout >"$TMP/fwd.log" 2>&1 &
		sleep 0.5
		grep -q redirecting "$TMP/fwd.log" || { echo "bench-ports: xdp-redirect failed:" >&2; cat "$TMP/fwd.log" >&2; exit 1; }
		;;
	bridge)
		inns $SW ip link add br0 type bridge
		inns $SW sysctl -qw net.bridge.bridge-nf-call-iptables=0 2>/dev/null || true
		inns $SW sysctl -qw net.bridge.bridge-nf-call-ip6tables=0 2>/dev/null || true
		inns $SW sysctl -qw net.bridge.bridge-nf-call-arptables=0 2>/dev/null || true
		inns $SW ip link set xbpin master br0
		inns $SW ip link set xbpout master br0
		inns $SW ip link set br0 up
		;;
	xvs | xvs-softirq | xvs-slowpath)
		local fp=true tn=true
		[ "$1" = xvs-slowpath ] && fp=false
		[ "$1" != xvs ] && tn=false
		cat >"$TMP/xvsd.yaml" <<CFG
api_socket: $TMP/xvsd.sock
metrics_address: ""
workers: ${XVS_WORKERS:-1}
poll_mode: adaptive
ports:
  - {name: in, type: afxdp, dev: xbpin, vsid: 0, fast_path: $fp, threaded_napi: $tn}
  - {name: out, type: afxdp, dev: xbpout, vsid: 0, fast_path: $fp, threaded_napi: $tn}
CFG
		inns $SW "$BIN/xvsd" --config "$TMP/xvsd.yaml" >"$TMP/fwd.log" 2>&1 &
		local up=
		for _ in $(seq 100); do
			"$BIN/xvsctl" --socket "$TMP/xvsd.sock" version >/dev/null 2>&1 && { up=1; break; }
			sleep 0.1
		done
		[ -n "$up" ] || { echo "bench-ports: xvsd did not start:" >&2; cat "$TMP/fwd.log" >&2; exit 1; }
		XVSD_PID=$(ip netns pids $SW | head -1)
		;;
	esac
	sleep 1
}
fwd_down() {
	case $1 in
	bridge) inns $SW ip link del br0 ;;
	*) kill_ns $SW ;;
	esac
	# nothing may be left on the path for the next case
	if inns $SW ip -d link show xbpin | grep -q 'prog/xdp'; then
		echo "bench-ports: an XDP program is still attached to xbpin after $1" >&2; exit 1
	fi
	sleep 0.5
}

# one measurement: received pps at the sink. 1518 is a full frame with its
# 4-byte FCS, which a veth does not carry: xvs-pktgen sends 1514 bytes for
# it. 64 is sent as 64 bytes (xvs-pktgen's minimum).
measure() {
	local size=$1 flows=$2 json psize=$1
	[ "$size" -gt 1514 ] && psize=$((size - 4))
	json=$("$BIN/xvs-pktgen" send --netns $GEN --dev gen0 --dst-mac "$SINKMAC" \
		--size "$psize" --flows "$flows" --duration "${DURATION}s" \
		--sink-dev sink0 --sink-netns $SINK --json --quiet 2>"$TMP/pktgen.err") || {
		echo "bench-ports: xvs-pktgen failed:" >&2; cat "$TMP/pktgen.err" >&2; return 1; }
	python3 -c 'import json,sys; print("%.3f" % (json.load(sys.stdin)["received_pps"]/1e6))' <<<"$json"
}

# TCP runs with GRO off on the forwarder's veths: GRO, which only the
# generator's live frames need (for NAPI), would let the bridge aggregate
# segments that a per-frame switch cannot.
iperf_once() {
	inns $SINK iperf3 -s -1 -B 10.77.0.2 >/dev/null 2>&1 &
	sleep 0.5
	local out
	out=$(timeout $((DURATION + 15)) ip netns exec $GEN iperf3 -c 10.77.0.2 -t "$DURATION" -J 2>/dev/null) || out=
	kill_ns $SINK
	[ -n "$out" ] || { echo 0; return; }
	python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))' <<<"$out"
}

# iperf_gbps: the median of IPERF_RUNS (default 5) TCP runs - one run on
# this noisy machine varies by 10%.
iperf_gbps() {
	inns $SW ethtool -K xbpin gro off >/dev/null 2>&1 || true
	inns $SW ethtool -K xbpout gro off >/dev/null 2>&1 || true
	local runs=()
	for _ in $(seq "${IPERF_RUNS:-5}"); do runs+=("$(iperf_once)"); done
	inns $SW ethtool -K xbpin gro on >/dev/null 2>&1 || true
	inns $SW ethtool -K xbpout gro on >/dev/null 2>&1 || true
	printf '%s\n' "${runs[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

declare -A R
echo "# $(date -u +%FT%TZ) $(nproc) cores, kernel $(uname -r), ${DURATION}s per case"
printf '%-13s %5s %5s %8s\n' CASE SIZE FLOWS MPPS
for c in $CASES; do
	fwd_up "$c"
	# The end hosts talk once, as hosts do, so forwarders that learn know
	# where the sink is (otherwise every frame is unknown unicast).
	inns $SINK ping -c 2 -i 0.2 -W 1 10.77.0.1 >/dev/null 2>&1 || true
	for s in $SIZES; do
		for f in $FLOWS; do
			m=$(measure "$s" "$f")
			R[$c,$s,$f]=$m
			printf '%-13s %5s %5s %8s\n' "$c" "$s" "$f" "$m"
		done
	done
	if [ "$c" != xdp-redirect ] && command -v iperf3 >/dev/null; then
		R[$c,iperf]=$(iperf_gbps)
	fi
	if [[ $c == xvs* ]]; then
		# idle CPU of xvsd in adaptive mode, from /proc over 5 s
		t0=$(awk '{print $14+$15}' /proc/$XVSD_PID/stat); sleep 5
		t1=$(awk '{print $14+$15}' /proc/$XVSD_PID/stat)
		R[$c,idle]=$(python3 -c "print('%.2f' % (($t1-$t0)/$(getconf CLK_TCK)/5*100))")
		"$BIN/xvsctl" --socket "$TMP/xvsd.sock" stats >>"$TMP/xvs-stats.txt" 2>&1 || true
	fi
	fwd_down "$c"
done

ratio() { python3 -c "a,b=float('$1' or 0),float('$2' or 0); print('%.2f' % (a/b if b else 0))"; }
echo
for c in bridge xvs xvs-softirq xvs-slowpath; do
	[ -n "${R[$c,iperf]:-}" ] && printf 'iperf3-tcp %-12s %6s Gbit/s\n' "$c" "${R[$c,iperf]}"
done
for c in xvs xvs-softirq xvs-slowpath; do
	[ -n "${R[$c,idle]:-}" ] && echo "$c idle cpu ${R[$c,idle]}% of one core (adaptive poll)"
done
echo "xvs/bridge $(ratio "${R[xvs,64,1]:-}" "${R[bridge,64,1]:-}")"
echo "xvs/xdp-redirect $(ratio "${R[xvs,64,1]:-}" "${R[xdp-redirect,64,1]:-}")"
echo "xvs-softirq/bridge $(ratio "${R[xvs-softirq,64,1]:-}" "${R[bridge,64,1]:-}")"
echo "xvs-slowpath/bridge $(ratio "${R[xvs-slowpath,64,1]:-}" "${R[bridge,64,1]:-}")"
echo "iperf3 xvs/bridge $(ratio "${R[xvs,iperf]:-}" "${R[bridge,iperf]:-}")"
echo "iperf3 xvs-softirq/bridge $(ratio "${R[xvs-softirq,iperf]:-}" "${R[bridge,iperf]:-}")"
if [ -f "$TMP/xvs-stats.txt" ] && [ -n "${VERBOSE:-}" ]; then cat "$TMP/xvs-stats.txt"; fi
