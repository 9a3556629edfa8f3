// Package testplugins holds extensions that misbehave on purpose (and one
// that marks frames), built by the switch's tests to prove that a broken
// extension cannot crash or stall the switch.
package testplugins
