#!/usr/bin/env bash
# bench/extensions.sh (make bench-extensions): the issue's extension
# overhead figures. BenchmarkExtensions forwards 64-byte frames between two
# in-memory ports with no extension, with pcapcapture, and with aclfilter
# (verdicts cached; both directions, and ingress only). This machine is
# shared and its speed drifts from second to second, so the cases run
# interleaved: ROUNDS rounds, each running every case once back to back,
# and each case's ratio to `none` is taken within its round. Prints, per
# flow count and case, the median Mpps and the median of the per-round
# ratios, then the issue's targets against them.
# Knobs: ROUNDS (default 10), BENCHTIME per case and round (default 0.5s),
# FLOWS (default "1 64").
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-10}
BENCHTIME=${BENCHTIME:-0.5s}
FLOWS=${FLOWS:-"1 64"}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/bench.test" ./bench/
cd bench # the benchmark builds the example extensions from the module
for r in $(seq "$ROUNDS"); do
	for f in $FLOWS; do
		"$tmp/bench.test" -test.run '^$' -test.bench "^BenchmarkExtensions\$/^flows-$f\$/" \
			-test.benchtime "$BENCHTIME" -test.count 1 -test.benchmem |
			awk -v r="$r" '/^BenchmarkExtensions/ {
				split($1, p, "/"); sub(/-[0-9]+$/, "", p[3]); sub(/^flows-/, "", p[2])
				for (k = 2; k < NF; k++) if ($(k+1) == "Mpps") mpps = $k
				for (k = 2; k < NF; k++) if ($(k+1) == "allocs/op") allocs = $k
				print r, p[2], p[3], mpps, allocs }'
	done
done >"$tmp/runs"
echo "# $(date -u +%FT%TZ) $(nproc) cores, $ROUNDS interleaved rounds of $BENCHTIME per case"
printf '%-26s %5s %8s %7s %7s\n' CASE FLOWS MPPS RATIO ALLOCS
awk '
function median(arr, n,   i, j, t) {
	for (i = 2; i <= n; i++) for (j = i; j > 1 && arr[j-1] > arr[j]; j--) { t = arr[j]; arr[j] = arr[j-1]; arr[j-1] = t }
	return n % 2 ? arr[(n+1)/2] : (arr[n/2] + arr[n/2+1]) / 2
}
{ mpps[$1, $2, $3] = $4; alloc[$2, $3] = $5; if (!(($2, $3) in seen)) { seen[$2, $3] = 1; order[++n] = $2 SUBSEP $3 } rounds[$1] = 1 }
END {
	for (o = 1; o <= n; o++) {
		split(order[o], k, SUBSEP); m = 0; q = 0
		delete a; delete b
		for (r in rounds) {
			if ((r, k[1], k[2]) in mpps) a[++m] = mpps[r, k[1], k[2]]
			if ((r, k[1], k[2]) in mpps && (r, k[1], "none") in mpps) b[++q] = mpps[r, k[1], k[2]] / mpps[r, k[1], "none"]
		}
		printf "%-26s %5s %8.2f %7.3f %7s\n", k[2], k[1], median(a, m), median(b, q), alloc[k[1], k[2]]
		ratio[k[1], k[2]] = median(b, q)
	}
	printf "target capture costs <= 20%%: pcapcapture/none %.3f (1 flow)\n", ratio[1, "pcapcapture"]
	printf "target cached filter costs <= 10%%: aclfilter-cached/none %.3f, aclfilter-cached-ingress/none %.3f (1 flow)\n", ratio[1, "aclfilter-cached"], ratio[1, "aclfilter-cached-ingress"]
}' "$tmp/runs"
