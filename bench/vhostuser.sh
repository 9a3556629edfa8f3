#!/usr/bin/env bash
# bench/vhostuser.sh (make bench-vhostuser): 64-byte frames through a switch
# between two ports of one dpdk-testpmd, in one run:
#   vhostuser  xvsd with two vhostuser ports; testpmd attaches with
#              net_virtio_user (what a VM's virtio-net driver does)
#   tap        xvsd with two TAP ports; testpmd attaches with net_af_packet on
#              the TAP devices (every frame through the kernel, as a VM on
#              TAP pays)
#   dpdk-switch a second testpmd in the switch's place: two net_vhost ports,
#              io forwarding between them, pinned like xvsd (a DPDK vhost
#              switch without lookup: the ceiling, about what OVS-DPDK's
#              data path would be given)
# testpmd forwards in io mode (port 0 <-> port 1) after sending a first
# burst on each port (--tx-first), so frames circulate through the switch
# in both directions; the figure is the sum of both ports' Rx-pps (median
# over DURATION seconds). On this 2-CPU machine xvsd's worker is pinned to
# CPU 0 and testpmd forwards on CPU 1: three busy pollers on two CPUs
# would measure the scheduler, not the switch.
# Prints CASE MPPS per case, then vhostuser/tap. No hugepages (--no-huge).
# Sockets, TAP devices and processes are removed on exit.
# Knobs: DURATION, CASES, BURSTS (first bursts per port), VERBOSE.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
DURATION=${DURATION:-8}
CASES=${CASES:-"vhostuser tap dpdk-switch"}
[ "$(id -u)" = 0 ] || { echo "bench-vhostuser: needs root" >&2; exit 1; }
command -v dpdk-testpmd >/dev/null || { echo "bench-vhostuser: dpdk-testpmd missing (apt-get install dpdk-dev)" >&2; exit 1; }
for b in xvsd xvsctl; do
	[ -x "$BIN/$b" ] || { echo "bench-vhostuser: $BIN/$b missing: run make build" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/xvs-bv.XXXXXX)
PIDS=()
declare -A LOGS # PID -> its log, shown if it dies
cleanup() {
	for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	sleep 0.5
	for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
	ip link del xvs-bvt1 2>/dev/null || true
	ip link del xvs-bvt2 2>/dev/null || true
	rm -rf "$TMP" /var/run/dpdk/xvs-bv-* 2>/dev/null || true
}
trap cleanup EXIT

EAL=(--no-huge -m 256 --no-pci --no-telemetry --no-shconf)

# testpmd VDEV0 VDEV1: one testpmd, io forwarding between its two ports,
# forwarding on CPU 1.
testpmd() {
	rm -rf /var/run/dpdk/xvs-bv-tp
	stdbuf -oL dpdk-testpmd "${EAL[@]}" --file-prefix=xvs-bv-tp -l 0,1 --main-lcore 0 --vdev="$1" --vdev="$2" -- \
		--forward-mode=io --tx-first --burst=64 --txpkts=64 --stats-period 1 --total-num-mbufs=16384 \
		>"$TMP/tp.log" 2>&1 &
	PIDS+=($!)
	LOGS[$!]=$TMP/tp.log
}

# alive: every process of the case still runs; a dead one's figures would
# be printed as a result, so its log is shown and the run ends instead.
alive() {
	for p in "${PIDS[@]:-}"; do
		[ -n "$p" ] || continue
		kill -0 "$p" 2>/dev/null && continue
		echo "bench-vhostuser: case $c: process $p exited; ${LOGS[$p]}:" >&2
		tail -n 40 "${LOGS[$p]}" >&2
		exit 1
	done
}

# rate LOG: the median over the last DURATION-2 seconds of the two ports'
# summed Rx-pps, in Mpps. Fails when testpmd printed no statistics or no
# frames circulated: that is a broken setup, not a result.
rate() {
	{ grep -o 'Rx-pps: *[0-9]*' "$1" || true; } | awk '{print $2}' | paste - - | awk '{print $1 + $2}' |
		tail -n $((DURATION - 2)) | sort -n |
		awk -v f="$1" '{a[NR]=$1}
			END {
				if (NR == 0 || a[int((NR+1)/2)] == 0) {
					printf "bench-vhostuser: no frames circulated (%d Rx-pps lines in %s)\n", NR, f >"/dev/stderr"
					exit 1
				}
				printf "%.2f\n", a[int((NR+1)/2)]/1e6
			}'
}

xvsd() { # PORT_ENTRY... (YAML flow maps)
	{
		printf 'api_socket: %s\nmetrics_address: ""\nlog_level: warn\npoll_mode: busy\nports:\n' "$TMP/xvsd.sock"
		for p in "$@"; do printf '  - %s\n' "$p"; done
	} >"$TMP/xvsd.yaml"
	taskset -c 0 "$BIN/xvsd" --config "$TMP/xvsd.yaml" >"$TMP/xvsd.log" 2>&1 &
	PIDS+=($!)
	LOGS[$!]=$TMP/xvsd.log
	for _ in $(seq 50); do "$BIN/xvsctl" --socket "$TMP/xvsd.sock" version >/dev/null 2>&1 && return; sleep 0.1; done
	echo "xvsd did not start:" >&2; cat "$TMP/xvsd.log" >&2; exit 1
}

stop_all() {
	for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -INT "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
	PIDS=()
}

declare -A MPPS
for c in $CASES; do
	case $c in
	vhostuser)
		xvsd "{name: vu1, type: vhostuser, socket: $TMP/vu1.sock, vsid: 5001}" \
			"{name: vu2, type: vhostuser, socket: $TMP/vu2.sock, vsid: 5001}"
		testpmd "net_virtio_user0,path=$TMP/vu1.sock,queues=1" "net_virtio_user1,path=$TMP/vu2.sock,queues=1"
		;;
	tap)
		xvsd "{name: t1, type: tap, dev: xvs-bvt1, vsid: 5001}" "{name: t2, type: tap, dev: xvs-bvt2, vsid: 5001}"
		ip link set xvs-bvt1 up
		ip link set xvs-bvt2 up
		testpmd "net_af_packet0,iface=xvs-bvt1" "net_af_packet1,iface=xvs-bvt2"
		;;
	dpdk-switch)
		rm -rf /var/run/dpdk/xvs-bv-sw
		stdbuf -oL dpdk-testpmd "${EAL[@]}" --file-prefix=xvs-bv-sw -l 0,1 --main-lcore 1 \
			--vdev="net_vhost0,iface=$TMP/sw1.sock,queues=1" --vdev="net_vhost1,iface=$TMP/sw2.sock,queues=1" -- \
			--forward-mode=io --stats-period 1 --total-num-mbufs=16384 >"$TMP/sw.log" 2>&1 &
		PIDS+=($!)
		LOGS[$!]=$TMP/sw.log
		for _ in $(seq 50); do [ -S "$TMP/sw2.sock" ] && break; sleep 0.1; done
		[ -S "$TMP/sw2.sock" ] || { echo "bench-vhostuser: $TMP/sw2.sock did not appear; sw.log:" >&2; tail -n 40 "$TMP/sw.log" >&2; exit 1; }
		testpmd "net_virtio_user0,path=$TMP/sw1.sock,queues=1" "net_virtio_user1,path=$TMP/sw2.sock,queues=1"
		;;
	*) echo "unknown case $c" >&2; exit 2 ;;
	esac
	sleep "$DURATION"
	alive
	MPPS[$c]=$(rate "$TMP/tp.log")
	if [ -n "${VERBOSE:-}" ]; then
		tail -n 30 "$TMP/tp.log" >&2
		[ -S "$TMP/xvsd.sock" ] && "$BIN/xvsctl" --socket "$TMP/xvsd.sock" stats >&2
	fi
	stop_all
	printf '%-10s %s\n' "$c" "${MPPS[$c]}"
done
if [ -n "${MPPS[vhostuser]:-}" ] && [ -n "${MPPS[tap]:-}" ]; then
	awk -v a="${MPPS[vhostuser]}" -v b="${MPPS[tap]}" 'BEGIN {printf "vhostuser/tap %.2f\n", a / b}'
fi
