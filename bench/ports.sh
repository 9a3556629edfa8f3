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
#   CASE SIZE FLOWS MPPS LEFT
# then iperf3 TCP through the bridge and through xvs (Gbit/s, the median of
# IPERF_RUNS runs) with the TCP retransmissions iperf3 reports, xvsd's idle
# CPU, and the ratios xvs/bridge and xvs/xdp-redirect for 64B 1 flow (and
# xvs-softirq/bridge, xvs-slowpath/bridge), then iperf3 xvs/bridge and
# xvs-softirq/bridge.
#
#   gen ns: gen0 ──veth── xbpin ┐ sw ns: forwarder ┌ xbpout ──veth── sink0 :sink ns
#           gen1 ──────────────────────veth───────────────────────── sink1
#
# A closed loop measures each case, so no sender sets the rate (a sender
# of one thread is slower than the fast path here, and the kernel may
# refuse XDP live frames): "xvs-pktgen loop" puts a reflector (XDP: swap
# the MACs, XDP_TX) on gen0 and on sink0 and injects FRAMES frames once;
# they go back and forth through the forwarder until the run ends. MPPS
# is what both reflectors received per second, i.e. what the forwarder
# forwarded in both directions together; LEFT is how many of the frames
# still circulated at the end. The same loop over the plain veth pair
# gen1-sink1 (no forwarder) comes first: it must be faster than every
# case, which shows the reflectors are never what a case measures.
# Everything lives in namespaces xvs-bp-*; they are removed on exit.
# Knobs: DURATION (s per case), SIZES, FLOWS, FRAMES, CASES, IPERF_RUNS,
# XVS_WORKERS, VERBOSE.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
DURATION=${DURATION:-5}
SIZES=${SIZES:-"64 1518"}
FLOWS=${FLOWS:-"1 1024"}
CASES=${CASES:-"xdp-redirect bridge xvs xvs-softirq xvs-slowpath"}
FRAMES=${FRAMES:-1024}

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
ip link add gen1 netns $GEN type veth peer name sink1 netns $SINK
inns $GEN ip addr add 10.77.0.1/24 dev gen0
inns $SINK ip addr add 10.77.0.2/24 dev sink0
for pair in "$GEN gen0" "$SW xbpin" "$SW xbpout" "$SINK sink0" "$GEN gen1" "$SINK sink1"; do
	set -- $pair
	inns $1 sysctl -qw net.ipv6.conf.all.disable_ipv6=1
	inns $1 ip link set $2 up
	# XDP_TX and XDP_REDIRECT into a veth need NAPI on the receiving end
	inns $1 ethtool -K $2 gro on >/dev/null 2>&1 || true
done
# TCP through AF_XDP: the kernel must fill checksums itself. The end hosts
# keep GRO on, as a VM's virtio-net does (and as XDP_REDIRECT into their
# veth peers requires).
inns $GEN ethtool -K gen0 tx off >/dev/null
inns $SINK ethtool -K sink0 tx off >/dev/null
# A queue on the end hosts' veths, as a VM's NIC has (a veth has none): with
# threaded NAPI on the forwarder's side, a sender without one loses what
# overflows the 256-frame ring between the veths (see ports/afxdp doc).
inns $GEN tc qdisc replace dev gen0 root pfifo_fast
inns $SINK tc qdisc replace dev sink0 root pfifo_fast
SINKMAC=$(inns $SINK cat /sys/class/net/sink0/address)
GENMAC=$(inns $GEN cat /sys/class/net/gen0/address)

# forwarder up/down, one at a time, in the sw namespace
fwd_up() {
	case $1 in
	xdp-redirect)
		inns $SW "$BIN/xdp-redirect" --from xbpin --to xbpout --both >"$TMP/fwd.log" 2>&1 &
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

# one measurement: the closed loop between DEV (gen0 or gen1) and PEER;
# prints "MPPS LEFT". 1518 is a full frame with its 4-byte FCS, which a veth
# does not carry: xvs-pktgen sends 1514 bytes for it. 64 is sent as 64
# bytes (xvs-pktgen's minimum).
measure() {
	local dev=$1 peer=$2 size=$3 flows=$4 json psize=$3
	[ "$size" -gt 1514 ] && psize=$((size - 4))
	json=$("$BIN/xvs-pktgen" loop --netns $GEN --dev "$dev" --peer-netns $SINK --peer-dev "$peer" \
		--frames "$FRAMES" --size "$psize" --flows "$flows" --duration "${DURATION}s" \
		--json --quiet 2>"$TMP/pktgen.err") || {
		echo "bench-ports: xvs-pktgen failed:" >&2; cat "$TMP/pktgen.err" >&2; return 1; }
	python3 -c 'import json,sys; j=json.load(sys.stdin); print("%.3f %d" % (j["forwarded_pps"]/1e6, j["frames_left"]))' <<<"$json"
}

# TCP runs with GRO off on the forwarder's veths: GRO, which only the
# generator's live frames need (for NAPI), would let the bridge aggregate
# segments that a per-frame switch cannot.
# iperf_once prints "GBITS RETRANSMITS" of one run.
iperf_once() {
	inns $SINK iperf3 -s -1 -B 10.77.0.2 >/dev/null 2>&1 &
	sleep 0.5
	local out
	out=$(timeout $((DURATION + 15)) ip netns exec $GEN iperf3 -c 10.77.0.2 -t "$DURATION" -J 2>/dev/null) || out=
	kill_ns $SINK
	[ -n "$out" ] || { echo "0 0"; return; }
	python3 -c 'import json,sys; e=json.load(sys.stdin)["end"]; print("%.2f %d" % (e["sum_received"]["bits_per_second"]/1e9, e["sum_sent"].get("retransmits", 0)))' <<<"$out"
}

# iperf_tcp: "GBITS RETRANSMITS", each the median of IPERF_RUNS (default 5)
# TCP runs - one run on this noisy machine varies by 10%.
iperf_tcp() {
	inns $SW ethtool -K xbpin gro off >/dev/null 2>&1 || true
	inns $SW ethtool -K xbpout gro off >/dev/null 2>&1 || true
	local runs=()
	for _ in $(seq "${IPERF_RUNS:-5}"); do runs+=("$(iperf_once)"); done
	inns $SW ethtool -K xbpin gro on >/dev/null 2>&1 || true
	inns $SW ethtool -K xbpout gro on >/dev/null 2>&1 || true
	median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
	echo "$(printf '%s\n' "${runs[@]}" | cut -d' ' -f1 | median) $(printf '%s\n' "${runs[@]}" | cut -d' ' -f2 | median)"
}

declare -A R
echo "# $(date -u +%FT%TZ) $(nproc) cores, kernel $(uname -r), ${DURATION}s per case"
printf '%-13s %5s %5s %8s %6s\n' CASE SIZE FLOWS MPPS LEFT
# The generator's headroom: the loop with no forwarder in it.
for s in $SIZES; do
	for f in $FLOWS; do
		set -- $(measure gen1 sink1 "$s" "$f")
		R[veth-loop,$s,$f]=$1
		printf '%-13s %5s %5s %8s %6s\n' veth-loop "$s" "$f" "$1" "$2"
	done
done
for c in $CASES; do
	fwd_up "$c"
	# The end hosts talk once, as hosts do, so forwarders that learn know
	# where the sink is (otherwise every frame is unknown unicast).
	inns $SINK ping -c 2 -i 0.2 -W 1 10.77.0.1 >/dev/null 2>&1 || true
	for s in $SIZES; do
		for f in $FLOWS; do
			set -- $(measure gen0 sink0 "$s" "$f")
			R[$c,$s,$f]=$1
			printf '%-13s %5s %5s %8s %6s\n' "$c" "$s" "$f" "$1" "$2"
		done
	done
	if [ "$c" != xdp-redirect ] && command -v iperf3 >/dev/null; then
		set -- $(iperf_tcp)
		R[$c,iperf]=$1 R[$c,retrans]=$2
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
for c in bridge xvs xvs-softirq xvs-slowpath; do
	[ -n "${R[$c,retrans]:-}" ] && printf 'iperf3-retransmits %-12s %8s (median of %s runs of %ss)\n' "$c" "${R[$c,retrans]}" "${IPERF_RUNS:-5}" "$DURATION"
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
# Headroom: the loop with no forwarder against the fastest case, per cell.
for s in $SIZES; do
	for f in $FLOWS; do
		best= bestc=
		for c in $CASES; do
			v=${R[$c,$s,$f]:-}
			[ -n "$v" ] || continue
			if [ -z "$best" ] || python3 -c "import sys; sys.exit(0 if $v > $best else 1)"; then best=$v bestc=$c; fi
		done
		[ -n "$best" ] && echo "generator headroom ${s}B $f flows: veth-loop ${R[veth-loop,$s,$f]} Mpps = $(ratio "${R[veth-loop,$s,$f]}" "$best")x the fastest case ($bestc $best)"
	done
done
if [ -f "$TMP/xvs-stats.txt" ] && [ -n "${VERBOSE:-}" ]; then cat "$TMP/xvs-stats.txt"; fi
