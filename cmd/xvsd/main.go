// Command xvsd is the xvs daemon: it runs the switch, attaches the ports
// of its configuration, and serves the control API that xvsctl uses and
// Prometheus metrics.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/rs/zerolog"
)

// version is set at build time (make build) with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

const usage = `xvsd - the xvs virtual switch daemon

Usage:
  xvsd [--config FILE] [--check]
  xvsd --print-default-config
  xvsd --version

xvsd runs the switch's poll-mode workers, attaches the ports listed in its
configuration, starts its extensions (out-of-process capture, filter and
forwarding programs, in chain order), and serves:
  - the control API on a unix socket (api_socket, root only) for xvsctl;
  - Prometheus metrics on http://ADDRESS/metrics (metrics_address).
It stops cleanly on SIGINT or SIGTERM, detaching every port and stopping
every extension.

Without --config it runs the built-in default configuration (print it with
--print-default-config). Logs go to stderr: readable text on a terminal,
JSON lines otherwise.

Flags:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("xvsd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (YAML); default: the built-in configuration")
	check := fs.Bool("check", false, "validate the configuration and exit")
	printDefault := fs.Bool("print-default-config", false, "print the built-in configuration and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "xvsd: unexpected argument %q (see xvsd --help)\n", fs.Arg(0))
		return 2
	}
	switch {
	case *showVersion:
		fmt.Println("xvsd", version)
		return 0
	case *printDefault:
		fmt.Print(defaultConfigYAML)
		return 0
	}

	var cfg *Config
	var err error
	if *configPath == "" {
		cfg, err = loadConfig(strings.NewReader(""), "built-in configuration")
	} else {
		cfg, err = loadConfigFile(*configPath)
	}
	if err != nil {
		fmt.Fprintf(stderr, "xvsd: %v\n", err)
		return 1
	}
	if *check {
		fmt.Fprintf(stderr, "xvsd: configuration OK (%d ports, %d extensions)\n", len(cfg.Ports), len(cfg.Extensions))
		return 0
	}
	log := newLogger(stderr, cfg.LogLevel)
	if os.Geteuid() != 0 {
		log.Warn().Msg("not running as root: AF_XDP and TAP ports will be refused")
	}
	d, err := newDaemon(cfg, log)
	if err != nil {
		log.Error().Err(err).Msg("cannot create the switch")
		return 1
	}
	if err := d.start(); err != nil {
		log.Error().Err(err).Msg("cannot start")
		return 1
	}
	log.Info().Str("version", version).Str("config", orDefault(*configPath)).Int("ports", len(cfg.Ports)).Int("extensions", len(cfg.Extensions)).Msg("xvsd running")

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	s := <-sig
	log.Info().Str("signal", s.String()).Msg("shutting down")
	signal.Stop(sig)
	d.close()
	log.Info().Msg("xvsd stopped")
	return 0
}

func orDefault(p string) string {
	if p == "" {
		return "(built-in)"
	}
	return p
}

func parseLevel(s string) (zerolog.Level, error) {
	switch s {
	case "debug":
		return zerolog.DebugLevel, nil
	case "info", "":
		return zerolog.InfoLevel, nil
	case "warn":
		return zerolog.WarnLevel, nil
	case "error":
		return zerolog.ErrorLevel, nil
	}
	return 0, fmt.Errorf("log_level: %q: want debug, info, warn or error", s)
}

// newLogger writes human-readable lines to a terminal and JSON otherwise.
func newLogger(w io.Writer, level string) zerolog.Logger {
	lvl, _ := parseLevel(level)
	out := w
	if f, ok := w.(*os.File); ok && isTerminal(f) {
		out = zerolog.ConsoleWriter{Out: f, TimeFormat: "15:04:05.000"}
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger()
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
