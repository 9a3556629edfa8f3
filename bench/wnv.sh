#!/usr/bin/env bash
# bench/wnv.sh (make bench-wnv): iperf3 TCP between two VMs on two hosts
# (the make demo-wnv topology), in one run: untranslated (VSID 0
# pass-through), NVGRE, and IP rewrite. Prints one line per mode,
#   MODE GBITS
# then the ratios nvgre/passthrough and rewrite/passthrough.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
DURATION=${DURATION:-5}
[ "$(id -u)" = 0 ] || { echo "bench-wnv: needs root" >&2; exit 1; }
trap 'BIN=$BIN scripts/demo-wnv.sh clean >/dev/null 2>&1 || true' EXIT

declare -A G
for mode in passthrough nvgre rewrite; do
	env BIN="$BIN" PASSTHROUGH=$([ $mode = passthrough ] && echo 1 || echo 0) REWRITE=$([ $mode = rewrite ] && echo 1 || echo 0) \
		scripts/demo-wnv.sh up >/dev/null 2>&1 || { echo "bench-wnv: demo-wnv ($mode) failed" >&2; exit 1; }
	ip netns exec xvs-blue2 iperf3 -s -D -1 -B 10.0.0.7
	sleep 0.5
	out=$(timeout $((DURATION + 15)) ip netns exec xvs-blue1 iperf3 -c 10.0.0.7 -t "$DURATION" -J) || out=
	G[$mode]=$(python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))' <<<"${out:-{\}}" 2>/dev/null || echo 0)
	printf '%-12s %6s\n' "$mode" "${G[$mode]}"
done
ratio() { python3 -c "a,b=float('$1'),float('$2'); print('%.2f' % (a/b if b else 0))"; }
echo "nvgre/passthrough $(ratio "${G[nvgre]}" "${G[passthrough]}")"
echo "rewrite/passthrough $(ratio "${G[rewrite]}" "${G[passthrough]}")"
