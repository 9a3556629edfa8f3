package extensions

import (
	"bytes"
	"encoding/json"
	"sync"

	"github.com/rs/zerolog"
)

// logWriter turns what a process writes to stderr (go-plugin forwards the
// JSON lines of hclog, and anything else verbatim) into the switch's log,
// keeping the level when there is one.
type logWriter struct {
	log zerolog.Logger
	mu  sync.Mutex
	buf []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 { // a process that never ends its line
		w.line(w.buf)
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

func (w *logWriter) line(b []byte) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return
	}
	var rec map[string]any
	if b[0] == '{' && json.Unmarshal(b, &rec) == nil {
		lvl, _ := rec["@level"].(string)
		msg, _ := rec["@message"].(string)
		for _, k := range []string{"@level", "@message", "@timestamp", "@module", "@caller", "timestamp"} {
			delete(rec, k)
		}
		l, err := zerolog.ParseLevel(lvl)
		if err != nil || lvl == "" {
			l = zerolog.InfoLevel
		}
		if lvl == "trace" {
			l = zerolog.DebugLevel
		}
		w.log.WithLevel(l).Fields(rec).Str("from", "extension").Msg(msg)
		return
	}
	w.log.Info().Str("from", "extension").Msg(string(b))
}
