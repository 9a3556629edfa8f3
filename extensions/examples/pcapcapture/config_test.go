package main

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64 // 0: an error
	}{
		{"1", 1},
		{"67108864", 64 << 20},
		{"64K", 64 << 10},
		{"64k", 64 << 10},
		{"64KB", 64 << 10},
		{"64KiB", 64 << 10},
		{"64M", 64 << 20},
		{" 64 M ", 64 << 20},
		{"2G", 2 << 30},
		{"8589934591G", 8589934591 << 30},
		{"8589934592G", 0}, // overflows int64
		{"0", 0},
		{"-1", 0},
		{"+1", 0},
		{"", 0},
		{"M", 0},
		{"64T", 0},
		{"64 MBs", 0},
		{"1.5M", 0},
		{"64B", 0},
		{"0x100", 0},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if tt.want == 0 {
			if err == nil {
				t.Errorf("parseSize(%q) = %d, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestParseConfig(t *testing.T) {
	good := config{dir: "/tmp/c", prefix: "xvs", maxBytes: 64 << 20, maxFiles: 8, snaplen: 65535}
	tests := []struct {
		name    string
		kv      map[string]string
		want    config
		wantErr []string
	}{
		{"defaults", map[string]string{"dir": "/tmp/c"}, good, nil},
		{"all keys", map[string]string{"dir": "/tmp/c", "prefix": "vm1.cap_x-1", "max-bytes": "1M", "max-files": "0", "snaplen": "128"},
			config{dir: "/tmp/c", prefix: "vm1.cap_x-1", maxBytes: 1 << 20, maxFiles: 0, snaplen: 128}, nil},
		{"no dir", map[string]string{}, config{}, []string{"config dir: missing"}},
		{"empty dir", map[string]string{"dir": ""}, config{}, []string{"config dir: missing"}},
		{"unknown key", map[string]string{"dir": "/tmp/c", "max_bytes": "1M"}, config{}, []string{`config key "max_bytes": unknown`, "max-bytes"}},
		{"bad max-bytes", map[string]string{"dir": "/tmp/c", "max-bytes": "lots"}, config{}, []string{`config max-bytes "lots"`, "64M"}},
		{"zero max-bytes", map[string]string{"dir": "/tmp/c", "max-bytes": "0"}, config{}, []string{`config max-bytes "0"`}},
		{"negative max-files", map[string]string{"dir": "/tmp/c", "max-files": "-1"}, config{}, []string{`config max-files "-1"`}},
		{"text max-files", map[string]string{"dir": "/tmp/c", "max-files": "all"}, config{}, []string{`config max-files "all"`}},
		{"zero snaplen", map[string]string{"dir": "/tmp/c", "snaplen": "0"}, config{}, []string{`config snaplen "0"`, "1..262144"}},
		{"huge snaplen", map[string]string{"dir": "/tmp/c", "snaplen": "262145"}, config{}, []string{`config snaplen "262145"`}},
		{"prefix with slash", map[string]string{"dir": "/tmp/c", "prefix": "../x"}, config{}, []string{`config prefix "../x"`}},
		{"prefix with space", map[string]string{"dir": "/tmp/c", "prefix": "a b"}, config{}, []string{`config prefix "a b"`, `' '`}},
		{"hidden prefix", map[string]string{"dir": "/tmp/c", "prefix": ".x"}, config{}, []string{`config prefix ".x"`}},
		{"empty prefix", map[string]string{"dir": "/tmp/c", "prefix": ""}, config{}, []string{`config prefix ""`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig(tt.kv)
			if tt.wantErr == nil {
				if err != nil || got != tt.want {
					t.Fatalf("parseConfig = %+v, %v; want %+v", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("parseConfig = %+v, want an error", got)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseFileName(t *testing.T) {
	tests := []struct {
		name  string
		stamp string
		seq   int
		ok    bool
	}{
		{"xvs-20250102-030405-000001.pcapng", "20250102-030405", 1, true},
		{"xvs-20250102-030405-1234567.pcapng", "20250102-030405", 1234567, true},
		{fileName("xvs", "20991231-235959", 42), "20991231-235959", 42, true},
		{"xvs-20250102-030405-.pcapng", "", 0, false},
		{"xvs-20250102-030405-00x1.pcapng", "", 0, false},
		{"xvs-20250102-030405-+1.pcapng", "", 0, false},
		{"xvs-20251302-030405-000001.pcapng", "", 0, false}, // month 13
		{"xvs-20250102-030405-000001.pcap", "", 0, false},
		{"xvs-a-20250102-030405-000001.pcapng", "", 0, false}, // prefix xvs-a
		{"yvs-20250102-030405-000001.pcapng", "", 0, false},
		{"xvs-20250102_030405-000001.pcapng", "", 0, false},
		{"xvs.pcapng", "", 0, false},
	}
	for _, tt := range tests {
		stamp, seq, ok := parseFileName("xvs", tt.name)
		if stamp != tt.stamp || seq != tt.seq || ok != tt.ok {
			t.Errorf("parseFileName(%q) = %q, %d, %v; want %q, %d, %v", tt.name, stamp, seq, ok, tt.stamp, tt.seq, tt.ok)
		}
	}
}
