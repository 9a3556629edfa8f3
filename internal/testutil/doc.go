// Package testutil holds the helpers the tests of every xvs package share:
// skipping without privileges or tools ([NeedRoot], [NeedCommands]),
// checking that nothing a test started outlives it ([CheckGoroutines],
// [CheckFDs], [CheckLeaks]), waiting for a condition instead of sleeping
// ([Eventually]), building [ring.Batch]es over an arena from byte slices
// ([RxBatch], [Load], [Frames]), and reaching into a network namespace
// ([InNetNS], [PacketSocket]).
//
// It is for tests only: nothing outside _test.go files (and test-support
// packages such as ports/porttest) imports it. It depends on ring,
// golang.org/x/sys/unix and the standard library and nothing else, so
// that a test of any package can use it without an import cycle.
package testutil
