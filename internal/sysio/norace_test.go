//go:build !race

package sysio

const raceOn = false
