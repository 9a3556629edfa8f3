// Package logtest records what an example extension logs, for its tests.
package logtest

import (
	"fmt"
	"strings"
	"sync"
)

// Log implements the examples' small logger interface (Info, Error) and
// keeps every line as "level: message [args]".
type Log struct {
	mu    sync.Mutex
	lines []string
}

func (l *Log) Info(msg string, args ...any)  { l.add("info", msg, args) }
func (l *Log) Error(msg string, args ...any) { l.add("error", msg, args) }

func (l *Log) add(level, msg string, args []any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprint(level, ": ", msg, " ", args))
}

// Count returns how many lines start with prefix.
func (l *Log) Count(prefix string) int { return len(l.Lines(prefix)) }

// Lines returns the lines that start with prefix ("" for all).
func (l *Log) Lines(prefix string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range l.lines {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	return out
}
