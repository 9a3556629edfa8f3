package bench

import (
	"os"
	"testing"

	"github.com/xvswitch/xvs/extensions/exttest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	exttest.Cleanup() // extension binaries built by the benchmarks
	os.Exit(code)
}
