// Package bench holds the benchmarks of xvs that span packages, and the
// scripts that measure real ports:
//
//   - BenchmarkForward, BenchmarkForwardWNV and BenchmarkNVGRE: the whole
//     pipeline over in-memory ports (ports/porttest), plain forwarding and
//     the WNV module;
//   - BenchmarkExtensions and BenchmarkExtensionFirstFrame: the cost of
//     real extension processes in the pipeline (built from
//     extensions/examples by the benchmark);
//   - ports.sh, vhostuser.sh and wnv.sh (make bench-ports, bench-vhostuser,
//     bench-wnv): xvsd with real ports (veths, vhost-user, TAP) between
//     network namespaces or DPDK's testpmd, beside the Linux bridge, a
//     testpmd switch and cmd/xdp-redirect (the in-kernel ceiling);
//     extensions.sh (make bench-extensions) runs BenchmarkExtensions'
//     cases interleaved.
//
// Results, the commands that produced them and the machine they ran on are
// recorded in RESULTS.md; figures belong there, not in package docs.
//
//	go test -run '^$' -bench BenchmarkForward -benchmem ./bench/
package bench
