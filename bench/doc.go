// Package bench holds the benchmarks of xvs that span packages: forwarding
// through the whole pipeline over in-memory ports, and later the port and
// extension benchmarks. Results and the commands that produced them are
// recorded in RESULTS.md.
//
//	go test -run '^$' -bench BenchmarkForward -benchmem ./bench/
package bench
