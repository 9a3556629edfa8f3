package main

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Config keys and their defaults.
const (
	keyDir      = "dir"
	keyPrefix   = "prefix"
	keyMaxBytes = "max-bytes"
	keyMaxFiles = "max-files"
	keySnaplen  = "snaplen"

	defaultPrefix   = "xvs"
	defaultMaxBytes = 64 << 20
	defaultMaxFiles = 8
	defaultSnaplen  = 65535
	maxSnaplen      = 262144 // libpcap's limit
)

var knownKeys = []string{keyDir, keyPrefix, keyMaxBytes, keyMaxFiles, keySnaplen}

// config is the extension's configuration, checked.
type config struct {
	dir      string
	prefix   string
	maxBytes int64
	maxFiles int // 0: keep all
	snaplen  int
}

// parseConfig checks the key/values from the switch configuration and
// fills defaults. Errors name the key and the value.
func parseConfig(kv map[string]string) (config, error) {
	for k := range kv {
		if !slices.Contains(knownKeys, k) {
			return config{}, fmt.Errorf("config key %q: unknown: want one of %s", k, strings.Join(knownKeys, ", "))
		}
	}
	c := config{
		dir:      kv[keyDir],
		prefix:   defaultPrefix,
		maxBytes: defaultMaxBytes,
		maxFiles: defaultMaxFiles,
		snaplen:  defaultSnaplen,
	}
	if c.dir == "" {
		return config{}, fmt.Errorf("config %s: missing: want the directory to write capture files in", keyDir)
	}
	if v, ok := kv[keyPrefix]; ok {
		if err := checkPrefix(v); err != nil {
			return config{}, fmt.Errorf("config %s %q: %w", keyPrefix, v, err)
		}
		c.prefix = v
	}
	if v, ok := kv[keyMaxBytes]; ok {
		n, err := parseSize(v)
		if err != nil {
			return config{}, fmt.Errorf("config %s %q: %w", keyMaxBytes, v, err)
		}
		c.maxBytes = n
	}
	if v, ok := kv[keyMaxFiles]; ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			return config{}, fmt.Errorf("config %s %q: want a count of files, 0 to keep all", keyMaxFiles, v)
		}
		c.maxFiles = n
	}
	if v, ok := kv[keySnaplen]; ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 || n > maxSnaplen {
			return config{}, fmt.Errorf("config %s %q: want bytes per frame, 1..%d", keySnaplen, v, maxSnaplen)
		}
		c.snaplen = n
	}
	return c, nil
}

// checkPrefix accepts a file name prefix of letters, digits, '.', '_' and
// '-' that does not start with '.'.
func checkPrefix(p string) error {
	if p == "" || len(p) > 64 {
		return errors.New("want 1..64 characters")
	}
	if p[0] == '.' {
		return errors.New("want no leading '.'")
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("character %q: want a-z A-Z 0-9 . _ -", r)
		}
	}
	return nil
}

// parseSize parses a byte count: a positive integer, optionally followed
// by K, M or G (powers of 1024; KB, KiB and lower case are accepted too).
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	end := strings.IndexFunc(t, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(t)
	}
	digits, unit := t[:end], strings.TrimSpace(t[end:])
	var mult int64
	switch unit {
	case "":
		mult = 1
	case "K", "KB", "KIB":
		mult = 1 << 10
	case "M", "MB", "MIB":
		mult = 1 << 20
	case "G", "GB", "GIB":
		mult = 1 << 30
	default:
		return 0, errors.New("want a byte count like 1048576, 64K, 64M or 1G")
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("want a byte count like 1048576, 64K, 64M or 1G")
	}
	if n > math.MaxInt64/mult {
		return 0, errors.New("too large")
	}
	return n * mult, nil
}
