// Command sleeper is a test filter that never answers: its Filter sleeps
// forever. The switch must notice the missed deadline, apply the fail
// mode and restart it.
package main

import (
	"time"

	"github.com/xvswitch/xvs/extensions/sdk"
)

type sleeper struct{}

func (sleeper) Info() sdk.Info { return sdk.Info{Name: "sleeper", Description: "never answers"} }

func (sleeper) Filter(*sdk.Meta, []byte) sdk.Verdict {
	for {
		time.Sleep(time.Hour)
	}
}

func main() { sdk.Serve(sleeper{}) }
