//go:build !linux

package tap

import (
	"errors"
	"net"
)

// errUnsupported is returned by New on systems without Linux TAP devices.
var errUnsupported = errors.New("tap: TAP ports need Linux")

func openQueues(string, int) ([]int, bool, error) { return nil, false, errUnsupported }
func configureDevice(int, string, int, net.HardwareAddr) (net.HardwareAddr, error) {
	return nil, errUnsupported
}
func closeQueues([]int) error                               { return nil }
func readQueue(int, []byte) (int, ioResult, error)          { return 0, ioError, errUnsupported }
func readvQueue(int, []byte, []byte) (int, ioResult, error) { return 0, ioError, errUnsupported }
func writeQueue(int, [][]byte) ioResult                     { return ioError }
