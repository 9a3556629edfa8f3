package gen

import (
	"errors"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPanicErr(t *testing.T) {
	// What github.com/asavie/xdp panics with when sendto fails.
	err := panicErr(fmt.Errorf("sendto failed with rc=%d and errno=%d", uint64(1<<64-1), unix.ENETDOWN))
	if !errors.Is(err, unix.ENETDOWN) || err.Error() != "sendto: network is down" {
		t.Errorf("panicErr = %v, want sendto: ENETDOWN", err)
	}
	if err := panicErr("boom"); err == nil || err.Error() != "boom" {
		t.Errorf("panicErr(string) = %v", err)
	}
}
