package ports

import (
	"errors"
	"fmt"
	"net"
)

// Range fills *v with def when it is 0 (unset) and otherwise checks that
// it lies in [lo, hi]; the error names field and value, for a port's
// constructor to wrap.
func Range(field string, v *int, def, lo, hi int) error {
	if *v == 0 {
		*v = def
		return nil
	}
	if *v < lo || *v > hi {
		return fmt.Errorf("%s %d: want %d..%d", field, *v, lo, hi)
	}
	return nil
}

// CheckMAC accepts an address a port may have as its own: six bytes,
// unicast, not all zero. The error says what is wrong, for a port's
// constructor to wrap with the field and value.
func CheckMAC(mac net.HardwareAddr) error {
	switch {
	case len(mac) != 6:
		return errors.New("want 6 bytes (EUI-48)")
	case mac[0]&1 != 0:
		return errors.New("a multicast address: want a unicast one")
	case string(mac) == "\x00\x00\x00\x00\x00\x00":
		return errors.New("all zero")
	}
	return nil
}
