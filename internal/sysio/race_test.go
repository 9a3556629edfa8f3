//go:build race

package sysio

// raceOn: the race detector instruments read(2)'s buffer, which makes a
// local buffer escape; allocation counts only hold without it.
const raceOn = true
