// Package testutil holds the helpers the tests of every xvs package share:
// skipping without privileges or tools ([NeedRoot], [NeedCommands]),
// checking that nothing a test started outlives it ([CheckGoroutines],
// [CheckFDs], [CheckLeaks]), waiting for a condition instead of sleeping
// ([Eventually]), and building [ring.Batch]es over an arena from byte
// slices ([RxBatch], [Load], [Frames]).
//
// It is for tests only: nothing outside _test.go files (and test-support
// packages such as ports/porttest) imports it. It depends on ring and the
// standard library and nothing else of xvs, so that a test of any package
// can use it without an import cycle.
package testutil
